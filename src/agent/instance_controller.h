// The agent's controller for ComputeInstances placed on its node (Kubernetes controller
// style): the instance informer feeds keys into a de-duplicating work queue; workers run an
// idempotent Reconcile(key) that compares what should run (agentId == this node, no
// deletionTimestamp) with what the provider reports, starts or destroys accordingly, and
// writes status with compare-and-swap. Handles are persisted in DIR/handles.log (one fsync per
// batch of starts, host/record_log.h) so a restarted agent adopts what runs (Adopt), destroys
// orphans and never starts a duplicate. Actions (operations with agentId == this node) run on their
// own queue.
//
// Thread-safety: public methods are thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/api_client.h"
#include "agent/host/record_log.h"
#include "agent/informer.h"
#include "agent/port_wiring.h"
#include "agent/provider.h"
#include "agent/work_queue.h"
#include "common/metrics.h"

namespace photon::agent {

struct ControllerOptions {
  std::string node_name;
  std::string data_dir;           // the agent's; handles live in DIR/handles.log
  std::set<std::string> drivers;  // the drivers whose Fingerprint succeeded
  int workers = 8;
};

class InstanceController {
 public:
  InstanceController(ControllerOptions options, ApiClient* api, ProviderRegistry* registry,
                     MetricsRegistry* metrics);
  ~InstanceController();

  void SetInformers(Informer* instances, Informer* operations);
  // Instance networks: the agent's Port watch (keys are the instances') and the wiring that
  // makes each instance's port before its workload starts. Set before Adopt.
  void SetNetwork(Informer* ports, PortWiring* wiring) {
    ports_ = ports;
    wiring_ = wiring;
  }
  // Called with every observation written ("ns/name", its details): the built-in checks.
  // Set before Start; must be quick.
  using ObservedHook =
      std::function<void(const std::string& key, const std::map<std::string, std::string>&)>;
  void SetObservedHook(ObservedHook hook) { observed_hook_ = std::move(hook); }
  // Startup sweep, after the instance informer's first Sync: recover what should run, destroy
  // what should not, then queue every key.
  Status Adopt();
  void Start();
  void Stop();

  // Informer callbacks. An instance event that only echoes this agent's own status write is
  // not reconciled (see OwnWriteEcho).
  void OnInstance(const std::string& key);
  // A change of the instance's Port (network mode "ports": what its wiring applies).
  void OnPort(const std::string& key) { queue_.Add(key); }
  void OnOperation(const std::string& key);
  // Queues every known key (periodic level-triggered pass).
  void ResyncAll();

  size_t Running() const { return running_.load(); }

 private:
  struct Record {
    std::string id;
    std::string key;
    std::string driver;
    std::string data;
    int64_t generation = 0;
  };
  struct Failure {
    int64_t generation = 0;
    int attempts = 0;
    bool permanent = false;
    std::chrono::steady_clock::time_point retry_at;
  };

  // True when the informer's copy of `key` is the object our last status write returned (the
  // same revision): its event brings nothing this agent does not know, and reconciling it
  // would only read the provider and compare. The informer has caught up then, so the
  // remembered write is dropped.
  bool OwnWriteEcho(const std::string& key);
  void Worker();
  void ActionWorker();
  void Reconcile(const std::string& key);
  void RunAction(const std::string& key);

  void LoadRecords();
  void SaveRecord(const Record& r);
  void EraseRecord(const std::string& id);
  std::vector<Record> RecordsForKey(const std::string& key);
  std::optional<Record> RecordFor(const std::string& id);
  void DestroyLocal(const std::string& id, const std::string& driver);
  // Wires the instance's network; false when the reconcile must stop here (error written or
  // retry queued). *netns_error carries a failure to report on a running instance.
  bool WireNetwork(const std::string& key, const compute::ComputeInstance& inst, bool running,
                   std::string* netns_error);
  // Removes the ports of instances not in keep_fn() (called after the ports are listed).
  void SweepOrphanPorts(const std::function<std::set<std::string>()>& keep_fn);
  void AddNetworkDetails(const std::string& id, const std::string& error, Observed* o);

  // Writes status of the object at `key` via PUT …/status; `mutate` returns false when
  // nothing changes. Retries on compare-and-swap conflicts.
  Status WriteStatus(const std::string& key,
                     const std::function<bool(resource::ResourceStatus* status)>& mutate);
  Status WriteStatusOnce(const std::string& key,
                         const std::function<bool(resource::ResourceStatus* status)>& mutate);
  Status WriteObserved(const std::string& key, int64_t generation, const Observed& o);
  Status WriteError(const std::string& key, int64_t generation, const std::string& message);

  ControllerOptions options_;
  ApiClient* api_;
  ProviderRegistry* registry_;
  Informer* instances_ = nullptr;
  Informer* operations_ = nullptr;
  Informer* ports_ = nullptr;
  PortWiring* wiring_ = nullptr;
  WorkQueue queue_;
  WorkQueue actions_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::unique_ptr<RecordLog> log_;           // set by LoadRecords (Adopt)
  std::map<std::string, Record> records_;    // by instance id
  std::map<std::string, Failure> failures_;  // by instance id
  // L4 members being deleted that still drain: when their delete was first seen (by id).
  std::map<std::string, std::chrono::steady_clock::time_point> drains_;
  std::set<std::string> done_ops_;
  // By key: the object as our last status write left it, until the informer's copy catches
  // up. A second write (CREATING, then RUNNING) starts from it instead of the informer's
  // older copy, which would only earn a 409 and a read.
  std::map<std::string, nlohmann::json> written_;
  std::atomic<size_t> running_{0};
  Counter* reconciles_;
  // Reconciles that changed nothing (no start, destroy, status write or delete), and instance
  // events skipped as echoes of our own status writes.
  Counter* noop_reconciles_;
  Counter* echoes_skipped_;
  Counter* starts_;
  Counter* destroys_;
  Counter* errors_;
  ObservedHook observed_hook_;
  Counter* actions_run_;
  Histogram* reconcile_seconds_;
  Histogram* start_seconds_;
  Histogram* status_write_seconds_;
  Counter* status_writes_;
};

}  // namespace photon::agent
