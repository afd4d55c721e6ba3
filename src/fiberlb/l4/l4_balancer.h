// The stateless L4 load balancer of one LB node: packets to a VIP listener are spread over its
// members by a Maglev table (maglev.h) in the kernel's nftables netdev ingress hook and sent on
// to the chosen member at layer 2 (DSR: the member holds the VIP on its loopback and answers
// the client directly). No connection state is kept on the LB node: every node computes the
// same table from the same member list with the same hash seed, so whichever node the router's
// ECMP picks for a packet forwards it to the same member, and losing a node breaks no flow.
//
// Kernel state, per node: one table `netdev <table>` (a map of 65,537 slots → member chain per
// listener, one ingress rule each) and `netdev <table>_stats` (a named packet counter per
// listener, counted just before), replaced whole in one nft transaction on every change; and
// one blackhole route VIP/32 with `route_protocol` per VIP
// that is announced, which the node's BIRD learns and exports with BGP (the same integration
// as prismnet's ports, src/agent/net/bird.h). A VIP is announced while the node is not draining
// and one of its listeners has a healthy member; the route is withdrawn otherwise.
//
// Members on-link on `device` get the frame with their MAC (L2 DSR). Members behind a router
// get L3DSR when the listener has a DSCP: the destination becomes the member's address and the
// DSCP marks the VIP, and the member (ConfigureDsrMember with that DSCP) turns the packet back
// into one for the VIP before its IP stack sees it. Without a DSCP such a member is refused.
// Thread-safety: all methods may be called from several threads (one mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/status.h"

namespace photon::fiberlb::l4 {

enum class L4Protocol { kTcp, kUdp };
const char* L4ProtocolName(L4Protocol protocol);  // "tcp" / "udp"

enum class L4Forward {
  kAuto,  // decided at Apply: on-link → kL2, behind a router → kL3 (needs l3dsr_dscp)
  kL2,    // frame to the member's MAC on the device
  kL3,    // L3DSR: destination rewritten to the member, VIP marked by the listener's DSCP
};

struct L4Member {
  std::string address;  // IPv4, on-link on the LB node's device; identifies it in the table
  std::string mac;      // "" = resolved from the node's neighbour table (ARP) at Apply
  uint32_t weight = 1;  // 0 = drained: out of the table
  bool healthy = true;  // false = out of the table (health checks are the caller's)
  L4Forward forward = L4Forward::kAuto;
};

struct L4Listener {
  std::string vip;  // IPv4
  uint16_t port = 0;
  L4Protocol protocol = L4Protocol::kTcp;
  std::vector<L4Member> members;
  // 1-63: the DSCP marking this VIP towards members behind a router (L3DSR); the same on every
  // LB node and on those members. 0: such members are refused.
  uint8_t l3dsr_dscp = 0;
  // TCP: when a change moves slots to another member (a member removed, re-weighted to 0 or
  // added; not one that turned unhealthy), the flows established before it stay with the member
  // they had for this long (below). 0: they follow the new table (and are reset by it).
  uint32_t drain_ms = 0;
};

struct L4BalancerOptions {
  std::string netns;   // the LB node's network namespace (/run/netns/NAME); "" = this one
  std::string device;  // where VIP packets arrive from the router and leave to members
  std::string table = "fiberlb_l4";
  // Seed of nftables' jhash. It must be the same on every LB node of a VIP (nft would pick a
  // random one per rule otherwise, and each node would send a flow to a different member).
  uint32_t hash_seed = 0x70686f74;
  // Kernel route protocol of the VIP routes: the one the node's BIRD learns and announces
  // (agent::net::BirdOptions::route_protocol, 200 by default).
  int route_protocol = 200;
  std::chrono::milliseconds resolve_timeout{3000};  // ARP for a member MAC
};

// The nft script (one transaction) that makes the table hold exactly `listeners`; members
// taken into account are the healthy ones with weight > 0, which must be kL2 with a MAC or
// kL3. Pure.
StatusOr<std::string> RenderL4Ruleset(const L4BalancerOptions& options,
                                      const std::string& device_mac,
                                      const std::vector<L4Listener>& listeners);

// Name of a listener's map and counter in the table ("tcp_10_0_0_1_80").
std::string L4ListenerName(const std::string& vip, uint16_t port, L4Protocol protocol);
// The table holding the listeners' counters ("<table>_stats").
std::string L4StatsTable(const std::string& table);

class L4Balancer {
 public:
  // Checks the device and reads its MAC; adopts VIP routes a previous run left (withdrawn at
  // the next change unless a listener still announces them).
  static StatusOr<std::unique_ptr<L4Balancer>> Open(const L4BalancerOptions& options);

