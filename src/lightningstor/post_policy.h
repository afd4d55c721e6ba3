// Browser POST uploads (S3 "POST Object"): the multipart/form-data body read as it streams in
// (the fields before the "file" part, then the file's bytes up to its closing boundary), and
// the POST policy document (base64 JSON with an expiration and conditions) the form carries,
// checked against the form's fields. The signature over the policy is checked by
// Authenticator::FromPostForm (auth.h). Each reader serves one request on one thread; the rest
// are pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "lightningstor/http/message.h"

namespace photon::lightningstor {

// The boundary of "multipart/form-data; boundary=..." (quoted or not); PreconditionFailed as S3
// answers a bucket POST of any other content type.
StatusOr<std::string> FormBoundary(const std::string& content_type);

// Reads a multipart/form-data body. ReadFields takes every part before the one named "file";
// Read then returns the file's bytes and 0 at its closing boundary. A part after the file is
// refused (S3 would drop it; lightningstor never drops a field it was sent).
class FormDataReader : public http::BodyReader {
 public:
  FormDataReader(http::BodyReader* inner, const std::string& boundary);
  // Field names lower case (S3's form field names are case-insensitive). MalformedPOSTRequest
  // for a body that is not multipart/form-data, InvalidArgument without a file or with a
  // repeated field, MaxPostPreDataLengthExceeded past `limit` bytes of fields.
  Status ReadFields(size_t limit);
  const std::map<std::string, std::string>& fields() const { return fields_; }
  const std::string& filename() const { return filename_; }
  StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  StatusOr<bool> Fill();  // more bytes into buf_; false at the end of the body
  // Fills until `needle` is found at or after pos_ (its offset in *at), scanning at most
  // `limit` bytes; false at the end of the body.
  StatusOr<bool> FindNeedle(const std::string& needle, size_t limit, size_t* at);
  Status ReadPartHeaders(std::string* name, std::string* filename, size_t limit);
  Status FinishFile();  // after the file's closing boundary: only the final "--" may follow

  http::BodyReader* inner_;
  std::string delimiter_;  // "\r\n--BOUNDARY"
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  bool file_done_ = false;
  std::map<std::string, std::string> fields_;
  std::string filename_;
};

// A decoded POST policy.
struct PostPolicy {
  struct Condition {
    enum class Kind { kEq, kStartsWith, kLengthRange } kind;
    std::string field;  // lower case, without '$'
    std::string value;
    uint64_t min = 0, max = 0;  // content-length-range
    std::string text;           // as written, for the error message
  };
  int64_t expiration = 0;  // epoch seconds
  std::vector<Condition> conditions;
  // The content-length-range bounds (0 .. UINT64_MAX when the policy has none).
  uint64_t min_length = 0;
  uint64_t max_length = UINT64_MAX;
};

// Decodes the base64 policy; InvalidPolicyDocument when it is not valid base64 JSON with an
// expiration and a list of conditions of S3's forms.
StatusOr<PostPolicy> ParsePostPolicy(const std::string& base64);

// Checks the policy at time `now` (epoch seconds) against the form's fields (lower-case names)
// and the bucket: AccessDenied "Invalid according to Policy: ..." when it has expired, a
// condition fails, or a field is not named by any condition.
Status CheckPostPolicy(const PostPolicy& policy, const std::map<std::string, std::string>& fields,
                       const std::string& bucket, int64_t now);

// Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fff]Z", or an error.
StatusOr<int64_t> ParseIso8601(const std::string& text);

// Passes a body through and refuses one outside [min, max] bytes (EntityTooLarge as soon as
// it is exceeded, EntityTooSmall at the end).
class LengthRangeReader : public http::BodyReader {
 public:
  LengthRangeReader(http::BodyReader* inner, uint64_t min, uint64_t max)
      : inner_(inner), min_(min), max_(max) {}
  StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  http::BodyReader* inner_;
  uint64_t min_, max_;
  uint64_t total_ = 0;
};

}  // namespace photon::lightningstor
