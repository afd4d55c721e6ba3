// Checksums S3 uses: MD5 (ETag, Content-MD5), SHA-256 (SigV4 payload hash, x-amz-checksum-
// sha256), CRC32 and CRC32C (x-amz-checksum-crc32/crc32c, and our own per-block integrity
// check on stored data). Incremental hashers are single-threaded objects; the free functions
// are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base64.h"  // Base64Encode/Decode, how S3 carries MD5s and checksums
#include "common/hex.h"     // HexEncode, how digests are printed (ETags, SigV4)

namespace photon::lightningstor {

// Incremental digest over OpenSSL EVP (MD5 or SHA-256).
class Digest {
 public:
  enum class Kind { kMd5, kSha1, kSha256 };
  explicit Digest(Kind kind);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void Update(const void* data, size_t n);
  // Raw digest bytes; the object must not be updated afterwards.
  std::string Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so callers need no OpenSSL headers
};

std::string Md5Raw(std::string_view data);

uint32_t Crc32Update(uint32_t crc, const void* data, size_t n);
// CRC-32C (Castagnoli); uses the SSE4.2 instruction when the CPU has it.
uint32_t Crc32cUpdate(uint32_t crc, const void* data, size_t n);

// 4-byte big-endian form of a CRC, as S3 puts it in base64.
std::string CrcToBytes(uint32_t crc);

// CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones), S3's
// x-amz-checksum-crc64nvme.
uint64_t Crc64NvmeUpdate(uint64_t crc, const void* data, size_t n);

// The additional checksums S3 takes (x-amz-checksum-<name>).
enum class ChecksumKind { kCrc32, kCrc32c, kCrc64Nvme, kSha1, kSha256 };
inline constexpr ChecksumKind kChecksumKinds[] = {ChecksumKind::kCrc32, ChecksumKind::kCrc32c,
                                                  ChecksumKind::kCrc64Nvme, ChecksumKind::kSha1,
                                                  ChecksumKind::kSha256};
// From "crc32", "CRC32C", ... (any case); nullopt for anything else.
std::optional<ChecksumKind> ChecksumKindOf(std::string_view name);
// "crc32", "crc32c", "crc64nvme", "sha1", "sha256".
const char* ChecksumName(ChecksumKind kind);
// "x-amz-checksum-crc32", ...
std::string ChecksumHeader(ChecksumKind kind);
// The XML element S3 names it with: "ChecksumCRC32", ...
const char* ChecksumElement(ChecksumKind kind);
// Whether a full-object checksum of a multipart object can be combined from its parts'
// (the CRCs) or only a checksum of their checksums (SHA-1, SHA-256).
bool IsCrc(ChecksumKind kind);

// One incremental checksum of a kind; Finish gives the raw bytes (big-endian for CRCs).
class Checksummer {
 public:
  explicit Checksummer(ChecksumKind kind);
  void Update(const void* data, size_t n);
  std::string Finish();
  ChecksumKind kind() const { return kind_; }

 private:
  ChecksumKind kind_;
  uint64_t crc_ = 0;
  std::unique_ptr<Digest> digest_;
};

std::string ChecksumOf(ChecksumKind kind, std::string_view data);
// The raw CRC of A||B from the raw CRCs of A and of B and B's length (CRC kinds only).
std::string CombineCrc(ChecksumKind kind, const std::string& a, const std::string& b,
                       uint64_t b_length);

}  // namespace photon::lightningstor
