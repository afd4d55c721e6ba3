#include "agent/net/nft_ruleset.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/net/ipv4.h"
#include "openssl/sha.h"

namespace photon::agent::net {
namespace {

using Range = std::pair<uint64_t, uint64_t>;  // inclusive

// An allow rule as a box: address range × port range (ports 0-65535 when the rule has none).
struct Box {
  Range addr;
  Range port;
};

Range AddrRange(const std::string& cidr) {
  Cidr c = ParseCidr(cidr, "cidr").value();  // validated before rendering
  uint64_t size = uint64_t{1} << (32 - c.len);
  return {c.base, c.base + size - 1};
}

std::vector<Range> Union(std::vector<Range> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<Range> out;
  for (const Range& r : ranges) {
    if (!out.empty() && r.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// nftables refuses overlapping elements in an interval set of concatenations, and SG rules
// overlap freely. Sweep the address axis: between two consecutive rule boundaries the same
// rules are active, so that slice gets the union of their port ranges; equal neighbouring
// slices merge. The result is disjoint and matches exactly the union of the boxes.
std::vector<Box> Disjoint(const std::vector<Box>& boxes) {
  std::map<uint64_t, std::vector<std::pair<int, Range>>> events;  // +1 open, -1 close
  for (const Box& b : boxes) {
    events[b.addr.first].push_back({+1, b.port});
    events[b.addr.second + 1].push_back({-1, b.port});
  }
  std::multiset<Range> active;
  std::vector<Box> out;
  std::vector<Range> prev_ports;
  size_t prev_start = 0;  // first box of the previous slice
  for (auto it = events.begin(); it != events.end(); ++it) {
    for (const auto& [delta, port] : it->second) {
      if (delta > 0) {
        active.insert(port);
      } else {
        active.erase(active.find(port));
      }
    }
    auto next = std::next(it);
    if (active.empty() || next == events.end()) continue;
    std::vector<Range> ports = Union({active.begin(), active.end()});
    Range addr{it->first, next->first - 1};
    if (!out.empty() && out.back().addr.second + 1 == addr.first && ports == prev_ports) {
      for (size_t i = prev_start; i < out.size(); ++i) out[i].addr.second = addr.second;
      continue;
    }
    prev_start = out.size();
    for (const Range& p : ports) out.push_back({addr, p});
    prev_ports = std::move(ports);
  }
  return out;
}

std::string AddrText(const Range& r) {
  if (r.first == r.second) return FormatIpv4(static_cast<uint32_t>(r.first));
  return FormatIpv4(static_cast<uint32_t>(r.first)) + "-" +
         FormatIpv4(static_cast<uint32_t>(r.second));
}

std::string PortText(const Range& r) {
  if (r.first == r.second) return std::to_string(r.first);
  return std::to_string(r.first) + "-" + std::to_string(r.second);
}

std::string SetDecl(const std::string& name, const std::string& type,
                    const std::vector<std::string>& elements) {
  std::string s = "  set " + name + " { type " + type + "; flags interval;";
  if (!elements.empty()) s += " elements = { " + absl::StrJoin(elements, ", ") + " }";
  return s + " }\n";
}

// The three sets of one direction: every protocol (address), protocol without ports
// (address . proto), and protocol with ports (address . proto . port).
std::string DirectionSets(const std::string& dir, const std::vector<SgRule>& rules, Direction d) {
  std::vector<Box> any;
  std::map<int, std::vector<Box>> by_proto, ported;
  for (const SgRule& r : rules) {
    if (r.direction != d || !r.remote_set.empty()) continue;
    Box b{AddrRange(r.remote_cidr), {0, 0}};
    if (r.protocol < 0) {
      any.push_back(b);
    } else if (r.port_from == 0 && r.port_to == 0) {
      by_proto[r.protocol].push_back(b);
    } else {
      b.port = {static_cast<uint64_t>(r.port_from), static_cast<uint64_t>(r.port_to)};
      ported[r.protocol].push_back(b);
    }
  }
  std::vector<std::string> any_el, proto_el, port_el;
  for (const Box& b : Disjoint(any)) any_el.push_back(AddrText(b.addr));
  for (const auto& [proto, boxes] : by_proto) {
    for (const Box& b : Disjoint(boxes))
      proto_el.push_back(AddrText(b.addr) + " . " + std::to_string(proto));
  }
  for (const auto& [proto, boxes] : ported) {
    for (const Box& b : Disjoint(boxes)) {
      port_el.push_back(AddrText(b.addr) + " . " + std::to_string(proto) + " . " +
                        PortText(b.port));
    }
  }
  return SetDecl(dir + "_any", "ipv4_addr", any_el) +
         SetDecl(dir + "_l4", "ipv4_addr . inet_proto", proto_el) +
         SetDecl(dir + "_ports", "ipv4_addr . inet_proto . inet_service", port_el);
}

// The rules naming a remote group's set, one nft rule each (their number is that of such SG
// rules, not of members: the set is a hash lookup).
std::string RemoteSetRules(const std::vector<SgRule>& rules, Direction d) {
  const std::string addr = d == Direction::kIngress ? "ip saddr @" : "ip daddr @";
  std::string s;
  for (const SgRule& r : rules) {
    if (r.direction != d || r.remote_set.empty()) continue;
    s += "    " + addr + r.remote_set;
    if (r.protocol >= 0) s += " meta l4proto " + std::to_string(r.protocol);
    if (r.port_from != 0 || r.port_to != 0) {
      s += " th dport " +
           PortText({static_cast<uint64_t>(r.port_from), static_cast<uint64_t>(r.port_to)});
    }
    s += " accept\n";
  }
  return s;
}

// A rules text split into its interval sets' elements (by set name) and the rest.
struct SplitRules {
  std::string skeleton;
  std::map<std::string, std::set<std::string>> elements;
  std::map<std::string, std::pair<std::string, bool>> types;  // set → (type, interval)
};

// Reads back what SetDecl wrote: "  set NAME { type T; flags interval; elements = { A, B } }".
SplitRules Split(const std::string& rules) {
  constexpr std::string_view kSet = "  set ", kType = "{ type ", kElements = " elements = { ",
                             kEnd = " } }";
  SplitRules out;
  for (std::string_view rest = rules; !rest.empty();) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol == std::string_view::npos ? rest.size() : eol + 1);
    rest.remove_prefix(line.size());
    if (line.substr(0, kSet.size()) != kSet) {
      out.skeleton.append(line);
      continue;
    }
    std::string name(line.substr(kSet.size(), line.find(' ', kSet.size()) - kSet.size()));
    if (size_t t = line.find(kType); t != std::string_view::npos) {
      t += kType.size();
      out.types[name] = {std::string(line.substr(t, line.find(';', t) - t)),
                         line.find("flags interval;") != std::string_view::npos};
    }
    size_t at = line.find(kElements);
    if (at == std::string_view::npos) {
      out.skeleton.append(line);
      continue;
    }
    std::string_view list = line.substr(at + kElements.size());
    list = list.substr(0, list.rfind(kEnd));
    std::vector<std::string> parts = absl::StrSplit(std::string(list), ", ", absl::SkipEmpty());
    out.elements[name].insert(parts.begin(), parts.end());
    out.skeleton.append(line.substr(0, at)).append(" }\n");
  }
  return out;
}

std::string ElementCommand(const char* verb, const std::string& set,
                           const std::vector<std::string>& elements) {
  if (elements.empty()) return "";
  return absl::StrCat(verb, " element inet ", kPortTable, " ", set, " { ",
                      absl::StrJoin(elements, ", "), " }\n");
}

}  // namespace

std::optional<std::vector<SetDelta>> RulesDeltaSets(const std::string& old_rules,
                                                    const std::string& new_rules) {
  if (old_rules.empty() || new_rules.empty()) return std::nullopt;
  SplitRules before = Split(old_rules), after = Split(new_rules);
  if (before.skeleton != after.skeleton) return std::nullopt;
  std::set<std::string> names;
  for (const auto& [name, e] : before.elements) names.insert(name);
  for (const auto& [name, e] : after.elements) names.insert(name);
  std::vector<SetDelta> out;
  for (const std::string& name : names) {
    const std::set<std::string>& was = before.elements[name];
    const std::set<std::string>& is = after.elements[name];
    SetDelta d;
    d.set = name;
    std::tie(d.type, d.interval) = after.types[name];
    std::set_difference(was.begin(), was.end(), is.begin(), is.end(), std::back_inserter(d.remove));
    std::set_difference(is.begin(), is.end(), was.begin(), was.end(), std::back_inserter(d.add));
    if (!d.remove.empty() || !d.add.empty()) out.push_back(std::move(d));
  }
  return out;
}

std::string RenderRulesDelta(const std::string& old_rules, const std::string& new_rules) {
  std::optional<std::vector<SetDelta>> sets = RulesDeltaSets(old_rules, new_rules);
  if (!sets) return "";
  // Every removal before any addition: an element that replaces an overlapping one must not
  // meet it (nftables refuses overlaps in interval sets).
  std::string deletes, adds;
  for (const SetDelta& d : *sets) {
    deletes += ElementCommand("delete", d.set, d.remove);
    adds += ElementCommand("add", d.set, d.add);
  }
  // Listing the old marker first refuses the script in nft itself, before anything reaches
  // the kernel, when the table is not the one we think (changed behind our back): a
  // transaction the kernel refuses costs an RCU grace period in its abort (~15 ms here).
  const std::string old_marker =
      absl::StrCat(kPortTable, " ", kRevisionChain, RulesRevision(old_rules));
  return absl::StrCat("list chain inet ", old_marker, "\n", deletes, adds, "delete chain inet ",
                      old_marker, "\nadd chain inet ", kPortTable, " ", kRevisionChain,
                      RulesRevision(new_rules), "\n");
}

std::string RenderPortRules(const PortSpec& spec) {
  const std::string eth = std::string("\"") + kPortIfName + "\"";
  std::string vpc = ParseCidr(spec.vpc_cidr, "vpc").value().ToString();
  std::string s;
  s += DirectionSets("in", spec.rules, Direction::kIngress);
  s += DirectionSets("out", spec.rules, Direction::kEgress);
  for (const auto& [name, members] : spec.remote_sets)
    s += "  set " + name + " { type ipv4_addr; }\n";
  s += "  counter spoofed {}\n  counter refused_in {}\n  counter refused_out {}\n";
  s += "  chain ingress {\n"
       "    ct state established,related accept\n"
       "    ct state invalid drop\n"
       "    ip saddr " +
       vpc +
       " accept\n"
       "    ip saddr @in_any accept\n"
       "    ip saddr . meta l4proto @in_l4 accept\n"
       "    ip saddr . meta l4proto . th dport @in_ports accept\n" +
       RemoteSetRules(spec.rules, Direction::kIngress) + "    counter name refused_in drop\n  }\n";
  // Anti-spoofing comes before everything, conntrack included: a port emits only its address.
  std::string own = spec.ip;  // and the L4 VIPs it answers from (DSR)
  if (!spec.lb_vips.empty()) own = "{ " + spec.ip + ", " + absl::StrJoin(spec.lb_vips, ", ") + " }";
  s += "  chain egress {\n"
       "    ip saddr != " +
       own +
       " counter name spoofed drop\n"
       "    ct state established,related accept\n"
       "    ct state invalid drop\n"
       "    ip daddr { 169.254.1.1, 169.254.1.2 } accept\n"
       "    ip daddr " +
       vpc +
       " accept\n"
       "    ip daddr @out_any accept\n"
       "    ip daddr . meta l4proto @out_l4 accept\n"
       "    ip daddr . meta l4proto . th dport @out_ports accept\n" +
       RemoteSetRules(spec.rules, Direction::kEgress) + "    counter name refused_out drop\n  }\n";
  // The port's interface carries IPv4 only; the verdict maps send it through the SG chains
  // (local workload: input/output; a VM behind a tap: forward).
  s += "  chain input {\n    type filter hook input priority filter; policy drop;\n"
       "    iifname . meta nfproto vmap { \"lo\" . ipv4 : accept, \"lo\" . ipv6 : accept, " +
       eth + " . ipv4 : jump ingress }\n  }\n";
  s += "  chain output {\n    type filter hook output priority filter; policy drop;\n"
       "    oifname . meta nfproto vmap { \"lo\" . ipv4 : accept, \"lo\" . ipv6 : accept, " +
       eth + " . ipv4 : jump egress }\n  }\n";
  s += "  chain forward {\n    type filter hook forward priority filter; policy drop;\n"
       "    meta nfproto ipv4 iifname " +
       eth +
       " jump ingress\n"
       "    meta nfproto ipv4 oifname " +
       eth + " jump egress\n  }\n";
  return s;
}

std::string RulesRevision(const std::string& rules) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(rules.data()), rules.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string RenderMembers(const PortSpec& spec) {
  std::string s;
  for (const auto& [name, members] : spec.remote_sets) {
    absl::StrAppend(&s, "flush set inet ", kPortTable, " ", name, "\n");
    if (members.empty()) continue;
    std::set<std::string> unique(members.begin(), members.end());  // nft refuses duplicates
    absl::StrAppend(&s, "add element inet ", kPortTable, " ", name, " { ",
                    absl::StrJoin(unique, ", "), " }\n");
  }
  return s;
}

std::string RenderPortTransaction(const std::string& rules, const std::string& members) {
  std::string marker;
  if (!members.empty())
    absl::StrAppend(&marker, "  chain ", kMembersChain, RulesRevision(members), " {}\n");
  return absl::StrCat("table inet ", kPortTable, "\ndelete table inet ", kPortTable,
                      "\ntable inet ", kPortTable, " {\n  chain ", kRevisionChain,
                      RulesRevision(rules), " {}\n", marker, rules, "}\n", members);
}

std::string RenderMembersTransaction(const std::string& members, const std::string& old_revision) {
  std::string s = members;
  if (!old_revision.empty())
    absl::StrAppend(&s, "delete chain inet ", kPortTable, " ", kMembersChain, old_revision, "\n");
  if (!members.empty())
    absl::StrAppend(&s, "add chain inet ", kPortTable, " ", kMembersChain, RulesRevision(members),
                    "\n");
  return s;
}

}  // namespace photon::agent::net
