#include "fiberlb/l4/l4_balancer.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/net/exec.h"
#include "agent/net/ipv4.h"
#include "agent/net/netns.h"
#include "fiberlb/l4/maglev.h"

namespace photon::fiberlb::l4 {
namespace {

using agent::net::ExecOk;
using agent::net::ExecOptions;

ExecOptions In(const std::string& netns) {
  ExecOptions o;
  o.netns = netns;
  return o;
}

bool Eligible(const L4Member& m) { return m.healthy && m.weight > 0; }

bool ValidMac(const std::string& mac) {
  static const std::regex re("^([0-9a-f]{2}:){5}[0-9a-f]{2}$");
  return std::regex_match(mac, re);
}

Status ValidateListener(const L4Listener& l) {
  if (!agent::net::ParseIpv4(l.vip).ok()) {
    return absl::InvalidArgumentError("vip: '" + l.vip + "' is not an IPv4 address");
  }
  if (l.port == 0) return absl::InvalidArgumentError("port: must be 1-65535");
  if (l.l3dsr_dscp > 63) return absl::InvalidArgumentError("l3dsr_dscp: must be 0-63");
  std::set<std::string> seen;
  for (size_t i = 0; i < l.members.size(); ++i) {
    const L4Member& m = l.members[i];
    std::string field = absl::StrCat("members[", i, "]");
    if (!agent::net::ParseIpv4(m.address).ok()) {
      return absl::InvalidArgumentError(field + ".address: '" + m.address + "' is not IPv4");
    }
    if (!seen.insert(m.address).second) {
      return absl::InvalidArgumentError(field + ".address: " + m.address + " listed twice");
    }
    if (!m.mac.empty() && !ValidMac(m.mac)) {
      return absl::InvalidArgumentError(field + ".mac: '" + m.mac + "' is not aa:bb:cc:dd:ee:ff");
    }
    if (m.weight > 65535) return absl::InvalidArgumentError(field + ".weight: at most 65535");
    if (m.forward == L4Forward::kL3 && l.l3dsr_dscp == 0) {
      return absl::InvalidArgumentError(field + ".forward: L3DSR needs the listener's l3dsr_dscp");
    }
  }
  return absl::OkStatus();
}

// The rule of a member's chain: how a packet reaches it.
StatusOr<std::string> MemberChainBody(const L4BalancerOptions& o, const std::string& device_mac,
                                      const L4Listener& l, const L4Member& m) {
  if (m.forward != L4Forward::kL3 && ValidMac(m.mac)) {
    // The source MAC becomes the device's own: the frame leaves this node, and a switch must
    // not learn the router's MAC on our port.
    return absl::StrCat("ether saddr set ", device_mac, " ether daddr set ", m.mac, " fwd to \"",
                        o.device, "\"");
  }
  if (m.forward == L4Forward::kL3) {
    // Routed on by this node's IP stack (no conntrack is involved: nothing here uses it).
    return absl::StrCat("ip daddr set ", m.address, " ip dscp set ", static_cast<int>(l.l3dsr_dscp),
                        " accept");
  }
  return absl::InvalidArgumentError("member " + m.address + ": no MAC and not L3DSR");
}

// One listener's chains (one per member: how a packet reaches it), map (slot → jump to the
// member's chain), counter and rule.
Status RenderListener(const L4BalancerOptions& o, const std::string& device_mac,
                      const L4Listener& l, std::string* objects, std::string* rules,
                      std::string* counters, std::string* counted) {
  const std::string name = L4ListenerName(l.vip, l.port, l.protocol);
  std::vector<MaglevBackend> backends;
  std::vector<std::string> chains;
  for (const L4Member& m : l.members) {
    if (!Eligible(m)) continue;
    std::string chain = absl::StrCat(name, "_", backends.size());
    PHOTON_ASSIGN_OR_RETURN(std::string body, MemberChainBody(o, device_mac, l, m));
    absl::StrAppend(objects, "  chain ", chain, " {\n    ", body, "\n  }\n");
    backends.push_back({m.address, m.weight});
    chains.push_back(std::move(chain));
  }
  if (backends.empty()) return absl::OkStatus();  // nothing to forward to: no rule
  PHOTON_ASSIGN_OR_RETURN(std::vector<uint32_t> table, BuildMaglevTable(backends));
  absl::StrAppend(objects, "  map m_", name, " {\n    typeof numgen inc mod ", kMaglevTableSize,
                  " : verdict\n    size ", kMaglevTableSize, "\n    elements = { ");
  objects->reserve(objects->size() + table.size() * (chains[0].size() + 16));
  for (size_t slot = 0; slot < table.size(); ++slot) {
    absl::StrAppend(objects, slot == 0 ? "" : ", ", slot, " : jump ", chains[table[slot]]);
  }
  absl::StrAppend(objects, " }\n  }\n");
  // Only frames sent to this node (`pkttype host`): a switch floods a frame whose destination
  // it has not learnt (a dead LB node's MAC) to every node, and each would forward a copy.
  const std::string match = absl::StrCat("meta pkttype host ip daddr ", l.vip, " ",
                                         L4ProtocolName(l.protocol), " dport ", l.port);
  absl::StrAppend(rules, "    ", match, " jhash ip saddr . ", L4ProtocolName(l.protocol),
                  " sport mod ", kMaglevTableSize, " seed 0x", absl::Hex(o.hash_seed), " vmap @m_",
                  name, "\n");
  absl::StrAppend(counters, "  counter c_", name, " {}\n");
  absl::StrAppend(counted, "    ", match, " counter name \"c_", name, "\"\n");
  return absl::OkStatus();
}

std::set<std::string> VipsToAnnounce(
    const std::map<std::tuple<std::string, uint16_t, L4Protocol>, L4Listener>& listeners,
    bool draining) {
  std::set<std::string> vips;
  if (draining) return vips;
  for (const auto& [key, l] : listeners) {
    for (const L4Member& m : l.members) {
      if (Eligible(m)) vips.insert(l.vip);
    }
  }
  return vips;
}

// Sends one datagram towards `address` from inside `netns`: the kernel resolves its MAC.
void TriggerArp(const std::string& netns, const std::string& address) {
  std::thread t([&] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0) return;
      int rc = ::setns(ns, CLONE_NEWNET);
      ::close(ns);
      if (rc != 0) return;
    }
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9);  // discard
    auto ip = agent::net::ParseIpv4(address);
    a.sin_addr.s_addr = htonl(ip.ok() ? *ip : 0);
    (void)::sendto(fd, "", 0, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(fd);
  });
  t.join();
}

}  // namespace

