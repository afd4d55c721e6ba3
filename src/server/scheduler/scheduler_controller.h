// The server-side scheduling controller: one loop thread that, each round, reads a snapshot of
// Nodes, ComputeInstances and RegionServices from the WatchCache and
//  1. node lifecycle (seed 003 MonitorLoop): READY → SUSPECT after `suspect_after` without a
//     heartbeat (probing GET http://<spec.address>/healthz), → DOWN after `down_after`;
//  2. RegionServices: creates `<rs>-<index>` computes up to spec.replicas, deletes from the
//     tail, turns a directly deleted member into replicas-1, removes the service at 0;
//  3. evicts instances from DOWN and draining nodes (placing them elsewhere or back to
//     PENDING with a reason) and marks finished drains `photon.io/drain: done`;
//  4. places PENDING instances without an agentId through the scheduler pipeline.
// Every write is a compare-and-swap on the object's resourceVersion; a conflict just leaves
// the work for the next round (the loop is level-triggered). Decisions are recorded as Events.
// Rounds run on watch events (coalesced) and on a tick for the heartbeat clock.
// Thread-safe: Start/Stop once; everything else runs on the loop thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "photon/compute.pb.h"
#include "photon/node.pb.h"
#include "server/resource_manager.h"
#include "server/scheduler/scheduler.h"
#include "server/watch_cache.h"

namespace photon::server {

struct SchedulerControllerOptions {
  std::chrono::milliseconds suspect_after{15000};
  std::chrono::milliseconds down_after{60000};
  std::chrono::milliseconds probe_timeout{500};
  scheduler::SchedulerOptions placement;
};

inline constexpr char kRegionServiceLabel[] = "photon.io/regionservice";
inline constexpr char kDrainAnnotation[] = "photon.io/drain";

// A read-only list of objects shared with the WatchCache: rounds look at every instance, and
// copying 100,000 of them per round would cost more than the round's real work.
template <typename T>
class SharedList {
 public:
  using Items = std::vector<std::shared_ptr<const google::protobuf::Message>>;
  class const_iterator {
   public:
    explicit const_iterator(typename Items::const_iterator it) : it_(it) {}
    const T& operator*() const { return static_cast<const T&>(**it_); }
    const T* operator->() const { return &**this; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return it_ == o.it_; }
    bool operator!=(const const_iterator& o) const { return it_ != o.it_; }

   private:
    typename Items::const_iterator it_;
  };
  void reserve(size_t n) { items_.reserve(n); }
  void push_back(std::shared_ptr<const google::protobuf::Message> m) {
    items_.push_back(std::move(m));
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const T& operator[](size_t i) const { return static_cast<const T&>(*items_[i]); }
  const_iterator begin() const { return const_iterator(items_.begin()); }
  const_iterator end() const { return const_iterator(items_.end()); }

 private:
  Items items_;
};

struct RegionServiceMembers;  // region_service_controller.cc

class SchedulerController {
 public:
  SchedulerController(ResourceManager* resources, SchedulerControllerOptions options);
  ~SchedulerController() { Stop(); }
  Status Start();
  void Stop();

 private:
  struct Snapshot {
    SharedList<node::Node> nodes;
    // Per node (same index): its condition as this round decided it (node lifecycle may
    // change it within the round; the shared Node is not touched).
    std::vector<node::NodeStatus::Condition> conditions;
    SharedList<compute::ComputeInstance> instances;
    SharedList<compute::RegionService> services;
  };
  // Decoded objects kept across rounds, by key: a round decodes only what changed since the
  // last one (decoding 1,000 nodes and 1,000 instances took 10-20 ms of every round).
  struct Decoded {
    std::shared_ptr<const CachedObject> object;  // the version decoded
    std::shared_ptr<const google::protobuf::Message> message;
    uint64_t read = 0;  // the Read() that last listed it
  };
  template <typename T>
  SharedList<T> ShareKind(const std::string& plural);
  struct Heartbeat {
    std::string last;  // the node's lastHeartbeat as last seen
    std::chrono::steady_clock::time_point seen;
    std::chrono::steady_clock::time_point probed{};
    bool probe_ok = false;
    // The condition as the last round left it: an agent writes READY itself with the heartbeat
    // that ends a SUSPECT or DOWN spell, so the return shows only against this.
    node::NodeStatus::Condition condition = node::NodeStatus::UNKNOWN;
  };

