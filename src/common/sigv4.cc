#include "common/sigv4.h"

#include <algorithm>

#include "common/hex.h"
#include "common/util.h"

namespace photon::sigv4 {
namespace {

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Trims and collapses runs of spaces, as the SigV4 rules require of header values.
std::string CollapseSpaces(std::string_view v) {
  std::string collapsed;
  bool space = false;
  for (char c : Trim(v)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !collapsed.empty()) collapsed += ' ';
    space = false;
    collapsed += c;
  }
  return collapsed;
}

}  // namespace

std::string UriEncode(std::string_view s, bool encode_slash) {
  return PercentEncode(s, encode_slash);
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query,
                           std::string_view skip) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) {
    if (!skip.empty() && k == skip) continue;
    encoded.emplace_back(UriEncode(k, true), UriEncode(v, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string CanonicalHeaders(const std::vector<std::pair<std::string, std::string>>& headers,
                             const std::vector<std::string>& signed_headers) {
  std::string out;
  for (const auto& name : signed_headers) {
    std::string value;
    bool first = true;
    for (const auto& [k, v] : headers) {
      if (k != name) continue;
      if (!first) value += ',';
      value += CollapseSpaces(v);
      first = false;
    }
    out += name;
    out += ':';
    out += value;
    out += '\n';
  }
  return out;
}

std::string CanonicalRequest(std::string_view method, std::string_view canonical_uri,
                             std::string_view canonical_query, std::string_view canonical_headers,
                             std::string_view signed_headers_joined,
                             std::string_view payload_hash) {
  std::string out;
  out.reserve(256 + canonical_headers.size());
  out.append(method).append("\n");
  out.append(canonical_uri).append("\n");
  out.append(canonical_query).append("\n");
  out.append(canonical_headers).append("\n");
  out.append(signed_headers_joined).append("\n");
  out.append(payload_hash);
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.append("\n").append(amz_date).append("\n").append(scope).append("\n");
  out += HexEncode(Sha256Raw(canonical_request));
  return out;
}

std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  std::string k = HmacSha256Raw("AWS4" + std::string(secret), date);
  k = HmacSha256Raw(k, region);
  k = HmacSha256Raw(k, service);
  return HmacSha256Raw(k, "aws4_request");
}

std::string Sign(std::string_view signing_key, std::string_view string_to_sign) {
  return HexEncode(HmacSha256Raw(signing_key, string_to_sign));
}

std::string ChunkSignature(std::string_view signing_key, std::string_view amz_date,
                           std::string_view scope, std::string_view previous_signature,
                           std::string_view chunk_data) {
  std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n";
  sts.append(amz_date).append("\n").append(scope).append("\n").append(previous_signature);
  sts.append("\n").append(kEmptySha256).append("\n");
  sts += HexEncode(Sha256Raw(chunk_data));
  return Sign(signing_key, sts);
}

std::string TrailerSignature(std::string_view signing_key, std::string_view amz_date,
                             std::string_view scope, std::string_view previous_signature,
                             std::string_view trailer_block) {
  std::string sts = "AWS4-HMAC-SHA256-TRAILER\n";
  sts.append(amz_date).append("\n").append(scope).append("\n").append(previous_signature);
  sts.append("\n");
  sts += HexEncode(Sha256Raw(trailer_block));
  return Sign(signing_key, sts);
}

std::map<std::string, std::string> SignRequestHeaders(const Credential& credential,
                                                      std::string_view secret,
                                                      const ClientRequest& request) {
  Credential scope = credential;
  scope.date = request.amz_date.substr(0, 8);
  const std::string payload = Sha256Hex(request.body);
  const std::vector<std::string> names = {"host", "x-amz-content-sha256", "x-amz-date"};
  const std::string signed_headers = "host;x-amz-content-sha256;x-amz-date";
  const std::string canonical_headers = CanonicalHeaders(
      {{"host", request.host}, {"x-amz-content-sha256", payload}, {"x-amz-date", request.amz_date}},
      names);
  const std::string canonical_request =
      CanonicalRequest(request.method, UriEncode(request.path, false),
                       CanonicalQuery(request.query), canonical_headers, signed_headers, payload);
  const std::string signature =
      Sign(SigningKey(secret, scope.date, scope.region, scope.service),
           StringToSign(request.amz_date, scope.Scope(), canonical_request));
  return {{"host", request.host},
          {"x-amz-date", request.amz_date},
          {"x-amz-content-sha256", payload},
          {"authorization", std::string(kAlgorithm) + " Credential=" + scope.access_key + "/" +
                                scope.Scope() + ", SignedHeaders=" + signed_headers +
                                ", Signature=" + signature}};
}

}  // namespace photon::sigv4
