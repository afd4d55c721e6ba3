// Server-side encryption at rest: SSE-S3 (a random data key per object, wrapped with
// AES-256-GCM by a master key kept in a 0600 file in the data dir) and SSE-C (the client's key
// on every request; only a salted HMAC of it is stored, so a read without the right key is
// refused). Object bytes are encrypted with AES-256-GCM in kBlockSize blocks (format 2): each
// block is sealed on its own with a nonce made of the object's/part's random IV and the block
// index under a key derived from the data key and that IV (so no (key, nonce) pair is ever
// used twice, even by an SSE-C key shared by many objects), and its 16-byte tag is kept with
// the block's CRC in the segment (types.h Segment::block_tags). A changed, swapped or cut
// block fails its tag and the read fails instead of handing out altered bytes. Objects written
// before (format 1: AES-256-CTR, malleable) are still read, never written. The per-block
// CRC-32C over the stored bytes still tells bit rot from tampering in the log. What an object
// needs to be read is kept in its internal headers. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "lightningstor/http/message.h"
#include "lightningstor/types.h"

namespace photon::lightningstor {

// AES-256-CTR keystream applied from a byte offset of the object (format 1: reading objects
// written before format 2, and writing them for tests of that).
class CtrCipher {
 public:
  CtrCipher(const std::string& key, const std::string& iv, uint64_t offset);
  ~CtrCipher();
  CtrCipher(const CtrCipher&) = delete;
  CtrCipher& operator=(const CtrCipher&) = delete;
  void Apply(char* data, size_t n) { ApplyTo(data, data, n); }
  void ApplyTo(const char* in, char* out, size_t n);

 private:
  void* ctx_;  // EVP_CIPHER_CTX*
};

// How the bytes of an encrypted segment (or inline object) are stored.
enum class SseFormat {
  kCtr = 1,        // AES-256-CTR over the whole segment; no integrity (old objects only)
  kGcmBlocks = 2,  // AES-256-GCM per kBlockSize block, a tag per block
};

// Encrypts one segment (a single PUT's blob or one part) as the write pipeline hands its
// blocks over: in order, each kBlockSize bytes but the last. Runs on the writer thread.
class SegmentEncryptor {
 public:
  SegmentEncryptor(const std::string& key, const std::string& iv, SseFormat format);
  ~SegmentEncryptor();
  SegmentEncryptor(const SegmentEncryptor&) = delete;
  SegmentEncryptor& operator=(const SegmentEncryptor&) = delete;
  // Encrypts the next block in place (GCM: appends its tag to tags()).
  void Seal(char* buf, size_t len);
  SseFormat format() const { return format_; }
  const std::string& tags() const { return tags_; }  // 16 bytes per sealed block (GCM)

 private:
  SseFormat format_;
  std::string iv_;
  std::string subkey_;
  uint64_t index_ = 0;
  std::string tags_;
  std::unique_ptr<CtrCipher> ctr_;
};

// Turns the stored bytes of an object back into plaintext, block by block as the blob store
// reads and CRC-checks them: a GCM block is opened whole (its tag checked) before any of its
// bytes are used; a CTR segment's bytes are decrypted from their offset.
class ObjectDecryptor {
 public:
  ObjectDecryptor(std::string key, std::string object_iv, const ObjectMeta& object);
  // Bytes [from, from+n) of block `block_index` of segment `seg` made plaintext in place;
  // `block` holds the whole stored block (`len` bytes). DataLoss when a GCM tag fails.
  Status OpenBlock(size_t seg, uint64_t block_index, char* block, size_t len, size_t from,
                   size_t n) const;
  // The plaintext of an inline object's stored bytes.
  Status OpenInline(const std::string& stored, std::string* plain) const;

 private:
  std::string key_, iv_;
  bool inline_gcm_ = false;
  std::vector<uint64_t> starts_;  // object offset of each segment
  std::vector<Segment> segments_;
};

// A fresh random IV (16 bytes) for a part of an encrypted multipart upload.
std::string NewSseIv();

// What a PUT asked for (x-amz-server-side-encryption*): none, SSE-S3 or SSE-C.
struct SseRequest {
  enum class Mode { kNone, kS3, kCustomer } mode = Mode::kNone;
  std::string customer_key;  // raw 32 bytes (SSE-C)
  std::string key_md5_b64;   // as the client sent it (SSE-C)
};

// The request's SSE headers: InvalidArgument when malformed, NotImplemented for SSE-KMS.
StatusOr<SseRequest> ParseSseRequest(const http::Request& req);
// A copy's source key: x-amz-copy-source-server-side-encryption-customer-{algorithm,key,
// key-MD5} (SSE-C only, as in S3), checked as ParseSseRequest checks the unprefixed ones.
StatusOr<SseRequest> ParseCopySourceSse(const http::Request& req);

class SseKeys {
 public:
  // write_format: how new objects and parts are stored (kCtr only in tests of old data).
  explicit SseKeys(std::string master_key_path, SseFormat write_format = SseFormat::kGcmBlocks)
      : path_(std::move(master_key_path)), write_format_(write_format) {}
  SseFormat write_format() const { return write_format_; }

  // For a new object: a data key and IV, and the internal headers that let it be read again.
  struct NewKey {
    std::string data_key;
    std::string iv;
    std::map<std::string, std::string> headers;
  };
  StatusOr<NewKey> ForWrite(const SseRequest& sse);
  // The data key and IV of a stored object, checking the request's SSE-C key against the stored
  // HMAC; "" key when the object is not encrypted. InvalidRequest when the key is missing or
  // not applicable, AccessDenied when it is wrong.
  struct ReadKey {
    std::string data_key;
    std::string iv;
  };
  StatusOr<ReadKey> ForRead(const std::map<std::string, std::string>& stored,
                            const SseRequest& sse);
  // The data key of a multipart upload for one of its parts (UploadPart, UploadPartCopy,
  // CompleteMultipartUpload): an SSE-C upload needs its key on every part (missing: 400
  // InvalidRequest, another key: 400 InvalidArgument, as S3 answers a part); an SSE-S3 one
  // takes none. "" key when the upload is not encrypted.
  StatusOr<ReadKey> ForPart(const std::map<std::string, std::string>& upload,
                            const SseRequest& sse);
  // The response headers S3 returns for an object stored with these internal headers.
  static std::map<std::string, std::string> ResponseHeaders(
      const std::map<std::string, std::string>& stored);
  static bool IsEncrypted(const std::map<std::string, std::string>& stored);
  // Removes the internal SSE headers (a copy never carries its source's key).
  static void Strip(std::map<std::string, std::string>* stored);

 private:
  StatusOr<std::string> MasterKey();  // read, or made on first use

  std::string path_;
  SseFormat write_format_;
  std::mutex mu_;
  std::string master_;
};

}  // namespace photon::lightningstor
