// Hex and percent encodings, the one copy every component uses (ids and tokens, SHA-256 and
// MD5 digests in SigV4 and S3 ETags, URL paths and query values). Pure functions;
// thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace photon {

// Two lower-case hex digits per byte.
std::string HexEncode(std::string_view raw);

// RFC 3986 percent-encoding as SigV4 and our REST paths want it: the unreserved characters
// (A-Z a-z 0-9 - _ . ~) kept, every other byte %XX in upper case; '/' kept unless
// encode_slash (paths keep their slashes, query values and path segments do not).
std::string PercentEncode(std::string_view s, bool encode_slash = true);

}  // namespace photon
