// The agent's side of instance networking: turns the control plane's Port of an instance (and
// the Vpc and SecurityGroups it names) into a port namespace on this node with PortManager
// (src/agent/net), and tells the providers which namespace a workload runs in.
//
// Modes (AgentOptions::network_mode): "ports" wires every networked instance; "none" refuses
// them (only spec.network.hostNetwork instances run); "shared" (development and tests) runs
// them in the node's network and refuses security groups, which it cannot enforce there, and
// VMs, which get no interface there. In "ports" a VM's port has the tap its QEMU attaches to.
//
// L4 LoadBalancer members (docs/fiberlb.md "L4 LoadBalancers"): an instance of a RegionService
// whose LoadBalancer is type L4 answers its clients directly (DSR), so its network must hold
// the VIP. In the node's network (mode "shared", or hostNetwork) Wire puts the VIP on the
// node's loopback (arp_ignore=1, arp_announce=2: the node never answers ARP for it) and LbVipOf
// reports it (status.details["network.lbVip"], which the fiberlb provider waits for before it
// makes the instance a member, at the node's address in details["network.lbAddress"]); the VIP
// leaves the loopback with the node's last instance that holds it. In mode "ports" (a VPC
// instance in its port namespace) the LB nodes reach the member at its VPC address by L3DSR
// (the packet's destination is that address, its DSCP marks the VIP: the LoadBalancer's
// status.details["l3dsrDscp"]), and Wire, after the port, makes the namespace hold the VIP
// (HoldPortVip): the VIP on the namespace's loopback (label kLbVipLabel, arp_ignore=1,
// arp_announce=2 there), a netdev table kL3dsrTable on its eth0 that turns "DSCP mark" back
// into "destination VIP" before the IP stack, the port's anti-spoofing admitting the VIP as a
// source (PortSpec::lb_vips), and on the node the port's host veth's strict rp_filter replaced
// by its nftables equivalent plus the VIP (table inet kVipSourceTable: only the port's address
// and its VIP enter from that veth). lbAddress is then the VPC address. A VM cannot hold the
// VIP in its guest: refused (FAILED_PRECONDITION naming spec.vm).
//
// Thread-safety: thread-safe; calls for one instance must not overlap (the controller's work
// queue serialises a key).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/api_client.h"
#include "agent/net/port_manager.h"
#include "common/metrics.h"
#include "common/status.h"
#include "photon/compute.pb.h"
#include "photon/network.pb.h"

namespace photon::agent {

// The address label of the L4 VIPs an agent puts on the node's loopback.
inline constexpr char kLbVipLabel[] = "lo:plb";
// In a port namespace holding an L4 VIP: the netdev table restoring the VIP from the DSCP.
inline constexpr char kL3dsrTable[] = "photon_l3dsr";
// On the node: the source check of the port veths whose port holds an L4 VIP (see above).
inline constexpr char kVipSourceTable[] = "photon_vipsrc";

// A SecurityGroup's members (the addresses of the Ports carrying it, comma-separated) in its
// status.details, as photon-server's network controller keeps them (network_controller.h).
inline constexpr char kSecurityGroupMembersDetail[] = "prismnet.members";
}  // namespace photon::agent

namespace photon::agent {

struct AgentOptions;
// Renders the node's BIRD2 configuration from the agent's options (bird_* fields), checks it
// and has the running BIRD load it (net::ReconfigureBird). OK when bird_config is unset.
Status ConfigureNodeBird(const AgentOptions& options);

struct WiringOptions {
  std::string mode = "none";  // ports, none, shared
  std::string netns_prefix = "photon-port-";
  std::string host_netns;  // "" = the agent's own network namespace
  std::string node_name;
};

class PortWiring {
 public:
  PortWiring(WiringOptions options, ApiClient* api, MetricsRegistry* metrics);

  // "ports": prepares the node and reads back the ports already there (adoption).
  Status Open();
  const std::string& mode() const { return options_.mode; }