const char* L4ProtocolName(L4Protocol protocol) {
  return protocol == L4Protocol::kTcp ? "tcp" : "udp";
}

std::string L4ListenerName(const std::string& vip, uint16_t port, L4Protocol protocol) {
  return absl::StrCat(L4ProtocolName(protocol), "_", absl::StrReplaceAll(vip, {{".", "_"}}), "_",
                      port);
}

StatusOr<std::string> RenderL4Ruleset(const L4BalancerOptions& options,
                                      const std::string& device_mac,
                                      const std::vector<L4Listener>& listeners) {
  static const std::regex name_re("^[A-Za-z0-9_.-]{1,15}$");
  if (!std::regex_match(options.device, name_re)) {
    return absl::InvalidArgumentError("device: '" + options.device + "' is not an interface name");
  }
  if (!std::regex_match(options.table, name_re)) {
    return absl::InvalidArgumentError("table: '" + options.table + "' is not a valid name");
  }
  if (!ValidMac(device_mac)) return absl::InvalidArgumentError("device MAC: " + device_mac);
  std::string objects, rules, counters, counted;
  for (const L4Listener& l : listeners) {
    PHOTON_RETURN_IF_ERROR(ValidateListener(l));
    PHOTON_RETURN_IF_ERROR(
        RenderListener(options, device_mac, l, &objects, &rules, &counters, &counted));
  }
  // "table; delete table; table {...}": one transaction that works whether or not the table
  // exists, so a packet sees either the old table or the new one.
  auto table = [&](const std::string& name, const std::string& body, int priority,
                   const std::string& chain_rules) {
    const std::string t = "table netdev " + name;
    return absl::StrCat(t, "\ndelete ", t, "\n", t, " {\n", body,
                        "  chain ingress {\n    type filter hook ingress device \"", options.device,
                        "\" priority ", priority, "; policy accept;\n", chain_rules, "  }\n}\n");
  };
  // The counters live in a table of their own, just before the forwarding one: reading a
  // counter makes nft fetch its whole table, and the maps' 65,537 elements made every read
  // (each GET /v1/l4) cost about 0.3 s of CPU on a loaded node, stalling the API and its
  // callers (the photon-server provider reads every node's /v1/l4 twice per change).
  return table(L4StatsTable(options.table), counters, -501, counted) +
         table(options.table, objects, -500, rules);
}

