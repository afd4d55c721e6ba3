#include "lightningstor/auth.h"

#include <cstdlib>

#include "common/util.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"

namespace photon::lightningstor {
namespace {

std::string Join(const std::vector<std::string>& parts, char sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

}  // namespace

StatusOr<AuthInfo> Authenticator::Authenticate(const http::Request& req) {
  if (req.HasHeader("authorization")) return FromHeader(req);
  if (req.HasQuery("X-Amz-Signature") || req.HasQuery("X-Amz-Credential")) return FromQuery(req);
  AuthInfo anon;
  anon.payload_hash = req.Header("x-amz-content-sha256");
  return anon;
}

Status Authenticator::CheckScope(const std::string& region, const std::string& service) {
  if (region != config_->region) {
    return S3Error("AuthorizationHeaderMalformed",
                   "The authorization header is malformed; the region '" + region +
                       "' is wrong; expecting '" + config_->region + "'");
  }
  if (service != "s3") {
    return S3Error("AuthorizationHeaderMalformed",
                   "The authorization header is malformed; incorrect service '" + service +
                       "'. This endpoint belongs to 's3'.");
  }
  return absl::OkStatus();
}

StatusOr<AccessKey> Authenticator::KeyFor(const std::string& access_key) {
  auto key = keys_->Lookup(access_key);
  if (!key) {
    return S3Error("InvalidAccessKeyId",
                   "The AWS Access Key Id you provided does not exist in our records.");
  }
  return *key;
}

std::string Authenticator::CachedSigningKey(const std::string& access_key,
                                            const std::string& secret, const std::string& date) {
  // The signing key depends only on secret, date and region: derive it once per day per key.
  std::string cache_key = access_key + "/" + date + "/" + secret;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = key_cache_.find(cache_key);
    if (it != key_cache_.end()) return it->second;
  }
  std::string k = sigv4::SigningKey(secret, date, config_->region, "s3");
  std::lock_guard<std::shared_mutex> lock(mu_);
  if (key_cache_.size() > 4096) key_cache_.clear();
  key_cache_.emplace(cache_key, k);
  return k;
}

StatusOr<AuthInfo> Authenticator::FromHeader(const http::Request& req) {
  const std::string& header = req.Header("authorization");
  if (header.rfind("AWS ", 0) == 0) {
    return S3Error("InvalidRequest", "Signature Version 2 is not supported; use AWS4-HMAC-SHA256.");
  }
  PHOTON_ASSIGN_OR_RETURN(auto parsed, sigv4::ParseAuthorizationHeader(header));
  PHOTON_RETURN_IF_ERROR(CheckScope(parsed.credential.region, parsed.credential.service));
  PHOTON_ASSIGN_OR_RETURN(AccessKey key, KeyFor(parsed.credential.access_key));
  const std::string& secret = key.secret;

  std::string amz_date = req.Header("x-amz-date");
  int64_t request_time = 0;
  if (!amz_date.empty()) {
    PHOTON_ASSIGN_OR_RETURN(request_time, sigv4::ParseAmzDate(amz_date));
  } else {
    auto t = sigv4::ParseHttpDate(req.Header("date"));
    if (!t.ok())
      return S3Error("AccessDenied",
                     "AWS authentication requires a valid Date or x-amz-date header");
    request_time = *t;
    amz_date = req.Header("date");
  }
  int64_t now = clock_->NowMillis() / 1000;
  if (std::llabs(now - request_time) > config_->clock_skew_seconds) {
    return S3Error("RequestTimeTooSkewed",
                   "The difference between the request time and the current time is too large.");
  }
  bool host_signed = false;
  for (const auto& h : parsed.signed_headers) host_signed |= (h == "host");
  if (!host_signed) {
    return S3Error("AuthorizationHeaderMalformed",
                   "The authorization header is malformed; 'host' must be a signed header.");
  }
  std::string payload_hash = req.Header("x-amz-content-sha256");
  if (payload_hash.empty()) {
    return S3Error("InvalidRequest",
                   "Missing required header for this request: x-amz-content-sha256");
  }
  std::string canonical = sigv4::CanonicalRequest(
      req.method, sigv4::UriEncode(req.path, false), sigv4::CanonicalQuery(req.query),
      sigv4::CanonicalHeaders(req.headers, parsed.signed_headers), Join(parsed.signed_headers, ';'),
      payload_hash);
  std::string scope = parsed.credential.Scope();
  std::string string_to_sign = sigv4::StringToSign(amz_date, scope, canonical);
  std::string signing_key =
      CachedSigningKey(parsed.credential.access_key, secret, parsed.credential.date);
  std::string expected = sigv4::Sign(signing_key, string_to_sign);
  if (!SecureEquals(expected, parsed.signature)) {
    return S3Error("SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you provided. "
                   "Check your key and signing method.");
  }
  AuthInfo info;
  info.anonymous = false;
  info.access_key = parsed.credential.access_key;
  info.user = key.user;
  info.payload_hash = payload_hash;
  info.signing_key = std::move(signing_key);
  info.amz_date = amz_date;
  info.scope = scope;
  info.seed_signature = parsed.signature;
  return info;
}

StatusOr<AuthInfo> Authenticator::FromQuery(const http::Request& req) {
  auto param = [&](const char* name) -> std::string {
    const std::string* v = req.Query(name);
    return v ? *v : "";
  };
  if (param("X-Amz-Algorithm") != sigv4::kAlgorithm) {
    return S3Error("AuthorizationQueryParametersError",
                   "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
  }
  std::string signature = param("X-Amz-Signature");
  std::string amz_date = param("X-Amz-Date");
  std::string expires_text = param("X-Amz-Expires");
  std::string signed_text = param("X-Amz-SignedHeaders");
  if (signature.empty() || amz_date.empty() || expires_text.empty() || signed_text.empty()) {
    return S3Error("AuthorizationQueryParametersError",
                   "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                   "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                   "X-Amz-Expires parameters.");
  }
  auto cred = sigv4::ParseCredential(param("X-Amz-Credential"));
  if (!cred.ok())
    return S3Error("AuthorizationQueryParametersError",
                   "Error parsing the X-Amz-Credential parameter");
  PHOTON_RETURN_IF_ERROR(CheckScope(cred->region, cred->service));
  PHOTON_ASSIGN_OR_RETURN(AccessKey key, KeyFor(cred->access_key));
  const std::string& secret = key.secret;
  char* end = nullptr;
  long long expires = std::strtoll(expires_text.c_str(), &end, 10);
  if (*end != '\0' || expires < 1 || expires > 604800) {
    return S3Error("AuthorizationQueryParametersError",
                   "X-Amz-Expires must be between 1 and 604800 seconds");
  }
  PHOTON_ASSIGN_OR_RETURN(int64_t signed_at, sigv4::ParseAmzDate(amz_date));
  int64_t now = clock_->NowMillis() / 1000;
  if (now > signed_at + expires) return S3Error("AccessDenied", "Request has expired");
  if (signed_at - now > config_->clock_skew_seconds)
    return S3Error("AccessDenied", "Request is not valid yet");

  std::vector<std::string> signed_headers;
  size_t pos = 0;
  while (pos <= signed_text.size()) {
    size_t semi = signed_text.find(';', pos);
    if (semi == std::string::npos) semi = signed_text.size();
    if (semi > pos) signed_headers.push_back(signed_text.substr(pos, semi - pos));
    pos = semi + 1;
  }
  std::string payload_hash = param("X-Amz-Content-Sha256");
  if (payload_hash.empty()) payload_hash = std::string(sigv4::kUnsignedPayload);
  std::string canonical = sigv4::CanonicalRequest(
      req.method, sigv4::UriEncode(req.path, false),
      sigv4::CanonicalQuery(req.query, "X-Amz-Signature"),
      sigv4::CanonicalHeaders(req.headers, signed_headers), signed_text, payload_hash);
  std::string signing_key = CachedSigningKey(cred->access_key, secret, cred->date);
  std::string expected =
      sigv4::Sign(signing_key, sigv4::StringToSign(amz_date, cred->Scope(), canonical));
  if (!SecureEquals(expected, signature)) {
    return S3Error("SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you provided. "
                   "Check your key and signing method.");
  }
  AuthInfo info;
  info.anonymous = false;
  info.presigned = true;
  info.access_key = cred->access_key;
  info.user = key.user;
  info.payload_hash = payload_hash;
  return info;
}

StatusOr<AuthInfo> Authenticator::FromPostForm(const std::map<std::string, std::string>& fields) {
  auto field = [&](const char* name) -> std::string {
    auto it = fields.find(name);
    return it == fields.end() ? "" : it->second;
  };
  if (fields.count("awsaccesskeyid") || fields.count("signature")) {
    return S3Error("InvalidRequest", "Signature Version 2 is not supported; use AWS4-HMAC-SHA256.");
  }
  std::string policy = field("policy");
  std::string signature = field("x-amz-signature");
  if (policy.empty() || signature.empty()) {
    // An unsigned form would be an anonymous write, which lightningstor never allows.
    return S3Error("AccessDenied",
                   "Bucket POST must contain the fields policy and x-amz-signature; anonymous "
                   "uploads are not allowed.");
  }
  if (field("x-amz-algorithm") != sigv4::kAlgorithm) {
    return S3Error("InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256");
  }
  auto cred = sigv4::ParseCredential(field("x-amz-credential"));
  if (!cred.ok()) return S3Error("InvalidArgument", "Error parsing the x-amz-credential field");
  PHOTON_RETURN_IF_ERROR(CheckScope(cred->region, cred->service));
  if (!sigv4::ParseAmzDate(field("x-amz-date")).ok()) {
    return S3Error("InvalidArgument", "x-amz-date must be YYYYMMDDTHHMMSSZ");
  }
  PHOTON_ASSIGN_OR_RETURN(AccessKey key, KeyFor(cred->access_key));
  // SigV4 for POST signs the base64 policy itself as the string to sign.
  std::string signing_key = CachedSigningKey(cred->access_key, key.secret, cred->date);
  if (!SecureEquals(sigv4::Sign(signing_key, policy), signature)) {
    return S3Error("SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you provided. "
                   "Check your key and signing method.");
  }
  AuthInfo info;
  info.anonymous = false;
  info.access_key = cred->access_key;
  info.user = key.user;
  info.payload_hash = std::string(sigv4::kUnsignedPayload);
  return info;
}

}  // namespace photon::lightningstor
