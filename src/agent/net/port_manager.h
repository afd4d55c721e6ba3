// PortManager: the node data path of seed 003's routed VPC design, one port namespace per
// instance IP.
//
//   node (host netns)                         port namespace PREFIX<instance id>
//   lo: 169.254.1.1/32 (gateway)               eth0: IP/32, MAC; default via 169.254.1.1 onlink
//       169.254.1.2/32 (metadata)              table inet photon: SGs, anti-spoof, conntrack
//   pcXXXX: 169.254.32.0/19 link address  ←veth→  eth0
//   route IP/32 dev pcXXXX proto 200   → learned by BIRD (kernel protocol) and announced
//
// A VM's port (PortSpec::tap) differs only inside the namespace: eth0 has no address, the
// guest's IP/32 is routed to the persistent tap "tap0" (static neighbour: the Port's MAC), and
// the namespace forwards between the two with proxy ARP on both (the node's ARP for the IP on
// eth0, the guest's for 169.254.1.1 on tap0), so the same ruleset filters in its forward hook.
//
// The host answers ARP for 169.254.1.1 on every port veth (a local address; arp_ignore=0), and
// strict rp_filter on the port veths drops anything not sourced from the port's own /32 (a
// second layer under the namespace's anti-spoof rule). The namespaces belong to the initial
// user namespace: a workload run inside one without CAP_NET_ADMIN in that user namespace
// cannot change its addresses, routes or rules.
//
// State lives in the kernel only, named so it can be read back: the namespace's name carries
// the instance id, the host veth's ifalias ("photon-port:ID") ties it to the port, its name the
// link-address slot ("pc" + hex slot), the marker chain "rev_HASH" the applied ruleset. Open()
// reads it all back, so a restarted agent adopts its ports: Apply compares and fixes only what
// differs, never duplicates. Delete leaves no namespace, veth, route or nft table (the veth
// goes with the namespace, which the kernel dismantles just after).
//
// Thread-safety: every method may be called from several threads; calls for the same instance
// must not overlap (the agent's work queue serialises a key).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/net/exec.h"
#include "agent/net/link_probe.h"
#include "agent/net/port.h"
#include "common/status.h"

namespace photon::agent::net {

class NftSocket;
struct SetDelta;

struct PortManagerOptions {
  // The node's network namespace: "" = this process's, or /run/netns/NAME (test beds).
  std::string host_netns;
  // Port namespace name = prefix + instance id (under /run/netns). Tests put their pid in it.
  std::string netns_prefix = "photon-port-";
  // Kernel route protocol of the port /32s, what the node's BIRD learns and announces.
  int route_protocol = 200;
  // Apply returns once both ends of a new veth pair pass traffic (see WaitPairUp). Off only
  // in photon-bench-net, to measure in the same run what the wait saves.
  bool wait_pair_up = true;
};

inline constexpr int kMaxPortsPerNode = 8192;  // 169.254.32.0/19, one /32 link address each

// A port as found in (or put into) the kernel.
struct PortState {
  std::string instance_id;
  int slot = -1;              // link address 169.254.32.0 + slot, host veth "pc<hex slot>"
  bool netns = false;         // the namespace exists
  bool host_present = false;  // host veth with this port's alias exists
  bool host_link = false;     // ... and is up with its link address
  std::string routed_ip;      // IP of the proto route pointing at the host veth ("" = none)
  std::string inner_ip;       // eth0's /32 in the namespace
  std::string inner_mac;
  bool inner_ready = false;  // eth0 up with the default route via 169.254.1.1
  bool tap = false;          // a VM port: tap0 up, inner_ip routed to it (eth0 has no address)
  std::string revision;      // rev_ marker of the nft table ("" = no table)
  std::string members;       // mem_ marker: the remote sets' members ("" = no marker)
  // The rules text this PortManager applied ("" when adopted: then a change replaces the
  // table), what a rule change is computed against to update the sets' elements in place.
  std::string rules;
  // nfnetlink in the port's namespace, opened on the first rule or member change this
  // PortManager makes there (after an adoption too) and kept: set-element changes go through
  // it (nft_netlink.h). Closed by Delete (an open socket keeps its namespace alive).
  std::shared_ptr<NftSocket> nft;
};

class PortManager {
 public:
  // Prepares the node (gateway and metadata addresses, forwarding, strict rp_filter for new
  // links) and reads back every port already there.
  static StatusOr<std::unique_ptr<PortManager>> Open(PortManagerOptions options);
  ~PortManager();