std::string L4StatsTable(const std::string& table) { return table + "_stats"; }

StatusOr<std::unique_ptr<L4Balancer>> L4Balancer::Open(const L4BalancerOptions& options) {
  std::unique_ptr<L4Balancer> lb(new L4Balancer(options));
  PHOTON_ASSIGN_OR_RETURN(
      std::string link,
      ExecOk({"ip", "-j", "link", "show", "dev", options.device}, In(options.netns)));
  auto doc = nlohmann::json::parse(link, nullptr, false);
  if (!doc.is_array() || doc.empty()) return absl::InternalError("ip link: " + link);
  lb->device_mac_ = doc[0].value("address", "");
  if (!ValidMac(lb->device_mac_)) {
    return absl::FailedPreconditionError("device " + options.device + " has no Ethernet address");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string routes,
                          ExecOk({"ip", "-j", "route", "show", "type", "blackhole", "proto",
                                  std::to_string(options.route_protocol)},
                                 In(options.netns)));
  auto rdoc = nlohmann::json::parse(routes, nullptr, false);
  if (rdoc.is_array()) {
    for (const auto& r : rdoc) lb->announced_.insert(r.value("dst", ""));
  }
  lb->announced_.erase("");
  return lb;
}

Status L4Balancer::Resolve(const L4Listener& listener, L4Member* m) const {
  if (m->forward == L4Forward::kL3) return absl::OkStatus();
  if (m->forward == L4Forward::kL2 && !m->mac.empty()) return absl::OkStatus();
  PHOTON_ASSIGN_OR_RETURN(std::string route,
                          ExecOk({"ip", "-j", "route", "get", m->address}, In(options_.netns)));
  auto r = nlohmann::json::parse(route, nullptr, false);
  if (!r.is_array() || r.empty()) return absl::InternalError("ip route get: " + route);
  if (r[0].contains("gateway")) {
    if (m->forward == L4Forward::kL2 || listener.l3dsr_dscp == 0) {
      return absl::FailedPreconditionError(
          "member " + m->address +
          " is not on-link (reached through a router): L3DSR needs the listener's l3dsr_dscp");
    }
    m->forward = L4Forward::kL3;
    return absl::OkStatus();
  }
  if (r[0].value("dev", "") != options_.device) {
    return absl::FailedPreconditionError("member " + m->address + " is reached through " +
                                         r[0].value("dev", "?") + ", not " + options_.device);
  }
  m->forward = L4Forward::kL2;
  if (!m->mac.empty()) return absl::OkStatus();
  PHOTON_ASSIGN_OR_RETURN(m->mac, ResolveMac(m->address));
  return absl::OkStatus();
}

