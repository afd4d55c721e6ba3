// Object and bucket attributes S3 keeps beside the bytes: tag sets (x-amz-tagging, ?tagging
// documents) and canned ACLs (x-amz-acl, ?acl documents). Stored with an object as internal
// headers (kTagsHeader, kAclHeader) that are never sent back as such. Pure functions;
// thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/xml.h"
#include "lightningstor/http/message.h"

namespace photon::lightningstor {

using TagSet = std::vector<std::pair<std::string, std::string>>;

// Internal header names of an object's tag set ("k=v&k2=v2", URL-encoded) and canned ACL.
inline constexpr const char* kTagsHeader = "x-photon-tagging";
inline constexpr const char* kAclHeader = "x-photon-acl";
// The part numbers a multipart object was completed from ("1,3,5"), for GET ?partNumber=.
inline constexpr const char* kPartsHeader = "x-photon-parts";
// The x-amz-checksum-algorithm ("crc32", ...) and x-amz-checksum-type (COMPOSITE, FULL_OBJECT) a
// multipart upload was made with, kept with the upload and its object. The object's checksum
// is its x-amz-checksum-<alg> header ("BASE64-N" when COMPOSITE) and its parts' checksums, in
// segment order, are kPartChecksumsHeader ("B64,B64,..."). A multipart object completed before
// part checksums were kept has the algorithm but no part checksums: GetObjectAttributes refuses
// Checksum / ObjectParts for it rather than leave them out.
inline constexpr const char* kChecksumAlgorithmHeader = "x-photon-checksum-algorithm";
inline constexpr const char* kChecksumTypeHeader = "x-photon-checksum-type";
inline constexpr const char* kPartChecksumsHeader = "x-photon-part-checksums";
// Whether a stored header is internal (never returned to clients as a header).
bool IsInternalHeader(const std::string& name);

// Tag limits of S3: keys 1-128 and values at most 256 characters, unique keys, at most
// max_tags tags (10 for objects, 50 for buckets). InvalidTag otherwise.
Status CheckTags(const TagSet& tags, size_t max_tags);
// The x-amz-tagging header form ("k=v&k2=v2", URL-encoded); InvalidArgument when malformed.
StatusOr<TagSet> ParseTagQuery(const std::string& query);
std::string EncodeTagQuery(const TagSet& tags);
// A <TagSet> element's tags (unchecked); MalformedXML when it is not one.
StatusOr<TagSet> ParseTagSet(const XmlNode* set);
// The Tagging document GetObjectTagging / GetBucketTagging answer.
std::string TaggingXml(const TagSet& tags);

// Accounts and ACLs. A user's name is its canonical ID and display name. Keys without a user,
// buckets made before accounts existed, and objects stored before owners were kept belong to
// kDefaultOwner (objects: to their bucket's owner).
inline constexpr const char* kDefaultOwner = "lightningstor";
// Internal header of an object's owner (the account that wrote it).
inline constexpr const char* kOwnerHeader = "x-photon-owner";

// ACL permissions as bits; FULL_CONTROL is all of them.
enum Permission : unsigned {
  kPermRead = 1,
  kPermWrite = 2,
  kPermReadAcp = 4,
  kPermWriteAcp = 8,
  kPermFullControl = 15,
};

struct Grant {
  bool group = false;   // grantee is a group: "AllUsers" or "AuthenticatedUsers"
  std::string grantee;  // user id, or the group's short name
  unsigned permission;  // one Permission value
  bool operator==(const Grant& o) const {
    return group == o.group && grantee == o.grantee && permission == o.permission;
  }
};

struct Acl {
  std::string owner;
  std::vector<Grant> grants;
};

// Whether a user id exists (grants to unknown users are InvalidArgument, as in S3).
using UserExists = std::function<bool(const std::string&)>;

// A canned ACL as grants: every S3 canned ACL is known. On buckets, grants that would let
// anonymous callers write (public-read-write) and log-delivery-write are NotImplemented; on
// objects aws-exec-read is (no EC2 here). Unknown names are InvalidArgument.
StatusOr<Acl> CannedAcl(const std::string& name, const std::string& owner,
                        const std::string& bucket_owner, bool bucket);
// Checks a canned ACL name (CannedAcl without the grants).
Status CheckCannedAcl(const std::string& acl, bool bucket);

// The permissions `caller` ("" = anonymous) has by this ACL. The owner always has READ_ACP and
// WRITE_ACP; AuthenticatedUsers are all signed callers.
unsigned Permissions(const Acl& acl, const std::string& caller);

// Stored forms: grants as "u:alice=15,g:AllUsers=1"; an object's ACL in its internal headers
// (kOwnerHeader, kAclHeader; no kAclHeader = private). Objects stored before owners were kept
// belong to bucket_owner, and their kAclHeader is a canned ACL name.
std::string EncodeGrants(const std::vector<Grant>& grants);
StatusOr<std::vector<Grant>> DecodeGrants(const std::string& text);
// Under the bucket's Object Ownership BucketOwnerEnforced every object is the bucket owner's
// and ACLs grant nothing: the ACL is the bucket owner's FULL_CONTROL alone.
Acl ObjectAcl(const std::map<std::string, std::string>& headers, const std::string& bucket_owner,
              const std::string& ownership = "");
// Whether an ACL grants nothing but its owner's FULL_CONTROL (what BucketOwnerEnforced
// accepts: private, bucket-owner-full-control, or the same as a document).
bool IsOwnerOnlyAcl(const Acl& acl);
void StoreObjectAcl(const Acl& acl, std::map<std::string, std::string>* headers);
// A bucket's ACL from its stored grants ("" = before ACL grants were kept: public_read).
Acl BucketAcl(const std::string& owner, const std::string& grants, bool public_read);
// Whether AllUsers may READ (the bucket's public_read column).
bool AllUsersRead(const Acl& acl);
// Whether an ACL grants anything to AllUsers or AuthenticatedUsers (S3's "public" ACL).
bool IsPublicAcl(const Acl& acl);
// The ACL without those grants (a Public Access Block's IgnorePublicAcls).
Acl WithoutPublicGrants(Acl acl);

// The AccessControlPolicy document of an ACL.
std::string AclXml(const Acl& acl);

// The ACL a request asks for: x-amz-acl, x-amz-grant-* headers, or an AccessControlPolicy
// body (only one of them). has_acl is false when it asks for none (keep / default private).
// MalformedACLError, InvalidArgument (unknown grantee, owner mismatch), NotImplemented
// (grants letting anonymous callers write, LogDelivery, email grantees).
struct AclRequest {
  std::string canned;                                              // x-amz-acl
  std::vector<std::pair<std::string, std::string>> grant_headers;  // x-amz-grant-*
  std::string body;  // AccessControlPolicy ("" = none)
};
// The ACL parts of a request (x-amz-acl, x-amz-grant-*), with its body.
AclRequest AclRequestOf(const http::Request& req, std::string body);
StatusOr<std::optional<Acl>> AclFromRequest(const AclRequest& req, const std::string& owner,
                                            const std::string& bucket_owner, bool bucket,
                                            const UserExists& user_exists);
// Whether a bucket with ACLs disabled (BucketOwnerEnforced) takes this ACL request, as S3
// does: the canned bucket-owner-full-control, or grants (headers or a document) that are
// the owner's FULL_CONTROL alone; any other canned ACL, `private` included, is refused.
bool TakenWithAclsDisabled(const AclRequest& req, const Acl& acl);
// Object Lock (WORM). A version's retention and legal hold are internal headers; a bucket's
// lock configuration is "" (no Object Lock), "on" (enabled, no default retention) or
// "on:MODE:DAYS" (default retention of new objects).
inline constexpr const char* kLockModeHeader = "x-photon-lock-mode";    // GOVERNANCE, COMPLIANCE
inline constexpr const char* kLockUntilHeader = "x-photon-lock-until";  // epoch ms
inline constexpr const char* kLegalHoldHeader = "x-photon-legal-hold";  // "ON" when held
struct ObjectLock {
  std::string mode;  // "" = no retention
  int64_t until_ms = 0;
  bool legal_hold = false;
};
ObjectLock LockOf(const std::map<std::string, std::string>& headers);
void StoreLock(const ObjectLock& lock, std::map<std::string, std::string>* headers);
// AccessDenied when a version under legal hold, or retained (COMPLIANCE, or GOVERNANCE
// without bypass) at now_ms, would be deleted.
Status CheckDeletable(const std::map<std::string, std::string>& headers, int64_t now_ms,
                      bool bypass_governance);
// The bucket's lock configuration from an ObjectLockConfiguration document (MalformedXML,
// InvalidArgument), and back.
StatusOr<std::string> ParseLockConfiguration(const std::string& xml);
std::string LockConfigurationXml(const std::string& config);
// The default retention of a bucket's lock configuration: mode, days (0 = none).
std::pair<std::string, int> DefaultRetention(const std::string& config);

// Compatibility for the XML fuzzer: the canned ACL name equal to a document's grants.
StatusOr<std::string> CannedAclOf(const std::string& body, const std::string& owner_id,
                                  bool bucket);

}  // namespace photon::lightningstor
