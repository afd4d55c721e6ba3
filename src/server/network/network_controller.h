// The network's control loop:
//  - instances waiting for an address (their subnet was full at create) get one as soon as an
//    address is given back (woken by the release, and every `retry` period for releases made
//    by another photon-server), in a transaction compared on the instance's revision;
//  - a SecurityGroup whose spec changed is stamped on every Port naming it (annotation
//    kSecurityGroupsAnnotation, compared on the Port's revision): the node agents watch only
//    their own Ports (their credential reads a group by name, never lists or watches groups,
//    so it learns no other tenant's), and a Port event makes the agent read the groups again
//    and apply the port, so a rule change reaches running ports at once;
//  - the members of each SecurityGroup (the addresses of the Ports carrying it) are kept in
//    its status.details[kSecurityGroupMembersDetail], from an index the Port watch updates;
//    when they change, the Ports of every group whose rules name it as remoteSecurityGroup
//    are stamped like above, and their agents update the nftables set of that group (the
//    ruleset stays);
//  - garbage: every `sweep` period (and at start), a Port whose instance is gone and an
//    address whose Port is gone are removed, each compared on the revisions that make it
//    garbage. Releases happen in the delete transactions themselves, so this finds nothing
//    unless an object was removed by a path that bypassed them (a store restored by hand).
// Thread-safe: Start/Stop once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "server/network/network_manager.h"
#include "server/resource_manager.h"

namespace photon::server::prismnet {

// On a Port: "GROUP@REVISION" of the last change of one of its SecurityGroups.
inline constexpr char kSecurityGroupsAnnotation[] = "prismnet.photon.io/security-groups";
// On a SecurityGroup's status.details: its members' addresses, sorted, comma-separated (read
// by the agents, src/agent/port_wiring.h).
inline constexpr char kSecurityGroupMembersDetail[] = "prismnet.members";

struct NetworkControllerOptions {
  std::chrono::milliseconds retry{2000};
  std::chrono::milliseconds sweep{30000};
};

class NetworkController {
 public:
  NetworkController(ResourceManager* resources, NetworkManager* network,
                    NetworkControllerOptions options = {});
  ~NetworkController() { Stop(); }
  Status Start();
  void Stop();
  void Kick();

 private:
  void Run();
  void RetryWaiting();
  // Returns false when the subnet is still full (no need to try its other instances).
  bool Retry(const compute::ComputeInstance& ci);
  // Stamps the Ports naming each changed group (queued by the group watch).
  void NudgePorts();
  // Port events → the members index (under mu_).
  void IndexPort(const std::string& key, const CachedObject* port);  // null: deleted
  // Writes the members of the groups whose members changed; queues the groups naming them.
  void PublishMembers();
  bool PublishGroup(const std::string& group);
  bool NudgePort(const std::string& key, const std::string& stamp);
  void Sweep();
  void SweepPorts();
  void SweepAddresses();

  ResourceManager* resources_;
  NetworkManager* network_;
  NetworkControllerOptions options_;
  uint64_t subscription_ = 0;
  uint64_t groups_subscription_ = 0;
  std::mutex mu_;
  std::map<std::string, int64_t> changed_groups_;  // "ns/name" → revision of the change
  struct PortGroups {
    std::string ip;
    std::vector<std::string> groups;  // "ns/group"
  };
  std::map<std::string, PortGroups> port_groups_;              // Port key → what it holds
  std::map<std::string, std::map<std::string, int>> members_;  // "ns/group" → address → ports
  std::set<std::string> members_changed_;                      // "ns/group"
  std::set<std::string> members_failed_;  // "ns/group" whose write failed: the next retry
  bool publish_all_ = true;  // at start: every group (members may have changed while down)
  std::condition_variable cv_;
  bool kicked_ = true;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace photon::server::prismnet
