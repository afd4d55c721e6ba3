// Leader election for several photon-servers on one shared store (etcd): exactly one runs the
// leader-only loops (scheduler, controllers, housekeeping, service providers) at a time.
//
// Campaign: each server holds a lease of `ttl`; the leader is whoever created `key` (its
// identity as value, attached to its lease) while the key was absent. Followers read the key
// every `ttl`/10 (a linearizable read, no write) and campaign once it is gone, which happens
// when the leader resigns (lease revoked) or its lease lapses (kill -9, lost etcd).
//
// Fencing: the leader's term is the create_revision of its key. Fence() is the compare a
// leader-only write adds to its transaction, so a write by a deposed leader that was already
// on its way fails in etcd itself, whatever the clocks did.
//
// Stepping down before another can win: a lease expires in etcd no earlier than `ttl` after the
// keepalive that last renewed it was sent. A watchdog thread demotes the leader (fence refuses
// at once, then the loops are stopped) when no keepalive has succeeded for `ttl` − `ttl`/4, even
// while a keepalive call is still blocked on an unreachable etcd.
//
// Thread-safety: all public methods are thread-safe. on_elected/on_deposed run one at a time,
// on the elector's threads or in Stop().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"
#include "store/store.h"

namespace photon::server {

inline constexpr char kLeaderKey[] = "/photon/leader";

struct LeaderOptions {
  std::string key = kLeaderKey;
  std::string identity;  // this server as others should reach it, e.g. "http://10.0.0.2:8080"
  int ttl_s = 2;         // lease TTL; etcd raises it to its own minimum (see docs/ha.md)
  // Start the leader-only loops; an error demotes again (and the campaign goes on).
  std::function<Status()> on_elected;
  // Stop them; returns once they have stopped.
  std::function<void()> on_deposed;
};

class LeaderElector {
 public:
  LeaderElector(store::Store* store, LeaderOptions options, MetricsRegistry* metrics);
  ~LeaderElector() { Stop(); }
  void Start();
  // Resigns (loops stopped, lease revoked so a follower wins at once) and ends the threads.
  void Stop();

  bool is_leader() const { return leader_.load(); }
  // The leader's identity as last seen (this server's own while it leads); empty: none known.
  std::string leader() const;
  // The compare that makes a write succeed only while this server's term lasts;
  // FAILED_PRECONDITION when this server is not the leader.
  StatusOr<store::Compare> Fence() const;

 private:
  void CampaignLoop();
  void WatchdogLoop();
  // One attempt: takes the key if absent (or still ours). True when this server now leads.
  bool TryAcquire();
  // Renews the lease and checks the key is still ours; false when the term is over.
  bool Renew();
  bool EnsureLease();
  void Promote(int64_t term);
  void Demote(const std::string& why);
  void SetSeen(const std::string& who);
  // Waits `d` or until Stop(); false when stopping.
  bool Wait(std::chrono::milliseconds d);

  store::Store* store_;
  LeaderOptions options_;
  std::chrono::milliseconds ttl_;
  Gauge* leader_gauge_;
  Counter* elected_;
  Counter* deposed_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t lease_ = 0;
  // When the call that last granted or renewed the lease was sent: etcd keeps the lease at
  // least until this + ttl.
  std::chrono::steady_clock::time_point renewed_at_{};
  std::string seen_;

  std::atomic<bool> leader_{false};
  std::atomic<int64_t> term_{0};  // create_revision of our key while leading
  std::mutex transition_mu_;      // serialises Promote/Demote and their callbacks
  std::thread campaign_, watchdog_;
};

}  // namespace photon::server
