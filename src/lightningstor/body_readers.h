// Request-body layers between the socket and the blob writer: SHA-256 payload verification
// for signed payloads, the aws-chunked decoder (chunk signatures of
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD, unsigned chunks with trailers), and the x-amz-checksum-*
// verifier. Each object serves one request on one thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "lightningstor/auth.h"
#include "lightningstor/checksum.h"
#include "lightningstor/http/message.h"

namespace photon::lightningstor {

// Passes bytes through and, at the end, checks their SHA-256 against the signed hash
// (XAmzContentSHA256Mismatch).
class Sha256CheckReader : public http::BodyReader {
 public:
  Sha256CheckReader(http::BodyReader* inner, std::string expected_hex)
      : inner_(inner), expected_(std::move(expected_hex)) {}
  StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  http::BodyReader* inner_;
  std::string expected_;
  Digest sha_{Digest::Kind::kSha256};
  bool done_ = false;
};

// Decodes "aws-chunked" content: <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... with a
// final zero chunk and optional trailers. When `auth` has a signing key and the mode is
// signed, every chunk signature is checked (SignatureDoesNotMatch) as its chunk completes.
class AwsChunkedReader : public http::BodyReader {
 public:
  AwsChunkedReader(http::BodyReader* inner, const AuthInfo& auth, bool signed_chunks);
  StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::map<std::string, std::string>& trailers() const { return trailers_; }

 private:
  enum class State { kHeader, kData, kDataEnd, kTrailer, kDone };
  StatusOr<std::string> ReadLine();
  StatusOr<bool> Fill();
  Status FinishChunk();

  http::BodyReader* inner_;
  const AuthInfo& auth_;
  bool signed_;
  State state_ = State::kHeader;
  std::string buf_;
  size_t pos_ = 0;
  uint64_t remaining_ = 0;
  std::string chunk_signature_;
  std::string previous_signature_;
  std::optional<Digest> chunk_sha_;
  std::map<std::string, std::string> trailers_;
  std::string trailer_block_;
};

// x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}: computed over the decoded body,
// compared with the header value or the trailer value at the end.
class ContentChecksums {
 public:
  // Picks up expected values (headers) and algorithms announced for trailers (x-amz-trailer,
  // x-amz-sdk-checksum-algorithm); InvalidRequest for a malformed value, an unknown trailer or
  // an announced algorithm the request carries no value for. `always` is computed (and stored)
  // even when the request carries no value for it (the parts of an upload made with
  // x-amz-checksum-algorithm).
  static StatusOr<ContentChecksums> FromRequest(const http::Request& req,
                                                std::optional<ChecksumKind> always = std::nullopt);
  void Update(const char* data, size_t n);
  // BadDigest on mismatch, InvalidRequest when an announced trailer did not come; fills
  // `stored` with "x-amz-checksum-<alg>" -> base64 value.
  Status Verify(const std::map<std::string, std::string>& trailers,
                std::map<std::string, std::string>* stored);
  bool empty() const { return algorithms_.empty(); }

 private:
  struct Algo {
    ChecksumKind kind;
    std::string expected;  // base64 from the header, or "" (trailer, or computed only)
    bool trailer = false;  // the value comes in a trailer
    std::shared_ptr<Checksummer> sum;
  };
  std::vector<Algo> algorithms_;
};

}  // namespace photon::lightningstor
