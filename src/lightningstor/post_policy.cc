#include "lightningstor/post_policy.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "lightningstor/checksum.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

constexpr size_t kFillSize = 64 * 1024;
constexpr size_t kMaxPartHeaders = 8 * 1024;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Status Malformed() {
  return S3Error("MalformedPOSTRequest",
                 "The body of your POST request is not well-formed multipart/form-data.");
}

// The value of `param` ("name", "filename") in a Content-Disposition header, unquoted.
std::string DispositionParam(const std::string& header, const std::string& param) {
  size_t pos = 0;
  while ((pos = header.find(';', pos)) != std::string::npos) {
    ++pos;
    while (pos < header.size() && header[pos] == ' ') ++pos;
    size_t eq = header.find('=', pos);
    if (eq == std::string::npos) return "";
    if (strcasecmp(header.substr(pos, eq - pos).c_str(), param.c_str()) != 0) continue;
    std::string value = header.substr(eq + 1);
    if (!value.empty() && value.front() == '"') {
      size_t close = value.find('"', 1);
      return value.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    }
    return value.substr(0, value.find(';'));
  }
  return "";
}

Status PolicyError(const std::string& what) {
  return S3Error("InvalidPolicyDocument", "Invalid Policy: " + what);
}

Status Denied(const std::string& what) {
  return S3Error("AccessDenied", "Invalid according to Policy: " + what);
}

// A condition's field: "$key" (or "key" in the object form) in lower case.
std::string FieldName(std::string name) {
  if (!name.empty() && name.front() == '$') name.erase(0, 1);
  return Lower(std::move(name));
}

StatusOr<PostPolicy::Condition> ParseArrayCondition(const nlohmann::json& c) {
  using Kind = PostPolicy::Condition::Kind;
  PostPolicy::Condition out;
  out.text = c.dump();
  if (c.size() != 3 || !c[0].is_string()) return PolicyError("Invalid Condition: " + out.text);
  std::string op = Lower(c[0].get<std::string>());
  if (op == "content-length-range") {
    auto bound = [](const nlohmann::json& v, uint64_t* n) {
      if (v.is_number_unsigned()) {
        *n = v.get<uint64_t>();
        return true;
      }
      if (!v.is_string()) return false;
      std::string s = v.get<std::string>();
      if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
      *n = std::stoull(s);
      return true;
    };
    out.kind = Kind::kLengthRange;
    if (!bound(c[1], &out.min) || !bound(c[2], &out.max) || out.min > out.max)
      return PolicyError("Invalid content-length-range: " + out.text);
    return out;
  }
  if (op != "eq" && op != "starts-with") {
    return PolicyError("Invalid Condition: unknown operation in " + out.text);
  }
  if (!c[1].is_string() || !c[2].is_string() || c[1].get<std::string>().rfind('$', 0) != 0) {
    return PolicyError("Invalid Condition: " + out.text);
  }
  out.kind = op == "eq" ? Kind::kEq : Kind::kStartsWith;
  out.field = FieldName(c[1].get<std::string>());
  out.value = c[2].get<std::string>();
  return out;
}

// Fields every form has that no condition needs to name.
bool ExemptField(const std::string& name) {
  return name == "policy" || name == "x-amz-signature" || name == "file" ||
         name.rfind("x-ignore-", 0) == 0;
}

}  // namespace

StatusOr<std::string> FormBoundary(const std::string& content_type) {
  std::string lower = Lower(content_type);
  if (lower.rfind("multipart/form-data", 0) != 0) {
    return S3Error("PreconditionFailed",
                   "Bucket POST must be of the enclosure-type multipart/form-data");
  }
  size_t at = lower.find("boundary=");
  if (at == std::string::npos) return Malformed();
  std::string boundary = content_type.substr(at + 9);
  if (!boundary.empty() && boundary.front() == '"') {
    size_t close = boundary.find('"', 1);
    if (close == std::string::npos) return Malformed();
    boundary = boundary.substr(1, close - 1);
  } else {
    boundary = boundary.substr(0, boundary.find(';'));
  }
  if (boundary.empty() || boundary.size() > 70) return Malformed();
  return boundary;
}

FormDataReader::FormDataReader(http::BodyReader* inner, const std::string& boundary)
    : inner_(inner), delimiter_("\r\n--" + boundary) {}

StatusOr<bool> FormDataReader::Fill() {
  if (eof_) return false;
  // Compacts what was consumed, so the buffer never grows past one fill and a delimiter.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buf_.size();
  buf_.resize(old + kFillSize);
  auto n = inner_->Read(buf_.data() + old, kFillSize);
  if (!n.ok()) {
    buf_.resize(old);
    return n.status();
  }
  buf_.resize(old + *n);
  if (*n == 0) eof_ = true;
  return *n > 0;
}

