// ResourceManager::CreatePlanned: the create of a kind whose transaction carries the
// network's checks and allocations (instances, VPCs, subnets, security groups).
//
// Why synchronous and in a loop: the network's compares (the address is free, the subnet and
// the topology are unchanged) can fail where a plain create cannot, and the answer is to plan
// again with what the store now holds; that takes store reads, which the store's completion
// thread (where an asynchronous create ends) must not do.
#include "common/util.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/resource_manager.h"

namespace photon::server {

namespace {
constexpr int kPlanAttempts = 16;
}  // namespace

void ResourceManager::CreatePlanned(const Principal& who, const KindInfo& kind,
                                    const std::string& ns, const std::string& target,
                                    MessagePtr object, operation::Operation op,
                                    store::TxnRequest base, CreateCallback done) {
  const std::string key = RegistryKey(kind.plural, ns, GetMetadata(*object).name());
  auto fail = [&](Status st) {
    AuditFailure(who, "create", target, st);
    done(std::move(st));
  };
  // Each attempt plans from the object as validated, not as the last attempt left it.
  MessagePtr initial(object->New());
  initial->CopyFrom(*object);
  for (int attempt = 0; attempt < kPlanAttempts; ++attempt) {
    object->CopyFrom(*initial);
    prismnet::CreatePlan plan;
    if (auto st = network_->Plan(who, kind, ns, object.get(), &plan); !st.ok()) return fail(st);
    store::TxnRequest txn = base;
    for (auto& o : txn.success) {
      if (o.key == key && o.type == store::TxnOp::Type::kPut) o.value = object->SerializeAsString();
    }
    txn.compares.insert(txn.compares.end(), plan.compares.begin(), plan.compares.end());
    txn.success.insert(txn.success.end(), plan.ops.begin(), plan.ops.end());
    const int64_t t0 = MonotonicNanos();
    auto r = store_->Txn(txn);
    store_latency_->Observe((MonotonicNanos() - t0) / 1e9);
    network_->Finish(plan, r.ok() && r->succeeded);
    if (!r.ok()) {
      done(r.status());
      return;
    }
    if (r->succeeded) {
      MutableMetadata(object.get())->set_resource_version(std::to_string(r->revision));
      op.mutable_metadata()->set_resource_version(std::to_string(r->revision));
      done(CreateResult{std::move(object), std::move(op)});
      return;
    }
    auto exists = store_->Range(key, {.keys_only = true});
    if (!exists.ok()) {
      done(exists.status());
      return;
    }
    if (!exists->kvs.empty()) {
      return fail(absl::AlreadyExistsError(kind.kind + " '" + GetMetadata(*object).name() +
                                           "' already exists in namespace '" + ns + "'"));
    }
  }
  fail(absl::AbortedError("conflict: the network changed under this create " +
                          std::to_string(kPlanAttempts) + " times; retry"));
}

}  // namespace photon::server