StatusOr<std::string> L4Balancer::ResolveMac(const std::string& address) const {
  auto deadline = std::chrono::steady_clock::now() + options_.resolve_timeout;
  for (int attempt = 0;; ++attempt) {
    PHOTON_ASSIGN_OR_RETURN(
        std::string neigh,
        ExecOk({"ip", "-j", "neigh", "show", address, "dev", options_.device}, In(options_.netns)));
    auto n = nlohmann::json::parse(neigh, nullptr, false);
    if (n.is_array() && !n.empty() && n[0].contains("lladdr")) {
      std::string state = n[0].value("state", nlohmann::json::array()).dump();
      if (state.find("FAILED") == std::string::npos) return n[0].value("lladdr", "");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError("member " + address + ": no ARP answer on " + options_.device);
    }
    if (attempt % 50 == 0) TriggerArp(options_.netns, address);  // again every ~0.5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

namespace {

// Which eligible member (by address) each slot of a listener's table names; empty without one.
StatusOr<std::vector<std::string>> SlotOwners(const L4Listener& l) {
  std::vector<MaglevBackend> backends;
  for (const L4Member& m : l.members) {
    if (Eligible(m)) backends.push_back({m.address, m.weight});
  }
  std::vector<std::string> owners;
  if (backends.empty()) return owners;
  PHOTON_ASSIGN_OR_RETURN(std::vector<uint32_t> table, BuildMaglevTable(backends));
  owners.reserve(table.size());
  for (uint32_t i : table) owners.push_back(backends[i].key);
  return owners;
}

std::string Underscored(const std::string& address) {
  return absl::StrReplaceAll(address, {{".", "_"}});
}

}  // namespace

StatusOr<std::string> L4Balancer::DrainScript(const std::map<Key, L4Listener>& listeners,
                                              std::map<Key, Drain>* next) const {
  const auto now = std::chrono::steady_clock::now();
  const std::string table = "netdev " + options_.table + "_drain";
  std::set<Key> keys;
  for (const auto& [k, l] : listeners_) keys.insert(k);
  for (const auto& [k, l] : listeners) keys.insert(k);
  for (const auto& [k, d] : *next) keys.insert(k);
  std::string ops, jumps;
  for (const Key& key : keys) {
    auto nit = listeners.find(key);
    const L4Listener* now_l = nit == listeners.end() ? nullptr : &nit->second;
    auto oit = listeners_.find(key);
    const L4Listener* old_l = oit == listeners_.end() ? nullptr : &oit->second;
    const std::string name = L4ListenerName(std::get<0>(key), std::get<1>(key), std::get<2>(key));
    const std::string set = "nf_" + name, map = "d_" + name, chain = "l_" + name;
    const bool wanted =
        now_l != nullptr && now_l->protocol == L4Protocol::kTcp && now_l->drain_ms > 0;
    if (!wanted) {
      auto dit = next->find(key);
      if (dit == next->end()) continue;
      if (dit->second.created) {  // the ingress jump to it is flushed first
        absl::StrAppend(&ops, "flush chain ", table, " ", chain, "\ndelete chain ", table, " ",
                        chain, "\nflush map ", table, " ", map, "\ndelete map ", table, " ", map,
                        "\ndelete set ", table, " ", set, "\n");
        for (const auto& c : dit->second.chains) {
          absl::StrAppend(&ops, "flush chain ", table, " ", c, "\ndelete chain ", table, " ", c,
                          "\n");
        }
      }
      next->erase(dit);
      continue;
    }
    Drain& d = (*next)[key];
    // What the kernel's map holds now: changes are written as element deletes and adds (a
    // member's death during a drain touches a few slots, not the whole map).
    const std::map<uint32_t, std::string> prev = d.created ? d.moved : decltype(d.moved){};
    if (d.until <= now) {
      if (!d.moved.empty()) spdlog::info("L4 {}: flow drain over", name);
      d.moved.clear();
      d.members.clear();
    }
    if (old_l != nullptr) {
      PHOTON_ASSIGN_OR_RETURN(std::vector<std::string> before, SlotOwners(*old_l));
      PHOTON_ASSIGN_OR_RETURN(std::vector<std::string> after, SlotOwners(*now_l));
      std::map<std::string, L4Member> known = d.members;
      for (const L4Member& m : old_l->members) {
        if (Eligible(m)) known[m.address] = m;
      }
      // A member's established flows are worth a new pin unless it is known unhealthy now.
      std::set<std::string> unhealthy;
      for (const L4Member& m : now_l->members) {
        if (!m.healthy) unhealthy.insert(m.address);
      }
      std::map<uint32_t, std::string> moved;
      for (uint32_t slot = 0; slot < before.size(); ++slot) {
        const std::string& to = after.empty() ? std::string() : after[slot];
        // Still draining from an earlier change: the slot keeps its earliest member (a dead
        // one too: its flows are gone anyway, and unpinning costs a map write).
        if (auto earlier = d.moved.find(slot); earlier != d.moved.end()) {
          if (earlier->second != to) moved[slot] = earlier->second;
          continue;
        }
        const std::string& from = before[slot];
        if (from != to && !unhealthy.count(from) && known.count(from)) moved[slot] = from;
      }
      if (moved != d.moved) {
        spdlog::info(
            "L4 {}: {} slots moved; their established flows stay with {} member(s) for "
            "{} ms",
            name, moved.size(),
            std::set<std::string>([&] {
              std::set<std::string> m;
              for (const auto& [slot, member] : moved) m.insert(member);
              return m;
            }())
                .size(),
            now_l->drain_ms);
        d.members.clear();
        for (const auto& [slot, member] : moved) d.members[member] = known[member];
        d.moved = std::move(moved);
        d.until = now + std::chrono::milliseconds(now_l->drain_ms);
      }
    }
    if (!d.created) {
      absl::StrAppend(&ops, "add set ", table, " ", set,
                      " { type ipv4_addr . inet_service; flags dynamic,timeout; timeout ",
                      now_l->drain_ms, "ms; size 65536; }\nadd map ", table, " ", map,
                      " { typeof numgen inc mod ", kMaglevTableSize, " : verdict; size ",
                      kMaglevTableSize, "; }\nadd chain ", table, " ", chain, "\n");
      d.created = true;
    }
    absl::StrAppend(&ops, "flush chain ", table, " ", chain, "\n");
    std::string dels, adds;
    for (const auto& [slot, member] : prev) {
      auto it = d.moved.find(slot);
      if (it == d.moved.end() || it->second != member)
        absl::StrAppend(&dels, dels.empty() ? "" : ", ", slot);
    }
    for (const auto& [slot, member] : d.moved) {
      auto it = prev.find(slot);
      if (it == prev.end() || it->second != member) {
        absl::StrAppend(&adds, adds.empty() ? "" : ", ", slot, " : jump o_", name, "_",
                        Underscored(member));
      }
    }
    if (d.moved.empty() && !prev.empty()) {
      absl::StrAppend(&ops, "flush map ", table, " ", map, "\n");
    } else if (!dels.empty()) {
      absl::StrAppend(&ops, "delete element ", table, " ", map, " { ", dels, " }\n");
    }
    std::set<std::string> chains;
    for (const auto& [address, m] : d.members) {
      const std::string c = absl::StrCat("o_", name, "_", Underscored(address));
      chains.insert(c);
      if (d.chains.count(c)) continue;  // there already
      PHOTON_ASSIGN_OR_RETURN(std::string body, MemberChainBody(options_, device_mac_, *now_l, m));
      absl::StrAppend(&ops, "add chain ", table, " ", c, "\nflush chain ", table, " ", c,
                      "\nadd rule ", table, " ", c, " ", body, "\n");
    }
    if (!adds.empty()) absl::StrAppend(&ops, "add element ", table, " ", map, " { ", adds, " }\n");
    for (const auto& c : d.chains) {
      if (!chains.count(c)) {  // no element names it any more (deleted above)
        absl::StrAppend(&ops, "flush chain ", table, " ", c, "\ndelete chain ", table, " ", c,
                        "\n");
      }
    }
    d.chains = std::move(chains);
    if (d.moved.empty()) continue;
    const std::string hash = absl::StrCat("jhash ip saddr . tcp sport mod ", kMaglevTableSize,
                                          " seed 0x", absl::Hex(options_.hash_seed));
    // A flow whose SYN was seen since the change follows the new table (`return`: on to the
    // forwarding table); so does a new one, recorded now; the rest were established before.
    absl::StrAppend(&ops, "add rule ", table, " ", chain, " ip saddr . tcp sport @", set,
                    " return\nadd rule ", table, " ", chain,
                    " tcp flags & (syn | ack) == syn add @", set,
                    " { ip saddr . tcp sport } return\nadd rule ", table, " ", chain, " ", hash,
                    " vmap @", map, "\n");
    absl::StrAppend(&jumps, "add rule ", table, " ingress meta pkttype host ip daddr ",
                    std::get<0>(key), " tcp dport ", std::get<1>(key), " jump ", chain, "\n");
  }
  if (next->empty()) {
    // No listener drains: no table (its hook costs every packet a lookup).
    return absl::StrCat("table ", table, "\ndelete table ", table, "\n");
  }
  // Just before the counters (-501) and the forwarding table (-500): a packet it forwards to a
  // draining member goes no further.
  return absl::StrCat("add table ", table, "\nadd chain ", table,
                      " ingress { type filter hook ingress device \"", options_.device,
                      "\" priority -502; policy accept; }\nflush chain ", table, " ingress\n", ops,
                      jumps);
}

Status L4Balancer::ExpireDrains() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  bool due = false;
  for (const auto& [key, d] : drains_) due |= !d.moved.empty() && d.until <= now;
  if (!due) return absl::OkStatus();
  auto next = drains_;
  PHOTON_ASSIGN_OR_RETURN(std::string script, DrainScript(listeners_, &next));
  PHOTON_RETURN_IF_ERROR(agent::net::NftRunIn(options_.netns, script));
  drains_ = std::move(next);
  return absl::OkStatus();
}

Status L4Balancer::Commit(const std::map<Key, L4Listener>& listeners, bool draining) {
  std::vector<L4Listener> list;
  for (const auto& [key, l] : listeners) list.push_back(l);
  PHOTON_ASSIGN_OR_RETURN(std::string script, RenderL4Ruleset(options_, device_mac_, list));
  // The drains go in the same transaction: an established flow whose slot moves is never
  // without its member.
  auto drains = drains_;
  PHOTON_ASSIGN_OR_RETURN(std::string drain_script, DrainScript(listeners, &drains));
  script += drain_script;
  std::set<std::string> want = VipsToAnnounce(listeners, draining);
  // Withdraw first, forward second, announce last: a VIP is announced only once this node
  // forwards it, and a withdrawn one drains away while the old table still forwards.
  std::string withdraw, announce;
  for (const auto& vip : announced_) {
    if (!want.count(vip)) {
      absl::StrAppend(&withdraw, "route del ", vip, "/32 proto ", options_.route_protocol, "\n");
    }
  }
  for (const auto& vip : want) {
    absl::StrAppend(&announce, "route replace blackhole ", vip, "/32 proto ",
                    options_.route_protocol, "\n");
  }
  auto batch = [&](const std::string& cmds) -> Status {
    if (cmds.empty()) return absl::OkStatus();
    ExecOptions o = In(options_.netns);
    o.stdin_data = cmds;
    return ExecOk({"ip", "-batch", "-"}, o).status();
  };
  PHOTON_RETURN_IF_ERROR(batch(withdraw));
  std::set<std::string> kept;
  for (const auto& vip : announced_) {
    if (want.count(vip)) kept.insert(vip);
  }
  announced_ = std::move(kept);
  PHOTON_RETURN_IF_ERROR(agent::net::NftRunIn(options_.netns, script));
  drains_ = std::move(drains);
  PHOTON_RETURN_IF_ERROR(batch(announce));
  announced_ = want;
  return absl::OkStatus();
}

Status L4Balancer::Apply(const L4Listener& listener) {
  PHOTON_RETURN_IF_ERROR(ValidateListener(listener));
  const Key key{listener.vip, listener.port, listener.protocol};
  // Members that stay in the table keep how they were reached: resolving them again costs two
  // `ip` runs each, on the path of every change (a dead member's removal included). A member
  // that comes back (or is new) is resolved afresh.
  std::map<std::string, L4Member> kept;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = listeners_.find(key);
    if (it != listeners_.end() && it->second.l3dsr_dscp == listener.l3dsr_dscp) {
      for (const L4Member& m : it->second.members) {
        if (Eligible(m)) kept[m.address] = m;
      }
    }
  }
  L4Listener resolved = listener;
  for (L4Member& m : resolved.members) {
    if (!Eligible(m)) continue;
    auto k = kept.find(m.address);
    if (k != kept.end() && m.forward == L4Forward::kAuto && m.mac.empty()) {
      m.forward = k->second.forward;
      m.mac = k->second.mac;
      continue;
    }
    PHOTON_RETURN_IF_ERROR(Resolve(listener, &m));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto next = listeners_;
  next[key] = std::move(resolved);
  PHOTON_RETURN_IF_ERROR(Commit(next, draining_));
  listeners_ = std::move(next);
  return absl::OkStatus();
}

Status L4Balancer::Remove(const std::string& vip, uint16_t port, L4Protocol protocol) {
  std::lock_guard<std::mutex> lock(mu_);
  auto next = listeners_;
  if (next.erase({vip, port, protocol}) == 0) {
    return absl::NotFoundError("no L4 listener " + L4ListenerName(vip, port, protocol));
  }
  PHOTON_RETURN_IF_ERROR(Commit(next, draining_));
  listeners_ = std::move(next);
  return absl::OkStatus();
}

Status L4Balancer::SetDraining(bool draining) {
  std::lock_guard<std::mutex> lock(mu_);
  PHOTON_RETURN_IF_ERROR(Commit(listeners_, draining));
  draining_ = draining;
  return absl::OkStatus();
}

Status L4Balancer::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  PHOTON_RETURN_IF_ERROR(Commit({}, true));
  listeners_.clear();
  std::string script;
  drains_.clear();
  for (const std::string& name :
       {options_.table, L4StatsTable(options_.table), options_.table + "_drain"}) {
    const std::string t = "table netdev " + name;
    absl::StrAppend(&script, t, "\ndelete ", t, "\n");
  }
  return agent::net::NftRunIn(options_.netns, script);
}

