// An immutable, preparsed authoritative zone. All of a zone's data sits in one arena: per
// name a compact block (key, then its RRsets with their RDATA inline), found through a flat
// hash set of pointers keyed by the lower-case wire name. A lookup touches the hash control
// bytes, the slot and then one contiguous block, instead of chasing strings and vectors.
// Lookups implement the RFC 1034 §4.3.2 descent (zone cuts, closest encloser) and RFC 4592
// wildcards. ZoneBuilder checks the zone rules and produces the Zone.
// Thread-safety: a built Zone is immutable and safe to share between threads; views into it
// live as long as the Zone.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "flashdns/wire.h"

namespace photon::flashdns {

// Debian's Abseil has its own string_view type; hash lookups take that one.
inline absl::string_view Key(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class NodeView;

// One RDATA of an RRset: uncompressed wire bytes (embedded names in original case).
struct Rdata {
  const uint8_t* data;
  uint16_t size;
  // For NS, MX and SRV: the block of the target name when it is in the zone, else null;
  // resolved at build time so additional-section processing needs no lookups.
  const uint8_t* target;
};

// A view of one RRset inside a zone's arena. Block layout:
//   u16 type | u32 ttl | u16 count | u32 block size | count × (u16 len, data[, u64 target])
class RRsetView {
 public:
  RRsetView() = default;
  explicit RRsetView(const uint8_t* p) : p_(p) {}
  bool valid() const { return p_ != nullptr; }
  const uint8_t* id() const { return p_; }  // identity, for "already added" checks
  uint16_t type() const { return Load16(p_); }
  uint32_t ttl() const { return Load32(p_ + 2); }
  uint16_t count() const { return Load16(p_ + 6); }
  uint32_t block_size() const { return Load32(p_ + 8); }
  static constexpr size_t kHeaderSize = 12;
  static bool HasTargets(uint16_t type) {
    return type == kTypeNs || type == kTypeMx || type == kTypeSrv;
  }
  // Calls f(const Rdata&) for each record in order; stops when f returns false.
  template <typename F>
  bool ForEach(F&& f) const {
    const uint8_t* p = p_ + kHeaderSize;
    bool targets = HasTargets(type());
    for (uint16_t i = 0, n = count(); i < n; ++i) {
      Rdata r{p + 2, Load16(p), nullptr};
      p += 2 + r.size;
      if (targets) {
        memcpy(&r.target, p, sizeof(r.target));
        p += sizeof(r.target);
      }
      if (!f(r)) return false;
    }
    return true;
  }
  Rdata First() const {
    Rdata r{nullptr, 0, nullptr};
    ForEach([&](const Rdata& d) {
      r = d;
      return false;
    });
    return r;
  }

 private:
  const uint8_t* p_ = nullptr;
};

// A view of one name's block: key bytes | u8 key length | u16 RRset count | RRset blocks
// (sorted by type). The view points at the key-length byte. An empty non-terminal has no
// RRsets.
class NodeView {
 public:
  NodeView() = default;
  explicit NodeView(const uint8_t* p) : p_(p) {}
  bool valid() const { return p_ != nullptr; }
  const uint8_t* id() const { return p_; }
  std::string_view key() const {
    return std::string_view(reinterpret_cast<const char*>(p_ - *p_), *p_);
  }
  uint16_t rrset_count() const { return Load16(p_ + 1); }
  bool empty() const { return rrset_count() == 0; }
  RRsetView First() const { return empty() ? RRsetView() : RRsetView(p_ + 3); }
  RRsetView Find(uint16_t type) const {
    const uint8_t* p = p_ + 3;
    for (uint16_t i = 0, n = rrset_count(); i < n; ++i) {
      RRsetView r(p);
      if (r.type() == type) return r;
      p += r.block_size();
    }
    return RRsetView();
  }
  template <typename F>
  void ForEachRRset(F&& f) const {
    const uint8_t* p = p_ + 3;
    for (uint16_t i = 0, n = rrset_count(); i < n; ++i) {
      RRsetView r(p);
      f(r);
      p += r.block_size();
    }
  }

 private:
  const uint8_t* p_ = nullptr;
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
    NodeView node;
    std::string_view cut_name;  // lower-case wire, for kDelegation
  };

  // `name` must be lower-case wire and at or below origin().
  LookupResult Lookup(std::string_view name) const;
  NodeView FindNode(std::string_view lower_name) const;

  const std::string& origin() const { return origin_; }  // lower-case wire
  NodeView apex() const { return apex_; }
  RRsetView soa() const { return soa_; }
  uint32_t serial() const;
  // RFC 2308 §5: min(SOA TTL, SOA MINIMUM).
  uint32_t negative_ttl() const { return negative_ttl_; }
  size_t record_count() const { return record_count_; }
  size_t name_count() const { return nodes_.size(); }
  const std::string& source() const { return source_; }
  // Every node (for AXFR), apex first.
  template <typename F>
  void ForEachNode(F&& f) const {
    f(apex_);
    for (const uint8_t* p : nodes_) {
      if (p != apex_.id()) f(NodeView(p));
    }
  }

 private:
  friend class ZoneBuilder;
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(absl::string_view k) const { return absl::Hash<absl::string_view>{}(k); }
    size_t operator()(const uint8_t* p) const { return (*this)(Key(NodeView(p).key())); }
  };
  struct KeyEq {
    using is_transparent = void;
    static absl::string_view Of(absl::string_view k) { return k; }
    static absl::string_view Of(const uint8_t* p) { return Key(NodeView(p).key()); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Of(a) == Of(b);
    }
  };

  std::string origin_;
  std::string source_;  // file path or "api:<zone>", for logs
  std::vector<std::unique_ptr<uint8_t[]>> arena_;
  absl::flat_hash_set<const uint8_t*, KeyHash, KeyEq> nodes_;
  NodeView apex_;
  RRsetView soa_;
  uint32_t negative_ttl_ = 0;
  size_t record_count_ = 0;
};

// Collects records and checks the zone rules (one SOA at the apex, CNAME alone at its
// name, everything inside the origin) before producing an immutable Zone.
class ZoneBuilder {
 public:
  ZoneBuilder(std::string origin_wire, std::string source);
  ~ZoneBuilder();
  // Fails on a record outside the zone; "file:line" (or `where`) prefixes the message.
  Status Add(Record record, std::string_view file, int line);
  Status Add(Record record, const std::string& where) { return Add(std::move(record), where, 0); }
  // Sizes the table for about `names` names up front, sparing rehashes on big zones.
  void Reserve(size_t names) { pending_.reserve(names); }
  StatusOr<std::shared_ptr<const Zone>> Build();

 private:
  struct PendingRRset {
    uint16_t type = 0;
    uint32_t ttl = 0;
    std::vector<std::string> rdatas;
  };
  std::unique_ptr<Zone> zone_;
  absl::flat_hash_map<std::string, std::vector<PendingRRset>> pending_;
  size_t record_count_ = 0;
};

}  // namespace photon::flashdns
