// The resource manager: the verbs of the one API (create, get, update, update status, delete,
// list, watch, actions) over every kind, transport-agnostic. The REST gateway and the gRPC
// service are thin adapters over it.
//
// Writes go to the store in one transaction each: the object, its Operation and its AuditEvent
// commit together, so an acknowledged create is durable along with its audit trail.
// Reads are served from the WatchCache after it has caught up with the store.
// Thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "photon/event.pb.h"
#include "photon/operation.pb.h"
#include "server/audit_throttle.h"
#include "server/auth.h"
#include "server/kinds.h"
#include "server/watch_cache.h"
#include "store/store.h"

namespace photon::server {

namespace prismnet {
class NetworkManager;
}

namespace identity {
class Quotas;
}

using MessagePtr = std::shared_ptr<google::protobuf::Message>;
using ConstMessagePtr = std::shared_ptr<const google::protobuf::Message>;

struct CreateResult {
  MessagePtr object;
  operation::Operation operation;
};

struct ListResult {
  std::vector<std::shared_ptr<const CachedObject>> items;
  std::string resource_version;
  std::string continue_token;
};

// What a watch delivers; called from the cache's thread (must not block).
struct WatchSink {
  // Initial objects (when watching from "" / "0"), then events.
  std::function<void(const std::vector<CacheEvent>& events)> on_events;
};

class ResourceManager {
 public:
  ResourceManager(store::Store* store, WatchCache* cache, MetricsRegistry* metrics);

  StatusOr<CreateResult> Create(const Principal& who, const KindInfo& kind, const std::string& ns,
                                MessagePtr object);
  // Create without a thread parked on the commit: validation and refusals answer inline, the
  // outcome of the write arrives on the store's completion thread (SqliteStore's writer). The
  // REST gateway answers from there, so 16 clients need neither 16 blocked handler threads
  // nor two thread switches per create. `done` must be quick and must not wait for a store
  // write.
  using CreateCallback = std::function<void(StatusOr<CreateResult>)>;
  void CreateAsync(const Principal& who, const KindInfo& kind, const std::string& ns,
                   MessagePtr object, CreateCallback done);
  StatusOr<ConstMessagePtr> Get(const Principal& who, const KindInfo& kind, const std::string& ns,
                                const std::string& name);
  // Replaces spec, labels and annotations (status_only=false) or status (status_only=true).
  // metadata.resource_version must equal the stored one (ABORTED otherwise).
  StatusOr<MessagePtr> Update(const Principal& who, const KindInfo& kind, const std::string& ns,
                              const std::string& name, MessagePtr object, bool status_only);
  // Update without a thread parked on the commit, as CreateAsync: the checks run on the
  // calling thread, and `done` gets the outcome (refusals too, once their audit record is
  // committed) on the store's completion thread. With updates held on the REST threads, a
  // server of 4 threads committed at most 4 updates per group commit, whatever the load.
  using UpdateCallback = std::function<void(StatusOr<MessagePtr>)>;
  void UpdateAsync(const Principal& who, const KindInfo& kind, const std::string& ns,
                   const std::string& name, MessagePtr object, bool status_only,
                   UpdateCallback done);
  // Objects placed on an agent go to DELETING first and the agent finishes the delete; others
  // are removed at once. resource_version, when set, must match.
  StatusOr<operation::Operation> Delete(const Principal& who, const KindInfo& kind,
                                        const std::string& ns, const std::string& name,
                                        const std::string& resource_version);
  // Delete without a thread parked on the commit, as UpdateAsync: the checks run on the calling
  // thread and `done` gets the outcome on the store's completion thread. A delete without a
  // resource_version that loses a race with another write (a controller's status write) is
  // read and tried again, on the retry thread (see RunOffCompletion).
  using DeleteCallback = std::function<void(StatusOr<operation::Operation>)>;
  void DeleteAsync(const Principal& who, const KindInfo& kind, const std::string& ns,
                   const std::string& name, const std::string& resource_version,
                   DeleteCallback done);
  // ns empty = every namespace the caller may read.
  // field_selector: see field_selector.h.
  StatusOr<ListResult> List(const Principal& who, const KindInfo& kind, const std::string& ns,
                            const std::string& label_selector, const std::string& field_selector,
                            int limit, const std::string& continue_token);
  // Returns a subscription id for Unwatch. OUT_OF_RANGE when resource_version is compacted.
  // With a selector, an object that starts to match arrives as ADDED and one that stops
  // matching as DELETED.
  StatusOr<uint64_t> Watch(const Principal& who, const KindInfo& kind, const std::string& ns,
                           const std::string& label_selector, const std::string& field_selector,
                           const std::string& resource_version, WatchSink sink);
  void Unwatch(uint64_t id);
  StatusOr<operation::Operation> ExecuteAction(const Principal& who, const KindInfo& kind,
                                               const std::string& ns, const std::string& name,
                                               const std::string& action,
                                               const std::map<std::string, std::string>& params);

