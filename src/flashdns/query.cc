// Query parsing and authoritative answering; see query.h.
#include "flashdns/query.h"

#include <algorithm>
#include <cstring>

namespace photon::flashdns {

void ZoneSet::Add(std::shared_ptr<const Zone> zone) {
  std::string origin = zone->origin();
  zones_[origin] = std::move(zone);
}

const Zone* ZoneSet::Find(std::string_view lower_name) const {
  // Longest suffix first: walk the labels of the name from the left.
  size_t pos = 0;
  while (pos < lower_name.size()) {
    auto it = zones_.find(Key(lower_name.substr(pos)));
    if (it != zones_.end()) return it->second.get();
    uint8_t len = static_cast<uint8_t>(lower_name[pos]);
    if (len == 0) break;
    pos += len + 1;
  }
  return nullptr;
}

std::shared_ptr<const Zone> ZoneSet::Get(std::string_view origin) const {
  auto it = zones_.find(Key(origin));
  return it == zones_.end() ? nullptr : it->second;
}

bool ParseQuery(const uint8_t* packet, size_t size, ParsedQuery* q) {
  if (size < kHeaderSize) return false;
  q->id = Load16(packet);
  q->flags = Load16(packet + 2);
  if (q->flags & kFlagQr) return false;  // never answer a response: no reflection loops
  PacketReader r(packet, size);
  r.Skip(4);
  uint16_t qdcount = r.U16();
  uint16_t ancount = r.U16();
  uint16_t nscount = r.U16();
  uint16_t arcount = r.U16();
  if (q->opcode() != 0) q->rcode = kRcodeNotImp;
  if (qdcount != 1) {
    if (q->rcode == kRcodeNoError) q->rcode = kRcodeFormErr;
    return true;
  }
  q->qname_len = r.Name(q->qname);
  q->qtype = r.U16();
  q->qclass = r.U16();
  if (!r.ok()) {
    if (q->rcode == kRcodeNoError) q->rcode = kRcodeFormErr;
    return true;
  }
  q->has_question = true;
  memcpy(q->lower, q->qname, q->qname_len);
  LowerWireName(q->lower);
  if (q->rcode != kRcodeNoError) return true;
  uint8_t scratch[kMaxNameLength];
  for (int i = 0; i < ancount + nscount && r.ok(); ++i) {
    r.Name(scratch);
    r.Skip(8);
    r.Skip(r.U16());
  }
  for (int i = 0; i < arcount && r.ok(); ++i) {
    size_t name_len = r.Name(scratch);
    uint16_t type = r.U16();
    uint16_t klass = r.U16();
    uint32_t ttl = r.U32();
    uint16_t rdlen = r.U16();
    r.Skip(rdlen);
    if (!r.ok()) break;
    if (type != kTypeOpt) continue;
    if (q->edns || name_len != 1) {  // RFC 6891 §6.1.1: one OPT, owned by the root
      q->rcode = kRcodeFormErr;
      return true;
    }
    q->edns = true;
    q->udp_size = std::max<uint16_t>(512, klass);
    if (((ttl >> 16) & 0xFF) != 0) q->rcode = kRcodeBadVers;
  }
  if (!r.ok()) {
    q->rcode = kRcodeFormErr;
    return true;
  }
  if (q->qtype == kTypeOpt || q->qtype == 0) q->rcode = kRcodeFormErr;
  return true;
}

size_t TruncateToQuestion(const ParsedQuery& q, uint8_t* response) {
  Store16(response + 2, static_cast<uint16_t>(Load16(response + 2) | kFlagTc));
  memset(response + 6, 0, 6);  // ANCOUNT, NSCOUNT, ARCOUNT
  return kHeaderSize + (q.has_question ? q.qname_len + 4 : 0);
}

size_t UdpLimit(const ParsedQuery& q) {
  if (!q.edns) return 512;
  // Never more than our own advertised size: larger UDP answers risk IP fragmentation
  // (DNS flag day 2020, RFC 9715); TC sends the client to TCP instead.
  return std::min<size_t>(q.udp_size, kServerUdpSize);
}

bool WriteRdata(PacketWriter* w, uint16_t type, const uint8_t* p, size_t size) {
  size_t len_pos = w->size();
  if (!w->U16(0)) return false;
  bool ok = true;
  switch (type) {
    case kTypeNs:
    case kTypeCname:
    case kTypePtr:
      ok = w->Name(p);
      break;
    case kTypeMx:
      ok = w->Bytes(p, 2) && w->Name(p + 2);
      break;
    case kTypeSoa: {
      size_t m = WireNameLength(p);
      size_t r = WireNameLength(p + m);
      ok = w->Name(p) && w->Name(p + m) && w->Bytes(p + m + r, 20);
      break;
    }
    default:  // SRV targets are never compressed (RFC 2782); the rest has no names
      ok = w->Bytes(p, size);
  }
  if (!ok) return false;
  Store16(w->data() + len_pos, static_cast<uint16_t>(w->size() - len_pos - 2));
  return true;
}

namespace {

// The name of an RR owner: a pointer to a name already in the message, or a wire name.
struct Owner {
  uint16_t pointer = 0;
  const uint8_t* name = nullptr;
};

class Responder {
 public:
  Responder(const ParsedQuery& q, uint8_t* out, size_t max_size) : q_(q), w_(out, max_size) {}

