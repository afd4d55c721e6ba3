// Quotas per namespace (seed 003: resources are reserved when created). A quota is a JSON
// object {"metadata":{"name","namespace"},"spec":{"limits":{RESOURCE: N, ...}}} kept under
// /quotas/<ns>/<name>; resources are instances, vcpu, memoryMb, diskGb (instances' and
// volumes'), addresses (ports, and instances attached to a VPC or subnet), buckets and
// loadbalancers. Every quota of a namespace applies.
//
// Usage is not a counter: it is summed from the objects the store holds, so a delete frees
// its share the moment the object is gone (an object that is DELETING still holds it). A
// create bound by a quota reserves in its own transaction: Reserve reads a per-namespace
// marker key, sums usage, and adds to the create's transaction a compare on the marker's
// revision and a write of it. Two creates that both saw the last unit free cannot both
// commit; within one server, creates bound by a quota in one namespace also take turns (the
// hold Reserve returns), so they do not fail on each other's marker writes.
// Thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/auth.h"
#include "server/kinds.h"
#include "store/store.h"

namespace photon::server::identity {

// A status payload that overrides the HTTP status of a refusal: a create over quota is
// RESOURCE_EXHAUSTED (gRPC) and 403 (REST).
inline constexpr char kHttpStatusPayload[] = "photon.io/http-status";

class Quotas {
 public:
  explicit Quotas(store::Store* store) : store_(store) {}

  Status Load();
  // From then on, follows the quotas other servers on the same store create, change and
  // delete: a quota set through one server binds creates through every one.
  Status Follow();

  // For a create of `object` (kind, ns): OK with a null hold when no quota binds it; else
  // waits for the namespace's turn, checks every quota of the namespace against usage plus
  // the object's demand (RESOURCE_EXHAUSTED naming the quota, resource and numbers), and adds
  // the marker's compare and write to `txn`. Keep the hold until the create is decided.
  // For an update, `replaced` is the stored object: only what the update adds is checked.
  using Hold = std::shared_ptr<void>;
  StatusOr<Hold> Reserve(const KindInfo& kind, const std::string& ns,
                         const google::protobuf::Message& object, store::TxnRequest* txn,
                         const google::protobuf::Message* replaced = nullptr);

  // The quota objects (with status.used) of `ns` ("" = every namespace).
  StatusOr<std::vector<nlohmann::json>> List(const std::string& ns);
  StatusOr<nlohmann::json> Get(const std::string& ns, const std::string& name);
  // Creates (`replace` false) or replaces a quota after validating spec.limits.
  StatusOr<nlohmann::json> Put(const Principal& who, const std::string& ns, nlohmann::json object,
                               bool replace);
  Status Delete(const std::string& ns, const std::string& name);

 private:
  struct Turn {
    std::mutex mu;
    std::condition_variable cv;
    bool busy = false;
  };
  Hold TakeTurn(const std::string& ns);
  // Usage of `resources` in `ns`, summed from the store.
  StatusOr<std::map<std::string, int64_t>> Usage(const std::string& ns,
                                                 const std::set<std::string>& resources);
  nlohmann::json WithStatus(nlohmann::json quota, const std::map<std::string, int64_t>& used);

  store::Store* store_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, nlohmann::json>> quotas_;  // ns → name → quota
  std::map<std::string, std::shared_ptr<Turn>> turns_;                   // by namespace
  int64_t loaded_revision_ = 0;
  std::unique_ptr<store::WatchHandle> follow_;  // cancelled first when this goes
};

// The resources one object takes: {"instances":1,"vcpu":2,...}.
std::map<std::string, int64_t> Demand(const KindInfo& kind,
                                      const google::protobuf::Message& object);

}  // namespace photon::server::identity
