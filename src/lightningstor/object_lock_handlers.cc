// Object Lock (WORM) of S3Service (see service.h): a bucket made with Object Lock (versioning
// forced on, never suspended), its default retention, per-version retention (GOVERNANCE,
// COMPLIANCE) and legal hold. The refusal to delete a protected version is in the metadata
// commit of the delete itself (MetaStore::DeleteObject), so every path meets it.
#include <strings.h>

#include <ctime>

#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr int64_t kDayMs = 86400000;

// "2030-01-01T00:00:00Z" or with fractional seconds, as epoch ms.
StatusOr<int64_t> ParseIsoDate(const std::string& text) {
  std::tm tm{};
  int n = 0;
  if (sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
      text.back() != 'Z') {
    return S3Error("InvalidArgument", "The retain until date is not a valid ISO 8601 date");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

http::Response Xml(std::string body) {
  http::Response resp;
  resp.body = std::move(body);
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

Status NoLock() { return S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration"); }

StatusOr<std::string> VersionOf(const http::Request& req) {
  const std::string* v = req.Query("versionId");
  return v ? *v : "";
}

}  // namespace

Status S3Service::ApplyObjectLock(const S3Request& r, const BucketMeta& bucket,
                                  std::map<std::string, std::string>* headers, bool from_request,
                                  bool with_default) {
  // From the request, or the lock CreateMultipartUpload kept for the upload's completion (the
  // caller removed a copy source's: a new version never inherits a lock).
  ObjectLock lock = from_request ? ObjectLock{} : LockOf(*headers);
  const http::Request& req = r.http;
  bool asked = from_request && (req.HasHeader("x-amz-object-lock-mode") ||
                                req.HasHeader("x-amz-object-lock-retain-until-date") ||
                                req.HasHeader("x-amz-object-lock-legal-hold"));
  if (asked && bucket.object_lock.empty()) return NoLock();
  if (asked) {
    const std::string& mode = req.Header("x-amz-object-lock-mode");
    const std::string& until = req.Header("x-amz-object-lock-retain-until-date");
    if (mode.empty() != until.empty()) {
      return S3Error("InvalidArgument",
                     "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both "
                     "be supplied");
    }
    if (!mode.empty()) {
      if (mode != "GOVERNANCE" && mode != "COMPLIANCE")
        return S3Error("InvalidArgument", "Unknown wormMode directive.");
      PHOTON_ASSIGN_OR_RETURN(lock.until_ms, ParseIsoDate(until));
      if (lock.until_ms <= clock_->NowMillis())
        return S3Error("InvalidArgument", "The retain until date must be in the future!");
      lock.mode = mode;
    }
    const std::string& hold = req.Header("x-amz-object-lock-legal-hold");
    if (!hold.empty() && hold != "ON" && hold != "OFF")
      return S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'");
    lock.legal_hold = hold == "ON";
  }
  auto [mode, days] = DefaultRetention(bucket.object_lock);
  if (with_default && lock.mode.empty() && days > 0) {
    lock.mode = mode;
    lock.until_ms = clock_->NowMillis() + days * kDayMs;
  }
  StoreLock(lock, headers);
  return absl::OkStatus();
}

void S3Service::AddLockHeaders(const std::map<std::string, std::string>& headers,
                               http::Response& resp) {
  ObjectLock lock = LockOf(headers);
  if (!lock.mode.empty()) {
    resp.AddHeader("x-amz-object-lock-mode", lock.mode);
    resp.AddHeader("x-amz-object-lock-retain-until-date", sigv4::FormatIso8601(lock.until_ms));
  }
  if (headers.count(kLockModeHeader) || headers.count(kLegalHoldHeader) || lock.legal_hold)
    resp.AddHeader("x-amz-object-lock-legal-hold", lock.legal_hold ? "ON" : "OFF");
}

StatusOr<http::Response> S3Service::PutObjectLockConfiguration(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_ASSIGN_OR_RETURN(std::string config, ParseLockConfiguration(body));
  PHOTON_RETURN_IF_ERROR(meta_->SetObjectLock(r.bucket, config));
  return http::Response();
}

StatusOr<http::Response> S3Service::GetObjectLockConfiguration(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.object_lock.empty()) {
    return S3Error("ObjectLockConfigurationNotFoundError",
                   "Object Lock configuration does not exist for this bucket");
  }
  return Xml(LockConfigurationXml(bucket.object_lock));
}

StatusOr<http::Response> S3Service::PutObjectRetention(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.object_lock.empty()) return NoLock();
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "Retention") return S3Error("MalformedXML", "want a Retention document");
  ObjectLock wanted;
  wanted.mode = doc->ChildText("Mode");
  if (!wanted.mode.empty()) {
    if (wanted.mode != "GOVERNANCE" && wanted.mode != "COMPLIANCE")
      return S3Error("MalformedXML", "Mode is GOVERNANCE or COMPLIANCE");
    PHOTON_ASSIGN_OR_RETURN(wanted.until_ms, ParseIsoDate(doc->ChildText("RetainUntilDate")));
    if (wanted.until_ms <= clock_->NowMillis())
      return S3Error("InvalidArgument", "The retain until date must be in the future!");
  }
  bool bypass = strcasecmp(r.http.Header("x-amz-bypass-governance-retention").c_str(), "true") == 0;
  int64_t now = clock_->NowMillis();
  PHOTON_ASSIGN_OR_RETURN(std::string version, VersionOf(r.http));
  // Inside the commit: a retention can be lengthened, never shortened or removed while it
  // holds, except GOVERNANCE by the bucket owner asking to bypass it.
  auto change = [&](std::map<std::string, std::string>& headers) -> Status {
    ObjectLock lock = LockOf(headers);
    bool holds = !lock.mode.empty() && lock.until_ms > now;
    bool weaker = wanted.mode.empty() || wanted.until_ms < lock.until_ms ||
                  (lock.mode == "COMPLIANCE" && wanted.mode != "COMPLIANCE");
    if (holds && weaker && (lock.mode == "COMPLIANCE" || !bypass)) {
      return S3Error("AccessDenied", "Access Denied because object protected by object lock.");
    }
    lock.mode = wanted.mode;
    lock.until_ms = wanted.until_ms;
    StoreLock(lock, &headers);
    return absl::OkStatus();
  };
  PHOTON_ASSIGN_OR_RETURN(std::string changed,
                          meta_->UpdateObjectHeaders(r.bucket, r.key, version, change));
  http::Response resp;
  if (changed != "null") resp.AddHeader("x-amz-version-id", changed);
  return resp;
}

