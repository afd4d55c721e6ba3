// fiberlb's L4 listeners: the daemon's side of the stateless L4 path (l4/l4_balancer.h). Each
// listener (a VIP, a port, tcp or udp, members) becomes a Maglev table in this LB node's
// nftables netdev ingress hook, and its VIP a blackhole route that the node's BIRD announces
// by BGP while the listener has a healthy member and the node is not draining.
//
// Health: fiberlb checks every member itself (TCP connect to the member's address, at the
// listener's port or health_check.port) every interval_ms; `fall` failures take it out of the
// table, `rise` successes bring it back. A member with checks is out until its first check
// passes, so a VIP is announced only once something answers behind it. Every LB node checks on
// its own; nodes agree on the table as long as they agree on health (a member seen down by one
// node only is out of that node's table only).
//
// State: DATA_DIR/l4_state.json (0600) holds the listeners and the drain flag as the API last
// left them; a restart re-applies it (the table and routes of a fiberlb killed with -9 keep
// forwarding meanwhile). A clean stop withdraws every VIP and deletes the table.
//
// Thread-safety: public methods may be called from any thread (one mutex; the health thread
// takes it too).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "fiberlb/l4/l4_balancer.h"

namespace photon::fiberlb {

struct L4HealthCheck {
  std::string type = "none";  // none | tcp
  int port = 0;               // 0: the listener's port
  int interval_ms = 1000;
  int timeout_ms = 500;
  int rise = 2;
  int fall = 2;
};

struct L4MemberSpec {
  std::string address;  // IPv4: on the node's device (L2 DSR) or behind a router (L3DSR)
  int weight = 1;       // 0..65535; 0 takes no new flows
  // auto: L2 DSR on-link, L3DSR behind a router (with the listener's l3dsr_dscp); l2 or l3
  // only that way (l2 refuses a member behind a router: one that cannot restore the VIP).
  std::string forward = "auto";
};

struct L4ListenerSpec {
  std::string name;  // [A-Za-z0-9_.-], 1..64
  std::string vip;   // IPv4
  int port = 0;
  std::string protocol = "tcp";  // tcp | udp
  std::vector<L4MemberSpec> members;
  L4HealthCheck health_check;
  int l3dsr_dscp = 0;  // 1-63: members behind a router get L3DSR with this mark
  // tcp: flows established before a change that moves their slot (a member removed, set to
  // weight 0 or added) stay with their member this long; 0: they follow the new table.
  int drain_timeout_ms = 10000;
};

struct L4Settings {
  std::string device;  // the underlay device VIP packets arrive on and leave by
  std::string table = "fiberlb_l4";
  uint32_t hash_seed = 0x70686f74;  // the same on every LB node of a VIP
  int route_protocol = 200;         // bgp.route_protocol: what the node's BIRD exports
  std::vector<L4ListenerSpec> listeners;
};

StatusOr<L4ListenerSpec> L4ListenerFromJson(const nlohmann::json& j, const std::string& where);
nlohmann::json ToJson(const L4ListenerSpec& l);
// The `l4` and `bgp` sections of the configuration file (either may be null).
StatusOr<L4Settings> L4SettingsFromJson(const nlohmann::json& l4, const nlohmann::json& bgp);

class L4Service {
 public:
  // Opens the node's table on `settings.device`, then applies DATA_DIR/l4_state.json when it
  // exists, else settings.listeners.
  static StatusOr<std::unique_ptr<L4Service>> Start(const std::string& data_dir,
                                                    const L4Settings& settings);
  ~L4Service();
  // Withdraws every VIP and deletes the table.
  void Stop();

  // Creates or replaces a listener; bad input is INVALID_ARGUMENT naming the field.
  Status PutListener(const L4ListenerSpec& listener);
  Status DeleteListener(const std::string& name);
  Status SetDraining(bool draining);
  // {draining, announced, listeners: [spec + members' health + forwarded_packets]}.
  nlohmann::json Describe();
  std::string Metrics();
  std::vector<L4ListenerSpec> Listeners() const;

 private:
  struct Health {
    bool known = false;  // a first result decides at once
    bool healthy = false;
    int successes = 0, failures = 0;
    std::string last;  // "ok" or why the check failed
    std::chrono::steady_clock::time_point next{};
  };
  L4Service(std::string data_dir, L4Settings settings)
      : data_dir_(std::move(data_dir)), settings_(std::move(settings)) {}
  Status ApplyLocked(const L4ListenerSpec& l);  // to the balancer, with health
  Status SaveLocked();
  void CheckLoop();
  bool HealthyLocked(const L4ListenerSpec& l, const L4MemberSpec& m);

  const std::string data_dir_;
  const L4Settings settings_;
  std::unique_ptr<l4::L4Balancer> balancer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, L4ListenerSpec> listeners_;
  std::map<std::string, std::string> errors_;  // listener → why its last apply failed
  std::map<std::pair<std::string, std::string>, Health> health_;  // (listener, address)
  bool draining_ = false;
  bool stopping_ = false;
  std::thread checker_;
};

// Refuses an L4 listener that overlaps an L7 one: both on ip:port (tcp), or the L7 one on a
// wildcard. `l7_addresses` are the L7 listeners' "host:port".
Status CheckL4Overlap(const L4ListenerSpec& l, const std::vector<std::string>& l7_addresses,
                      const std::string& where);

}  // namespace photon::fiberlb
