// Server-side encryption at rest: SSE-S3 (a random data key per object, wrapped with
// AES-256-GCM by a master key kept in a 0600 file in the data dir) and SSE-C (the client's key
// on every request; only a salted HMAC of it is stored, so a read without the right key is
// refused). Object bytes are encrypted with AES-256-CTR from a random per-object IV, so any
// range can be decrypted from its offset; the per-block CRC-32C over the stored (encrypted)
// bytes still detects bit rot. What an object needs to be read is kept in its internal headers
// (kSseHeaders). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "lightningstor/http/message.h"
#include "lightningstor/types.h"

namespace photon::lightningstor {

// AES-256-CTR keystream applied from a byte offset of the object.
class CtrCipher {
 public:
  CtrCipher(const std::string& key, const std::string& iv, uint64_t offset);
  ~CtrCipher();
  CtrCipher(const CtrCipher&) = delete;
  CtrCipher& operator=(const CtrCipher&) = delete;
  void Apply(char* data, size_t n) { ApplyTo(data, data, n); }
  // Writes in[0, n) transformed to out (a GET decrypts from the read buffer into the send
  // buffer without a separate copy).
  void ApplyTo(const char* in, char* out, size_t n);

 private:
  void* ctx_;  // EVP_CIPHER_CTX*
};

// The keystream of a stored object from byte `start` on. A segment with its own IV (a part of
// a multipart upload) is encrypted from its own offset 0, so the keystream switches at its
// boundary; any other segment (and an inline object) uses the object's IV at the object's
// offset.
class ObjectCipher {
 public:
  ObjectCipher(std::string key, std::string object_iv, const std::vector<Segment>& segments,
               uint64_t start);
  void ApplyTo(const char* in, char* out, size_t n);

 private:
  void Seek();  // cipher_ for pos_, which lies in segment index_

  std::string key_, iv_;
  std::vector<std::pair<uint64_t, std::string>> segments_;  // size, own IV
  size_t index_ = 0;
  uint64_t pos_ = 0;        // object offset of the next byte
  uint64_t seg_start_ = 0;  // object offset of segment index_
  std::unique_ptr<CtrCipher> cipher_;
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
  explicit SseKeys(std::string master_key_path) : path_(std::move(master_key_path)) {}

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
  std::mutex mu_;
  std::string master_;
};

}  // namespace photon::lightningstor
