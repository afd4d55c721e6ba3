// Checksums S3 uses: MD5 (ETag, Content-MD5), SHA-256 (SigV4 payload hash, x-amz-checksum-
// sha256), CRC32 and CRC32C (x-amz-checksum-crc32/crc32c, and our own per-block integrity
// check on stored data). Incremental hashers are single-threaded objects; the free functions
// are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
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

}  // namespace photon::lightningstor