  size_t Build(const ZoneSet* zones, AnswerInfo* info) {
    uint16_t flags = kFlagQr | (q_.flags & (0x7800 | kFlagRd | kFlagCd));
    w_.U16(q_.id);
    w_.U16(flags);
    w_.Bytes("\0\0\0\0\0\0\0\0", 8);
    if (q_.has_question) {
      Store16(w_.data() + 4, 1);
      w_.AddTarget(kHeaderSize);
      w_.Bytes(q_.qname, q_.qname_len);
      w_.U16(q_.qtype);
      w_.U16(q_.qclass);
    }
    question_end_ = w_.size();
    // Room for our OPT record is kept aside so it always fits.
    if (q_.edns) w_.set_limit(w_.limit() - 11);
    uint8_t rcode = q_.rcode;
    if (rcode == kRcodeNoError) rcode = Answer(zones);
    if (truncated_) {
      w_.Truncate(question_end_);
      counts_[0] = counts_[1] = counts_[2] = 0;
      flags |= kFlagTc;
    }
    if (aa_) flags |= kFlagAa;
    Store16(w_.data() + 2, static_cast<uint16_t>(flags | (rcode & 0xF)));
    if (q_.edns) {
      w_.set_limit(w_.limit() + 11);
      w_.U8(0);
      w_.U16(kTypeOpt);
      w_.U16(kServerUdpSize);
      w_.U32(static_cast<uint32_t>(rcode >> 4) << 24);  // extended rcode, version 0
      w_.U16(0);
      ++counts_[2];
    }
    Store16(w_.data() + 6, counts_[0]);
    Store16(w_.data() + 8, counts_[1]);
    Store16(w_.data() + 10, counts_[2]);
    info->rcode = rcode;
    info->truncated = truncated_;
    info->kind = rcode == kRcodeNoError || rcode == kRcodeNxDomain ? kind_ : AnswerKind::kError;
    info->group_name = group_name_;
    return w_.size();
  }

 private:
  enum Section { kAnswer = 0, kAuthority = 1, kAdditional = 2 };

  uint8_t Answer(const ZoneSet* zones) {
    if (q_.qclass != kClassIn && q_.qclass != kClassAny) return kRcodeRefused;
    if (q_.qtype == kTypeAxfr || q_.qtype == kTypeIxfr) {
      // Zone transfers run over TCP only, through their own path.
      return kRcodeNotImp;
    }
    const Zone* zone = zones == nullptr ? nullptr : zones->Find(AsView(q_.lower, q_.qname_len));
    if (zone == nullptr) return kRcodeRefused;
    group_name_ = zone->origin();
    aa_ = true;
    uint8_t rcode = Resolve(*zone);
    if (!truncated_) AddAdditional();
    return rcode;
  }

  // A wildcard anywhere in a CNAME chain makes the answer a wildcard answer.
  void SetKind(AnswerKind kind) { kind_ = wildcard_ ? AnswerKind::kWildcard : kind; }

  static std::string_view AsView(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
  }

