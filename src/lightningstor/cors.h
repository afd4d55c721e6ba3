// Bucket CORS configuration (PutBucketCors) and the matching S3 does for a browser's preflight
// OPTIONS request and for the actual request that carries an Origin. Pure functions;
// thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace photon::lightningstor {

struct CorsRule {
  std::string id;
  std::vector<std::string> origins;  // at most one '*' each
  std::vector<std::string> methods;  // GET PUT POST DELETE HEAD
  std::vector<std::string> headers;  // allowed request headers, at most one '*' each
  std::vector<std::string> expose;   // ExposeHeader
  int max_age = -1;                  // MaxAgeSeconds, -1 when absent
};

// A CORSConfiguration document: MalformedXML for unknown elements, InvalidRequest for what S3
// refuses (no rules, more than 100, an unknown method, two wildcards in one origin).
StatusOr<std::vector<CorsRule>> ParseCors(const std::string& xml);
std::string CorsXml(const std::vector<CorsRule>& rules);

// Whether value matches a pattern with at most one '*' (any run of characters).
bool WildcardMatch(const std::string& pattern, const std::string& value);

// The first rule allowing this origin, method and every one of the request headers (names
// compared case-insensitively), or nullptr.
const CorsRule* MatchCors(const std::vector<CorsRule>& rules, const std::string& origin,
                          const std::string& method, const std::vector<std::string>& headers);

}  // namespace photon::lightningstor
