// Zone lookup and construction; see zone.h.
#include "flashdns/zone.h"

#include <algorithm>
#include <cstring>

#include "flashdns/wire.h"

namespace photon::flashdns {

const RRset* Node::Find(uint16_t type) const {
  for (const auto& rrset : rrsets) {
    if (rrset.type == type) return &rrset;
  }
  return nullptr;
}

const Node* Zone::FindNode(std::string_view lower_name) const {
  auto it = nodes_.find(Key(lower_name));
  return it == nodes_.end() ? nullptr : &it->second;
}

uint32_t Zone::serial() const {
  const std::string& rdata = soa_->rdatas[0];
  const uint8_t* p = reinterpret_cast<const uint8_t*>(rdata.data());
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
  for (int i = count - 1; i >= 0; --i) {
    std::string_view suffix = name.substr(offsets[i]);
    const Node* node = FindNode(suffix);
    if (node == nullptr) {
      // RFC 4592: the source of synthesis is "*.<closest encloser>".
      uint8_t wild[kMaxNameLength + 2];
      wild[0] = 1;
      wild[1] = '*';
      memcpy(wild + 2, encloser.data(), encloser.size());
      const Node* wnode =
          FindNode(std::string_view(reinterpret_cast<char*>(wild), encloser.size() + 2));
      if (wnode != nullptr) return {Match::kWildcard, wnode, {}};
      return {Match::kNxDomain, nullptr, {}};
    }
    if (node->Find(kTypeNs) != nullptr) return {Match::kDelegation, node, suffix};
    encloser = suffix;
  }
  return {Match::kExact, FindNode(name), {}};
}

ZoneBuilder::ZoneBuilder(std::string origin_wire, std::string source)
    : zone_(std::make_unique<Zone>()) {
  zone_->origin_ = LowerWireName(origin_wire);
  zone_->source_ = std::move(source);
}

Status ZoneBuilder::Add(Record record, const std::string& where) {
  std::string key = LowerWireName(record.owner);
  if (!IsSubdomain(key, zone_->origin_)) {
    return absl::InvalidArgumentError(where + ": " + NameToText(record.owner) +
                                      " is outside zone " + NameToText(zone_->origin_));
  }
  if (record.type == kTypeSoa && key != zone_->origin_) {
    return absl::InvalidArgumentError(where + ": SOA record not at the zone apex");
  }
  Node& node = zone_->nodes_[key];
  auto it = std::find_if(node.rrsets.begin(), node.rrsets.end(),
                         [&](const RRset& r) { return r.type == record.type; });
  if (it == node.rrsets.end()) {
    node.rrsets.push_back(RRset{record.type, record.ttl, {}, {}});
    it = node.rrsets.end() - 1;
  }
  for (const auto& existing : it->rdatas) {
    if (existing == record.rdata) return absl::OkStatus();  // duplicate RR: RFC 2181 §5
  }
  if (record.type == kTypeSoa && !it->rdatas.empty()) {
    return absl::InvalidArgumentError(where + ": second SOA record in zone");
  }
  if (record.type == kTypeCname && !it->rdatas.empty()) {
    return absl::InvalidArgumentError(where + ": second CNAME record at " +
                                      NameToText(record.owner));
  }
  // RFC 2181 §5.2: one TTL per RRset; the lowest wins.
  it->ttl = std::min(it->ttl, record.ttl);
  it->rdatas.push_back(std::move(record.rdata));
  ++zone_->record_count_;
  return absl::OkStatus();
}

StatusOr<std::shared_ptr<const Zone>> ZoneBuilder::Build() {
  Zone& zone = *zone_;
  auto apex = zone.nodes_.find(zone.origin_);
  if (apex == zone.nodes_.end() || apex->second.Find(kTypeSoa) == nullptr) {
    return absl::InvalidArgumentError(zone.source_ + ": zone " + NameToText(zone.origin_) +
                                      " has no SOA record at its apex");
  }
  // Empty non-terminals (RFC 4592 §2.2.2): every ancestor of a name up to the apex exists.
  std::vector<std::string> names;
  names.reserve(zone.nodes_.size());
  for (const auto& [name, node] : zone.nodes_) names.push_back(name);
  for (const auto& name : names) {
    for (size_t pos = 0; name.size() - pos > zone.origin_.size();) {
      pos += static_cast<uint8_t>(name[pos]) + 1;
      auto [it, inserted] = zone.nodes_.try_emplace(name.substr(pos));
      if (!inserted) break;  // its ancestors were handled when it was added
    }
  }
  for (auto& [name, node] : zone.nodes_) {
    if (node.Find(kTypeCname) != nullptr && node.rrsets.size() > 1) {
      return absl::InvalidArgumentError(zone.source_ + ": " + NameToText(name) +
                                        " has a CNAME and other data");
    }
    std::sort(node.rrsets.begin(), node.rrsets.end(),
              [](const RRset& a, const RRset& b) { return a.type < b.type; });
    node.rrsets.shrink_to_fit();
  }
  // Pointers into nodes_ are only taken now: the map no longer changes.
  const Node* apex_node = zone.FindNode(zone.origin_);
  zone.apex_ = apex_node;
  zone.soa_ = apex_node->Find(kTypeSoa);
  for (auto& [name, node] : zone.nodes_) {
    for (auto& rrset : node.rrsets) {
      size_t offset = rrset.type == kTypeMx ? 2 : (rrset.type == kTypeSrv ? 6 : 0);
      if (rrset.type != kTypeNs && rrset.type != kTypeMx && rrset.type != kTypeSrv) continue;
      for (const auto& rdata : rrset.rdatas) {
        std::string target = LowerWireName(std::string_view(rdata).substr(offset));
        rrset.targets.push_back(IsSubdomain(target, zone.origin_) ? zone.FindNode(target)
                                                                  : nullptr);
      }
    }
  }
  const std::string& rdata = zone.soa_->rdatas[0];
  uint32_t minimum = Load32(reinterpret_cast<const uint8_t*>(rdata.data()) + rdata.size() - 4);
  zone.negative_ttl_ = std::min(zone.soa_->ttl, minimum);
  return std::shared_ptr<const Zone>(std::move(zone_));
}

}  // namespace photon::flashdns
