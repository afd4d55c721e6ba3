// Object and bucket attributes S3 keeps beside the bytes: tag sets (x-amz-tagging, ?tagging
// documents) and canned ACLs (x-amz-acl, ?acl documents). Stored with an object as internal
// headers (kTagsHeader, kAclHeader) that are never sent back as such. Pure functions;
// thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/xml.h"

namespace photon::lightningstor {

using TagSet = std::vector<std::pair<std::string, std::string>>;

// Internal header names of an object's tag set ("k=v&k2=v2", URL-encoded) and canned ACL.
inline constexpr const char* kTagsHeader = "x-photon-tagging";
inline constexpr const char* kAclHeader = "x-photon-acl";
// The part numbers a multipart object was completed from ("1,3,5"), for GET ?partNumber=.
inline constexpr const char* kPartsHeader = "x-photon-parts";
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

// Canned ACLs lightningstor honours. On objects: private, public-read, public-read-write,
// authenticated-read, bucket-owner-read, bucket-owner-full-control (with one owner of every
// bucket and object, the last two equal private). On buckets: private, public-read. Anything
// else is NotImplemented (a known S3 ACL) or InvalidArgument.
Status CheckCannedAcl(const std::string& acl, bool bucket);
// Whether the canned ACL lets anonymous callers read (objects) or list (buckets).
bool AclIsPublic(const std::string& acl);
// The AccessControlPolicy document of a canned ACL.
std::string AclXml(const std::string& acl, const std::string& owner_id);
// The canned ACL an AccessControlPolicy document is equal to; NotImplemented when its grants
// are not one lightningstor honours, InvalidArgument for an unknown grantee.
StatusOr<std::string> CannedAclOf(const std::string& body, const std::string& owner_id,
                                  bool bucket);
// The canned ACL of a PutObjectAcl / PutBucketAcl request (header or body); x-amz-grant-*
// headers are refused before this (service.cc).
StatusOr<std::string> AclFromRequest(const std::string& header, const std::string& body,
                                     const std::string& owner_id, bool bucket);

}  // namespace photon::lightningstor
