#include "lightningstor/service.h"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <set>
#include <tuple>
#include <unordered_map>

#include "common/util.h"
#include "lightningstor/bucket_rules.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"

namespace photon::lightningstor {
namespace {

// x-amz-request-id: 16 hex digits that only have to tell requests apart in logs and error
// bodies. RAND_bytes (a locked DRBG, and a getpid per call) was a measurable part of a 4 KiB
// GET; this is a per-thread splitmix64 seeded from it once.
std::string NewRequestId() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    std::string hex = RandomHex(8);
    for (char c : hex) seed = seed * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    return seed;
  }();
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, z >>= 4) id[static_cast<size_t>(i)] = kHex[z & 15];
  return id;
}

// Query parameters that are arguments of an operation rather than a sub-resource naming one.
bool IsArgument(const std::string& name) {
  static const auto* names = new std::set<std::string>{"versionId",
                                                       "uploadId",
                                                       "partNumber",
                                                       "max-parts",
                                                       "part-number-marker",
                                                       "prefix",
                                                       "delimiter",
                                                       "marker",
                                                       "max-keys",
                                                       "list-type",
                                                       "start-after",
                                                       "fetch-owner",
                                                       "encoding-type",
                                                       "continuation-token",
                                                       "key-marker",
                                                       "version-id-marker",
                                                       "upload-id-marker",
                                                       "max-uploads",
                                                       "x-id"};
  if (names->count(name) || name.rfind("response-", 0) == 0) return true;
  // Presigned URLs carry their signature in X-Amz-* parameters.
  return name.size() > 6 && strncasecmp(name.c_str(), "x-amz-", 6) == 0;
}

// The sub-resources this server implements, at bucket level and at object level. Any other
// query parameter is NotImplemented rather than misread as a listing or an object read
// (GET /bucket/key?foo must never answer the object's bytes).
bool IsImplementedSubresource(const std::string& name, bool object) {
  static const auto* bucket = new std::set<std::string>{"versioning",
                                                        "lifecycle",
                                                        "policy",
                                                        "acl",
                                                        "tagging",
                                                        "location",
                                                        "uploads",
                                                        "versions",
                                                        "delete",
                                                        "cors",
                                                        "object-lock",
                                                        "logging",
                                                        "publicAccessBlock",
                                                        "policyStatus",
                                                        "encryption",
                                                        "ownershipControls"};
  static const auto* objects = new std::set<std::string>{"acl",       "tagging",    "uploads",
                                                         "retention", "legal-hold", "attributes"};
  return (object ? objects : bucket)->count(name) > 0;
}

// Query arguments an operation reads; any other argument is refused rather than ignored
// (GET /bucket/key?prefix=x is not an object read that drops the prefix). Operations missing
// here take none. x-id (the SDKs' operation tag) and presigned X-Amz-* go with every one.
Status RefuseIgnoredArguments(const http::Request& req, const std::string& op, bool object) {
  using Names = std::set<std::string>;
  static const auto* table = new std::map<std::string, Names>{
      {"ListObjects", {"prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type"}},
      {"ListObjectsV2",
       {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after",
        "fetch-owner", "encoding-type"}},
      {"ListObjectVersions",
       {"prefix", "delimiter", "key-marker", "version-id-marker", "max-keys", "encoding-type"}},
      {"ListMultipartUploads",
       {"prefix", "key-marker", "upload-id-marker", "max-uploads", "encoding-type"}},
      {"ListParts", {"uploadId", "max-parts", "part-number-marker", "encoding-type"}},
      {"GetObject", {"versionId", "partNumber"}},
      {"HeadObject", {"versionId", "partNumber"}},
      {"UploadPart", {"uploadId", "partNumber"}},
      {"UploadPartCopy", {"uploadId", "partNumber"}},
      {"CompleteMultipartUpload", {"uploadId"}},
      {"AbortMultipartUpload", {"uploadId"}},
      {"DeleteObject", {"versionId"}},
      {"GetObjectAcl", {"versionId"}},
      {"PutObjectAcl", {"versionId"}},
      {"GetObjectTagging", {"versionId"}},
      {"PutObjectTagging", {"versionId"}},
      {"DeleteObjectTagging", {"versionId"}},
      {"GetObjectRetention", {"versionId"}},
      {"PutObjectRetention", {"versionId"}},
      {"GetObjectLegalHold", {"versionId"}},
      {"PutObjectLegalHold", {"versionId"}},
      {"GetObjectAttributes", {"versionId"}}};
  static const std::set<std::string> kOverrides = {
      "response-content-type",  "response-content-language",    "response-expires",
      "response-cache-control", "response-content-disposition", "response-content-encoding"};
  auto it = table->find(op);
  int subresources = 0;
  for (const auto& [name, value] : req.query) {
    if (IsImplementedSubresource(name, object)) {
      if (++subresources > 1)
        return S3Error("NotImplemented", "one sub-resource per request (?" + name + ")");
      continue;
    }
    if (name == "x-id" || (name.size() > 6 && strncasecmp(name.c_str(), "x-amz-", 6) == 0))
      continue;
    if (name.rfind("response-", 0) == 0 && (op == "GetObject" || op == "HeadObject")) {
      if (kOverrides.count(name)) continue;
      return S3Error("InvalidArgument", name + " is not a response header S3 overrides");
    }
    if (it == table->end() || !it->second.count(name))
      return S3Error("NotImplemented", "the query argument " + name + " is not taken by " + op);
  }
  return absl::OkStatus();
}

