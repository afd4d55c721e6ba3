// Service- and bucket-level S3 operations of S3Service (see service.h).
#include <algorithm>

#include "common/util.h"
#include "lightningstor/body_readers.h"
#include "lightningstor/bucket_rules.h"
#include "lightningstor/checksum.h"
#include "lightningstor/cors.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

http::Response XmlResponse(std::string body, int status = 200) {
  http::Response resp;
  resp.status = status;
  resp.body = std::move(body);
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

http::Response Empty(int status) {
  http::Response resp;
  resp.status = status;
  return resp;
}

void WriteOwner(XmlWriter& w, const std::string& owner) {
  w.Open("Owner");
  w.Element("ID", owner);
  w.Element("DisplayName", owner);
  w.Close("Owner");
}

// A <TagSet> (PutBucketTagging) or <Tags> (CreateBucketConfiguration) element checked as S3
// does, written back as the Tagging document GetBucketTagging answers ("" for no tags).
StatusOr<std::string> BucketTaggingXml(const XmlNode* set) {
  if (!set) return std::string();
  PHOTON_ASSIGN_OR_RETURN(TagSet tags, ParseTagSet(set));
  PHOTON_RETURN_IF_ERROR(CheckTags(tags, 50));
  if (tags.empty()) return std::string();
  return TaggingXml(tags);
}

}  // namespace

