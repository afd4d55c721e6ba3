// Request authentication: AWS SigV4 in the Authorization header or in a presigned query
// string, checked against the access keys of the KeyStore, the configured region and the
// clock (skew, presign expiry). The result tells the body layer how the payload is protected
// (signed SHA-256, unsigned, or signed/unsigned aws-chunked streaming). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "common/status.h"
#include "lightningstor/clock.h"
#include "lightningstor/config.h"
#include "lightningstor/http/message.h"
#include "lightningstor/key_store.h"

namespace photon::lightningstor {

struct AuthInfo {
  bool anonymous = true;
  bool presigned = false;
  std::string access_key;
  std::string user;  // the account the key belongs to ("" when anonymous)
  // x-amz-content-sha256 as sent: a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode.
  std::string payload_hash;
  // For chunk signatures of streaming uploads.
  std::string signing_key;
  std::string amz_date;
  std::string scope;
  std::string seed_signature;
};

class Authenticator {
 public:
  Authenticator(const Config* config, KeyStore* keys, const Clock* clock)
      : config_(config), keys_(keys), clock_(clock) {}

  // Anonymous (no Authorization header, no X-Amz-Signature) is not an error here; the caller
  // decides whether the bucket allows it.
  StatusOr<AuthInfo> Authenticate(const http::Request& req);

  // A browser POST upload's form signature (x-amz-algorithm, -credential, -date, -signature)
  // over its base64 policy, from the lower-case form fields. The policy itself (expiration,
  // conditions) is post_policy.h's to check.
  StatusOr<AuthInfo> FromPostForm(const std::map<std::string, std::string>& fields);

 private:
  StatusOr<AuthInfo> FromHeader(const http::Request& req);
  StatusOr<AuthInfo> FromQuery(const http::Request& req);
  StatusOr<AccessKey> KeyFor(const std::string& access_key);
  std::string CachedSigningKey(const std::string& access_key, const std::string& secret,
                               const std::string& date);
  Status CheckScope(const std::string& region, const std::string& service);

  const Config* config_;
  KeyStore* keys_;
  const Clock* clock_;
  std::shared_mutex mu_;  // shared for a hit: every signed request looks its key up
  std::map<std::string, std::string> key_cache_;  // "akid/date/secret-hash" -> signing key
};

}  // namespace photon::lightningstor
