// The S3 REST service: routes a request (path-style or virtual-host-style) to its operation,
// authenticates it, runs it against the metadata store and blob store, and renders the
// result or the S3 XML error. Records per-operation metrics. Handle() is called concurrently
// from every connection thread; the service holds no per-request state, so it is thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/metrics.h"
#include "lightningstor/access_log.h"
#include "lightningstor/auth.h"
#include "lightningstor/blob_store.h"
#include "lightningstor/bucket_rules.h"
#include "lightningstor/clock.h"
#include "lightningstor/config.h"
#include "lightningstor/http/message.h"
#include "lightningstor/meta_store.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/sse.h"

namespace photon::lightningstor {

// Everything one request handler needs.
struct S3Request {
  http::Request& http;
  std::string bucket;  // "" for service-level requests
  std::string key;     // "" for bucket-level requests
  std::string op;      // operation name, for metrics and logs
  AuthInfo auth;
  std::string request_id;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Set by CheckAccess. The caller's account ("" = anonymous); the bucket's owner; the
  // permission the caller still needs on the object itself (object_attrs.h Permission bits, or
  // kNeedObjectOwner), checked by the handler once it has read the object; whether a missing
  // key may be told apart (NoSuchKey) from a denied one (the caller may list the bucket).
  std::string caller;
  std::string bucket_owner;
  std::string ownership;  // the bucket's Object Ownership (BucketMeta::ownership)
  unsigned object_need = 0;
  bool may_list = false;
  std::string logging;              // the bucket's access log target (access_log.h), "" = none
  PublicAccessBlock public_access;  // the bucket's Public Access Block
  // The bucket's policy (null when none); its Allows count unless RestrictPublicBuckets holds
  // and it is public, its Denies always. acl_write: the bucket ACL lets the caller write
  // (DeleteObjects weighs it against the policy key by key).
  std::shared_ptr<const BucketPolicy> policy;
  bool policy_allows = true;
  bool acl_write = false;
};

// object_need: only the object's owner (object tagging, which ACLs do not grant).
inline constexpr unsigned kNeedObjectOwner = 16;

class S3Service {
 public:
  S3Service(const Config& config, MetaStore* meta, BlobStore* blobs, KeyStore* keys,
            MetricsRegistry* metrics, const Clock* clock);

  http::Response Handle(http::Request& req);

  // Deletes blob files freed by a metadata change (after its commit), in the background.
  void FreeBlobs(const std::vector<std::string>& blob_ids) const;

 private:
  // Routing.
  std::string OperationName(const http::Request& req, const std::string& bucket,
                            const std::string& key) const;
  StatusOr<http::Response> Dispatch(S3Request& r);
  Status CheckAccess(S3Request& r);

  // Service and buckets (bucket_handlers.cc).
  StatusOr<http::Response> ListBuckets(S3Request& r);
  StatusOr<http::Response> CreateBucket(S3Request& r);
  StatusOr<http::Response> DeleteBucket(S3Request& r);
  StatusOr<http::Response> HeadBucket(S3Request& r);
  StatusOr<http::Response> GetBucketLocation(S3Request& r);
  StatusOr<http::Response> PutBucketVersioning(S3Request& r);
  StatusOr<http::Response> GetBucketVersioning(S3Request& r);
  StatusOr<http::Response> PutBucketLifecycle(S3Request& r);
  StatusOr<http::Response> GetBucketLifecycle(S3Request& r);
  StatusOr<http::Response> DeleteBucketLifecycle(S3Request& r);
  StatusOr<http::Response> PutBucketPolicy(S3Request& r);
  StatusOr<http::Response> GetBucketPolicy(S3Request& r);
  StatusOr<http::Response> DeleteBucketPolicy(S3Request& r);
  StatusOr<http::Response> GetBucketPolicyStatus(S3Request& r);
  StatusOr<http::Response> PutBucketAcl(S3Request& r);
  StatusOr<http::Response> GetBucketAcl(S3Request& r);
  StatusOr<http::Response> PutBucketTagging(S3Request& r);
  StatusOr<http::Response> GetBucketTagging(S3Request& r);
  StatusOr<http::Response> DeleteBucketTagging(S3Request& r);
  StatusOr<http::Response> PutBucketCors(S3Request& r);
  StatusOr<http::Response> GetBucketCors(S3Request& r);
  StatusOr<http::Response> DeleteBucketCors(S3Request& r);
  StatusOr<http::Response> PutBucketLogging(S3Request& r);
  StatusOr<http::Response> PutPublicAccessBlock(S3Request& r);
  StatusOr<http::Response> GetPublicAccessBlock(S3Request& r);
  StatusOr<http::Response> DeletePublicAccessBlock(S3Request& r);
  StatusOr<http::Response> GetBucketLogging(S3Request& r);
  // S3 Control's account Public Access Block (PUT / GET / DELETE
  // /v20180820/configuration/publicAccessBlock): the caller's own account only.
  StatusOr<http::Response> AccountControl(S3Request& r);
  StatusOr<http::Response> PutBucketEncryption(S3Request& r);
  StatusOr<http::Response> GetBucketEncryption(S3Request& r);
  StatusOr<http::Response> DeleteBucketEncryption(S3Request& r);
  StatusOr<http::Response> PutBucketOwnershipControls(S3Request& r);
  StatusOr<http::Response> GetBucketOwnershipControls(S3Request& r);
  StatusOr<http::Response> DeleteBucketOwnershipControls(S3Request& r);
  // One server access log line (S3's format) for a finished request.
  std::string AccessLogLine(const S3Request& r, int status, const std::string& error_code,
                            double seconds) const;
  // Stores buffered log lines as a new object of the target bucket.
  Status DeliverAccessLog(const std::string& bucket, const std::string& prefix,
                          const std::string& lines);
  // OPTIONS: a browser's preflight, answered from the bucket's CORS rules.
  StatusOr<http::Response> CorsPreflight(S3Request& r);
  // The Access-Control-* headers of an actual request with an Origin the rules allow.
  void AddCorsHeaders(const http::Request& req, const std::string& bucket, http::Response& resp);