StatusOr<std::string> S3Service::ReadSmallBody(S3Request& r, size_t limit) {
  std::string out;
  char buf[16 << 10];
  while (true) {
    PHOTON_ASSIGN_OR_RETURN(size_t n, r.http.body->Read(buf, sizeof buf));
    if (n == 0) break;
    out.append(buf, n);
    if (out.size() > limit) return S3Error("MalformedXML", "request body too large");
  }
  // Small documents are signed with their real SHA-256 by every SDK; check it here.
  const std::string& hash = r.auth.payload_hash;
  if (!r.auth.anonymous && hash.size() == 64 && hash != sigv4::kUnsignedPayload) {
    std::string actual = Sha256Hex(out);
    if (actual != hash) {
      return S3Error(
          "XAmzContentSHA256Mismatch",
          "The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
  }
  if (r.http.HasHeader("content-md5")) {
    std::string raw;
    if (!Base64Decode(r.http.Header("content-md5"), &raw) || raw.size() != 16) {
      return S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
    }
    if (raw != Md5Raw(out))
      return S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  // x-amz-checksum-* of a document (what newer SDKs send instead of Content-MD5); on a
  // CompleteMultipartUpload they are the object's, checked by its handler.
  if (r.op != "CompleteMultipartUpload") {
    PHOTON_ASSIGN_OR_RETURN(ContentChecksums sums, ContentChecksums::FromRequest(r.http));
    sums.Update(out.data(), out.size());
    std::map<std::string, std::string> verified;
    PHOTON_RETURN_IF_ERROR(sums.Verify({}, &verified));
  }
  r.bytes_in += out.size();
  return out;
}

StatusOr<http::Response> S3Service::ListBuckets(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(auto buckets, meta_->ListBuckets());
  XmlWriter w;
  w.Open("ListAllMyBucketsResult", kXmlns);
  WriteOwner(w, r.caller);
  w.Open("Buckets");
  for (const auto& b : buckets) {
    // As S3: an account sees its own buckets only, whatever others granted it.
    if (b.owner != r.caller) continue;
    w.Open("Bucket");
    w.Element("Name", b.name);
    w.Element("CreationDate", sigv4::FormatIso8601(b.created_ms));
    w.Close("Bucket");
  }
  w.Close("Buckets");
  w.Close("ListAllMyBucketsResult");
  return XmlResponse(w.Take());
}

StatusOr<http::Response> S3Service::CreateBucket(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(ValidateBucketName(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r));
  std::string tags;
  if (!body.empty()) {
    PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
    std::string location = doc->ChildText("LocationConstraint");
    if (!location.empty() && location != config_.region) {
      return S3Error("InvalidLocationConstraint", "The specified location-constraint is not valid");
    }
    // Tags given at creation are stored with the bucket in one commit, so a bucket is never
    // seen without them (photon-server recognises its buckets by a tag).
    PHOTON_ASSIGN_OR_RETURN(tags, BucketTaggingXml(doc->Child("Tags")));
    for (const auto& child : doc->children) {
      if (child->name != "LocationConstraint" && child->name != "Tags") {
        return S3Error("NotImplemented",
                       "CreateBucketConfiguration/" + child->name + " is not implemented");
      }
    }
  }
  auto user_exists = [this](const std::string& u) { return UserExists(u); };
  PHOTON_ASSIGN_OR_RETURN(
      auto acl, AclFromRequest(AclRequestOf(r.http, ""), r.caller, r.caller, true, user_exists));
  // The creator's account Public Access Block refuses a public ACL on a new bucket too.
  if (acl && IsPublicAcl(*acl)) {
    PHOTON_ASSIGN_OR_RETURN(std::string account, meta_->GetAccountPublicAccessBlock(r.caller));
    if (DecodePublicAccessBlock(account).block_public_acls) {
      return S3Error("AccessDenied",
                     "Access Denied: the account's Public Access Block (BlockPublicAcls) refuses "
                     "an ACL granting to AllUsers or AuthenticatedUsers");
    }
  }
  BucketMeta bucket;
  if (r.http.HasHeader("x-amz-object-ownership")) {
    bucket.ownership = r.http.Header("x-amz-object-ownership");
    PHOTON_RETURN_IF_ERROR(CheckObjectOwnership(bucket.ownership));
    if (bucket.ownership == "BucketOwnerEnforced" && acl && !IsOwnerOnlyAcl(*acl)) {
      return S3Error("InvalidBucketAclWithObjectOwnership",
                     "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced "
                     "setting");
    }
  }
  bucket.name = r.bucket;
  bucket.created_ms = clock_->NowMillis();
  bucket.tags = std::move(tags);
  bucket.owner = r.caller;
  // Object Lock is chosen at creation only, and forces versioning on (in the same commit).
  // Some SDKs send the boolean as "True".
  std::string lock = r.http.Header("x-amz-bucket-object-lock-enabled");
  for (auto& c : lock) c = static_cast<char>(tolower(c));
  if (!lock.empty() && lock != "true" && lock != "false")
    return S3Error("InvalidArgument", "x-amz-bucket-object-lock-enabled is true or false");
  if (lock == "true") {
    bucket.object_lock = "on";
    bucket.versioning = "Enabled";
  }
  // The ACL is stored in the same commit as the bucket: never a moment with other grants.
  if (acl) {
    bucket.acl = EncodeGrants(acl->grants);
    bucket.public_read = AllUsersRead(*acl);
  }
  PHOTON_RETURN_IF_ERROR(meta_->CreateBucket(bucket));
  http::Response resp;
  resp.AddHeader("Location", "/" + r.bucket);
  return resp;
}

StatusOr<http::Response> S3Service::DeleteBucket(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(WriteResult result, meta_->DeleteBucket(r.bucket));
  FreeBlobs(result.freed_blobs);
  return Empty(204);
}

StatusOr<http::Response> S3Service::HeadBucket(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  http::Response resp;
  resp.head_only = true;
  resp.AddHeader("x-amz-bucket-region", config_.region);
  return resp;
}

StatusOr<http::Response> S3Service::GetBucketLocation(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  XmlWriter w;
  w.Open("LocationConstraint", kXmlns);
  // S3 reports the default region as an empty constraint.
  if (config_.region != "us-east-1") {
    std::string body = w.Take();
    body += XmlEscape(config_.region);
    body += "</LocationConstraint>";
    return XmlResponse(body);
  }
  w.Close("LocationConstraint");
  return XmlResponse(w.Take());
}

StatusOr<http::Response> S3Service::PutBucketVersioning(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  std::string status = doc->ChildText("Status");
  if (doc->ChildText("MfaDelete") == "Enabled")
    return S3Error("NotImplemented", "lightningstor does not implement MFA Delete");
  if (status != "Enabled" && status != "Suspended") {
    return S3Error("MalformedXML", "Versioning Status must be Enabled or Suspended");
  }
  if (!bucket.object_lock.empty() && status != "Enabled") {
    return S3Error("InvalidBucketState",
                   "An Object Lock configuration is present on this bucket, so the versioning "
                   "state cannot be changed.");
  }
  PHOTON_RETURN_IF_ERROR(meta_->SetVersioning(r.bucket, status));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketVersioning(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  XmlWriter w;
  w.Open("VersioningConfiguration", kXmlns);
  if (!bucket.versioning.empty()) w.Element("Status", bucket.versioning);
  w.Close("VersioningConfiguration");
  return XmlResponse(w.Take());
}

StatusOr<http::Response> S3Service::PutBucketLifecycle(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r));
  PHOTON_RETURN_IF_ERROR(ParseLifecycle(body).status());
  PHOTON_RETURN_IF_ERROR(meta_->SetLifecycle(r.bucket, body));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketLifecycle(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.lifecycle.empty()) {
    return S3Error("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist");
  }
  PHOTON_ASSIGN_OR_RETURN(auto rules, ParseLifecycle(bucket.lifecycle));
  return XmlResponse(LifecycleXml(rules));
}

StatusOr<http::Response> S3Service::DeleteBucketLifecycle(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetLifecycle(r.bucket, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::PutBucketTagging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "Tagging" || !doc->Child("TagSet"))
    return S3Error("MalformedXML", "want <Tagging><TagSet>...</TagSet></Tagging>");
  PHOTON_ASSIGN_OR_RETURN(std::string tags, BucketTaggingXml(doc->Child("TagSet")));
  PHOTON_RETURN_IF_ERROR(meta_->SetTags(r.bucket, tags));
  return Empty(204);
}

StatusOr<http::Response> S3Service::GetBucketTagging(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.tags.empty()) return S3Error("NoSuchTagSet", "The TagSet does not exist");
  return XmlResponse(bucket.tags);
}

StatusOr<http::Response> S3Service::DeleteBucketTagging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetTags(r.bucket, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::PutBucketPolicy(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 20 << 10));
  auto user_exists = [this](const std::string& u) { return UserExists(u); };
  PHOTON_ASSIGN_OR_RETURN(BucketPolicy policy, ParseBucketPolicy(body, r.bucket, user_exists));
  if (r.public_access.block_public_policy && policy.IsPublic()) {
    return S3Error("AccessDenied",
                   "Access Denied: the bucket's Public Access Block (BlockPublicPolicy) refuses a "
                   "policy granting access to everyone");
  }
  // The bucket's ACL stays as it is: the policy's grants are read from its text.
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_RETURN_IF_ERROR(meta_->SetPolicy(r.bucket, bucket.public_read, body));
  return Empty(204);
}

