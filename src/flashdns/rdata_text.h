// RDATA in presentation format → wire format for the types flashdns knows (A, AAAA, NS,
// CNAME, PTR, MX, SRV, SOA, TXT, CAA) and the RFC 3597 generic "\# len hex" form; TTLs with
// BIND-style units. Stateless functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "flashdns/zone_lexer.h"

namespace photon::flashdns {

// A TTL in seconds, with optional unit suffixes ("1h30m", "2d").
StatusOr<uint32_t> ParseTtl(std::string_view text);
// True if the token starts like a TTL (a digit), as opposed to a class or type.
bool LooksLikeTtl(std::string_view text);
// RDATA of `type` from tokens t[i..]; relative names are completed with `origin`.
StatusOr<std::string> RdataFromTokens(uint16_t type, const std::vector<Token>& t, size_t i,
                                      const std::string& origin);

}  // namespace photon::flashdns
