// What the node data path needs to know about one port (one instance IP): the desired state
// PortManager reconciles towards. Filled by the agent from the control plane's Port object and
// the SecurityGroup objects it names (a rule naming a remote security group names a set of
// member addresses, PortSpec::remote_sets, which the node updates without replacing the
// ruleset when only the members change).
// Thread-safety: plain values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::net {

enum class Direction { kIngress, kEgress };

// One allow rule. Everything not allowed is dropped, except: replies to allowed traffic
// (stateful, conntrack), traffic within the port's own VPC, and egress to the gateway and the
// metadata service.
struct SgRule {
  Direction direction = Direction::kIngress;
  int protocol = -1;  // -1 every protocol, 1 icmp, 6 tcp, 17 udp
  int port_from = 0;  // tcp/udp: destination ports [port_from, port_to]; 0/0 = every port
  int port_to = 0;
  std::string remote_cidr;  // source (ingress) or destination (egress), aligned CIDR
  // Instead of remote_cidr: the addresses of a remote security group's members, the set of
  // this name in PortSpec::remote_sets ([a-z0-9_], 1-32 characters).
  std::string remote_set;
};

struct PortSpec {
  std::string instance_id;  // [A-Za-z0-9._-], 1-63 chars: names the port namespace
  std::string ip;           // the instance's address (a /32 on the node)
  std::string mac;          // of the instance's interface, unicast aa:bb:cc:dd:ee:ff
  std::string subnet_cidr;  // contains ip
  std::string vpc_cidr;     // contains subnet_cidr
  std::vector<SgRule> rules;
  std::map<std::string, std::vector<std::string>> remote_sets;  // name → IPv4 addresses
  // A VM's port: the address is the guest's, behind the tap "tap0" in the port namespace
  // (the namespace routes between eth0 and the tap, so its forward hook enforces the rules).
  bool tap = false;
  // L4 LoadBalancer VIPs the port also sends from (DSR: the workload holds them on its
  // namespace's loopback and answers the LB's clients from them); the anti-spoofing admits
  // these and the port's ip, nothing else. Validated IPv4 addresses.
  std::vector<std::string> lb_vips;
};

// INVALID_ARGUMENT unless [A-Za-z0-9._-], 1-63 characters.
Status ValidateInstanceId(const std::string& id);

// INVALID_ARGUMENT naming the field ("rules[3].port_to: ...") when the spec cannot be honoured.
Status ValidatePortSpec(const PortSpec& spec);

}  // namespace photon::agent::net