  // Objects (object_handlers.cc).
  StatusOr<http::Response> PutObject(S3Request& r);
  StatusOr<http::Response> CopyObject(S3Request& r);
  StatusOr<http::Response> GetObject(S3Request& r, bool head);
  StatusOr<http::Response> DeleteObject(S3Request& r);
  // The GET answer of an encrypted object: bytes [start, start+length) decrypted.
  StatusOr<http::Response> EncryptedBody(http::Response resp, ObjectMeta o,
                                         const SseKeys::ReadKey& key, uint64_t start,
                                         uint64_t length);
  StatusOr<http::Response> DeleteObjects(S3Request& r);
  StatusOr<http::Response> GetObjectAcl(S3Request& r);
  StatusOr<http::Response> PutObjectAcl(S3Request& r);
  StatusOr<http::Response> GetObjectTagging(S3Request& r);
  StatusOr<http::Response> PutObjectTagging(S3Request& r);
  StatusOr<http::Response> DeleteObjectTagging(S3Request& r);
  // A browser POST upload (post_object.cc): the form's signature and policy checked, then the
  // file stored as the PutObject its fields describe.
  StatusOr<http::Response> PostObject(S3Request& r);
  // GET ?attributes (object_attributes.cc).
  StatusOr<http::Response> GetObjectAttributes(S3Request& r);
  // The access check, header refusals and PutObject of an authenticated PutObject request.
  StatusOr<http::Response> AuthorizedPut(S3Request& r);

  // Object Lock (object_lock_handlers.cc).
  StatusOr<http::Response> PutObjectLockConfiguration(S3Request& r);
  StatusOr<http::Response> GetObjectLockConfiguration(S3Request& r);
  StatusOr<http::Response> PutObjectRetention(S3Request& r);
  StatusOr<http::Response> GetObjectRetention(S3Request& r);
  StatusOr<http::Response> PutObjectLegalHold(S3Request& r);
  StatusOr<http::Response> GetObjectLegalHold(S3Request& r);
  // The retention and legal hold of a new version into its headers: the request's
  // x-amz-object-lock-* headers (from_request; InvalidRequest on a bucket without Object Lock)
  // or those already in *headers (an upload's, kept by CreateMultipartUpload), else the
  // bucket's default retention (with_default; an upload takes it when it completes).
  Status ApplyObjectLock(const S3Request& r, const BucketMeta& bucket,
                         std::map<std::string, std::string>* headers, bool from_request,
                         bool with_default = true);
  // x-amz-object-lock-* of a GET/HEAD answer.
  static void AddLockHeaders(const std::map<std::string, std::string>& headers,
                             http::Response& resp);

  // Listing (list_handlers.cc).
  StatusOr<http::Response> ListObjects(S3Request& r, bool v2);
  StatusOr<http::Response> ListObjectVersions(S3Request& r);

