// Pure rules about buckets: S3 bucket naming, the public-read reading of a bucket policy, and
// lifecycle configuration parsing. Thread-safe (no state).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace photon::lightningstor {

// S3 naming rules: 3-63 chars of a-z 0-9 . -, starting and ending with a letter or digit, no
// "..", not shaped like an IP address, no "xn--" prefix or "-s3alias" suffix.
// InvalidBucketName otherwise.
Status ValidateBucketName(const std::string& name);

// True when the policy JSON has an Allow statement for every principal ("*") covering
// s3:GetObject (or s3:* / s3:Get*). MalformedPolicy when it is not a policy document.
StatusOr<bool> PolicyAllowsPublicRead(const std::string& policy_json);

struct LifecycleRule {
  std::string id;
  bool enabled = true;
  std::string prefix;
  int expiration_days = -1;    // Expiration/Days, -1 when absent
  int abort_upload_days = -1;  // AbortIncompleteMultipartUpload/DaysAfterInitiation
};

// Parses a LifecycleConfiguration document (MalformedXML / InvalidArgument on errors).
StatusOr<std::vector<LifecycleRule>> ParseLifecycle(const std::string& xml);

}  // namespace photon::lightningstor
