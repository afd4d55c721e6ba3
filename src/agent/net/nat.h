// Egress NAT and floating IPs on a node (seed 003: "SNAT at the node for instances without a
// floating IP; floating IPs as 1:1 NAT"), in the node's network namespace:
//
//   table ip photon_nat                          (one table, replaced whole in one transaction)
//     set cloud      the cloud's own ranges (VPC pool(s)): traffic between them is never NATed
//     map fip_in     floating IP → instance IP      prerouting: dnat (before routing, so the
//     map fip_out    instance IP → floating IP        packet is routed to the port's /32)
//     postrouting:   daddr in cloud → untouched; saddr with a floating IP → snat to it;
//                    saddr in cloud → masquerade (the node's address on the way out)
//
// Each floating IP is also a route `blackhole FIP/32 proto <route_protocol> metric
// <route_metric>`: the node's BIRD learns proto routes like the ports' /32s and announces it,
// so the rack router sends the floating IP's traffic to this node (the dnat rewrites it before
// the route is ever used). The metric marks the routes as this table's, so a sync removes only
// those (fiberlb's VIPs are blackhole proto routes too). Replies pass the same node's
// conntrack, so they leave with the floating IP as their source.
//
// Thread-safety: calls must not overlap (the agent makes them from one thread).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::net {

struct FloatingIpMapping {
  std::string address;     // the public address
  std::string private_ip;  // the instance's VPC address (a port on this node)
};

struct NatSpec {
  // Aligned CIDRs of the cloud's instance addresses (at least one when snat or mappings).
  std::vector<std::string> cloud_cidrs;
  bool snat = true;  // masquerade instances' egress to outside the cloud
  // With snat: only traffic leaving by this interface is NATed ("" = whichever it leaves by),
  // to `snat_address` when set (the node's egress address), else to the interface's address.
  std::string snat_interface;
  std::string snat_address;
  std::vector<FloatingIpMapping> floating_ips;
};

struct NatOptions {
  std::string host_netns;  // "" = this process's namespace, or /run/netns/NAME
  std::string table = "photon_nat";
  int route_protocol = 200;  // what the node's BIRD learns (as PortManager's port routes)
  int route_metric = 4242;   // marks this table's floating IP routes
};

// INVALID_ARGUMENT naming the field: bad or unaligned CIDRs, bad addresses, a floating IP
// inside the cloud's ranges, an address or instance mapped twice, a bad interface name.
Status ValidateNatSpec(const NatSpec& spec);
// The nft script that replaces the table (exposed for tests).
std::string RenderNatRuleset(const std::string& table, const NatSpec& spec);

class NodeNat {
 public:
  explicit NodeNat(NatOptions options) : options_(std::move(options)) {}
  // Replaces the table in one transaction, then adds missing floating IP routes and removes
  // those of floating IPs no longer in the spec (the new mapping is in place before its
  // route attracts traffic; a removed one stops attracting traffic after).
  Status Apply(const NatSpec& spec);
  // Removes the table and every floating IP route of it.
  Status Clear();
  // The floating IPs whose routes are in the kernel now.
  StatusOr<std::vector<std::string>> RoutedFloatingIps() const;

 private:
  Status SyncRoutes(const std::vector<std::string>& want);
  NatOptions options_;
};

}  // namespace photon::agent::net
