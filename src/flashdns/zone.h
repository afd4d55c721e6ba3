// An immutable, preparsed authoritative zone: a hash map from lower-case wire names to the
// node's RRsets, built once by ZoneBuilder and then only read. Lookups implement the
// RFC 1034 §4.3.2 descent (delegations, closest encloser) and RFC 4592 wildcards.
// Thread-safety: a built Zone is immutable and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/status.h"

namespace photon::flashdns {

// Debian's Abseil has its own string_view type; hash-map lookups take that one.
inline absl::string_view Key(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct RRset {
  uint16_t type = 0;
  uint32_t ttl = 0;
  // Uncompressed wire RDATA; embedded names are in wire form (original case).
  std::vector<std::string> rdatas;
  // For NS, MX and SRV: per RDATA, the node of its target name when it is in the zone
  // (null otherwise), resolved once at build time so additional-section processing does no
  // lookups on the query path.
  std::vector<const struct Node*> targets;
};

struct Node {
  // Sorted by type. Empty for an empty non-terminal.
  std::vector<RRset> rrsets;
  const RRset* Find(uint16_t type) const;
};

// One resource record as parsed from a zone file or the API.
struct Record {
  std::string owner;  // uncompressed wire name, original case
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::string rdata;  // uncompressed wire RDATA
  std::string where;  // "file:line" for error messages; may be empty
};

class Zone {
 public:
  enum class Match {
    kExact,       // node: the name's own node (possibly an empty non-terminal)
    kWildcard,    // node: the matching "*" node
    kDelegation,  // node: the zone cut; cut_name: its owner
    kNxDomain,
  };
  struct LookupResult {
    Match match = Match::kNxDomain;
    const Node* node = nullptr;
    std::string_view cut_name;  // lower-case wire, for kDelegation
  };

  // `name` must be lower-case wire and at or below origin().
  LookupResult Lookup(std::string_view name) const;
  const Node* FindNode(std::string_view lower_name) const;

  const std::string& origin() const { return origin_; }  // lower-case wire
  const Node& apex() const { return *apex_; }
  const RRset& soa() const { return *soa_; }
  uint32_t serial() const;
  // RFC 2308 §5: min(SOA TTL, SOA MINIMUM).
  uint32_t negative_ttl() const { return negative_ttl_; }
  size_t record_count() const { return record_count_; }
  const std::string& source() const { return source_; }
  // Every node (for AXFR), apex first.
  template <typename F>
  void ForEachNode(F&& f) const {
    f(origin_, *FindNode(origin_));
    for (const auto& [name, node] : nodes_) {
      if (name != origin_) f(name, node);
    }
  }

 private:
  friend class ZoneBuilder;
  std::string origin_;
  std::string source_;  // file path or "api", for logs
  absl::flat_hash_map<std::string, Node> nodes_;
  const RRset* soa_ = nullptr;
  const Node* apex_ = nullptr;
  uint32_t negative_ttl_ = 0;
  size_t record_count_ = 0;
};

// Collects records and checks the zone rules (one SOA at the apex, CNAME alone at its
// name, everything inside the origin) before producing an immutable Zone.
class ZoneBuilder {
 public:
  ZoneBuilder(std::string origin_wire, std::string source);
  // Fails on a record outside the zone; `where` prefixes the message (e.g. "file:12").
  Status Add(Record record, const std::string& where);
  StatusOr<std::shared_ptr<const Zone>> Build();

 private:
  std::unique_ptr<Zone> zone_;
  absl::flat_hash_map<std::string, std::string> first_seen_;  // owner+type → where
};

}  // namespace photon::flashdns
