// The node's NAT (docs/networking.md "Floating IPs and egress"): floating IPs as 1:1 NAT and
// SNAT of the other instances' egress, in the node's network namespace with net::NodeNat
// (one nftables table replaced in one transaction; each floating IP a proto route the node's
// BIRD announces).
//
// What to map comes from the Ports the agent already watches: photon-server writes a
// FloatingIp's address into the Port of its instance (spec.floatingIp) and the Port follows
// the instance's placement, so the node that runs the instance is the one that maps it, and
// a Port that goes (the instance's delete) takes its mapping along.
//
// Thread-safety: Kick from any thread; Open, then Run on one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/informer.h"
#include "agent/net/nat.h"
#include "common/metrics.h"
#include "common/status.h"

namespace photon::agent {

struct FloatingIpOptions {
  std::string node_name;
  std::string host_netns;                // "" = the agent's own network namespace
  std::vector<std::string> cloud_cidrs;  // the cloud's VPC ranges: never NATed
  std::string snat_interface;            // SNAT egress leaving by it ("" with no address: off)
  std::string snat_address;              // SNAT to this address (else the interface's)
  int resync_seconds = 10;
};

struct AgentOptions;
// The agent's --nat-cloud-cidrs/--snat-* flags, checked (INVALID_ARGUMENT naming the flag).
StatusOr<FloatingIpOptions> FloatingIpOptionsFrom(const AgentOptions& options);

class FloatingIps {
 public:
  FloatingIps(FloatingIpOptions options, const Informer* ports, MetricsRegistry* metrics);
  // Applies what the Ports ask for now (also removes what a previous run left behind).
  Status Open();
  // A Port changed: apply again soon.
  void Kick();
  // Applies on every Kick and every resync_seconds until *stop.
  void Run(const std::atomic<bool>* stop);
  // The NAT the node's Ports ask for (exposed for tests).
  static net::NatSpec Want(const FloatingIpOptions& options,
                           const std::vector<nlohmann::json>& ports);

 private:
  Status Sync();

  const FloatingIpOptions options_;
  const Informer* ports_;
  net::NodeNat nat_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;
  std::string applied_;  // the rendered ruleset last applied ("" = table removed)
  bool opened_ = false;
  Counter* applies_;
  Counter* failures_;
  Gauge* mapped_;
};

}  // namespace photon::agent
