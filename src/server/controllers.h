// Control-plane controllers, Kubernetes style: the watch cache feeds changed keys into a
// de-duplicating work queue; one worker reconciles each key, level-triggered and idempotent
// (it reads the current state and writes only what differs). Conflicts requeue the key.
//
// Controllers here:
//  - operations: moves each pending Operation along with the phase of its target object
//    (RUNNING → DONE, ERROR → FAILED, deleted → DONE for deletes).
// Placement, node lifecycle and RegionServices are the SchedulerController's
// (server/scheduler/scheduler_controller.h).
// Thread-safe; Start/Stop once.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/resource_manager.h"

namespace photon::server {

class Controllers {
 public:
  explicit Controllers(ResourceManager* resources) : resources_(resources) {}
  ~Controllers() { Stop(); }
  Status Start();
  void Stop();

 private:
  void Enqueue(const std::vector<std::string>& keys);
  void Run();
  void Reconcile(const std::string& key);
  void ReconcileOperation(const std::string& op_key);

  ResourceManager* resources_;
  uint64_t subscription_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  // target key → keys of its unfinished operations
  std::map<std::string, std::set<std::string>> ops_by_target_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace photon::server
