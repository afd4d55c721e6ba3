#include "lightningstor/object_conditions.h"

#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"

namespace photon::lightningstor {

std::string QuoteEtag(const std::string& etag) { return "\"" + etag + "\""; }

// Trims in one pass: a header is up to 64 KiB of client bytes, and erasing one character at a
// time (or recursing per "W/") would be quadratic in it.
std::string UnquoteEtag(std::string etag) {
  std::string_view v(etag);
  while (true) {
    while (!v.empty() && (v.front() == '"' || v.front() == ' ')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '"' || v.back() == ' ')) v.remove_suffix(1);
    if (v.substr(0, 2) != "W/") break;
    v.remove_prefix(2);
  }
  return std::string(v);
}

bool EtagMatches(const std::string& header, const std::string& etag) {
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string::npos) comma = header.size();
    std::string_view one(header.data() + pos, comma - pos);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (one == "*" || UnquoteEtag(std::string(one)) == etag) return true;
    pos = comma + 1;
  }
  return false;
}

Status CheckConditions(const http::Request& req, const ObjectMeta& o, const std::string& prefix,
                       bool copy) {
  // Every GET passes here: without conditional headers it returns before building a name or
  // a Status.
  auto header = [&](const char* name) -> const std::string& {
    return prefix.empty() ? req.Header(name) : req.Header(prefix + name);
  };
  const std::string& if_match = header("if-match");
  const std::string& if_none = header("if-none-match");
  const std::string& if_unmod = header("if-unmodified-since");
  const std::string& if_mod = header("if-modified-since");
  if (if_match.empty() && if_none.empty() && if_unmod.empty() && if_mod.empty())
    return absl::OkStatus();
  int64_t mtime = o.mtime_ms / 1000;
  auto failed = [] {
    return S3Error("PreconditionFailed",
                   "At least one of the pre-conditions you specified did not hold");
  };
  auto not_modified = [&] { return copy ? failed() : S3Error("NotModified", "Not Modified"); };
  if (!if_match.empty()) {
    if (!EtagMatches(if_match, o.etag)) return failed();
  } else if (!if_unmod.empty()) {
    auto t = sigv4::ParseHttpDate(if_unmod);
    if (t.ok() && mtime > *t) return failed();
  }
  if (!if_none.empty()) {
    if (EtagMatches(if_none, o.etag)) return not_modified();
  } else if (!if_mod.empty()) {
    auto t = sigv4::ParseHttpDate(if_mod);
    if (t.ok() && mtime <= *t) return not_modified();
  }
  return absl::OkStatus();
}

Status PreconditionFailed() {
  return S3Error("PreconditionFailed",
                 "At least one of the pre-conditions you specified did not hold");
}

Precondition WriteConditions(const http::Request& req, bool is_delete) {
  std::string if_match = req.Header("if-match");
  bool if_none = req.HasHeader("if-none-match");
  std::string size = is_delete ? req.Header("x-amz-if-match-size") : "";
  std::string mtime = is_delete ? req.Header("x-amz-if-match-last-modified-time") : "";
  if (if_match.empty() && !if_none && size.empty() && mtime.empty()) return nullptr;
  return [if_match, if_none, size, mtime](const ObjectMeta* target) -> Status {
    if (if_none && target) return PreconditionFailed();
    bool want_existing = !if_match.empty() || !size.empty() || !mtime.empty();
    if (want_existing && !target) return S3Error("NoSuchKey", "The specified key does not exist.");
    if (!if_match.empty() && !EtagMatches(if_match, target->etag)) return PreconditionFailed();
    if (!size.empty() && size != std::to_string(target->size)) return PreconditionFailed();
    if (!mtime.empty()) {
      auto t = sigv4::ParseHttpDate(mtime);
      if (!t.ok() || *t != target->mtime_ms / 1000) return PreconditionFailed();
    }
    return absl::OkStatus();
  };
}

StatusOr<std::optional<std::pair<uint64_t, uint64_t>>> ParseRange(const std::string& header,
                                                                  uint64_t size) {
  using Range = std::optional<std::pair<uint64_t, uint64_t>>;
  if (header.empty()) return Range();
  if (header.rfind("bytes=", 0) != 0 || header.find(',') != std::string::npos) return Range();
  std::string spec = header.substr(6);
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return Range();
  std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto parse = [](const std::string& s, uint64_t* out) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *out = std::strtoull(s.c_str(), nullptr, 10);
    return true;
  };
  Status invalid = S3Error("InvalidRange", "The requested range is not satisfiable");
  uint64_t start = 0, end = 0;
  if (a.empty()) {
    uint64_t suffix = 0;
    if (!parse(b, &suffix)) return Range();
    if (suffix == 0 || size == 0) return invalid;
    start = suffix >= size ? 0 : size - suffix;
    end = size - 1;
  } else {
    if (!parse(a, &start)) return Range();
    if (b.empty()) {
      end = size == 0 ? 0 : size - 1;
    } else if (!parse(b, &end)) {
      return Range();
    } else if (end < start) {
      return Range();  // syntactically invalid ranges are ignored, as in RFC 7233
    }
    if (start >= size) return invalid;
    if (end >= size) end = size - 1;
  }
  return Range(std::make_pair(start, end));
}

}  // namespace photon::lightningstor
