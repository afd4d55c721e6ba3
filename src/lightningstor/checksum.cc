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

namespace {

// GF(2) product modulo a reflected polynomial of any width (for CombineCrc).
template <typename T>
T MultMod(T a, T b, T poly) {
  T m = T(1) << (sizeof(T) * 8 - 1), p = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ poly : b >> 1;
  }
  return p;
}

// x^(8n) mod poly, reflected.
template <typename T>
T ZerosMod(uint64_t n, T poly) {
  constexpr int kWidth = sizeof(T) * 8;
  T x2k = T(1) << (kWidth - 9);  // x^8
  T p = T(1) << (kWidth - 1);    // x^0
  while (n) {
    if (n & 1) p = MultMod(x2k, p, poly);
    x2k = MultMod(x2k, x2k, poly);
    n >>= 1;
  }
  return p;
}

constexpr uint64_t kCrc64NvmePoly = 0x9A6C9329AC4BC9B5ull;

const std::array<uint64_t, 256>& Crc64Table() {
  static const std::array<uint64_t, 256> table = [] {
    std::array<uint64_t, 256> t{};
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc64NvmePoly : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint64_t BytesToInt(const std::string& raw) {
  uint64_t v = 0;
  for (unsigned char c : raw) v = (v << 8) | c;
  return v;
}

std::string IntToBytes(uint64_t v, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[n - 1 - i] = static_cast<char>(v >> (8 * i));
  return out;
}

}  // namespace

uint64_t Crc64NvmeUpdate(uint64_t crc, const void* data, size_t n) {
  const auto& t = Crc64Table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {
struct KindInfo {
  ChecksumKind kind;
  const char* name;
  const char* element;
};
constexpr KindInfo kKinds[] = {{ChecksumKind::kCrc32, "crc32", "ChecksumCRC32"},
                               {ChecksumKind::kCrc32c, "crc32c", "ChecksumCRC32C"},
                               {ChecksumKind::kCrc64Nvme, "crc64nvme", "ChecksumCRC64NVME"},
                               {ChecksumKind::kSha1, "sha1", "ChecksumSHA1"},
                               {ChecksumKind::kSha256, "sha256", "ChecksumSHA256"}};
const KindInfo& InfoOf(ChecksumKind kind) { return kKinds[static_cast<int>(kind)]; }
}  // namespace

std::optional<ChecksumKind> ChecksumKindOf(std::string_view name) {
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  for (const auto& k : kKinds)
    if (lower == k.name) return k.kind;
  return std::nullopt;
}

const char* ChecksumName(ChecksumKind kind) { return InfoOf(kind).name; }
std::string ChecksumHeader(ChecksumKind kind) {
  return std::string("x-amz-checksum-") + ChecksumName(kind);
}
const char* ChecksumElement(ChecksumKind kind) { return InfoOf(kind).element; }
bool IsCrc(ChecksumKind kind) {
  return kind != ChecksumKind::kSha1 && kind != ChecksumKind::kSha256;
}

Checksummer::Checksummer(ChecksumKind kind) : kind_(kind) {
  if (kind == ChecksumKind::kSha1) digest_ = std::make_unique<Digest>(Digest::Kind::kSha1);
  if (kind == ChecksumKind::kSha256) digest_ = std::make_unique<Digest>(Digest::Kind::kSha256);
}

void Checksummer::Update(const void* data, size_t n) {
  switch (kind_) {
    case ChecksumKind::kCrc32:
      crc_ = Crc32Update(static_cast<uint32_t>(crc_), data, n);
      break;
    case ChecksumKind::kCrc32c:
      crc_ = Crc32cUpdate(static_cast<uint32_t>(crc_), data, n);
      break;
    case ChecksumKind::kCrc64Nvme:
      crc_ = Crc64NvmeUpdate(crc_, data, n);
      break;
    default:
      digest_->Update(data, n);
  }
}

std::string Checksummer::Finish() {
  if (digest_) return digest_->Finish();
  return IntToBytes(crc_, kind_ == ChecksumKind::kCrc64Nvme ? 8 : 4);
}

std::string ChecksumOf(ChecksumKind kind, std::string_view data) {
  Checksummer c(kind);
  c.Update(data.data(), data.size());
  return c.Finish();
}

std::string CombineCrc(ChecksumKind kind, const std::string& a, const std::string& b,
                       uint64_t b_length) {
  if (kind == ChecksumKind::kCrc64Nvme) {
    uint64_t shifted = MultMod<uint64_t>(ZerosMod<uint64_t>(b_length, kCrc64NvmePoly),
                                         BytesToInt(a), kCrc64NvmePoly);
    return IntToBytes(shifted ^ BytesToInt(b), 8);
  }
  // CRC-32 (zlib's polynomial) and CRC-32C, both reflected.
  uint32_t poly = kind == ChecksumKind::kCrc32 ? 0xEDB88320u : 0x82F63B78u;
  uint32_t shifted = MultMod<uint32_t>(ZerosMod<uint32_t>(b_length, poly),
                                       static_cast<uint32_t>(BytesToInt(a)), poly);
  return IntToBytes(shifted ^ static_cast<uint32_t>(BytesToInt(b)), 4);
}

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