  // Multipart (multipart_handlers.cc).
  StatusOr<http::Response> CreateMultipartUpload(S3Request& r);
  StatusOr<http::Response> UploadPart(S3Request& r);
  StatusOr<http::Response> CompleteMultipartUpload(S3Request& r);
  StatusOr<http::Response> AbortMultipartUpload(S3Request& r);
  StatusOr<http::Response> ListParts(S3Request& r);
  StatusOr<http::Response> ListMultipartUploads(S3Request& r);

  // Shared helpers (object_handlers.cc).
  // Streams the (decoded, verified) request body into a new blob. With a cipher, the bytes
  // are encrypted before they are stored (after hashing); blob.md5 and *plain_md5 are the
  // MD5 of the plaintext, which Content-MD5 is checked against. `always`: a checksum computed
  // into *checksums even when the request sends none (an upload's x-amz-checksum-algorithm).
  StatusOr<WrittenBlob> ReceiveBody(S3Request& r, bool force_file,
                                    std::map<std::string, std::string>* checksums,
                                    SegmentEncryptor* cipher = nullptr,
                                    std::string* plain_md5 = nullptr,
                                    std::optional<ChecksumKind> always = std::nullopt);
  // Copies bytes [offset, offset+length) of an object into a new blob; the checksums in
  // *sums (may be null) are taken of the copied bytes on the way.
  // An encrypted source is decrypted with `decrypt`; with `encrypt` the copy is stored
  // encrypted (WrittenBlob::md5 stays the plaintext's).
  StatusOr<WrittenBlob> CopyData(const ObjectMeta& source, uint64_t offset, uint64_t length,
                                 bool force_file, std::vector<Checksummer>* sums,
                                 const SseKeys::ReadKey* decrypt = nullptr,
                                 SegmentEncryptor* encrypt = nullptr);
  // Resolves x-amz-copy-source to its object version.
  StatusOr<ObjectMeta> CopySource(S3Request& r);
  // Reads a small request body (XML documents) whole, up to limit bytes.
  StatusOr<std::string> ReadSmallBody(S3Request& r, size_t limit = 1 << 20);
  StatusOr<BucketMeta> RequireBucket(const std::string& name);
  // The tags and canned ACL of a write request (x-amz-tagging, x-amz-acl) into the object's
  // internal headers; InvalidTag / InvalidArgument / NotImplemented when not honoured.
  // The owner is the caller; x-amz-grant-* are taken too.
  Status ObjectAttributes(const S3Request& r, std::map<std::string, std::string>* headers);
  // The encryption a write asks for (x-amz-server-side-encryption*), else the bucket's
  // default encryption (SSE-S3), else none.
  StatusOr<SseRequest> WriteSse(const S3Request& r, const BucketMeta& bucket);
  // AccessDenied unless the caller has r.object_need on this object (its ACL; CheckAccess
  // clears it when the bucket policy allows the operation).
  Status CheckObjectAccess(const S3Request& r, const std::map<std::string, std::string>& headers);
  bool UserExists(const std::string& user) { return keys_->UserExists(user); }

  void Observe(const S3Request& r, int status, double seconds);

  Config config_;
  MetaStore* meta_;
  BlobStore* blobs_;
  MetricsRegistry* metrics_;
  KeyStore* keys_;
  const Clock* clock_;
  Authenticator auth_;
  SseKeys sse_;
  Counter* bytes_in_;
  Counter* bytes_out_;
  // Last member: destroyed (delivering what is buffered) while the stores are still there.
  std::unique_ptr<AccessLog> access_log_;
};

// What the request's bucket policy (r.policy) says about ACTION on KEY of r.bucket ("" = the
// bucket itself): kAllow only where its Allows count.
PolicyDecision DecidePolicy(const S3Request& r, const std::string& action, const std::string& key);
// The same for another bucket's stored policy (a copy's source).
PolicyDecision DecideStoredPolicy(const S3Request& r, const BucketMeta& bucket,
                                  const std::string& action, const std::string& key);

// AccessDenied when the bucket's Public Access Block (BlockPublicAcls) refuses this ACL.
Status CheckPublicAclAllowed(const S3Request& r, const Acl& acl);

// Headers S3 keeps with an object and returns on GET/HEAD.
bool IsStoredHeader(const std::string& lower_name);
// "Tue, 12 Mar 2024 ..." for Last-Modified.
std::string HttpDate(int64_t epoch_ms);
std::string QuoteEtag(const std::string& etag);
std::string UnquoteEtag(std::string etag);

}  // namespace photon::lightningstor
