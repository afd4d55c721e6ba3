// Zone lookup and construction; see zone.h.
#include "flashdns/zone.h"

#include <algorithm>
#include <cstring>

namespace photon::flashdns {
namespace {

constexpr size_t kChunkSize = 1 << 20;

// Appends blocks to a zone's arena in large chunks; pointers stay valid.
class Arena {
 public:
  explicit Arena(std::vector<std::unique_ptr<uint8_t[]>>* chunks) : chunks_(chunks) {}
  uint8_t* Allocate(size_t n) {
    if (n > left_) {
      size_t size = std::max(n, kChunkSize);
      chunks_->push_back(std::make_unique<uint8_t[]>(size));
      next_ = chunks_->back().get();
      left_ = size;
    }
    uint8_t* p = next_;
    next_ += n;
    left_ -= n;
    return p;
  }

 private:
  std::vector<std::unique_ptr<uint8_t[]>>* chunks_;
  uint8_t* next_ = nullptr;
  size_t left_ = 0;
};

}  // namespace

NodeView Zone::FindNode(std::string_view lower_name) const {
  auto it = nodes_.find(Key(lower_name));
  return it == nodes_.end() ? NodeView() : NodeView(*it);
}

uint32_t Zone::serial() const {
  const uint8_t* p = soa_.First().data;
  size_t mname = WireNameLength(p);
  size_t rname = WireNameLength(p + mname);
  return Load32(p + mname + rname);
}

Zone::LookupResult Zone::Lookup(std::string_view name) const {
  // Offsets of each suffix of `name`, longest first; the apex is the last one we visit.
  uint16_t offsets[128];
  int count = 0;
  for (size_t pos = 0; name.size() - pos > origin_.size();) {
    offsets[count++] = static_cast<uint16_t>(pos);
    pos += static_cast<uint8_t>(name[pos]) + 1;
  }
  // Descend from just below the apex towards the name, stopping at a zone cut or at the
  // first missing name (its parent is then the closest encloser).
  std::string_view encloser = origin_;
  NodeView node = apex_;
  for (int i = count - 1; i >= 0; --i) {
    std::string_view suffix = name.substr(offsets[i]);
    node = FindNode(suffix);
    if (!node.valid()) {
      // RFC 4592: the source of synthesis is "*.<closest encloser>".
      uint8_t wild[kMaxNameLength + 2];
      wild[0] = 1;
      wild[1] = '*';
      memcpy(wild + 2, encloser.data(), encloser.size());
      NodeView wnode =
          FindNode(std::string_view(reinterpret_cast<char*>(wild), encloser.size() + 2));
      if (wnode.valid()) return {Match::kWildcard, wnode, {}};
      return {Match::kNxDomain, NodeView(), {}};
    }
    if (node.Find(kTypeNs).valid()) return {Match::kDelegation, node, suffix};
    encloser = suffix;
  }
  return {Match::kExact, node, {}};
}

ZoneBuilder::ZoneBuilder(std::string origin_wire, std::string source)
    : zone_(std::make_unique<Zone>()) {
  zone_->origin_ = LowerWireName(origin_wire);
  zone_->source_ = std::move(source);
}

ZoneBuilder::~ZoneBuilder() = default;

Status ZoneBuilder::Add(Record record, std::string_view file, int line) {
  // The location is only formatted when there is an error to report.
  auto where_of = [&] {
    std::string w(file);
    if (line > 0) w += ":" + std::to_string(line);
    return w;
  };
  std::string key = LowerWireName(record.owner);
  if (!IsSubdomain(key, zone_->origin_)) {
    return absl::InvalidArgumentError(where_of() + ": " + NameToText(record.owner) +
                                      " is outside zone " + NameToText(zone_->origin_));
  }
  if (record.type == kTypeSoa && key != zone_->origin_) {
    return absl::InvalidArgumentError(where_of() + ": SOA record not at the zone apex");
  }
  if (record.rdata.size() > 65535)
    return absl::InvalidArgumentError(where_of() + ": RDATA too long");
  auto& rrsets = pending_[std::move(key)];
  auto it = std::find_if(rrsets.begin(), rrsets.end(),
                         [&](const PendingRRset& r) { return r.type == record.type; });
  if (it == rrsets.end()) {
    rrsets.push_back(PendingRRset{record.type, record.ttl, {}});
    it = rrsets.end() - 1;
  }
  for (const auto& existing : it->rdatas) {
    if (existing == record.rdata) return absl::OkStatus();  // duplicate RR: RFC 2181 §5
  }
  if (record.type == kTypeSoa && !it->rdatas.empty()) {
    return absl::InvalidArgumentError(where_of() + ": second SOA record in zone");
  }
  if (record.type == kTypeCname && !it->rdatas.empty()) {
    return absl::InvalidArgumentError(where_of() + ": second CNAME record at " +
                                      NameToText(record.owner));
  }
  // RFC 2181 §5.2: one TTL per RRset; the lowest wins.
  it->ttl = std::min(it->ttl, record.ttl);
  it->rdatas.push_back(std::move(record.rdata));
  ++record_count_;
  return absl::OkStatus();
}

StatusOr<std::shared_ptr<const Zone>> ZoneBuilder::Build() {
  Zone& zone = *zone_;
  auto apex = pending_.find(Key(zone.origin_));
  if (apex == pending_.end() ||
      std::none_of(apex->second.begin(), apex->second.end(),
                   [](const PendingRRset& r) { return r.type == kTypeSoa; })) {
    return absl::InvalidArgumentError(zone.source_ + ": zone " + NameToText(zone.origin_) +
                                      " has no SOA record at its apex");
  }
  // Empty non-terminals (RFC 4592 §2.2.2): every ancestor of a name up to the apex exists.
  std::vector<std::string> names;
  names.reserve(pending_.size());
  for (const auto& [name, rrsets] : pending_) names.push_back(name);
  for (const auto& name : names) {
    for (size_t pos = 0; name.size() - pos > zone.origin_.size();) {
      pos += static_cast<uint8_t>(name[pos]) + 1;
      auto [it, inserted] = pending_.try_emplace(name.substr(pos));
      if (!inserted) break;  // its ancestors are (or will be) handled through it
    }
  }
  names.clear();
  names.shrink_to_fit();
  // Lay every name out in the arena; target pointers are patched once all blocks exist.
  struct Patch {
    uint8_t* slot;
    std::string target;
  };
  std::vector<Patch> patches;
  Arena arena(&zone.arena_);
  zone.nodes_.reserve(pending_.size());
  for (auto& [name, rrsets] : pending_) {
    bool has_cname = std::any_of(rrsets.begin(), rrsets.end(),
                                 [](const PendingRRset& r) { return r.type == kTypeCname; });
    if (has_cname && rrsets.size() > 1) {
      return absl::InvalidArgumentError(zone.source_ + ": " + NameToText(name) +
                                        " has a CNAME and other data");
    }
    std::sort(rrsets.begin(), rrsets.end(),
              [](const PendingRRset& a, const PendingRRset& b) { return a.type < b.type; });
    size_t size = name.size() + 3;
    for (const auto& r : rrsets) {
      size += RRsetView::kHeaderSize;
      for (const auto& rd : r.rdatas) {
        size += 2 + rd.size() + (RRsetView::HasTargets(r.type) ? sizeof(void*) : 0);
      }
    }
    uint8_t* block = arena.Allocate(size);
    memcpy(block, name.data(), name.size());
    uint8_t* node = block + name.size();
    node[0] = static_cast<uint8_t>(name.size());
    Store16(node + 1, static_cast<uint16_t>(rrsets.size()));
    uint8_t* p = node + 3;
    for (const auto& r : rrsets) {
      uint8_t* header = p;
      Store16(header, r.type);
      Store32(header + 2, r.ttl);
      Store16(header + 6, static_cast<uint16_t>(r.rdatas.size()));
      p += RRsetView::kHeaderSize;
      for (const auto& rd : r.rdatas) {
        Store16(p, static_cast<uint16_t>(rd.size()));
        memcpy(p + 2, rd.data(), rd.size());
        p += 2 + rd.size();
        if (RRsetView::HasTargets(r.type)) {
          size_t offset = r.type == kTypeMx ? 2 : (r.type == kTypeSrv ? 6 : 0);
          memset(p, 0, sizeof(void*));
          if (offset < rd.size()) {
            patches.push_back({p, LowerWireName(std::string_view(rd).substr(offset))});
          }
          p += sizeof(void*);
        }
      }
      Store32(header + 8, static_cast<uint32_t>(p - header));
    }
    zone.nodes_.insert(node);
    rrsets.clear();
    rrsets.shrink_to_fit();
  }
  pending_.clear();
  for (const auto& patch : patches) {
    if (!IsSubdomain(patch.target, zone.origin_)) continue;
    NodeView target = zone.FindNode(patch.target);
    const uint8_t* id = target.id();
    memcpy(patch.slot, &id, sizeof(id));
  }
  zone.apex_ = zone.FindNode(zone.origin_);
  zone.soa_ = zone.apex_.Find(kTypeSoa);
  zone.record_count_ = record_count_;
  Rdata soa = zone.soa_.First();
  if (soa.size < 22) return absl::InvalidArgumentError(zone.source_ + ": malformed SOA");
  uint32_t minimum = Load32(soa.data + soa.size - 4);
  zone.negative_ttl_ = std::min(zone.soa_.ttl(), minimum);
  return std::shared_ptr<const Zone>(std::move(zone_));
}

}  // namespace photon::flashdns
