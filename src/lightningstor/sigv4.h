// lightningstor's half of AWS Signature Version 4: parsing the Authorization header and the
// credential scope (errors are S3 errors), and the date formats S3 uses. The signing itself
// (canonical request, string to sign, signing key, chunk signatures) is common/sigv4.h.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/sigv4.h"
#include "common/status.h"

namespace photon::lightningstor::sigv4 {

// The signer is common/sigv4.h's (shared with photon-server's S3 client); its names are
// imported so lightningstor code says sigv4::X for both halves.
using photon::sigv4::CanonicalHeaders;
using photon::sigv4::CanonicalQuery;
using photon::sigv4::CanonicalRequest;
using photon::sigv4::ChunkSignature;
using photon::sigv4::Credential;
using photon::sigv4::kAlgorithm;
using photon::sigv4::kEmptySha256;
using photon::sigv4::kStreamingPayload;
using photon::sigv4::kStreamingPayloadTrailer;
using photon::sigv4::kStreamingUnsignedTrailer;
using photon::sigv4::kUnsignedPayload;
using photon::sigv4::Sign;
using photon::sigv4::SigningKey;
using photon::sigv4::StringToSign;
using photon::sigv4::TrailerSignature;
using photon::sigv4::UriEncode;

struct ParsedAuth {
  Credential credential;
  std::vector<std::string> signed_headers;  // lower case, sorted as sent
  std::string signature;                    // hex
};

// Parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
// Errors are S3 AuthorizationHeaderMalformed.
StatusOr<ParsedAuth> ParseAuthorizationHeader(std::string_view header);
StatusOr<Credential> ParseCredential(std::string_view text);

// Seconds since the epoch for "YYYYMMDDTHHMMSSZ", or an error.
StatusOr<int64_t> ParseAmzDate(std::string_view amz_date);
// Seconds since the epoch for an RFC 1123 date ("Sun, 06 Nov 1994 08:49:37 GMT").
StatusOr<int64_t> ParseHttpDate(std::string_view date);
std::string FormatHttpDate(int64_t epoch_seconds);
std::string FormatIso8601(int64_t epoch_millis);  // 2026-11-22T03:04:05.000Z

}  // namespace photon::lightningstor::sigv4
