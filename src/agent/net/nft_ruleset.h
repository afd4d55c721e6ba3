// Renders a port namespace's nftables ruleset: security groups as interval sets looked up once
// per packet (the rule count costs nothing per packet), anti-spoofing, conntrack state. The
// text replaces the whole table in one `nft -f` transaction (atomic: a packet sees the old or
// the new ruleset, never a mix).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "agent/net/port.h"

namespace photon::agent::net {

inline constexpr char kPortTable[] = "photon";    // table inet photon
inline constexpr char kPortIfName[] = "eth0";     // the port's interface in its namespace
inline constexpr char kTapIfName[] = "tap0";      // a VM port's tap (virtio-net) in it
inline constexpr char kRevisionChain[] = "rev_";  // + hash of the rendered ruleset
inline constexpr char kMembersChain[] = "mem_";   // + hash of the remote sets' members

// The ruleset body (without the revision marker) for a validated spec.
std::string RenderPortRules(const PortSpec& spec);

// A short hash of the rules text: the name suffix of the marker chain that says which
// ruleset a namespace holds, so a restarted agent compares instead of reapplying.
std::string RulesRevision(const std::string& rules);

// The remote sets' members (PortSpec::remote_sets) as nft commands that empty and fill each
// set; "" when the port has none. Not part of the rules (nor of their revision): a member
// joining or leaving a remote group updates the sets, the ruleset stays.
std::string RenderMembers(const PortSpec& spec);

// The full `nft -f` script: replaces table inet photon with `rules` plus its revision marker,
// then fills the remote sets with `members` (and marks their revision), in one transaction.
std::string RenderPortTransaction(const std::string& rules, const std::string& members = "");

// What a rule change does to one set: its elements as rendered in the rules text
// ("10.20.0.0-10.20.255.255 . 6 . 8000-8100"), with the set's type ("ipv4_addr . inet_proto .
// inet_service") and whether it holds intervals, so they can be encoded without nft.
struct SetDelta {
  std::string set;
  std::string type;
  bool interval = false;
  std::vector<std::string> remove, add;
};

// The element changes that turn a table holding `old_rules` into one holding `new_rules`, set
// by set (only sets that change); nullopt when the two differ otherwise (the table is then
// replaced). Every removal must precede every addition (interval sets refuse overlaps).
std::optional<std::vector<SetDelta>> RulesDeltaSets(const std::string& old_rules,
                                                    const std::string& new_rules);

// The `nft -f` script that turns a table holding `old_rules` into one holding `new_rules` in
// place, as one transaction: when the two differ only in their interval sets' elements (an SG
// rule's ports or addresses changed, the usual edit), the elements that went are deleted, the
// new ones added and the revision marker moved; the table, its counters and the flows it tracks
// stay, and the kernel work is a few elements instead of a whole table. "" when the rules
// differ otherwise (then the table is replaced).
std::string RenderRulesDelta(const std::string& old_rules, const std::string& new_rules);

// The `nft -f` script that only refills the remote sets and moves the members marker from
// `old_revision` ("" = none) to that of `members`: one transaction, the rules untouched.
std::string RenderMembersTransaction(const std::string& members, const std::string& old_revision);

}  // namespace photon::agent::net