  StatusOr<operation::Operation> GetOperation(const Principal& who, const std::string& id);
  // A page of the audit log, walking back from the newest record: the newest `limit` (0 =
  // kAuditPageDefault, at most kAuditPageMax) records older than `continue_token` (empty =
  // all), oldest first. Admins only.
  static constexpr int kAuditPageDefault = 500;
  static constexpr int kAuditPageMax = 5000;
  struct AuditPage {
    std::vector<event::AuditEvent> items;
    std::string continue_token;  // empty: no older records
  };
  StatusOr<AuditPage> ListAudit(const Principal& who, int limit, const std::string& continue_token);
  // Removes old audit records (the housekeeper's retention). Returns how many went.
  StatusOr<int64_t> TrimAudit(const store::LogRetention& retention);
  // Data dirs written before the audit trail became an append-only log kept it as keys under
  // /audit/: moves them into the log, oldest first, at start-up (before any new record).
  Status MigrateLegacyAudit();
  // Records a refused mutating call (the successful ones are written with their change).
  void AuditFailure(const Principal& who, const std::string& action, const std::string& target,
                    const Status& status);
  // The same without waiting: `then` runs once the record is committed (or failed to be),
  // on the store's completion thread. For callers that run there themselves.
  void AuditFailureAsync(const Principal& who, const std::string& action, const std::string& target,
                         const Status& status, std::function<void()> then);
  // Records a call answered without a record of the verbs above: the gateways' own (tokens,
  // join, requests refused before they reached a verb). success = code < 400.
  void AuditCall(const Principal& who, const std::string& action, const std::string& target,
                 int code);
  // Records a request refused for its credentials, folded per source address into counted
  // records (RefusalThrottle): actor "anonymous", action "authenticate", code 401.
  void AuditUnauthenticated(const std::string& source, const std::string& request);
  // Records the counts of ended refusal windows (every window when `all`).
  void FlushRefusals(bool all) { refusals_->Flush(all); }
  // How long a refusal window lasts; set before the API serves.
  void SetRefusalWindow(std::chrono::milliseconds window);
  ~ResourceManager();

  // A controller that already knows the first status it would give a new object (the scheduler,
  // while no node is usable: "no nodes available ...") sets it at creation, sparing itself a
  // status write — and the store a second transaction — for every create. The hint runs on
  // the creating thread, must be cheap and thread-safe, and sees the object after validation.
  // Set it before the API serves (not synchronised with running creates).
  using CreateStatusHint =
      std::function<void(const KindInfo& kind, google::protobuf::Message* object)>;
  // (With several servers a new leader's scheduler sets it while the API serves: swapped
  // atomically, and the old scheduler, stopped, stays alive for calls still inside it.)
  void SetCreateStatusHint(CreateStatusHint hint) {
    create_status_hint_.store(std::make_shared<const CreateStatusHint>(std::move(hint)));
  }
  // A manual placement (an update that sets or changes a ComputeInstance's metadata.agentId)
  // passes the scheduler's filters (capacity, node state, hard constraints) or is refused with
  // the check's error. Set before the API serves, like the hint above.
  using PlacementCheck =
      std::function<Status(const google::protobuf::Message& instance, const std::string& node)>;
  void SetPlacementCheck(PlacementCheck check) {
    placement_check_.store(std::make_shared<const PlacementCheck>(std::move(check)));
  }
  // The leader's fence (server/leader.h): a compare WriteAsSystem adds to its transaction, or
  // the reason this server may not make leader-only writes. Set before the API serves; unset,
  // nothing is fenced (one server alone).
  using LeaderFence = std::function<StatusOr<store::Compare>()>;
  void SetLeaderFence(LeaderFence fence) { leader_fence_ = std::move(fence); }

