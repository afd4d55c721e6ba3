// The lightningstor driver: realizes Bucket objects as S3 buckets on a lightningstor server
// through its S3 API, signed with SigV4 (s3_client.h; docs/providers.md, docs/lightningstor.md).
//
// Name mapping: a Bucket `<name>` in namespace `<namespace>` is the S3 bucket
// `<namespace>-<name>` (S3 names are global, platform names are per namespace). S3's limits
// apply to the result: at most 63 characters, no reserved prefix or suffix; a name that breaks
// them is an ERROR naming the rule. Two objects can map to one name ("a-b"/"c" and "a"/"b-c"):
// the second is an ERROR naming the first.
//
// Ownership: a bucket this provider creates carries the tag photon:owner =
// "<owner>:buckets/<namespace>/<name>", set in the CreateBucket request itself (lightningstor
// stores it in the same commit), so it only ever changes or deletes buckets it made; buckets
// created through S3 directly are never touched.
//
// Delete: a bucket that still holds objects, versions or uploads is never emptied: Remove fails
// with FAILED_PRECONDITION ("not empty") and the controller retries with backoff, so the bucket
// goes once its owner has emptied it.
//
// Config keys (photon-server `providers:` entry):
//   endpoint: http://127.0.0.1:9000       # lightningstor S3 endpoint (required)
//   credentials_file: /path/admin.key    # 0600, as `lightningstor keys create` prints (required)
//   region: local                        # lightningstor's `region` (default us-east-1)
//   public_endpoint: http://s3.example:9000   # shown to users in status (default: endpoint)
//   owner: photon                        # owner tag prefix; distinct per photon cluster
//   timeout_ms: 5000                     # per HTTP call
#pragma once

#include <memory>
#include <string>

#include "server/providers/service_provider.h"

namespace photon::server {

StatusOr<std::unique_ptr<ServiceProvider>> NewLightningstorProvider(const ProviderConfig& config);

// "<namespace>-<name>", or INVALID_ARGUMENT saying which S3 naming rule it breaks.
StatusOr<std::string> S3BucketName(const std::string& ns, const std::string& name);

}  // namespace photon::server
