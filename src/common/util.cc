#include "common/util.h"

#include <absl/synchronization/mutex.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>

#include "common/hex.h"

namespace photon {

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

std::string RandomHex(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return HexEncode(bytes);
}

std::string NewUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string h = HexEncode({reinterpret_cast<const char*>(b), sizeof b});
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string Sha256Hex(const std::string& data) { return HexEncode(Sha256Raw(data)); }

namespace {

// EVP_sha256() and HMAC() fetch the algorithm from the provider tables (a locked lookup) on
// every call in OpenSSL 3; SigV4 verification hashes and MACs several times per request, and on
// lightningstor's 4 KiB GETs those lookups were a tenth of the daemon's time. So SHA-256 is
// fetched once, each thread reuses one digest context, and HMAC is RFC 2104 over them.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

constexpr size_t kSha256Block = 64;
constexpr size_t kSha256Len = 32;

void Sha256Parts(std::string_view a, std::string_view b, unsigned char* out) {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
}

}  // namespace

std::string Sha256Raw(std::string_view data) {
  unsigned char md[kSha256Len];
  Sha256Parts(data, {}, md);
  return std::string(reinterpret_cast<const char*>(md), sizeof md);
}

std::string HmacSha256Raw(std::string_view key, std::string_view data) {
  unsigned char k0[kSha256Block] = {};
  if (key.size() > kSha256Block) {
    Sha256Parts(key, {}, k0);
  } else {
    std::memcpy(k0, key.data(), key.size());
  }
  char ipad[kSha256Block], opad[kSha256Block];
  for (size_t i = 0; i < kSha256Block; ++i) {
    ipad[i] = static_cast<char>(k0[i] ^ 0x36);
    opad[i] = static_cast<char>(k0[i] ^ 0x5c);
  }
  unsigned char inner[kSha256Len], outer[kSha256Len];
  Sha256Parts({ipad, sizeof ipad}, data, inner);
  Sha256Parts({opad, sizeof opad}, {reinterpret_cast<const char*>(inner), sizeof inner}, outer);
  OPENSSL_cleanse(k0, sizeof k0);
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  return std::string(reinterpret_cast<const char*>(outer), sizeof outer);
}

bool SecureEquals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SetThreadName(const char* name) {
  char buf[16];
  snprintf(buf, sizeof buf, "%s", name);
  pthread_setname_np(pthread_self(), buf);
}

void DisableAbslDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace photon