  uint8_t Resolve(const Zone& zone) {
    Owner owner{kHeaderSize, nullptr};
    std::string_view name = AsView(q_.lower, q_.qname_len);
    uint8_t chain_lower[kMaxNameLength];
    const uint8_t* seen[16];
    int hops = 0;
    while (true) {
      Zone::LookupResult found = zone.Lookup(name);
      if (found.match == Zone::Match::kDelegation && q_.qtype == kTypeDs &&
          found.cut_name.size() == name.size()) {
        // DS lives on the parent side of the cut (RFC 4035 §2.4): we have none.
        found.match = Zone::Match::kExact;
      }
      switch (found.match) {
        case Zone::Match::kNxDomain:
          kind_ = AnswerKind::kNxDomain;
          AddNegative(zone);
          return kRcodeNxDomain;
        case Zone::Match::kDelegation: {
          kind_ = AnswerKind::kReferral;
          // After a CNAME hop the cut's name lives in chain_lower, gone once we return.
          group_name_ = hops == 0 ? found.cut_name : std::string_view(zone.origin());
          if (counts_[kAnswer] == 0) aa_ = false;
          RRsetView ns = found.node.Find(kTypeNs);
          AddRRset(kAuthority, {0, reinterpret_cast<const uint8_t*>(found.cut_name.data())}, ns,
                   ns.ttl());
          return kRcodeNoError;
        }
        case Zone::Match::kExact:
          break;
        case Zone::Match::kWildcard:
          // Grouped by zone: random names under a wildcard must not each get a fresh budget.
          wildcard_ = true;
          break;
      }
      NodeView node = found.node;
      if (q_.qtype == kTypeAny) {
        // RFC 8482 §4.2: one RRset is a complete answer to ANY.
        if (node.empty()) {
          SetKind(AnswerKind::kNoData);
          AddNegative(zone);
        } else {
          SetKind(AnswerKind::kAnswer);
          AddRRset(kAnswer, owner, node.First(), node.First().ttl());
        }
        return kRcodeNoError;
      }
      if (RRsetView rrset = node.Find(q_.qtype); rrset.valid()) {
        SetKind(AnswerKind::kAnswer);
        AddRRset(kAnswer, owner, rrset, rrset.ttl());
        AddApexNs(zone, node);
        return kRcodeNoError;
      }
      RRsetView cname = node.Find(kTypeCname);
      if (!cname.valid()) {
        SetKind(AnswerKind::kNoData);
        AddNegative(zone);
        return kRcodeNoError;
      }
      SetKind(AnswerKind::kAnswer);
      AddRRset(kAnswer, owner, cname, cname.ttl());
      const uint8_t* target = cname.First().data;
      size_t target_len = WireNameLength(target);
      memcpy(chain_lower, target, target_len);
      LowerWireName(chain_lower);
      name = AsView(chain_lower, target_len);
      // Follow the chain only inside this zone, and never round a loop.
      if (!IsSubdomain(name, zone.origin()) || hops == 16) return kRcodeNoError;
      if (name == AsView(q_.lower, q_.qname_len)) return kRcodeNoError;
      for (int i = 0; i < hops; ++i) {
        if (WireNameLength(seen[i]) == target_len &&
            strncasecmp(reinterpret_cast<const char*>(seen[i]),
                        reinterpret_cast<const char*>(target), target_len) == 0) {
          return kRcodeNoError;
        }
      }
      seen[hops++] = target;
      // chain_lower is reused next round, so keep the lookup name in the target's storage.
      owner = {0, target};
    }
  }

  // Like NSD and BIND without minimal responses, a positive answer carries the zone's NS
  // RRset in authority; it is optional, so a full message drops it rather than truncating.
  void AddApexNs(const Zone& zone, NodeView answered) {
    RRsetView ns = zone.apex().Find(kTypeNs);
    if (!ns.valid() || (answered.id() == zone.apex().id() && q_.qtype == kTypeNs)) return;
    AddRRset(kAuthority, {0, reinterpret_cast<const uint8_t*>(zone.origin().data())}, ns, ns.ttl(),
             /*optional=*/true);
  }

