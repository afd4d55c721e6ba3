#include "lightningstor/checksum.h"

#include <nmmintrin.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <array>

namespace photon::lightningstor {

Digest::Digest(Kind kind) {
  auto* ctx = EVP_MD_CTX_new();
  const EVP_MD* md = kind == Kind::kMd5    ? EVP_md5()
                     : kind == Kind::kSha1 ? EVP_sha1()
                                           : EVP_sha256();
  EVP_DigestInit_ex(ctx, md, nullptr);
  ctx_ = ctx;
}

Digest::~Digest() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Digest::Update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Digest::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Md5Raw(std::string_view data) {
  Digest d(Digest::Kind::kMd5);
  d.Update(data.data(), data.size());
  return d.Finish();
}

uint32_t Crc32Update(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (n > 0) {
    uInt step = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    c = crc32(c, p, step);
    p += step;
    n -= step;
  }
  return static_cast<uint32_t>(c);
}

namespace {

const std::array<uint32_t, 256>& Crc32cTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t Crc32cSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = Crc32cTable();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// GF(2) product of two CRC-32C values (reflected), modulo the polynomial: used to move a CRC
// past n zero bytes so that three independent streams can be joined.
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ 0x82F63B78u : b >> 1;
  }
  return p;
}

// x^(8n) mod P: the operator that appends n zero bytes to a (non-inverted) CRC state.
uint32_t ZerosOperator(uint64_t n) {
  uint32_t x2k = 1u << 23;  // x^8 (one byte; x^k is bit 31-k), squared per bit of n
  uint32_t p = 1u << 31;    // x^0
  while (n) {
    if (n & 1) p = MultModP(x2k, p);
    x2k = MultModP(x2k, x2k);
    n >>= 1;
  }
  return p;
}

// The crc32 instruction has a latency of 3 cycles but a throughput of one per cycle, so one
// dependent chain uses a third of it. Large buffers are cut into three interleaved lanes of
// kLane bytes whose CRCs are joined with ZerosOperator: about 3x faster, which matters
// because every GET verifies every byte it sends.
constexpr size_t kLane = 16 << 10;

__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const uint8_t* p,
                                                          size_t n) {
  static const uint32_t shift1 = ZerosOperator(kLane);
  static const uint32_t shift2 = ZerosOperator(2 * kLane);
  uint64_t c0 = ~crc;
  while (n >= 3 * kLane) {
    uint64_t c1 = 0, c2 = 0;
    const uint8_t* end = p + kLane;
    while (p < end) {
      uint64_t v0, v1, v2;
      __builtin_memcpy(&v0, p, 8);
      __builtin_memcpy(&v1, p + kLane, 8);
      __builtin_memcpy(&v2, p + 2 * kLane, 8);
      c0 = _mm_crc32_u64(c0, v0);
      c1 = _mm_crc32_u64(c1, v1);
      c2 = _mm_crc32_u64(c2, v2);
      p += 8;
    }
    c0 = MultModP(shift2, static_cast<uint32_t>(c0)) ^ MultModP(shift1, static_cast<uint32_t>(c1)) ^
         static_cast<uint32_t>(c2);
    p += 2 * kLane;
    n -= 3 * kLane;
  }
  while (n >= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    c0 = _mm_crc32_u64(c0, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c0);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

}  // namespace

uint32_t Crc32cUpdate(uint32_t crc, const void* data, size_t n) {
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  const auto* p = static_cast<const uint8_t*>(data);
  return has_sse42 ? Crc32cHardware(crc, p, n) : Crc32cSoftware(crc, p, n);
}

std::string CrcToBytes(uint32_t crc) {
  std::string out(4, '\0');
  out[0] = static_cast<char>(crc >> 24);
  out[1] = static_cast<char>(crc >> 16);
  out[2] = static_cast<char>(crc >> 8);
  out[3] = static_cast<char>(crc);
  return out;
}

}  // namespace photon::lightningstor
