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
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "photon/compute.pb.h"
#include "photon/node.pb.h"
#include "server/resource_manager.h"
#include "server/scheduler/scheduler.h"

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
    std::vector<node::Node> nodes;  // copies: node lifecycle updates them within a round
    SharedList<compute::ComputeInstance> instances;
    SharedList<compute::RegionService> services;
  };
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
  std::map<std::string, Heartbeat> heartbeats_;      // loop thread only
  std::map<std::string, int> region_service_sizes_;  // "ns/name" → replicas, per round
  uint64_t round_ = 0;
  // No Node at all, as of the last round: new instances are then created with the reason the
  // scheduler would write (see ResourceManager::SetCreateStatusHint).
  std::atomic<bool> no_nodes_{false};
};

// GET http://<address>/healthz answered 200 within the timeout. address = host:port.
bool ProbeHealthz(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace photon::server