  void AddNegative(const Zone& zone) {
    // RFC 2308 §3: the SOA in authority, with the negative-caching TTL.
    AddRRset(kAuthority, {0, reinterpret_cast<const uint8_t*>(zone.origin().data())}, zone.soa(),
             zone.negative_ttl());
  }

  // Adds a whole RRset or nothing. A miss in answer/authority truncates the message.
  bool AddRRset(Section section, Owner owner, RRsetView rrset, uint32_t ttl,
                bool optional = false) {
    if (truncated_) return false;
    size_t start = w_.size();
    uint16_t owner_at = owner.pointer;
    uint16_t type = rrset.type();
    uint16_t written = 0;
    int targets_before = num_targets_;
    bool all = rrset.ForEach([&](const Rdata& rdata) {
      bool ok;
      if (owner_at != 0) {
        ok = w_.Pointer(owner_at);
      } else {
        owner_at = w_.size() < 0x3FFF ? static_cast<uint16_t>(w_.size()) : 0;
        ok = w_.Name(owner.name);
        // If the owner came out as a bare pointer, reuse that pointer's target instead.
        if (ok && w_.size() - owner_at == 2 && (w_.data()[owner_at] & 0xC0) == 0xC0) {
          owner_at = static_cast<uint16_t>(Load16(w_.data() + owner_at) & 0x3FFF);
        }
      }
      ok = ok && w_.U16(type) && w_.U16(kClassIn) && w_.U32(ttl) &&
           WriteRdata(&w_, type, rdata.data, rdata.size);
      if (!ok) return false;
      ++written;
      if (section != kAdditional) NoteTarget(type, rdata);
      return true;
    });
    if (!all) {
      w_.Truncate(start);
      num_targets_ = targets_before;
      if (section != kAdditional && !optional) truncated_ = true;
      return false;
    }
    counts_[section] = static_cast<uint16_t>(counts_[section] + written);
    if (section == kAnswer && num_answered_ < kMaxAdditional) {
      answered_[num_answered_++] = rrset.id();
    }
    return true;
  }

  // Remembers names whose addresses belong in the additional section (RFC 1035 §3.3),
  // with their nodes as resolved when the zone was built.
  void NoteTarget(uint16_t type, const Rdata& rdata) {
    if (rdata.target == nullptr || num_targets_ == kMaxAdditional) return;
    for (int i = 0; i < num_targets_; ++i) {
      if (target_nodes_[i].id() == rdata.target) return;
    }
    targets_[num_targets_] = rdata.data + (type == kTypeMx ? 2 : (type == kTypeSrv ? 6 : 0));
    target_nodes_[num_targets_++] = NodeView(rdata.target);
  }

  bool InAnswer(RRsetView rrset) const {
    for (int i = 0; i < num_answered_; ++i) {
      if (answered_[i] == rrset.id()) return true;
    }
    return false;
  }

  void AddAdditional() {
    for (int i = 0; i < num_targets_; ++i) {
      for (uint16_t type : {kTypeA, kTypeAaaa}) {
        RRsetView rrset = target_nodes_[i].Find(type);
        // An RRset already in the answer is not repeated (as NSD and BIND do).
        if (rrset.valid() && !InAnswer(rrset)) {
          if (!AddRRset(kAdditional, {0, targets_[i]}, rrset, rrset.ttl())) return;
        }
      }
    }
  }

  static constexpr int kMaxAdditional = 32;
  const ParsedQuery& q_;
  PacketWriter w_;
  size_t question_end_ = 0;
  uint16_t counts_[3] = {0, 0, 0};
  bool aa_ = false;
  bool truncated_ = false;
  AnswerKind kind_ = AnswerKind::kError;
  bool wildcard_ = false;
  std::string_view group_name_;
  const uint8_t* targets_[kMaxAdditional];
  NodeView target_nodes_[kMaxAdditional];
  int num_targets_ = 0;
  const uint8_t* answered_[kMaxAdditional];
  int num_answered_ = 0;
};

}  // namespace

size_t BuildResponse(const ZoneSet* zones, const ParsedQuery& q, uint8_t* out, size_t max_size,
                     AnswerInfo* info) {
  if (max_size < 512) return 0;
  Responder responder(q, out, max_size);
  return responder.Build(zones, info);
}

}  // namespace photon::flashdns