  void Run();
  // A manual placement (an update setting metadata.agentId) through the same filters as the
  // scheduler's own: OK, or the refusal naming the node and the reason (see
  // ResourceManager::SetPlacementCheck). Runs on API threads, between rounds.
  Status CheckManualPlacement(const compute::ComputeInstance& ci, const std::string& node);
  // Returns true when it wrote something (the next round should follow soon).
  bool Round();
  Snapshot Read();
  bool MonitorNodes(Snapshot& snap);
  bool ReconcileRegionServices(const Snapshot& snap);
  // The steps of ReconcileRegionServices (region_service_controller.cc).
  bool DeleteOrphanMembers(
      const std::map<std::string, std::vector<const compute::ComputeInstance*>>& members,
      const std::set<std::string>& services);
  bool ReconcileRegionService(const compute::RegionService& rs,
                              const std::vector<const compute::ComputeInstance*>& members);
  bool RemoveRegionService(const compute::RegionService& rs, const RegionServiceMembers& view);
  bool CreateMembers(const compute::RegionService& rs, int need, RegionServiceMembers& view,
                     std::vector<std::string>* created, std::string* create_error);
  bool EvictAndDrain(const Snapshot& snap, scheduler::ClusterState& state,
                     scheduler::Scheduler& sched);
  bool PlacePending(const Snapshot& snap, scheduler::ClusterState& state,
                    scheduler::Scheduler& sched);
  void BuildState(const Snapshot& snap, scheduler::ClusterState* state);
  // Group and size of an instance (its RegionService, or itself).
  std::pair<std::string, int> GroupOf(const Snapshot& snap, const compute::ComputeInstance& ci);
  Status WriteInstance(const compute::ComputeInstance& ci);
  // nodeStatus.allocated is for display: written by a thread of its own, so a round (and the
  // placements waiting for the next one) never waits for those commits.
  void QueueAllocation(node::Node next);
  void WriteAllocations();
  void Event(const std::string& ns, const std::string& reason, const std::string& object,
             const std::string& message);

  ResourceManager* resources_;
  SchedulerControllerOptions options_;
  uint64_t subscription_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true;
  bool stop_ = false;
  std::thread thread_;
  std::mutex round_mu_;  // held by a round and by a manual placement's check
  std::map<std::string, Heartbeat> heartbeats_;       // loop thread only
  std::map<std::string, int> region_service_sizes_;   // "ns/name" → replicas, per round
  std::unordered_map<std::string, Decoded> decoded_;  // under round_mu_
  uint64_t reads_ = 0;                                // under round_mu_
  std::mutex allocation_mu_;
  std::condition_variable allocation_cv_;
  std::map<std::string, node::Node> allocation_queue_;  // by node name
  bool allocation_stop_ = false;
  std::thread allocation_thread_;
  uint64_t round_ = 0;
  // No Node at all, as of the last round: new instances are then created with the reason the
  // scheduler would write (see ResourceManager::SetCreateStatusHint).
  std::atomic<bool> no_nodes_{false};
};

// Whether a change under /registry/ can change what a scheduling round decides or writes. Not:
// a Node change that only moves its heartbeat (nodeStatus.lastHeartbeat and message; the
// round's tick reads the heartbeat clock) or its nodeStatus.allocated (the round's own copy of
// the sum, for display), and a change of only the status or annotations of an instance placed
// on a node (the agent's CREATING, RUNNING, a user's note: placement reads agentId, spec,
// labels and deletion, never a placed instance's status or annotations), unless it is a
// RegionService member (whose phase the service's status counts). Every other change of a
// Node, ComputeInstance or RegionService does. Why: 10,000 nodes heartbeat 2,000 times a
// second and agents report every start twice; each of those started a round that read every
// object (1,000 annotation changes/s kept a quarter of the server's CPU in rounds).
bool WakesScheduler(const CacheEvent& e);

// Runs write(i) for every i in [0, n), at most `parallel` at a time, and returns the results in
// order. Why: each store write waits for a commit (an fsync); written one after another, a
// round that writes 500 Nodes or placements spends seconds waiting. Written concurrently, the
// store commits them together (group commit: one fsync for the batch), each write keeping its
// own compare-and-swap.
std::vector<Status> WriteConcurrently(size_t n, const std::function<Status(size_t)>& write,
                                      size_t parallel = 64);

// GET http://<address>/healthz answered 200 within the timeout. address = host:port.
bool ProbeHealthz(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace photon::server