StatusOr<http::Response> S3Service::GetBucketPolicy(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.policy.empty())
    return S3Error("NoSuchBucketPolicy", "The bucket policy does not exist");
  http::Response resp;
  resp.body = bucket.policy;
  resp.AddHeader("Content-Type", "application/json");
  return resp;
}

StatusOr<http::Response> S3Service::GetBucketPolicyStatus(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.policy.empty())
    return S3Error("NoSuchBucketPolicy", "The bucket policy does not exist");
  PHOTON_ASSIGN_OR_RETURN(BucketPolicy policy, ParseBucketPolicy(bucket.policy, bucket.name));
  XmlWriter w;
  w.Open("PolicyStatus", kXmlns);
  w.Element("IsPublic", policy.IsPublic() ? "true" : "false");
  w.Close("PolicyStatus");
  http::Response resp;
  resp.body = w.Take();
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

StatusOr<http::Response> S3Service::DeleteBucketPolicy(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_RETURN_IF_ERROR(meta_->SetPolicy(r.bucket, bucket.public_read, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::PutBucketAcl(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  auto user_exists = [this](const std::string& u) { return UserExists(u); };
  AclRequest asked = AclRequestOf(r.http, std::move(body));
  PHOTON_ASSIGN_OR_RETURN(auto acl,
                          AclFromRequest(asked, bucket.owner, bucket.owner, true, user_exists));
  if (!acl) return S3Error("MissingSecurityHeader", "Your request was missing a required header");
  if (bucket.ownership == "BucketOwnerEnforced" && !TakenWithAclsDisabled(asked, *acl))
    return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs");
  PHOTON_RETURN_IF_ERROR(CheckPublicAclAllowed(r, *acl));
  PHOTON_RETURN_IF_ERROR(
      meta_->SetBucketAcl(r.bucket, AllUsersRead(*acl), EncodeGrants(acl->grants)));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketAcl(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  return XmlResponse(AclXml(BucketAcl(bucket.owner, bucket.acl, bucket.public_read)));
}

StatusOr<http::Response> S3Service::PutPublicAccessBlock(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 16 << 10));
  PHOTON_ASSIGN_OR_RETURN(PublicAccessBlock pab, ParsePublicAccessBlock(body));
  PHOTON_RETURN_IF_ERROR(meta_->SetPublicAccessBlock(r.bucket, EncodePublicAccessBlock(pab)));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetPublicAccessBlock(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.public_access_block.empty()) {
    return S3Error("NoSuchPublicAccessBlockConfiguration",
                   "The public access block configuration was not found");
  }
  return XmlResponse(PublicAccessBlockXml(DecodePublicAccessBlock(bucket.public_access_block)));
}

StatusOr<http::Response> S3Service::DeletePublicAccessBlock(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetPublicAccessBlock(r.bucket, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::AccountControl(S3Request& r) {
  r.caller = r.auth.anonymous ? "" : r.auth.user;
  if (r.op == "Control:Unsupported") {
    return S3Error("NotImplemented",
                   "lightningstor implements the account Public Access Block of S3 Control only");
  }
  // An account manages its own configuration; lightningstor's account ID is the user's name.
  if (r.caller.empty() || r.http.Header("x-amz-account-id") != r.caller)
    return S3Error("AccessDenied", "Access Denied");
  for (const auto& [name, value] : r.http.headers) {
    if (name.rfind("x-amz-", 0) != 0 || name == "x-amz-account-id" || name == "x-amz-date" ||
        name == "x-amz-content-sha256" || name == "x-amz-user-agent" ||
        name.rfind("x-amz-checksum-", 0) == 0 || name == "x-amz-sdk-checksum-algorithm")
      continue;
    return S3Error("NotImplemented", name + " is not taken by S3 Control here");
  }
  if (r.op == "Control:PutPublicAccessBlock") {
    PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 16 << 10));
    PHOTON_ASSIGN_OR_RETURN(PublicAccessBlock pab, ParsePublicAccessBlock(body));
    PHOTON_RETURN_IF_ERROR(
        meta_->SetAccountPublicAccessBlock(r.caller, EncodePublicAccessBlock(pab)));
    return Empty(200);
  }
  if (r.op == "Control:DeletePublicAccessBlock") {
    PHOTON_RETURN_IF_ERROR(meta_->SetAccountPublicAccessBlock(r.caller, ""));
    return Empty(204);
  }
  PHOTON_ASSIGN_OR_RETURN(std::string stored, meta_->GetAccountPublicAccessBlock(r.caller));
  if (stored.empty()) {
    return S3Error("NoSuchPublicAccessBlockConfiguration",
                   "The public access block configuration was not found");
  }
  return XmlResponse(PublicAccessBlockXml(DecodePublicAccessBlock(stored)));
}

StatusOr<http::Response> S3Service::PutBucketEncryption(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 16 << 10));
  PHOTON_ASSIGN_OR_RETURN(std::string config, ParseBucketEncryption(body));
  PHOTON_RETURN_IF_ERROR(meta_->SetEncryption(r.bucket, config));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketEncryption(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.encryption.empty()) {
    return S3Error("ServerSideEncryptionConfigurationNotFoundError",
                   "The server side encryption configuration was not found");
  }
  return XmlResponse(BucketEncryptionXml(bucket.encryption));
}