StatusOr<bool> FormDataReader::FindNeedle(const std::string& needle, size_t limit, size_t* at) {
  while (true) {
    size_t found = buf_.find(needle, pos_);
    if (found != std::string::npos) {
      if (found - pos_ > limit) break;
      *at = found;
      return true;
    }
    if (buf_.size() - pos_ > limit + needle.size()) break;
    PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) return false;
  }
  return S3Error("MaxPostPreDataLengthExceeded",
                 "Your POST request fields preceding the upload file were too large.");
}

Status FormDataReader::ReadPartHeaders(std::string* name, std::string* filename, size_t limit) {
  size_t end = 0;
  PHOTON_ASSIGN_OR_RETURN(bool found,
                          FindNeedle("\r\n\r\n", std::min(limit, kMaxPartHeaders), &end));
  if (!found) return Malformed();
  std::string block = buf_.substr(pos_, end - pos_);
  pos_ = end + 4;
  std::string disposition;
  size_t start = 0;
  while (start <= block.size()) {
    size_t eol = block.find("\r\n", start);
    if (eol == std::string::npos) eol = block.size();
    std::string line = block.substr(start, eol - start);
    size_t colon = line.find(':');
    if (colon != std::string::npos &&
        strcasecmp(line.substr(0, colon).c_str(), "content-disposition") == 0) {
      disposition = line.substr(colon + 1);
    }
    start = eol + 2;
  }
  if (Lower(disposition).find("form-data") == std::string::npos) return Malformed();
  *name = Lower(DispositionParam(disposition, "name"));
  *filename = DispositionParam(disposition, "filename");
  return name->empty() ? Malformed() : absl::OkStatus();
}

Status FormDataReader::ReadFields(size_t limit) {
  // The first boundary may follow a preamble; pretending the body starts with CRLF lets the
  // one delimiter "\r\n--BOUNDARY" find it.
  buf_ = "\r\n";
  size_t used = 0;
  size_t at = 0;
  PHOTON_ASSIGN_OR_RETURN(bool found, FindNeedle(delimiter_, limit, &at));
  if (!found) return Malformed();
  pos_ = at + delimiter_.size();
  while (true) {
    while (buf_.size() - pos_ < 2) {
      PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) return Malformed();
    }
    if (buf_.compare(pos_, 2, "--") == 0) {
      return S3Error("InvalidArgument", "POST requires exactly one file upload per request.");
    }
    if (buf_.compare(pos_, 2, "\r\n") != 0) return Malformed();
    pos_ += 2;
    std::string name, filename;
    PHOTON_RETURN_IF_ERROR(ReadPartHeaders(&name, &filename, limit - used));
    if (name == "file") {
      filename_ = filename;
      return absl::OkStatus();
    }
    PHOTON_ASSIGN_OR_RETURN(found, FindNeedle(delimiter_, limit - used, &at));
    if (!found) return Malformed();
    used += at - pos_ + name.size();
    if (used > limit) {
      return S3Error("MaxPostPreDataLengthExceeded",
                     "Your POST request fields preceding the upload file were too large.");
    }
    if (!fields_.emplace(name, buf_.substr(pos_, at - pos_)).second) {
      return S3Error("InvalidArgument", "The form field " + name + " is given more than once.");
    }
    pos_ = at + delimiter_.size();
  }
}

StatusOr<size_t> FormDataReader::Read(char* buf, size_t n) {
  if (file_done_ || n == 0) return size_t{0};
  while (true) {
    size_t found = buf_.find(delimiter_, pos_);
    size_t ready = found != std::string::npos ? found - pos_
                   : buf_.size() - pos_ >= delimiter_.size()
                       ? buf_.size() - pos_ - (delimiter_.size() - 1)
                       : 0;
    if (ready > 0) {
      size_t take = std::min(ready, n);
      std::copy_n(buf_.data() + pos_, take, buf);
      pos_ += take;
      return take;
    }
    if (found != std::string::npos) {
      pos_ = found + delimiter_.size();
      file_done_ = true;
      PHOTON_RETURN_IF_ERROR(FinishFile());
      return size_t{0};
    }
    PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) return Malformed();
  }
}

