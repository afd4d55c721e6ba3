// The fiberlb controller: holds the desired state, applies every change to the HAProxy data
// plane and persists it in DATA_DIR/state.json (0600: it holds TLS keys), which a restart
// re-applies.
//
// How a change reaches HAProxy:
// - members added, removed, re-weighted or moved: runtime API only (add server, set server
//   state drain, set weight, set server addr, del server), nothing reloads; the configuration
//   file is rewritten too, so a restarted HAProxy starts from the same state;
// - anything else (listeners, pool settings): a new configuration, checked by `haproxy -c`,
//   then a hitless master-worker reload.
// A removed member drains: it takes no new connections, and once its last connection closed
// or the pool's drain_timeout_ms passed, its sessions are shut and it is deleted.
//
// Thread-safety: every public method may be called from any thread; changes are serialised.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/status.h"
#include "fiberlb/haproxy.h"
#include "fiberlb/haproxy_config.h"
#include "fiberlb/l7_vips.h"
#include "fiberlb/model.h"

namespace photon::fiberlb {

struct LbOptions {
  std::string data_dir;
  std::string api_address;  // refused as a listener address
  std::string haproxy_binary = "/usr/sbin/haproxy";
  std::string access_log;  // default DATA_DIR/access.log; "off" disables
  // The `bgp` section's route protocol; 0: none, and a listener with `announce` is refused.
  int bgp_route_protocol = 0;
};

class Lb {
 public:
  // Applies DATA_DIR/state.json when present (the state the API last left), else `initial`.
  static StatusOr<std::unique_ptr<Lb>> Start(const LbOptions& options, const State& initial);
  ~Lb();
  void Stop();

  State Snapshot() const;
  Status PutListener(const Listener& listener);
  Status DeleteListener(const std::string& name);
  Status PutPool(const Pool& pool);
  Status DeletePool(const std::string& name);
  Status PutMember(const std::string& pool, const Member& member);          // add or update
  Status RemoveMember(const std::string& pool, const std::string& member);  // drains

  // A pool with its members' live state (health, drain, connections) from HAProxy.
  StatusOr<nlohmann::json> PoolStatus(const std::string& name);
  // Prometheus text: per listener and member, from HAProxy's "show stat".
  std::string Metrics();
  bool Healthy();

  // Announced listeners' VIPs (l7_vips.h): {draining, held, announced, listeners: [{name, vip,
  // announced, why}]}. NotFound without a bgp section.
  StatusOr<nlohmann::json> DescribeVips();
  // A draining node withdraws every L7 VIP (it keeps serving what still arrives).
  Status SetVipsDraining(bool draining);
  Haproxy& haproxy() { return *haproxy_; }

 private:
  explicit Lb(const LbOptions& options);
  Status Apply(State candidate);           // mu_ held; holds and releases L7 VIPs around the next
  Status ApplyToHaproxy(State candidate);  // mu_ held
  Status ApplyMembers(const Pool& old_pool, const Pool& new_pool);
  Status WriteFiles(const State& state, const std::string& config_path);
  void DrainLoop();
  Status FinishDrain(const std::string& pool, const Member& member);
  // Every 250 ms and after each change: announces the VIPs whose listener's pool has a member
  // that serves (HAProxy's status UP or "no check"), withdraws the others.
  void AnnounceLoop();
  std::map<std::string, std::string> ServingVips(const State& state);  // VIP → listener
  Status CheckAnnounce(const State& state) const;

  LbOptions options_;
  RenderPaths paths_;
  std::unique_ptr<Haproxy> haproxy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  State state_;
  struct Draining {
    Member member;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<std::string, std::map<std::string, Draining>> draining_;  // pool → name → drain
  bool stopping_ = false;
  std::thread drainer_;
  std::unique_ptr<L7Vips> vips_;  // null without a bgp section
  bool vips_draining_ = false;    // mu_
  bool vips_changed_ = false;     // mu_: wakes the announcer
  std::thread announcer_;
};

}  // namespace photon::fiberlb
