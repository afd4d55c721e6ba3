// RFC 1035 §5 master-file parser: $ORIGIN, $TTL, $INCLUDE, relative and absolute names, "@",
// parentheses over several lines, comments, quoted strings and \X / \DDD escapes; RDATA for
// A, AAAA, NS, SOA, CNAME, MX, TXT, SRV, PTR, CAA, and the RFC 3597 "\# len hex" form for any
// type. Errors name the file and line. Stateless functions: thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "flashdns/zone.h"

namespace photon::flashdns {

// Presentation name → uncompressed wire name. Relative names get `origin_wire` appended;
// "@" is the origin.
StatusOr<std::string> ParseName(std::string_view text, std::string_view origin_wire);

// The records of a master file. `origin_wire` is the initial $ORIGIN.
StatusOr<std::vector<Record>> ParseZoneFile(const std::string& path,
                                            const std::string& origin_wire);
StatusOr<std::vector<Record>> ParseZoneText(std::string_view text, const std::string& filename,
                                            const std::string& origin_wire);

// RDATA of one record from its presentation text (e.g. "10 mail.example.com."), with
// relative names completed by `origin_wire`. Used by the API.
StatusOr<std::string> ParseRdataText(uint16_t type, std::string_view text,
                                     const std::string& origin_wire);

// Parses a zone file and builds the zone: the one entry point for loading.
StatusOr<std::shared_ptr<const Zone>> LoadZone(const std::string& path,
                                               const std::string& origin_wire);
StatusOr<std::shared_ptr<const Zone>> BuildZone(std::vector<Record> records,
                                                const std::string& origin_wire,
                                                const std::string& source);

}  // namespace photon::flashdns