  // For controllers: writes the whole object (spec, metadata.agent_id, status) as the system,
  // compared on its metadata.resource_version (ABORTED on conflict). No audit record: the
  // controllers' own decisions are recorded as Events.
  Status WriteStatusAsSystem(const KindInfo& kind, const google::protobuf::Message& object);
  // The same for the leader-only loops (scheduler, node lifecycle, RegionServices): the write
  // also holds only while this server's leader term lasts (FAILED_PRECONDITION when it is not
  // the leader, ABORTED when the term ended before the write reached the store).
  Status WriteAsSystem(const KindInfo& kind, const google::protobuf::Message& object) {
    return WriteSystem(kind, object, true);
  }
  // Records an Event (kind "events", namespace of the object) such as a placement decision.
  Status RecordEvent(const std::string& ns, const std::string& reason, const std::string& object,
                     const std::string& message);
  // For controllers: replace an operation's status.
  Status WriteOperation(const operation::Operation& op);
  WatchCache* cache() { return cache_; }
  // Namespace quotas (server/identity/quota.h), checked and reserved in each create's (and
  // resource-raising update's) transaction. Set before the API serves.
  void SetQuotas(identity::Quotas* quotas) { quotas_ = quotas; }
  store::Store* store() { return store_; }
  // prismnet (server/network): set before the API serves; null leaves networks out.
  void SetNetwork(prismnet::NetworkManager* network) { network_ = network; }
  prismnet::NetworkManager* network() { return network_; }

 private:
  Status WriteSystem(const KindInfo& kind, const google::protobuf::Message& object, bool fenced);
  Status CheckCreatePlacement(const Principal& who, const KindInfo& kind,
                              const google::protobuf::Message& object) const;
  std::atomic<std::shared_ptr<const CreateStatusHint>> create_status_hint_;
  std::atomic<std::shared_ptr<const PlacementCheck>> placement_check_;
  LeaderFence leader_fence_;
  prismnet::NetworkManager* network_ = nullptr;
  // The create of a kind the network plans (planned_create.cc): answered on commit like any
  // create, planned again (on the retry thread) while the network's compares fail.
  struct PlannedCreate;
  void CreatePlanned(const Principal& who, const KindInfo& kind, const std::string& ns,
                     const std::string& target, MessagePtr object, operation::Operation op,
                     store::TxnRequest txn, std::shared_ptr<void> quota_hold, CreateCallback done);
  void PlanAndCommit(std::shared_ptr<PlannedCreate> c, int attempt);
  void AfterPlannedConflict(std::shared_ptr<PlannedCreate> c, int attempt);
  void RefusePlanned(const std::shared_ptr<PlannedCreate>& c, Status status);
  // Work that must read the store — a retry after a failed compare — may not run on the
  // store's completion thread (every later answer would wait behind its reads): it runs on
  // the resource manager's retry thread instead, in order.
  void RunOffCompletion(std::function<void()> work);
  class RetryThread;
  std::unique_ptr<RetryThread> retry_thread_;
  // An update checked and ready to commit: the object as it will be stored, the transaction
  // (compared on the stored revision), and the quota turn it holds until decided.
  struct PreparedUpdate {
    MessagePtr stored;
    store::TxnRequest txn;
    std::shared_ptr<void> quota_hold;
  };
  // Every check of an update; an error is a refusal (the caller records it).
  StatusOr<PreparedUpdate> PrepareUpdate(const Principal& who, const KindInfo& kind,
                                         const std::string& ns, const std::string& name,
                                         MessagePtr object, bool status_only);
  // A delete checked and ready to commit (compared on the stored revision).
  struct PreparedDelete {
    store::TxnRequest txn;
    operation::Operation op;
    MessagePtr stored;
    bool two_phase = false;
  };
  // Every check of a delete; an error is a refusal, or ABORTED when the object changed under it.
  StatusOr<PreparedDelete> PrepareDelete(const Principal& who, const KindInfo& kind,
                                         const std::string& ns, const std::string& name,
                                         const std::string& resource_version);
  struct DeleteCall;
  void DeleteAttempt(std::shared_ptr<DeleteCall> call, int attempt);
  Status Authorize(const Principal& who, Verb verb, const KindInfo& kind, const std::string& ns);
  // The audit record of one call, appended with the change it describes (same transaction).
  store::TxnOp AuditOp(const Principal& who, const std::string& action, const std::string& target,
                       bool success, int code,
                       const std::map<std::string, std::string>& metadata = {});
  void AuditWrite(store::TxnOp op);
  StatusOr<std::pair<MessagePtr, int64_t>> ReadCurrent(const KindInfo& kind,
                                                       const std::string& key);

  store::Store* store_;
  WatchCache* cache_;
  identity::Quotas* quotas_ = nullptr;
  Histogram* store_latency_;
  std::unique_ptr<RefusalThrottle> refusals_;
};

// Calls this thread has accounted for in the audit trail so far (recorded, or deliberately
// not: heartbeats). The REST gateway compares it around a call it passes on: a mutating call
// that left none was refused before it reached a verb (or is one of the gateway's own), and
// the gateway records it.
uint64_t AuditDecisionsOnThisThread();

// The principal controllers act as: admin of every namespace.
Principal SystemPrincipal();

// "computeinstances/ns/name"
std::string TargetName(const KindInfo& kind, const std::string& ns, const std::string& name);

}  // namespace photon::server
