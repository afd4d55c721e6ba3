// AWS Signature Version 4 as S3 uses it: canonical request, string to sign, signing key, and
// the per-chunk signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies. The one signer of the
// project: lightningstor verifies requests with it (lightningstor/auth.cc, which adds the
// header parsing and S3 errors), photon-server's Bucket provider signs its S3 calls with
// SignRequestHeaders. Pure functions; thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace photon::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kStreamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
inline constexpr std::string_view kStreamingPayloadTrailer =
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
inline constexpr std::string_view kStreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
// SHA-256 of the empty string, used in chunk string-to-sign.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Credential scope parts: AKID/DATE/REGION/SERVICE/aws4_request.
struct Credential {
  std::string access_key;
  std::string date;  // YYYYMMDD
  std::string region;
  std::string service;
  std::string Scope() const { return date + "/" + region + "/" + service + "/aws4_request"; }
};

// S3 URI encoding (common/hex.h's PercentEncode): unreserved characters kept, everything else
// %XX (upper case); '/' kept unless encode_slash.
std::string UriEncode(std::string_view s, bool encode_slash);

// Canonical query string from decoded (name, value) pairs, minus `skip` (X-Amz-Signature for
// presigned URLs).
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query,
                           std::string_view skip = "");

// Canonical header block ("name:value\n" each) from request headers for the signed names.
std::string CanonicalHeaders(const std::vector<std::pair<std::string, std::string>>& headers,
                             const std::vector<std::string>& signed_headers);

std::string CanonicalRequest(std::string_view method, std::string_view canonical_uri,
                             std::string_view canonical_query, std::string_view canonical_headers,
                             std::string_view signed_headers_joined, std::string_view payload_hash);

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);

// kSigning = HMAC chain over date, region, service, "aws4_request" (raw bytes).
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);

// hex(HMAC(signing_key, string_to_sign)).
std::string Sign(std::string_view signing_key, std::string_view string_to_sign);

// Signature of one chunk of a streaming upload, chained from the previous signature.
std::string ChunkSignature(std::string_view signing_key, std::string_view amz_date,
                           std::string_view scope, std::string_view previous_signature,
                           std::string_view chunk_data);

// Signature of the trailing headers of a *-TRAILER streaming upload.
std::string TrailerSignature(std::string_view signing_key, std::string_view amz_date,
                             std::string_view scope, std::string_view previous_signature,
                             std::string_view trailer_block);

// What a client needs to sign one request in the header form with a signed SHA-256 payload.
struct ClientRequest {
  std::string method;
  std::string host;                                        // the Host header: host[:port]
  std::string path;                                        // decoded; encoded here with '/' kept
  std::vector<std::pair<std::string, std::string>> query;  // decoded (name, value) pairs
  std::string body;
  std::string amz_date;  // YYYYMMDDTHHMMSSZ
};

// The headers that sign `request` (lower-case names): host, x-amz-date, x-amz-content-sha256
// and authorization. `credential.date` is ignored (taken from amz_date).
std::map<std::string, std::string> SignRequestHeaders(const Credential& credential,
                                                      std::string_view secret,
                                                      const ClientRequest& request);

}  // namespace photon::sigv4