Status FormDataReader::FinishFile() {
  while (buf_.size() - pos_ < 2) {
    PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) return Malformed();
  }
  if (buf_.compare(pos_, 2, "--") != 0) {
    return S3Error("InvalidArgument",
                   "lightningstor refuses form fields after the file field (S3 would ignore "
                   "them); put the file last.");
  }
  // The epilogue is read and dropped, so the connection stays in step for the next request.
  size_t epilogue = 0;
  while (true) {
    epilogue += buf_.size() - pos_;
    pos_ = buf_.size();
    if (epilogue > kFillSize) return Malformed();
    PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) return absl::OkStatus();
  }
}

StatusOr<int64_t> ParseIso8601(const std::string& text) {
  struct tm tm = {};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return absl::InvalidArgumentError("not an ISO 8601 time: " + text);
  }
  std::string rest = text.substr(19);
  if (!rest.empty() && rest.front() == '.') {
    size_t digits = rest.find_first_not_of("0123456789", 1);
    if (digits == 1) return absl::InvalidArgumentError("not an ISO 8601 time: " + text);
    rest.erase(0, digits == std::string::npos ? rest.size() : digits);
  }
  if (rest != "Z" || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return absl::InvalidArgumentError("not an ISO 8601 UTC time: " + text);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

StatusOr<PostPolicy> ParsePostPolicy(const std::string& base64) {
  std::string text;
  if (!Base64Decode(base64, &text)) return PolicyError("Invalid Policy: Invalid Base64 Encoding.");
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return PolicyError("Invalid JSON.");
  PostPolicy policy;
  auto expiration = doc.find("expiration");
  if (expiration == doc.end() || !expiration->is_string())
    return PolicyError("Policy missing expiration.");
  auto when = ParseIso8601(expiration->get<std::string>());
  if (!when.ok()) return PolicyError("Invalid 'expiration' value: " + expiration->dump());
  policy.expiration = *when;
  auto conditions = doc.find("conditions");
  if (conditions == doc.end() || !conditions->is_array())
    return PolicyError("Policy missing conditions.");
  for (const auto& [name, value] : doc.items()) {
    if (name != "expiration" && name != "conditions")
      return PolicyError("Unexpected field in policy: " + name);
  }
  using Kind = PostPolicy::Condition::Kind;
  for (const auto& c : *conditions) {
    if (c.is_object()) {
      // {"field": "value"} is an exact match, one per member.
      for (const auto& [name, value] : c.items()) {
        if (!value.is_string()) return PolicyError("Invalid Condition: " + c.dump());
        policy.conditions.push_back(
            {Kind::kEq, FieldName(name), value.get<std::string>(), 0, 0, c.dump()});
      }
      continue;
    }
    if (!c.is_array()) return PolicyError("Invalid Condition: " + c.dump());
    PHOTON_ASSIGN_OR_RETURN(auto condition, ParseArrayCondition(c));
    if (condition.kind == Kind::kLengthRange) {
      policy.min_length = std::max(policy.min_length, condition.min);
      policy.max_length = std::min(policy.max_length, condition.max);
    }
    policy.conditions.push_back(std::move(condition));
  }
  return policy;
}

Status CheckPostPolicy(const PostPolicy& policy, const std::map<std::string, std::string>& fields,
                       const std::string& bucket, int64_t now) {
  if (now >= policy.expiration) return Denied("Policy expired.");
  using Kind = PostPolicy::Condition::Kind;
  for (const auto& c : policy.conditions) {
    if (c.kind == Kind::kLengthRange) continue;  // checked on the file as it streams
    const std::string* value = nullptr;
    if (c.field == "bucket") {
      value = &bucket;
    } else if (auto it = fields.find(c.field); it != fields.end()) {
      value = &it->second;
    }
    bool ok = value && (c.kind == Kind::kEq ? *value == c.value : value->rfind(c.value, 0) == 0);
    if (!ok) return Denied("Policy Condition failed: " + c.text);
  }
  for (const auto& [name, value] : fields) {
    if (ExemptField(name)) continue;
    bool named = std::any_of(policy.conditions.begin(), policy.conditions.end(),
                             [&](const PostPolicy::Condition& c) { return c.field == name; });
    if (!named) return Denied("Extra input fields: " + name);
  }
  return absl::OkStatus();
}

StatusOr<size_t> LengthRangeReader::Read(char* buf, size_t n) {
  PHOTON_ASSIGN_OR_RETURN(size_t got, inner_->Read(buf, n));
  total_ += got;
  if (total_ > max_) {
    return S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size");
  }
  if (got == 0 && total_ < min_) {
    return S3Error("EntityTooSmall",
                   "Your proposed upload is smaller than the minimum allowed size");
  }
  return got;
}

}  // namespace photon::lightningstor
