// Where uploaded image bytes live: one bucket of lightningstor (the platform's S3), written
// with multipart uploads so that no image is ever held whole in memory, read back in ranges.
// Signed with AWS Signature Version 4 and an UNSIGNED-PAYLOAD body hash: the image service
// hashes every byte itself (the image's SHA-256) and a second SHA-256 per part, only for the
// signature, would cost as much again. The credentials are the server's lightningstor key
// (the `lightningstor` provider entry); nodes never see them.
// Thread-safety: thread-safe (every call opens its own connection).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::server::images {

struct BlobStoreOptions {
  std::string endpoint;  // http://host:port of lightningstor's S3 API
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;
  std::string bucket = "photon-images";
  std::chrono::milliseconds timeout{60000};
};

class BlobStore {
 public:
  explicit BlobStore(BlobStoreOptions options) : o_(std::move(options)) {}
  const std::string& bucket() const { return o_.bucket; }

  // Creates the bucket unless this key already owns it.
  Status EnsureBucket();
  // A new multipart upload of `key`: its upload id.
  StatusOr<std::string> BeginUpload(const std::string& key);
  // Part `number` (1-based) of upload `upload_id`: its ETag.
  StatusOr<std::string> UploadPart(const std::string& key, const std::string& upload_id, int number,
                                   const std::string& data);
  Status CompleteUpload(const std::string& key, const std::string& upload_id,
                        const std::vector<std::string>& etags);
  void AbortUpload(const std::string& key, const std::string& upload_id);
  // Bytes [offset, offset + length) of `key`.
  StatusOr<std::string> Read(const std::string& key, int64_t offset, int64_t length);
  Status Delete(const std::string& key);

 private:
  struct Answer {
    int status = 0;
    std::string body;
    std::string etag;
  };
  StatusOr<Answer> Call(const std::string& method, const std::string& key,
                        const std::vector<std::pair<std::string, std::string>>& query,
                        const std::string& body, const std::string& range = "");

  BlobStoreOptions o_;
};

}  // namespace photon::server::images
