// Answering one DNS query as an authoritative server: parsing the untrusted request
// (header, question, EDNS0 OPT) and building the response from an immutable ZoneSet in a
// caller-owned buffer, without heap allocation. RFC 1034 §4.3.2, RFC 2308 (negative
// answers), RFC 4592 (wildcards), RFC 6891 (EDNS0), RFC 8482 (ANY).
// Thread-safety: free functions over immutable data; call from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "flashdns/wire.h"
#include "flashdns/zone.h"

namespace photon::flashdns {

// The zones served at one moment; immutable once published.
class ZoneSet {
 public:
  void Add(std::shared_ptr<const Zone> zone);
  // The zone whose origin is the longest suffix of `lower_name`, or null.
  const Zone* Find(std::string_view lower_name) const;
  std::shared_ptr<const Zone> Get(std::string_view origin) const;
  const absl::flat_hash_map<std::string, std::shared_ptr<const Zone>>& zones() const {
    return zones_;
  }

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<const Zone>> zones_;
};

struct ParsedQuery {
  uint16_t id = 0;
  uint16_t flags = 0;
  bool has_question = false;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t qname_len = 0;
  uint8_t qname[kMaxNameLength];  // as sent (case preserved)
  uint8_t lower[kMaxNameLength];  // lower-cased, for lookups
  bool edns = false;
  uint16_t udp_size = 512;        // the client's advertised payload size (min 512)
  uint8_t rcode = kRcodeNoError;  // non-zero: answer with this error
  uint8_t opcode() const { return static_cast<uint8_t>((flags >> 11) & 0xF); }
};

// Parses a request. Returns false when it must be dropped silently (shorter than a header,
// or a response); otherwise fills `q`, with q->rcode set for FORMERR/NOTIMP/BADVERS.
bool ParseQuery(const uint8_t* packet, size_t size, ParsedQuery* q);

// Which responses count as "the same" for response-rate limiting (rrl.h), as BIND and Knot
// group them: answers and NODATA by qname and qtype, NXDOMAIN and wildcard answers by zone,
// referrals by the delegation point, errors by zone (or all together outside every zone).
enum class AnswerKind : uint8_t { kAnswer, kNoData, kNxDomain, kWildcard, kReferral, kError };

// What a response was, for metrics, logs and rate limiting.
struct AnswerInfo {
  uint8_t rcode = 0;
  bool truncated = false;
  AnswerKind kind = AnswerKind::kError;
  // Lower-case wire name the kind is grouped by when not the qname: the zone's origin
  // (NXDOMAIN, wildcard, errors inside a zone) or the zone cut (referrals); empty outside
  // every zone. Points into the ZoneSet the answer came from, or for a referral into the
  // ParsedQuery (the cut is a suffix of the query's name): valid while both live.
  std::string_view group_name;
};

// Our advertised EDNS payload size (RFC 9715 / DNS flag day 2020 default).
constexpr uint16_t kServerUdpSize = 1232;

// Builds the response to `q` in `out` (capacity `max_size`: the UDP payload limit, or 65535
// over TCP). Returns its length; 0 means send nothing. `zones` may be null (nothing served).
size_t BuildResponse(const ZoneSet* zones, const ParsedQuery& q, uint8_t* out, size_t max_size,
                     AnswerInfo* info);

// Cuts a response built by BuildResponse for `q` back to its header and question, with TC set
// and no records (no OPT either), so a client retries over TCP. Returns the new length.
size_t TruncateToQuestion(const ParsedQuery& q, uint8_t* response);

// The UDP payload limit for a parsed query: 512 without EDNS, else the client's size
// capped by our advertised kServerUdpSize.
size_t UdpLimit(const ParsedQuery& q);

// Writes the RDATA of one RR (length prefix included), compressing embedded names for the
// RFC 1035 types. Shared with AXFR.
bool WriteRdata(PacketWriter* w, uint16_t type, const uint8_t* rdata, size_t size);

}  // namespace photon::flashdns