StatusOr<http::Response> S3Service::DeleteBucketEncryption(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetEncryption(r.bucket, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::PutBucketOwnershipControls(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 16 << 10));
  PHOTON_ASSIGN_OR_RETURN(std::string ownership, ParseOwnershipControls(body));
  // ACLs are turned off only on a bucket whose own ACL grants nothing beyond its owner (as in
  // S3); objects' ACLs simply stop counting.
  PHOTON_RETURN_IF_ERROR(meta_->SetOwnership(r.bucket, ownership, [&](const BucketMeta& b) {
    if (ownership == "BucketOwnerEnforced" &&
        !IsOwnerOnlyAcl(BucketAcl(b.owner, b.acl, b.public_read))) {
      return S3Error("InvalidBucketAclWithObjectOwnership",
                     "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced "
                     "setting");
    }
    return absl::OkStatus();
  }));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketOwnershipControls(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.ownership.empty()) {
    return S3Error("OwnershipControlsNotFoundError",
                   "The bucket ownership controls were not found");
  }
  return XmlResponse(OwnershipControlsXml(bucket.ownership));
}

StatusOr<http::Response> S3Service::DeleteBucketOwnershipControls(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetOwnership(r.bucket, ""));
  return Empty(204);
}

StatusOr<http::Response> S3Service::PutBucketCors(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_RETURN_IF_ERROR(ParseCors(body).status());
  PHOTON_RETURN_IF_ERROR(meta_->SetCors(r.bucket, body));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketCors(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  if (bucket.cors.empty())
    return S3Error("NoSuchCORSConfiguration", "The CORS configuration does not exist");
  PHOTON_ASSIGN_OR_RETURN(auto rules, ParseCors(bucket.cors));
  return XmlResponse(CorsXml(rules));
}

StatusOr<http::Response> S3Service::DeleteBucketCors(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(meta_->SetCors(r.bucket, ""));
  return Empty(204);
}

namespace {

std::vector<std::string> SplitHeaderList(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string one = text.substr(pos, comma - pos);
    while (!one.empty() && one.front() == ' ') one.erase(0, 1);
    while (!one.empty() && one.back() == ' ') one.pop_back();
    if (!one.empty()) out.push_back(one);
    pos = comma + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// The answer's Access-Control-* headers for a request the rule allows.
void AllowHeaders(const CorsRule& rule, const std::string& origin, http::Response& resp) {
  bool any = std::find(rule.origins.begin(), rule.origins.end(), "*") != rule.origins.end();
  resp.AddHeader("Access-Control-Allow-Origin", any ? "*" : origin);
  if (!any) resp.AddHeader("Access-Control-Allow-Credentials", "true");
  resp.AddHeader("Access-Control-Allow-Methods", Join(rule.methods));
  if (!rule.expose.empty()) resp.AddHeader("Access-Control-Expose-Headers", Join(rule.expose));
  if (rule.max_age >= 0) resp.AddHeader("Access-Control-Max-Age", std::to_string(rule.max_age));
  resp.AddHeader("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
}

}  // namespace

StatusOr<http::Response> S3Service::CorsPreflight(S3Request& r) {
  const std::string& origin = r.http.Header("origin");
  const std::string& method = r.http.Header("access-control-request-method");
  if (origin.empty() || method.empty()) {
    return S3Error("InvalidRequest", "Insufficient information. Origin request header needed.");
  }
  Status forbidden = S3Error("AccessForbidden",
                             "CORSResponse: This CORS request is not allowed. This is usually "
                             "because the evalution of Origin, request method / "
                             "Access-Control-Request-Method or Access-Control-Request-Headers are "
                             "not whitelisted by the resource's CORS spec.");
  auto bucket = RequireBucket(r.bucket);
  if (!bucket.ok() || bucket->cors.empty()) return forbidden;
  PHOTON_ASSIGN_OR_RETURN(auto rules, ParseCors(bucket->cors));
  auto headers = SplitHeaderList(r.http.Header("access-control-request-headers"));
  const CorsRule* rule = MatchCors(rules, origin, method, headers);
  if (!rule) return forbidden;
  http::Response resp;
  AllowHeaders(*rule, origin, resp);
  if (!headers.empty()) resp.AddHeader("Access-Control-Allow-Headers", Join(headers));
  return resp;
}

void S3Service::AddCorsHeaders(const http::Request& req, const std::string& bucket_name,
                               http::Response& resp) {
  auto bucket = RequireBucket(bucket_name);
  if (!bucket.ok() || bucket->cors.empty()) return;
  auto rules = ParseCors(bucket->cors);
  if (!rules.ok()) return;
  const CorsRule* rule = MatchCors(*rules, req.Header("origin"), req.method, {});
  if (rule) AllowHeaders(*rule, req.Header("origin"), resp);
}

}  // namespace photon::lightningstor

namespace photon::lightningstor {

StatusOr<http::Response> S3Service::PutBucketLogging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "BucketLoggingStatus")
    return S3Error("MalformedXML", "expected a BucketLoggingStatus document");
  const XmlNode* enabled = doc->Child("LoggingEnabled");
  if (!enabled) {
    PHOTON_RETURN_IF_ERROR(meta_->SetLogging(r.bucket, ""));
    return Empty(200);
  }
  for (const auto& child : enabled->children) {
    if (child->name != "TargetBucket" && child->name != "TargetPrefix") {
      return S3Error("NotImplemented",
                     "LoggingEnabled/" + child->name + " is not implemented by lightningstor");
    }
  }
  std::string target = enabled->ChildText("TargetBucket");
  auto target_bucket = RequireBucket(target);
  // Logs are written as the target's owner: only into one's own buckets.
  if (!target_bucket.ok() || target_bucket->owner != r.caller) {
    return S3Error("InvalidTargetBucketForLogging",
                   "The target bucket for logging does not exist or is not owned by you");
  }
  PHOTON_RETURN_IF_ERROR(
      meta_->SetLogging(r.bucket, EncodeLoggingTarget(target, enabled->ChildText("TargetPrefix"))));
  return Empty(200);
}

StatusOr<http::Response> S3Service::GetBucketLogging(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  XmlWriter w;
  w.Open("BucketLoggingStatus", kXmlns);
  if (!bucket.logging.empty()) {
    auto [target, prefix] = DecodeLoggingTarget(bucket.logging);
    w.Open("LoggingEnabled");
    w.Element("TargetBucket", target);
    w.Element("TargetPrefix", prefix);
    w.Close("LoggingEnabled");
  }
  w.Close("BucketLoggingStatus");
  return XmlResponse(w.Take());
}

namespace {

std::string Field(const std::string& v) { return v.empty() ? "-" : v; }
std::string Quoted(const std::string& v) {
  if (v.empty()) return "-";
  std::string out = "\"";
  for (char c : v) out += c == '"' ? '\'' : c;
  return out + "\"";
}

// REST.METHOD.RESOURCE as S3 names operations in its access logs.
std::string LogOperation(const S3Request& r) {
  std::string resource = r.key.empty() ? "BUCKET" : "OBJECT";
  for (const auto& [name, value] : r.http.query) {
    if (name == "versionId" || name == "partNumber" || name.rfind("X-Amz-", 0) == 0) continue;
    if (name == "uploadId") {
      resource = "UPLOAD";
      break;
    }
    std::string upper = name;
    for (auto& c : upper) c = c == '-' ? '_' : static_cast<char>(toupper(c));
    if (upper == "LIST_TYPE" || upper == "PREFIX" || upper == "DELIMITER") continue;
    resource = upper;
    break;
  }
  return "REST." + r.http.method + "." + resource;
}

}  // namespace

std::string S3Service::AccessLogLine(const S3Request& r, int status, const std::string& error_code,
                                     double seconds) const {
  time_t now = static_cast<time_t>(clock_->NowMillis() / 1000);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char when[40];
  strftime(when, sizeof when, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
  const http::Request& req = r.http;
  std::string remote = req.remote.substr(0, req.remote.rfind(':'));
  std::string auth = r.auth.anonymous ? "-" : (r.auth.presigned ? "QueryString" : "AuthHeader");
  std::string line = r.bucket_owner + " " + r.bucket + " " + when + " " + Field(remote) + " " +
                     Field(r.caller) + " " + r.request_id + " " + LogOperation(r) + " " +
                     Field(r.key) + " " + Quoted(req.method + " " + req.target + " HTTP/1.1") +
                     " " + std::to_string(status) + " " + Field(error_code) + " " +
                     (r.bytes_out ? std::to_string(r.bytes_out) : "-") + " " +
                     (r.bytes_in ? std::to_string(r.bytes_in) : "-") + " " +
                     std::to_string(static_cast<int64_t>(seconds * 1000)) + " - " +
                     Quoted(req.Header("referer")) + " " + Quoted(req.Header("user-agent")) + " " +
                     Field(req.Query("versionId") ? *req.Query("versionId") : "") + " - " +
                     (r.auth.anonymous ? "-" : "SigV4") + " - " + auth + " " +
                     Field(req.Header("host")) + " " + (req.tls ? "TLSv1.2" : "-") + " - -";
  return line;
}

Status S3Service::DeliverAccessLog(const std::string& bucket_name, const std::string& prefix,
                                   const std::string& lines) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(bucket_name));
  auto writer = blobs_->NewWriter(config_.inline_max_bytes);
  PHOTON_RETURN_IF_ERROR(writer->Write(lines.data(), lines.size()));
  PHOTON_ASSIGN_OR_RETURN(WrittenBlob blob, writer->Finish());
  time_t now = static_cast<time_t>(clock_->NowMillis() / 1000);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%d-%H-%M-%S-", &tm);
  std::string suffix = RandomHex(8);
  for (auto& c : suffix) c = static_cast<char>(toupper(c));
  ObjectMeta o;
  o.bucket = bucket_name;
  o.key = prefix + stamp + suffix;
  o.mtime_ms = clock_->NowMillis();
  o.content_type = "text/plain";
  o.size = blob.size;
  o.etag = HexEncode(blob.md5);
  o.has_inline = blob.is_inline;
  if (blob.is_inline) {
    o.inline_data = std::move(blob.inline_data);
    o.inline_crc = blob.inline_crc;
  } else {
    o.segments = {blob.segment};
  }
  // Owned by the target's owner, private, with the target's default retention if it has one.
  PHOTON_ASSIGN_OR_RETURN(Acl acl, CannedAcl("private", bucket.owner, bucket.owner, false));
  StoreObjectAcl(acl, &o.headers);
  auto [mode, days] = DefaultRetention(bucket.object_lock);
  if (days > 0) StoreLock({mode, o.mtime_ms + int64_t{days} * 86400000, false}, &o.headers);
  std::string blob_id = blob.is_inline ? "" : blob.segment.blob_id;
  auto result = meta_->PutObject(std::move(o));
  if (!result.ok()) {
    if (!blob_id.empty()) blobs_->Remove(blob_id);
    return result.status();
  }
  FreeBlobs(result->freed_blobs);
  return absl::OkStatus();
}

}  // namespace photon::lightningstor