std::vector<std::string> L4Balancer::AnnouncedVips() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& v : announced_) out.push_back(v.substr(0, v.find('/')));
  return out;
}

StatusOr<uint64_t> L4Balancer::ForwardedPackets(const std::string& vip, uint16_t port,
                                                L4Protocol protocol) const {
  // `list table` of the small counters' table: `list counter` would fetch every table.
  PHOTON_ASSIGN_OR_RETURN(std::string out, ExecOk({"nft", "-j", "list", "table", "netdev",
                                                   L4StatsTable(options_.table)},
                                                  In(options_.netns)));
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (!doc.is_object() || !doc.contains("nftables")) {
    return absl::InternalError("nft list table: " + out);
  }
  const std::string name = "c_" + L4ListenerName(vip, port, protocol);
  for (const auto& item : doc["nftables"]) {
    if (item.contains("counter") && item["counter"].value("name", "") == name) {
      return item["counter"].value("packets", uint64_t{0});
    }
  }
  return absl::NotFoundError("no counter " + name + " (the listener has no eligible member)");
}

Status ConfigureDsrMember(const std::string& netns, const std::string& vip, uint8_t l3dsr_dscp,
                          const std::string& device) {
  if (!agent::net::ParseIpv4(vip).ok()) {
    return absl::InvalidArgumentError("vip: '" + vip + "' is not an IPv4 address");
  }
  static const std::regex name_re("^[A-Za-z0-9_.-]{1,15}$");
  if (l3dsr_dscp > 63 || (l3dsr_dscp != 0 && !std::regex_match(device, name_re))) {
    return absl::InvalidArgumentError("l3dsr: a DSCP of 1-63 and an interface name are needed");
  }
  if (l3dsr_dscp != 0) {
    const std::string t = "table netdev fiberlb_l3dsr_" + absl::StrReplaceAll(vip, {{".", "_"}});
    PHOTON_RETURN_IF_ERROR(agent::net::NftRunIn(
        netns,
        absl::StrCat(t, "\ndelete ", t, "\n", t,
                     " {\n  chain ingress {\n    type filter hook ingress device \"", device,
                     "\" priority -500; policy accept;\n    ip dscp ", static_cast<int>(l3dsr_dscp),
                     " ip daddr set ", vip, " ip dscp set 0\n  }\n}\n")));
  }
  PHOTON_RETURN_IF_ERROR(ExecOk({"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                                 "net.ipv4.conf.all.arp_announce=2"},
                                In(netns))
                             .status());
  ExecOptions o = In(netns);
  o.stdin_data = "link set lo up\naddress replace " + vip + "/32 dev lo\n";
  return ExecOk({"ip", "-batch", "-"}, o).status();
}

}  // namespace photon::fiberlb::l4