  // Creates or replaces the listener (vip, port, protocol) with `listener.members`. On error
  // (bad input: INVALID_ARGUMENT naming the field; an unresolvable or off-link member) nothing
  // changes.
  Status Apply(const L4Listener& listener);
  Status Remove(const std::string& vip, uint16_t port, L4Protocol protocol);
  // A draining node withdraws every VIP (the router moves its flows to the other nodes, which
  // compute the same table) but keeps forwarding what still arrives.
  Status SetDraining(bool draining);
  // Withdraws every VIP and deletes the table.
  Status Close();
  // Ends the flow drains whose drain_ms has passed (call it periodically).
  Status ExpireDrains();

  std::vector<std::string> AnnouncedVips() const;
  // Packets the listener's rule forwarded on this node.
  StatusOr<uint64_t> ForwardedPackets(const std::string& vip, uint16_t port,
                                      L4Protocol protocol) const;

 private:
  using Key = std::tuple<std::string, uint16_t, L4Protocol>;
  explicit L4Balancer(L4BalancerOptions options) : options_(std::move(options)) {}
  // Fills in forward (and the MAC of an on-link member).
  Status Resolve(const L4Listener& listener, L4Member* member) const;
  StatusOr<std::string> ResolveMac(const std::string& address) const;
  // A listener's flow drain: for `until`, packets of flows that were established before the
  // last change and whose slot moved (`moved`: slot → the member it had) still go to that
  // member. New flows are told apart by their SYN, which the drain table records (a set with
  // a timeout) on the way to the new table: stateless otherwise.
  struct Drain {
    std::map<uint32_t, std::string> moved;
    std::map<std::string, L4Member> members;  // the members in `moved`, resolved
    std::chrono::steady_clock::time_point until{};
    std::set<std::string> chains;  // their chains in the drain table
    bool created = false;          // its set, map and chain exist in the drain table
  };
  Status Commit(const std::map<Key, L4Listener>& listeners, bool draining);
  // The nft commands that bring the drain table (`<table>_drain`) from drains_ to `next`
  // (updated in place), for listeners going from listeners_ to `listeners`.
  StatusOr<std::string> DrainScript(const std::map<Key, L4Listener>& listeners,
                                    std::map<Key, Drain>* next) const;

  const L4BalancerOptions options_;
  std::string device_mac_;
  mutable std::mutex mu_;
  std::map<Key, L4Listener> listeners_;
  std::set<std::string> announced_;
  bool draining_ = false;
  std::map<Key, Drain> drains_;
};

// The member side of DSR, run on a member (or its namespace `netns`): the VIP on its loopback
// so that it accepts packets for it and answers from it, and ARP limited (arp_ignore=1,
// arp_announce=2) so that the member never answers ARP for the VIP, which belongs to the LB
// nodes' routes. With `l3dsr_dscp` (1-63) and `device`, also the L3DSR side: packets arriving
// on `device` with that DSCP get the VIP back as destination (and DSCP 0), in an nftables netdev
// table `fiberlb_l3dsr_<vip>` — stateless, before the IP stack.
Status ConfigureDsrMember(const std::string& netns, const std::string& vip, uint8_t l3dsr_dscp = 0,
                          const std::string& device = "");

}  // namespace photon::fiberlb::l4