  // Makes the instance's network what its spec asks for, before its workload starts (and on
  // every later pass, so security group changes are applied). `port` is the instance's Port
  // from the agent's watch (nullopt: not seen yet). Returns the namespace the workload runs in
  // ("" = the node's). UNAVAILABLE while the Port is not there yet; FAILED_PRECONDITION when
  // this node cannot honour the request (mode, unsupported rule), naming why.
  StatusOr<std::string> Wire(const compute::ComputeInstance& instance,
                             const std::optional<nlohmann::json>& port);
  // Removes the instance's port (nothing when it has none).
  Status Unwire(const std::string& instance_id);
  // The namespace Wire chose for an instance ("" = the node's or unknown).
  std::string NetnsOf(const std::string& instance_id) const;
  // The L4 LoadBalancer VIP Wire put on the node's loopback for an instance ("" none).
  std::string LbVipOf(const std::string& instance_id) const;
  // At a start: removes the L4 VIPs on the node's loopback (label kLbVipLabel) that none of
  // `running` (this node's instances that should run) needs — left by an agent that was down
  // while the last replica holding one was deleted. Any LoadBalancer that cannot be read
  // stops the sweep (nothing is removed after it).
  Status SweepLbVips(const std::vector<compute::ComputeInstance>& running);
  // The address the LB nodes reach such a member at: the node's source address on its default
  // route ("" until a VIP was held).
  std::string LbAddress() const;
  // The address the LB nodes reach an instance holding a VIP at: its VPC address when the VIP
  // is in its port namespace, else LbAddress().
  std::string LbAddressOf(const std::string& instance_id) const;
  // Scale-down drain of a RegionService replica being deleted (`waited` since its delete was
  // first seen): "" once it may go — its RegionService has no LoadBalancer (any more), or the
  // LoadBalancer no longer lists it (status.details["member.<name>"]: L4, out of every LB
  // node's table, its established flows kept there by fiberlb's drain; L7, drained by HAProxy)
  // and, for an L4 member holding the VIP, no TCP connection to the VIP is established on this
  // node any more — or details.drainTimeoutMs has passed; otherwise why it waits.
  std::string LbDrainPending(const compute::ComputeInstance& instance,
                             std::chrono::steady_clock::duration waited);
  // Instance ids with a port on this node.
  std::vector<std::string> PortIds() const;
  // Kernel changes made by PortManager: adopting unchanged ports makes none.
  int64_t changes() const { return ports_ ? ports_->changes() : 0; }

 private:
  StatusOr<net::PortSpec> Resolve(const std::string& ns, const network::Port& port);
  StatusOr<std::string> VpcCidr(const std::string& ns, const std::string& vpc);
  // The VIP of the instance's RegionService's L4 LoadBalancer ("" none, or not allocated yet),
  // and with `dscp` its L3DSR mark (UNAVAILABLE while the LoadBalancer has none yet).
  StatusOr<std::string> L4VipFor(const compute::ComputeInstance& instance, int* dscp = nullptr);
  // An L4 VIP held in a port namespace (mode "ports").
  struct PortVip {
    std::string vip;  // "" none
    int dscp = 0;
    std::string ip;       // the port's address
    std::string host_if;  // the port's host veth
  };
  // Makes the port of `spec` hold `want` (vip "" = none), changing only what differs from what
  // it held (read from the namespace at the first call for a port: adoption after a restart,
  // and with `recheck` when it held a VIP: the port may have been made anew).
  Status HoldPortVip(const net::PortSpec& spec, PortVip want, bool recheck);
  // What the port's namespace holds (vip "" none), found in the kernel.
  StatusOr<PortVip> ReadPortVip(const std::string& instance_id) const;
  Status AddPortVip(const std::string& netns, const PortVip& v);
  Status RemovePortVip(const std::string& netns, const PortVip& v, bool namespace_too);
  std::string HostIfOf(const std::string& instance_id) const;
  // Holds `vip` ("" none) on the node's loopback for the instance, releasing what it held.
  Status HoldLbVip(const std::string& instance_id, const std::string& vip);
  Status AddGroupRules(const std::string& ns, const std::string& group, net::PortSpec* spec);
  // A rule's remote security group as a set of the spec: its members' addresses, read from
  // the group's status (the control plane keeps them there, docs/networking.md).
  StatusOr<std::string> AddRemoteSet(const std::string& ns, const std::string& group,
                                     net::PortSpec* spec);

  const WiringOptions options_;
  ApiClient* api_;
  std::unique_ptr<net::PortManager> ports_;
  mutable std::mutex mu_;
  std::mutex vipsrc_mu_;  // serialises the changes of the node's kVipSourceTable
  std::map<std::string, std::string> netns_;      // instance id -> namespace path
  std::map<std::string, std::string> vpc_cidrs_;  // "ns/vpc" -> CIDR (immutable)
  std::map<std::string, std::string> lb_vips_;    // instance id -> VIP on the node's lo
  std::map<std::string, PortVip> port_vips_;      // instance id -> VIP in its port namespace
  std::string lb_address_;                        // see LbAddress
  Counter* applies_;
  Counter* failures_;
  Histogram* apply_seconds_;
  Gauge* kernel_changes_;
  Gauge* set_updates_;
};

}  // namespace photon::agent
