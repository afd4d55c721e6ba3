// The generic controller of server-side service providers (service_provider.h), Kubernetes
// style: the watch cache feeds changed keys into a de-duplicating work queue; one worker
// applies each object through the provider of its kind and writes the observed status
// (phase, message, details, observedGeneration) with a compare-and-swap on resourceVersion.
//
//  - Level-triggered: every object is applied again on start and every `resync` period, and
//    what the backends hold without an object (deleted while photon-server was down) is
//    removed then too (ListManaged).
//  - Deletes: the last state of a deleted object is kept until its provider removed it. A
//    removal the backend refuses (a bucket that still holds data) is retried with backoff and
//    recorded once as an Event (reason RemoveFailed) in the object's namespace.
//  - Failures: a backend that is unreachable leaves the object CREATING/PENDING with the reason
//    and the key is retried with exponential backoff (initial_backoff .. max_backoff).
//  - A kind realized server-side without a configured provider stays PENDING with the message
//    "no provider configured for <kind>".
// Metrics: photon_provider_reconciles_total{kind,result}, photon_provider_orphans_removed_total.
// Thread-safe: Start/Stop once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "server/providers/loadbalancer_owner.h"
#include "server/providers/service_provider.h"
#include "server/resource_manager.h"

namespace photon::server {

struct ServiceControllerOptions {
  std::chrono::milliseconds resync{60000};
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
};

// Kinds that no node agent realizes: a server-side provider does, when one is configured.
const std::vector<std::string>& ServiceKinds();

class ServiceController {
 public:
  ServiceController(ResourceManager* resources, MetricsRegistry* metrics,
                    std::vector<std::unique_ptr<ServiceProvider>> providers,
                    ServiceControllerOptions options = {});
  ~ServiceController() { Stop(); }
  // Refuses two providers for one kind, or a provider for an unknown kind.
  Status Start();
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  void Enqueue(const std::string& key, Clock::time_point when = Clock::time_point{});
  void OnEvents(const std::vector<CacheEvent>& events);
  void Run();
  void Reconcile(const std::string& key);
  void Sweep();  // resync every object, remove orphans
  void Count(const std::string& kind, const std::string& result);
  // A refused Remove (not a transient failure) recorded as an Event, once per key and reason:
  // the object is already gone, so no status can tell its owner why the backend state stays.
  void ReportRemoveFailure(const ManagedRef& ref, const Status& st);
  // The plural kind of a registry key this controller handles, or "".
  std::string KindOfKey(const std::string& key) const;

  ResourceManager* resources_;
  MetricsRegistry* metrics_;
  std::vector<std::unique_ptr<ServiceProvider>> providers_;
  ServiceControllerOptions options_;
  std::map<std::string, ServiceProvider*> by_kind_;  // plural → provider (nullptr: none)
  uint64_t subscription_ = 0;
  // RegionServices' LoadBalancer objects, leader-only like this controller.
  std::unique_ptr<LoadBalancerOwner> lb_owner_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Clock::time_point> due_;               // key → when to reconcile it
  std::set<std::pair<Clock::time_point, std::string>> order_;  // due_, by time
  // Last state of deleted objects not yet removed from their backend.
  std::map<std::string, std::shared_ptr<const google::protobuf::Message>> deleted_;
  std::map<std::string, std::set<std::string>> dependents_;       // key → keys built from it
  std::map<std::string, std::vector<std::string>> dependencies_;  // reverse of dependents_
  // key → spec and status as this controller last wrote them: the watch event of our own
  // status write is not a reason to call the backend again.
  std::map<std::string, std::string> written_;
  bool stop_ = false;
  std::thread worker_;

  // Worker thread only.
  std::map<std::string, int> failures_;                 // key → consecutive retries
  std::map<std::string, std::string> remove_reported_;  // key → last Event's message
  Clock::time_point next_sweep_{};
};

}  // namespace photon::server
