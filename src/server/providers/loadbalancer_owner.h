// Seed 003: a RegionService owns its LoadBalancer, which is created and deleted only with it.
// This controller keeps, for every RegionService with spec.loadBalancer, a `loadbalancers`
// object of the same name and namespace whose spec is that spec (spec.regionService naming the
// service, label photon.io/regionservice), and deletes a LoadBalancer whose service is gone or
// no longer asks for one. Users cannot create, change or delete LoadBalancers themselves
// (loadbalancer_rules.h). Leader-only: the ServiceController starts it.
//
// It also collects the sealed keys of HTTPS listeners that no RegionService or LoadBalancer
// refers to any more (LoadBalancerKeyCollector), after each batch of changes and at every
// resync, once they have been unreferenced for `key_grace`.
//
// Level-triggered: the watch cache's events queue "namespace/name"; one worker compares and
// writes as the system; a failed write is retried after a second, and every key is looked at
// again every resync period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "server/providers/loadbalancer_rules.h"
#include "server/resource_manager.h"

namespace photon::server {

class LoadBalancerOwner {
 public:
  explicit LoadBalancerOwner(ResourceManager* resources,
                             std::chrono::milliseconds resync = std::chrono::seconds(30),
                             std::chrono::milliseconds key_grace = std::chrono::seconds(10))
      : resources_(resources), resync_(resync), keys_(key_grace) {}
  ~LoadBalancerOwner() { Stop(); }
  Status Start();
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  void Enqueue(const std::string& ns_name);
  void Run();
  // False: retry later.
  bool Reconcile(const std::string& ns, const std::string& name);
  void CollectKeys();

  ResourceManager* resources_;
  const std::chrono::milliseconds resync_;
  LoadBalancerKeyCollector keys_;  // the worker's only
  uint64_t subscription_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> queue_;  // "namespace/name"
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace photon::server