StatusOr<http::Response> S3Service::GetObjectRetention(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.object_lock.empty()) return NoLock();
  PHOTON_ASSIGN_OR_RETURN(std::string version, VersionOf(r.http));
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta o, meta_->GetObject(r.bucket, r.key, version));
  ObjectLock lock = LockOf(o.headers);
  if (lock.mode.empty()) {
    return S3Error("NoSuchObjectLockConfiguration",
                   "The specified object does not have a ObjectLock configuration");
  }
  XmlWriter w;
  w.Open("Retention", kXmlns);
  w.Element("Mode", lock.mode);
  w.Element("RetainUntilDate", sigv4::FormatIso8601(lock.until_ms));
  w.Close("Retention");
  return Xml(w.Take());
}

StatusOr<http::Response> S3Service::PutObjectLegalHold(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.object_lock.empty()) return NoLock();
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  std::string status = doc->ChildText("Status");
  if (doc->name != "LegalHold" || (status != "ON" && status != "OFF"))
    return S3Error("MalformedXML", "want <LegalHold><Status>ON|OFF</Status></LegalHold>");
  PHOTON_ASSIGN_OR_RETURN(std::string version, VersionOf(r.http));
  auto change = [&](std::map<std::string, std::string>& headers) -> Status {
    ObjectLock lock = LockOf(headers);
    lock.legal_hold = status == "ON";
    StoreLock(lock, &headers);
    return absl::OkStatus();
  };
  PHOTON_ASSIGN_OR_RETURN(std::string changed,
                          meta_->UpdateObjectHeaders(r.bucket, r.key, version, change));
  http::Response resp;
  if (changed != "null") resp.AddHeader("x-amz-version-id", changed);
  return resp;
}

StatusOr<http::Response> S3Service::GetObjectLegalHold(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.object_lock.empty()) return NoLock();
  PHOTON_ASSIGN_OR_RETURN(std::string version, VersionOf(r.http));
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta o, meta_->GetObject(r.bucket, r.key, version));
  XmlWriter w;
  w.Open("LegalHold", kXmlns);
  w.Element("Status", LockOf(o.headers).legal_hold ? "ON" : "OFF");
  w.Close("LegalHold");
  return Xml(w.Take());
}

}  // namespace photon::lightningstor