  // Creates the port or brings an existing one to `spec`, changing only what differs. The
  // /32 route (and so the BGP announcement) comes last, once rules and addresses are in place.
  Status Apply(const PortSpec& spec);

  // Removes everything of the port (processes still inside its namespace are killed: the
  // instance is gone). On return the namespace and the /32 route (so the announcement) are
  // gone; the veth pair goes with the namespace, which the kernel dismantles in the background
  // (batched with other deletes, tens of ms). Deleting an unknown port is OK.
  Status Delete(const std::string& instance_id);

  std::vector<PortState> List() const;
  std::string NetnsName(const std::string& instance_id) const;
  std::string NetnsPath(const std::string& instance_id) const;
  static std::string LinkAddress(int slot);
  static std::string HostIfName(int slot);

  // Kernel changes made by this instance (commands that modify state), for tests and metrics:
  // adopting ports that already match makes none.
  int64_t changes() const { return changes_.load(); }
  // Of those, updates of remote sets' members alone (the ruleset kept).
  int64_t set_updates() const { return set_updates_.load(); }
  // Of those, rule changes made in place by updating set elements (the table kept).
  int64_t rule_updates() const { return rule_updates_.load(); }
  // Changes meant for the encoded set-element path (nft_netlink.h) that went through nft
  // instead: refused by the kernel (the table is not what this PortManager applied; it is
  // then replaced) or no socket. Each is logged with its reason.
  int64_t fallbacks() const { return fallbacks_.load(); }

 private:
  explicit PortManager(PortManagerOptions options) : options_(std::move(options)) {}
  Status PrepareNode();
  Status Scan();
  Status ScanPort(PortState* port);
  Status ApplyPort(const PortSpec& spec, PortState* port);
  Status ApplyRules(const PortSpec& spec, PortState* port);
  Status CommitNative(const PortSpec& spec, const std::vector<SetDelta>* sets,
                      const std::string& old_rules, const std::string& new_rules,
                      bool members_changed, const std::string& members_revision, PortState* port);
  Status ApplyInner(const PortSpec& spec, bool fresh, PortState* port);
  Status ApplyTap(const PortSpec& spec, std::string batch, PortState* port);
  Status ApplyHost(const PortSpec& spec, bool fresh, PortState* port);
  Status AddPair(const PortSpec& spec, LinkProbe* inner, PortState* port);
  Status WireInner(const PortSpec& spec, LinkProbe* inner, PortState* port);
  Status WireHost(const PortSpec& spec, PortState* port);
  StatusOr<std::string> Run(const std::vector<std::string>& argv, const std::string& netns,
                            const std::string& input = "", bool change = true);
  int AllocateSlotLocked();
  // Frees the slots of deleted ports whose host link has gone. One still there `force_after`
  // after its delete is deleted: something (a TCP socket closing towards a peer that went
  // first, for up to minutes) keeps its namespace alive.
  void ReapSlotsLocked(std::chrono::seconds force_after);
  std::vector<int> GoneSlots(const std::map<int, std::chrono::steady_clock::time_point>& dying,
                             std::chrono::seconds force_after);
  void ReapLoop();
  Status WaitPairUp(const std::string& instance_id, const std::string& host_ifname,
                    LinkProbe* inner);

  const PortManagerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, PortState> ports_;  // by instance id
  std::vector<bool> slot_used_ = std::vector<bool>(kMaxPortsPerNode);
  // Slots of deleted ports whose host link the kernel has yet to remove, with when.
  std::map<int, std::chrono::steady_clock::time_point> dying_;
  std::condition_variable reaper_wake_;
  bool stopping_ = false;
  std::thread reaper_;  // ReapLoop, every second while ports are dying
  std::atomic<int64_t> changes_{0};
  std::atomic<int64_t> set_updates_{0};
  std::atomic<int64_t> rule_updates_{0};
  std::atomic<int64_t> fallbacks_{0};
  std::unique_ptr<LinkProbe> probe_;  // rtnetlink in the node's namespace
  int host_netns_fd_ = -1;            // the node's namespace, where a new veth's peer goes
  std::string host_ref_;              // the node's namespace as `ip ... netns` names it
};

}  // namespace photon::agent::net
