// Pure rules about buckets: S3 bucket naming, the Public Access Block, and lifecycle
// configuration parsing. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "lightningstor/bucket_policy.h"  // bucket policies, parsed and evaluated

namespace photon::lightningstor {

// S3 naming rules: 3-63 chars of a-z 0-9 . -, starting and ending with a letter or digit, no
// "..", not shaped like an IP address, no "xn--" prefix or "-s3alias" suffix.
// InvalidBucketName otherwise.
Status ValidateBucketName(const std::string& name);

// A bucket's Public Access Block. Stored as four '0'/'1' in this order ("" = none, all off).
struct PublicAccessBlock {
  bool block_public_acls = false;        // a request setting a public ACL is refused
  bool ignore_public_acls = false;       // public grants are not honoured
  bool block_public_policy = false;      // a public bucket policy is refused
  bool restrict_public_buckets = false;  // a public policy grants no one but the owner
};
PublicAccessBlock DecodePublicAccessBlock(const std::string& stored);
std::string EncodePublicAccessBlock(const PublicAccessBlock& pab);
// From a PublicAccessBlockConfiguration document (absent elements are false); MalformedXML.
StatusOr<PublicAccessBlock> ParsePublicAccessBlock(const std::string& xml);
std::string PublicAccessBlockXml(const PublicAccessBlock& pab);
// What applies to a bucket: each setting on when the bucket's or its owner account's Public
// Access Block has it on (as S3 combines them).
PublicAccessBlock EffectivePublicAccessBlock(const std::string& bucket_pab,
                                             const std::string& account_pab);

// A bucket's default encryption (PutBucketEncryption): SSE-S3 for writes that ask for no
// encryption. Stored as "AES256" or "AES256 bucket-key" (BucketKeyEnabled, kept and answered
// back; as in S3 it changes nothing for SSE-S3), "" = none. From a
// ServerSideEncryptionConfiguration document: MalformedXML, NotImplemented for SSE-KMS.
StatusOr<std::string> ParseBucketEncryption(const std::string& xml);
std::string BucketEncryptionXml(const std::string& stored);

// Object Ownership (PutBucketOwnershipControls, x-amz-object-ownership): "ObjectWriter",
// "BucketOwnerPreferred" or "BucketOwnerEnforced"; "" = never set (objects belong to their
// writer, as ObjectWriter). InvalidArgument for another value.
Status CheckObjectOwnership(const std::string& value);
// From an OwnershipControls document (one Rule): MalformedXML.
StatusOr<std::string> ParseOwnershipControls(const std::string& xml);
std::string OwnershipControlsXml(const std::string& ownership);

// Which objects a lifecycle rule applies to: all of prefix, tags and size bounds must hold.
struct LifecycleFilter {
  std::string prefix;
  std::vector<std::pair<std::string, std::string>> tags;
  int64_t size_greater = -1;  // ObjectSizeGreaterThan, -1 when absent
  int64_t size_less = -1;     // ObjectSizeLessThan, -1 when absent
  bool is_and = false;        // written back inside <And>
  bool Matches(const std::string& key, uint64_t size,
               const std::vector<std::pair<std::string, std::string>>& object_tags) const;
};

struct LifecycleRule {
  std::string id;
  bool enabled = true;
  bool legacy_prefix = false;  // <Prefix> directly in the Rule (the old form), not in a Filter
  LifecycleFilter filter;
  int expiration_days = -1;            // Expiration/Days, -1 when absent
  int64_t expiration_date_ms = -1;     // Expiration/Date (midnight UTC), -1 when absent
  bool expired_delete_marker = false;  // Expiration/ExpiredObjectDeleteMarker
  int noncurrent_days = -1;            // NoncurrentVersionExpiration/NoncurrentDays
  int newer_noncurrent = 0;            // NoncurrentVersionExpiration/NewerNoncurrentVersions
  int abort_upload_days = -1;          // AbortIncompleteMultipartUpload/DaysAfterInitiation
};

// Parses a LifecycleConfiguration document (MalformedXML / InvalidArgument / InvalidRequest on
// errors). Transitions (storage classes) are NotImplemented: every element is either honoured
// by the sweeper or refused.
StatusOr<std::vector<LifecycleRule>> ParseLifecycle(const std::string& xml);
// The LifecycleConfiguration document GetBucketLifecycleConfiguration answers.
std::string LifecycleXml(const std::vector<LifecycleRule>& rules);

}  // namespace photon::lightningstor