// Operations that take an ACL (x-amz-acl, x-amz-grant-*).
bool AclOp(const std::string& op) {
  return op == "PutObject" || op == "CopyObject" || op == "CreateMultipartUpload" ||
         op == "PutObjectAcl" || op == "PutBucketAcl" || op == "CreateBucket";
}

// Request headers asking for things lightningstor does not do: refused, never ignored.
Status RefuseUnsupportedHeaders(const http::Request& req, const std::string& op) {
  for (const auto& [name, value] : req.headers) {
    // Objects and multipart uploads take SSE-S3 and SSE-C (sse.h); an upload's part requests
    // check theirs against the upload's. Other operations take none.
    bool sse_op = op == "PutObject" || op == "CopyObject" || op == "GetObject" ||
                  op == "HeadObject" || op == "GetObjectAttributes" ||
                  op == "CreateMultipartUpload" || op == "UploadPart" || op == "UploadPartCopy" ||
                  op == "CompleteMultipartUpload";
    bool copy_op = op == "CopyObject" || op == "UploadPartCopy";
    if ((name.rfind("x-amz-server-side-encryption", 0) == 0 && !sse_op) ||
        (name.rfind("x-amz-copy-source-server-side-encryption", 0) == 0 && !copy_op)) {
      return S3Error("NotImplemented",
                     "lightningstor takes server-side encryption headers on object writes, "
                     "reads and multipart uploads only (" +
                         name + " on " + op + ")");
    }
    // Object Lock: set by PutObject, CopyObject and CreateMultipartUpload, at bucket
    // creation, and bypassed on deletes and retention changes.
    bool lock_op = op == "PutObject" || op == "CopyObject" || op == "CreateMultipartUpload";
    if ((name.rfind("x-amz-object-lock-", 0) == 0 && !lock_op) ||
        (name == "x-amz-bucket-object-lock-enabled" && op != "CreateBucket") ||
        (name == "x-amz-bypass-governance-retention" && op != "DeleteObject" &&
         op != "DeleteObjects" && op != "PutObjectRetention")) {
      return S3Error("NotImplemented", name + " is not implemented for " + op);
    }
    if ((name.rfind("x-amz-grant-", 0) == 0 || name == "x-amz-acl") && !AclOp(op)) {
      return S3Error("NotImplemented", name + " is not taken by " + op);
    }
    if (name == "x-amz-storage-class" && value != "STANDARD") {
      return S3Error("NotImplemented", "lightningstor has one storage class, STANDARD");
    }
    if (name == "x-amz-mfa" || name == "x-amz-write-offset-bytes") {
      return S3Error("NotImplemented", name + " is not implemented by lightningstor");
    }
    // Checksums: values are verified on the bodies that carry them (an object's on PUT and
    // UploadPart, a CompleteMultipartUpload's names the object's, documents' on the requests
    // that send one); an algorithm or type is taken where S3 takes it.
    bool body_op = (req.method == "PUT" || req.method == "POST") && op != "CopyObject" &&
                   op != "UploadPartCopy" && op != "CreateMultipartUpload";
    if ((name.rfind("x-amz-checksum-", 0) == 0 && name != "x-amz-checksum-mode" &&
         name != "x-amz-checksum-algorithm" && name != "x-amz-checksum-type" && !body_op) ||
        (name == "x-amz-checksum-algorithm" && op != "CreateMultipartUpload" &&
         op != "CopyObject" && op != "PutObject" && op != "UploadPart") ||
        (name == "x-amz-checksum-type" && op != "CreateMultipartUpload" &&
         op != "CompleteMultipartUpload") ||
        (name == "x-amz-mp-object-size" && op != "CompleteMultipartUpload") ||
        (name == "x-amz-checksum-mode" && op != "GetObject" && op != "HeadObject")) {
      return S3Error("InvalidRequest", name + " is not taken by " + op);
    }
    // Object Ownership is chosen at creation (CreateBucket checks the value) or by
    // PutBucketOwnershipControls; no other operation takes it.
    if (name == "x-amz-object-ownership" && op != "CreateBucket")
      return S3Error("InvalidRequest", "x-amz-object-ownership is not taken by " + op);
  }
  // Conditions S3 evaluates for writes: only those this server checks pass.
  bool conditional_write =
      op == "PutObject" || op == "CopyObject" || op == "CompleteMultipartUpload";
  if (!conditional_write && op != "DeleteObject" && op != "GetObject" && op != "HeadObject" &&
      op != "UploadPartCopy") {
    for (const char* h :
         {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}) {
      if (req.HasHeader(h))
        return S3Error("NotImplemented", std::string(h) + " is not implemented for " + op);
    }
  }
  if (conditional_write || op == "DeleteObject") {
    for (const char* h : {"if-modified-since", "if-unmodified-since"}) {
      if (req.HasHeader(h))
        return S3Error("NotImplemented", std::string(h) + " is not implemented for " + op);
    }
    const std::string& none = req.Header("if-none-match");
    if (req.HasHeader("if-none-match") && (none != "*" || op == "DeleteObject")) {
      return S3Error("NotImplemented",
                     "If-None-Match is implemented for writes with the value * only");
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsStoredHeader(const std::string& name) {
  return name == "content-encoding" || name == "cache-control" || name == "content-disposition" ||
         name == "content-language" || name == "expires" || name.rfind("x-amz-meta-", 0) == 0 ||
         name == "x-amz-website-redirect-location";
}

std::string HttpDate(int64_t epoch_ms) { return sigv4::FormatHttpDate(epoch_ms / 1000); }
S3Service::S3Service(const Config& config, MetaStore* meta, BlobStore* blobs, KeyStore* keys,
                     MetricsRegistry* metrics, const Clock* clock)
    : config_(config),
      meta_(meta),
      blobs_(blobs),
      metrics_(metrics),
      keys_(keys),
      clock_(clock),
      auth_(&config_, keys, clock),
      sse_(config_.data_dir + "/sse-master.key",
           config_.sse_write_format == "ctr-legacy" ? SseFormat::kCtr : SseFormat::kGcmBlocks) {
  bytes_in_ = metrics_->GetCounter("lightningstor_bytes_in_total", "Object bytes received");
  bytes_out_ = metrics_->GetCounter("lightningstor_bytes_out_total", "Object bytes sent");
  access_log_ = std::make_unique<AccessLog>(
      config_.access_log_flush_seconds,
      [this](const std::string& bucket, const std::string& prefix, const std::string& lines) {
        return DeliverAccessLog(bucket, prefix, lines);
      });
}

void S3Service::FreeBlobs(const std::vector<std::string>& blob_ids) const {
  blobs_->RemoveLater(blob_ids);
}

StatusOr<BucketMeta> S3Service::RequireBucket(const std::string& name) {
  return meta_->GetBucket(name);
}

std::string S3Service::OperationName(const http::Request& req, const std::string& bucket,
                                     const std::string& key) const {
  const std::string& m = req.method;
  // S3 Control (account-level configuration) on the same endpoint, path-style as SDKs send it
  // with an endpoint URL: /v20180820/... with x-amz-account-id (a bucket of that name is still
  // reached without the header).
  if (bucket == "v20180820" && req.HasHeader("x-amz-account-id")) {
    if (key != "configuration/publicAccessBlock" || !req.query.empty())
      return "Control:Unsupported";
    if (m == "PUT") return "Control:PutPublicAccessBlock";
    if (m == "GET") return "Control:GetPublicAccessBlock";
    if (m == "DELETE") return "Control:DeletePublicAccessBlock";
    return "Control:Unsupported";
  }
  for (const auto& [name, value] : req.query) {
    if (!IsArgument(name) && !IsImplementedSubresource(name, !key.empty())) return "Unsupported";
  }
  if (m == "OPTIONS") return bucket.empty() ? "Unknown" : "CorsPreflight";
  if (bucket.empty()) return m == "GET" ? "ListBuckets" : "Unknown";
  if (key.empty()) {
    if (m == "PUT") {
      if (req.HasQuery("versioning")) return "PutBucketVersioning";
      if (req.HasQuery("lifecycle")) return "PutBucketLifecycle";
      if (req.HasQuery("policy")) return "PutBucketPolicy";
      if (req.HasQuery("acl")) return "PutBucketAcl";
      if (req.HasQuery("tagging")) return "PutBucketTagging";
      if (req.HasQuery("cors")) return "PutBucketCors";
      if (req.HasQuery("object-lock")) return "PutObjectLockConfiguration";
      if (req.HasQuery("logging")) return "PutBucketLogging";
      if (req.HasQuery("publicAccessBlock")) return "PutPublicAccessBlock";
      if (req.HasQuery("encryption")) return "PutBucketEncryption";
      if (req.HasQuery("ownershipControls")) return "PutBucketOwnershipControls";
      if (!req.query.empty()) return "Unknown";
      return "CreateBucket";
    }
    if (m == "GET") {
      if (req.HasQuery("location")) return "GetBucketLocation";
      if (req.HasQuery("versioning")) return "GetBucketVersioning";
      if (req.HasQuery("lifecycle")) return "GetBucketLifecycle";
      if (req.HasQuery("policy")) return "GetBucketPolicy";
      if (req.HasQuery("policyStatus")) return "GetBucketPolicyStatus";
      if (req.HasQuery("acl")) return "GetBucketAcl";
      if (req.HasQuery("tagging")) return "GetBucketTagging";
      if (req.HasQuery("cors")) return "GetBucketCors";
      if (req.HasQuery("object-lock")) return "GetObjectLockConfiguration";
      if (req.HasQuery("logging")) return "GetBucketLogging";
      if (req.HasQuery("publicAccessBlock")) return "GetPublicAccessBlock";
      if (req.HasQuery("encryption")) return "GetBucketEncryption";
      if (req.HasQuery("ownershipControls")) return "GetBucketOwnershipControls";
      if (req.HasQuery("uploads")) return "ListMultipartUploads";
      if (req.HasQuery("versions")) return "ListObjectVersions";
      const std::string* lt = req.Query("list-type");
      if (lt && *lt == "2") return "ListObjectsV2";
      return "ListObjects";
    }
    if (m == "DELETE") {
      if (req.HasQuery("lifecycle")) return "DeleteBucketLifecycle";
      if (req.HasQuery("policy")) return "DeleteBucketPolicy";
      if (req.HasQuery("tagging")) return "DeleteBucketTagging";
      if (req.HasQuery("cors")) return "DeleteBucketCors";
      if (req.HasQuery("publicAccessBlock")) return "DeletePublicAccessBlock";
      if (req.HasQuery("encryption")) return "DeleteBucketEncryption";
      if (req.HasQuery("ownershipControls")) return "DeleteBucketOwnershipControls";
      if (!req.query.empty()) return "Unknown";
      return "DeleteBucket";
    }
    if (m == "HEAD") return "HeadBucket";
    if (m == "POST" && req.HasQuery("delete")) return "DeleteObjects";
    // A browser's POST policy upload (multipart/form-data to the bucket).
    if (m == "POST" && req.query.empty()) return "PostObject";
    return "Unknown";
  }
  // ?attributes is a GET only; never a write or a delete of the object.
  if (req.HasQuery("attributes") && m != "GET") return "Unknown";
  if (m == "PUT") {
    if (req.HasQuery("acl")) return "PutObjectAcl";
    if (req.HasQuery("tagging")) return "PutObjectTagging";
    if (req.HasQuery("retention")) return "PutObjectRetention";
    if (req.HasQuery("legal-hold")) return "PutObjectLegalHold";
    if (req.HasQuery("uploadId") || req.HasQuery("partNumber")) {
      return req.HasHeader("x-amz-copy-source") ? "UploadPartCopy" : "UploadPart";
    }
    return req.HasHeader("x-amz-copy-source") ? "CopyObject" : "PutObject";
  }
  if (m == "GET") {
    if (req.HasQuery("acl")) return "GetObjectAcl";
    if (req.HasQuery("tagging")) return "GetObjectTagging";
    if (req.HasQuery("retention")) return "GetObjectRetention";
    if (req.HasQuery("legal-hold")) return "GetObjectLegalHold";
    if (req.HasQuery("attributes")) return "GetObjectAttributes";
    if (req.HasQuery("uploadId")) return "ListParts";
    if (req.HasQuery("uploads")) return "Unsupported";
    return "GetObject";
  }
  if (m == "HEAD") {
    if (req.HasQuery("acl") || req.HasQuery("tagging") || req.HasQuery("uploadId") ||
        req.HasQuery("uploads") || req.HasQuery("retention") || req.HasQuery("legal-hold"))
      return "Unsupported";
    return "HeadObject";
  }
  if (m == "DELETE") {
    if (req.HasQuery("tagging")) return "DeleteObjectTagging";
    if (req.HasQuery("acl") || req.HasQuery("uploads") || req.HasQuery("retention") ||
        req.HasQuery("legal-hold"))
      return "Unknown";
    return req.HasQuery("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  }
  if (m == "POST") {
    if (req.HasQuery("uploads")) return "CreateMultipartUpload";
    if (req.HasQuery("uploadId")) return "CompleteMultipartUpload";
  }
  return "Unknown";
}

namespace {

// What an operation needs of the caller, as S3 maps ACL permissions to operations.
struct Need {
  enum Level { kNone, kSignedIn, kBucket, kBucketOwner, kObject } level;
  unsigned permission = 0;
};

Need NeedOf(const std::string& op) {
  static const auto* table = new std::map<std::string, Need>{
      {"CorsPreflight", {Need::kNone}},
      {"ListBuckets", {Need::kSignedIn}},
      {"CreateBucket", {Need::kSignedIn}},
      {"ListObjects", {Need::kBucket, kPermRead}},
      {"ListObjectsV2", {Need::kBucket, kPermRead}},
      {"ListObjectVersions", {Need::kBucket, kPermRead}},
      {"ListMultipartUploads", {Need::kBucket, kPermRead}},
      {"HeadBucket", {Need::kBucket, kPermRead}},
      {"PutObject", {Need::kBucket, kPermWrite}},
      {"CopyObject", {Need::kBucket, kPermWrite}},
      {"DeleteObject", {Need::kBucket, kPermWrite}},
      {"DeleteObjects", {Need::kBucket, kPermWrite}},
      {"CreateMultipartUpload", {Need::kBucket, kPermWrite}},
      {"UploadPart", {Need::kBucket, kPermWrite}},
      {"UploadPartCopy", {Need::kBucket, kPermWrite}},
      {"CompleteMultipartUpload", {Need::kBucket, kPermWrite}},
      {"AbortMultipartUpload", {Need::kBucket, kPermWrite}},
      {"ListParts", {Need::kBucket, kPermWrite}},
      {"GetBucketAcl", {Need::kBucket, kPermReadAcp}},
      {"PutBucketAcl", {Need::kBucket, kPermWriteAcp}},
      {"GetObject", {Need::kObject, kPermRead}},
      {"HeadObject", {Need::kObject, kPermRead}},
      {"GetObjectAttributes", {Need::kObject, kPermRead}},
      {"GetObjectAcl", {Need::kObject, kPermReadAcp}},
      {"PutObjectAcl", {Need::kObject, kPermWriteAcp}},
      {"GetObjectTagging", {Need::kObject, kNeedObjectOwner}},
      {"PutObjectTagging", {Need::kObject, kNeedObjectOwner}},
      {"DeleteObjectTagging", {Need::kObject, kNeedObjectOwner}},
  };
  auto it = table->find(op);
  // Every other bucket operation (configuration, deletion) is the bucket owner's alone.
  return it == table->end() ? Need{Need::kBucketOwner} : it->second;
}

}  // namespace

namespace {

// The condition keys of a request (bucket_policy.cc lists the ones a policy may use).
PolicyRequest PolicyRequestOf(const S3Request& r, const std::string& action,
                              const std::string& bucket, const std::string& key) {
  PolicyRequest p{action, "arn:aws:s3:::" + bucket + (key.empty() ? "" : "/" + key), r.caller, {}};
  auto& k = p.keys;
  std::string ip = r.http.remote;  // "ADDRESS:PORT"
  if (size_t colon = ip.rfind(':'); colon != std::string::npos) ip.resize(colon);
  if (!ip.empty()) k["aws:sourceip"] = ip;
  k["aws:securetransport"] = r.http.tls ? "true" : "false";
  if (!r.caller.empty()) {
    k["aws:username"] = k["aws:userid"] = r.caller;
    k["s3:signatureversion"] = "AWS4-HMAC-SHA256";
    k["s3:authtype"] = r.auth.presigned ? "REST-QUERY-STRING" : "REST-HEADER";
  }
  for (const auto& [header, name] :
       {std::pair{"user-agent", "aws:useragent"},
        {"referer", "aws:referer"},
        {"x-amz-acl", "s3:x-amz-acl"},
        {"x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"},
        {"x-amz-content-sha256", "s3:x-amz-content-sha256"}}) {
    if (r.http.HasHeader(header)) k[name] = r.http.Header(header);
  }
  for (const auto& [query, name] : {std::pair{"prefix", "s3:prefix"},
                                    {"delimiter", "s3:delimiter"},
                                    {"max-keys", "s3:max-keys"},
                                    {"versionId", "s3:versionid"}}) {
    if (const std::string* v = r.http.Query(query)) k[name] = *v;
  }
  return p;
}

// A stored policy as CheckAccess uses it: null when none (or unreadable, which PutBucketPolicy
// never stores); whether its Allows count under the bucket's Public Access Block.
std::pair<std::shared_ptr<const BucketPolicy>, bool> LoadPolicy(const BucketMeta& bucket) {
  if (bucket.policy.empty()) return {nullptr, true};
  auto parsed = ParseBucketPolicy(bucket.policy, bucket.name);
  if (!parsed.ok()) return {nullptr, true};
  auto policy = std::make_shared<const BucketPolicy>(std::move(*parsed));
  // RestrictPublicBuckets: a public policy grants no one (the owner needs no grant).
  bool restrict =
      EffectivePublicAccessBlock(bucket.public_access_block, bucket.account_public_access_block)
          .restrict_public_buckets;
  return {policy, !(restrict && policy->IsPublic())};
}

PolicyDecision Decide(const BucketPolicy* policy, bool allows, const PolicyRequest& req) {
  if (!policy || req.action.empty()) return PolicyDecision::kNone;
  PolicyDecision d = policy->Evaluate(req);
  return d == PolicyDecision::kAllow && !allows ? PolicyDecision::kNone : d;
}

}  // namespace

PolicyDecision DecidePolicy(const S3Request& r, const std::string& action, const std::string& key) {
  if (!r.policy) return PolicyDecision::kNone;  // (without building the request's context)
  return Decide(r.policy.get(), r.policy_allows, PolicyRequestOf(r, action, r.bucket, key));
}

PolicyDecision DecideStoredPolicy(const S3Request& r, const BucketMeta& bucket,
                                  const std::string& action, const std::string& key) {
  auto [policy, allows] = LoadPolicy(bucket);
  return Decide(policy.get(), allows, PolicyRequestOf(r, action, bucket.name, key));
}

Status S3Service::CheckAccess(S3Request& r) {
  // Anonymous callers only ever read: every write needs a signature, whatever the ACL or
  // policy. These reads ACLs may grant them; a policy may grant them any s3:Get* / s3:List*.
  static const std::set<std::string> kAnonymousOps = {
      "CorsPreflight", "GetObject",  "HeadObject",   "GetObjectAttributes", "ListObjects",
      "ListObjectsV2", "HeadBucket", "GetObjectAcl", "GetBucketAcl"};
  r.caller = r.auth.anonymous ? "" : r.auth.user;
  // Made only when refused: a Status with its S3 code costs allocations on every request.
  auto denied = [] { return S3Error("AccessDenied", "Access Denied"); };
  Need need = NeedOf(r.op);
  if (need.level == Need::kNone || need.level == Need::kSignedIn || r.bucket.empty())
    return r.auth.anonymous && !kAnonymousOps.count(r.op) ? denied() : absl::OkStatus();
  auto found = meta_->GetBucketShared(r.bucket);
  if (!found.ok()) {
    // A signed caller is told the bucket is missing (the handler answers NoSuchBucket).
    return r.auth.anonymous ? denied() : absl::OkStatus();
  }
  const BucketMeta* bucket = found->get();
  r.bucket_owner = bucket->owner;
  r.ownership = bucket->ownership;
  r.logging = bucket->logging;
  // x-amz-expected-bucket-owner: the request is for this account's bucket only (as in S3).
  if (r.http.HasHeader("x-amz-expected-bucket-owner") &&
      r.http.Header("x-amz-expected-bucket-owner") != bucket->owner)
    return denied();
  r.public_access =
      EffectivePublicAccessBlock(bucket->public_access_block, bucket->account_public_access_block);
  Acl acl = BucketAcl(bucket->owner, bucket->acl, bucket->public_read);
  if (r.public_access.ignore_public_acls) acl = WithoutPublicGrants(std::move(acl));
  unsigned perms = Permissions(acl, r.caller);
  r.acl_write = perms & kPermWrite;
  std::tie(r.policy, r.policy_allows) = LoadPolicy(*bucket);
  bool is_owner = !r.caller.empty() && r.caller == bucket->owner;
  // DeleteObjects names its keys in the body: the handler asks the policy about each.
  std::string action =
      r.op == "DeleteObjects" ? "" : PolicyActionOf(r.op, r.http.HasQuery("versionId"));
  PolicyDecision decision = DecidePolicy(r, action, r.key);
  PolicyDecision list = DecidePolicy(r, "s3:ListBucket", "");
  r.may_list =
      list != PolicyDecision::kDeny && ((perms & kPermRead) || list == PolicyDecision::kAllow);
  // A Deny wins over everything, except that the owner always manages the policy itself.
  if (decision == PolicyDecision::kDeny && !(is_owner && OwnerOnlyAction(action))) return denied();
  bool allowed = decision == PolicyDecision::kAllow && !OwnerOnlyAction(action);
  if (r.auth.anonymous && !kAnonymousOps.count(r.op) && !(allowed && ReadAction(action)))
    return denied();
  switch (need.level) {
    case Need::kBucket:
      if (allowed || (perms & need.permission) == need.permission) return absl::OkStatus();
      return r.op == "DeleteObjects" && r.policy ? absl::OkStatus() : denied();
    case Need::kBucketOwner:
      return is_owner || allowed ? absl::OkStatus() : denied();
    case Need::kObject:
      r.object_need = allowed ? 0 : need.permission;
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

Status S3Service::CheckObjectAccess(const S3Request& r,
                                    const std::map<std::string, std::string>& headers) {
  if (r.object_need == 0) return absl::OkStatus();
  Acl acl = ObjectAcl(headers, r.bucket_owner, r.ownership);
  if (r.public_access.ignore_public_acls) acl = WithoutPublicGrants(std::move(acl));
  bool ok = r.object_need == kNeedObjectOwner
                ? !r.caller.empty() && r.caller == acl.owner
                : (Permissions(acl, r.caller) & r.object_need) == r.object_need;
  return ok ? absl::OkStatus() : S3Error("AccessDenied", "Access Denied");
}

StatusOr<http::Response> S3Service::Dispatch(S3Request& r) {
  const std::string& op = r.op;
  if (op == "ListBuckets") return ListBuckets(r);
  if (op == "CreateBucket") return CreateBucket(r);
  if (op == "DeleteBucket") return DeleteBucket(r);
  if (op == "HeadBucket") return HeadBucket(r);
  if (op == "GetBucketLocation") return GetBucketLocation(r);
  if (op == "PutBucketVersioning") return PutBucketVersioning(r);
  if (op == "GetBucketVersioning") return GetBucketVersioning(r);
  if (op == "PutBucketLifecycle") return PutBucketLifecycle(r);
  if (op == "GetBucketLifecycle") return GetBucketLifecycle(r);
  if (op == "PutBucketTagging") return PutBucketTagging(r);
  if (op == "GetBucketTagging") return GetBucketTagging(r);
  if (op == "DeleteBucketTagging") return DeleteBucketTagging(r);
  if (op == "DeleteBucketLifecycle") return DeleteBucketLifecycle(r);
  if (op == "PutBucketPolicy") return PutBucketPolicy(r);
  if (op == "GetBucketPolicy") return GetBucketPolicy(r);
  if (op == "DeleteBucketPolicy") return DeleteBucketPolicy(r);
  if (op == "GetBucketPolicyStatus") return GetBucketPolicyStatus(r);
  if (op == "PutBucketAcl") return PutBucketAcl(r);
  if (op == "GetBucketAcl") return GetBucketAcl(r);
  if (op == "ListObjects") return ListObjects(r, false);
  if (op == "ListObjectsV2") return ListObjects(r, true);
  if (op == "ListObjectVersions") return ListObjectVersions(r);
  if (op == "ListMultipartUploads") return ListMultipartUploads(r);
  if (op == "DeleteObjects") return DeleteObjects(r);
  if (op == "PutObject") return PutObject(r);
  if (op == "CopyObject") return CopyObject(r);
  if (op == "GetObject") return GetObject(r, false);
  if (op == "HeadObject") return GetObject(r, true);
  if (op == "DeleteObject") return DeleteObject(r);
  if (op == "CreateMultipartUpload") return CreateMultipartUpload(r);
  if (op == "UploadPart" || op == "UploadPartCopy") return UploadPart(r);
  if (op == "CompleteMultipartUpload") return CompleteMultipartUpload(r);
  if (op == "AbortMultipartUpload") return AbortMultipartUpload(r);
  if (op == "ListParts") return ListParts(r);
  if (op == "GetObjectAcl") return GetObjectAcl(r);
  if (op == "PutBucketCors") return PutBucketCors(r);
  if (op == "GetBucketCors") return GetBucketCors(r);
  if (op == "DeleteBucketCors") return DeleteBucketCors(r);
  if (op == "CorsPreflight") return CorsPreflight(r);
  if (op == "PutObjectAcl") return PutObjectAcl(r);
  if (op == "PutObjectLockConfiguration") return PutObjectLockConfiguration(r);
  if (op == "PutBucketLogging") return PutBucketLogging(r);
  if (op == "GetBucketLogging") return GetBucketLogging(r);
  if (op == "PutBucketEncryption") return PutBucketEncryption(r);
  if (op == "GetBucketEncryption") return GetBucketEncryption(r);
  if (op == "DeleteBucketEncryption") return DeleteBucketEncryption(r);
  if (op == "PutBucketOwnershipControls") return PutBucketOwnershipControls(r);
  if (op == "GetBucketOwnershipControls") return GetBucketOwnershipControls(r);
  if (op == "DeleteBucketOwnershipControls") return DeleteBucketOwnershipControls(r);
  if (op == "PutPublicAccessBlock") return PutPublicAccessBlock(r);
  if (op == "GetPublicAccessBlock") return GetPublicAccessBlock(r);
  if (op == "DeletePublicAccessBlock") return DeletePublicAccessBlock(r);
  if (op == "GetObjectLockConfiguration") return GetObjectLockConfiguration(r);
  if (op == "PutObjectRetention") return PutObjectRetention(r);
  if (op == "GetObjectRetention") return GetObjectRetention(r);
  if (op == "PutObjectLegalHold") return PutObjectLegalHold(r);
  if (op == "GetObjectLegalHold") return GetObjectLegalHold(r);
  if (op == "GetObjectTagging") return GetObjectTagging(r);
  if (op == "GetObjectAttributes") return GetObjectAttributes(r);
  if (op == "PutObjectTagging") return PutObjectTagging(r);
  if (op == "DeleteObjectTagging") return DeleteObjectTagging(r);
  if (op == "Unsupported") {
    return S3Error("NotImplemented",
                   "A header or query you provided implies functionality that is not implemented.");
  }
  return S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.");
}

Status CheckPublicAclAllowed(const S3Request& r, const Acl& acl) {
  if (!r.public_access.block_public_acls || !IsPublicAcl(acl)) return absl::OkStatus();
  return S3Error("AccessDenied",
                 "Access Denied: the bucket's Public Access Block (BlockPublicAcls) refuses an "
                 "ACL granting to AllUsers or AuthenticatedUsers");
}

StatusOr<http::Response> S3Service::AuthorizedPut(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(CheckAccess(r));
  PHOTON_RETURN_IF_ERROR(RefuseUnsupportedHeaders(r.http, r.op));
  return PutObject(r);
}

void S3Service::Observe(const S3Request& r, int status, double seconds) {
  // The registry takes a lock per lookup; each connection thread keeps its own pointers.
  thread_local std::unordered_map<std::string, Counter*> counters;
  thread_local std::unordered_map<std::string, Histogram*> histograms;
  std::string key =
      std::to_string(reinterpret_cast<uintptr_t>(metrics_)) + r.op + "/" + std::to_string(status);
  auto c = counters.find(key);
  if (c == counters.end()) {
    c = counters
            .emplace(key, metrics_->GetCounter("lightningstor_requests_total",
                                               "S3 requests by operation and HTTP status",
                                               {{"op", r.op}, {"status", std::to_string(status)}}))
            .first;
  }
  c->second->Inc();
  std::string hkey = std::to_string(reinterpret_cast<uintptr_t>(metrics_)) + r.op;
  auto h = histograms.find(hkey);
  if (h == histograms.end()) {
    h = histograms
            .emplace(hkey,
                     metrics_->GetHistogram("lightningstor_request_duration_seconds",
                                            "S3 request latency by operation", {{"op", r.op}}))
            .first;
  }
  h->second->Observe(seconds);
  if (r.bytes_in) bytes_in_->Inc(static_cast<double>(r.bytes_in));
  if (r.bytes_out) bytes_out_->Inc(static_cast<double>(r.bytes_out));
}

http::Response S3Service::Handle(http::Request& req) {
  int64_t start = MonotonicNanos();
  if (req.method == "GET" && req.path == "/healthz" && req.query.empty()) {
    http::Response resp;
    resp.body = "ok\n";
    resp.AddHeader("Content-Type", "text/plain");
    return resp;
  }
  if (req.method == "GET" && req.path == "/metrics" && req.query.empty()) {
    http::Response resp;
    resp.body = metrics_->Render();
    resp.AddHeader("Content-Type", "text/plain; version=0.0.4");
    return resp;
  }
  // Addressing: "BUCKET.<virtual_host_domain>" in Host, else the first path segment.
  std::string host = req.Header("host");
  if (!host.empty() && host.front() != '[') host = host.substr(0, host.find(':'));
  std::string bucket, key;
  const std::string& domain = config_.virtual_host_domain;
  if (!domain.empty() && host.size() > domain.size() + 1 &&
      host.compare(host.size() - domain.size(), domain.size(), domain) == 0 &&
      host[host.size() - domain.size() - 1] == '.') {
    bucket = host.substr(0, host.size() - domain.size() - 1);
    key = req.path.size() > 1 ? req.path.substr(1) : "";
  } else {
    std::string_view path = req.path;
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    size_t slash = path.find('/');
    bucket = std::string(path.substr(0, slash));
    if (slash != std::string_view::npos) key = std::string(path.substr(slash + 1));
  }
  S3Request r{req, bucket, key, OperationName(req, bucket, key), {}, NewRequestId()};

  StatusOr<http::Response> result = [&]() -> StatusOr<http::Response> {
    PHOTON_ASSIGN_OR_RETURN(r.auth, auth_.Authenticate(req));
    // What is not implemented says so to everyone.
    if (r.op == "Unsupported") return Dispatch(r);
    if (r.op.rfind("Control:", 0) == 0) return AccountControl(r);
    // A browser POST upload carries its signature in the form, so it looks anonymous here.
    if (r.op == "PostObject") return PostObject(r);
    PHOTON_RETURN_IF_ERROR(CheckAccess(r));
    PHOTON_RETURN_IF_ERROR(RefuseUnsupportedHeaders(req, r.op));
    // (A browser's preflight names the URL of the request it prepares, arguments and all.)
    if (r.op != "CorsPreflight")
      PHOTON_RETURN_IF_ERROR(RefuseIgnoredArguments(req, r.op, !key.empty()));
    return Dispatch(r);
  }();

  http::Response resp;
  std::string code;
  if (result.ok()) {
    resp = std::move(*result);
  } else {
    code = S3Code(result.status());
    resp.status = S3HttpStatus(code);
    if (resp.status >= 500) {
      spdlog::error("{} {} {}: {}", r.op, req.method, req.target,
                    std::string(result.status().message()));
    } else {
      spdlog::debug("{} {} {}: {} {}", r.op, req.method, req.target, code,
                    std::string(result.status().message()));
    }
    if (resp.status != 304) {
      resp.AddHeader("Content-Type", "application/xml");
      resp.body = S3ErrorXml(result.status(), req.path, r.request_id);
    }
    if (req.method == "HEAD") {
      resp.head_only = true;
      resp.head_length = 0;
      resp.body.clear();
    }
  }
  if (!bucket.empty() && r.op != "CorsPreflight" && req.HasHeader("origin"))
    AddCorsHeaders(req, bucket, resp);
  resp.AddHeader("x-amz-request-id", r.request_id);
  resp.AddHeader("Server", "LightningStor");
  double seconds = static_cast<double>(MonotonicNanos() - start) / 1e9;
  Observe(r, resp.status, seconds);
  if (!r.logging.empty()) {
    auto [target, prefix] = DecodeLoggingTarget(r.logging);
    access_log_->Append(target, prefix, AccessLogLine(r, resp.status, code, seconds));
  }
  return resp;
}

}  // namespace photon::lightningstor
