#include "server/resource_manager.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "common/util.h"
#include "server/agent_scope.h"
#include "server/identity/quota.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/privilege.h"
#include "server/providers/loadbalancer_rules.h"

namespace photon::server {

using google::protobuf::Message;

namespace {

constexpr char kAuditLog[] = "audit";
constexpr char kLegacyAuditPrefix[] = "/audit/";
thread_local uint64_t audit_decisions_on_thread = 0;

StatusOr<int64_t> ParseRevision(const std::string& field, const std::string& text) {
  if (text.empty()) return int64_t{0};
  if (text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(field + ": '" + text + "' is not a resource version");
  }
  return std::stoll(text);
}

std::string HexEncode(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

StatusOr<std::string> HexDecode(const std::string& s) {
  if (s.size() % 2) return absl::InvalidArgumentError("continue: malformed token");
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = isdigit(s[i]) ? s[i] - '0' : (s[i] >= 'a' && s[i] <= 'f') ? s[i] - 'a' + 10 : -1;
    int lo = isdigit(s[i + 1])                      ? s[i + 1] - '0'
             : (s[i + 1] >= 'a' && s[i + 1] <= 'f') ? s[i + 1] - 'a' + 10
                                                    : -1;
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("continue: malformed token");
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

bool Assigned(const Message& obj) { return !GetMetadata(obj).agent_id().empty(); }

// An Operation about one object: `id` is the operation's own id (for a create, the object's).
operation::Operation NewOperation(const std::string& id, const std::string& verb,
                                  const KindInfo& kind, const std::string& ns,
                                  const std::string& name, const std::string& target_id,
                                  const std::string& created_at, const std::string& created_by) {
  operation::Operation op;
  auto* md = op.mutable_metadata();
  md->set_id(id);
  md->set_name(id);
  md->set_namespace_(ns);
  md->set_resource_type("Operation");
  md->set_created_at(created_at);
  md->set_created_by(created_by);
  auto* spec = op.mutable_spec();
  spec->set_verb(verb);
  spec->set_target_kind(kind.plural);
  spec->set_target_namespace(ns);
  spec->set_target_name(name);
  spec->set_target_id(target_id);
  return op;
}

}  // namespace

Principal SystemPrincipal() {
  Principal p;
  p.name = "system:controller";
  auth::RoleBinding b;
  b.set_namespace_("*");
  b.set_role("admin");
  p.bindings.push_back(b);
  return p;
}

bool IsAgent(const Principal& who) {
  for (const auto& b : who.bindings) {
    if (b.role() == "agent") return true;
  }
  return false;
}

std::string TargetName(const KindInfo& kind, const std::string& ns, const std::string& name) {
  return kind.plural + "/" + ns + "/" + name;
}

uint64_t AuditDecisionsOnThisThread() { return audit_decisions_on_thread; }

// One thread running the retries that need store reads, in the order they came. Stop drains
// its queue: every call waiting for a retry gets its answer. Work posted after that (a commit
// completing while the server shuts down) runs on the posting thread.
class ResourceManager::RetryThread {
 public:
  RetryThread() : thread_([this] { Run(); }) {}
  ~RetryThread() { Stop(); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  void Post(std::function<void()> work) {
    {
      std::lock_guard lock(mu_);
      if (!exited_) {
        queue_.push_back(std::move(work));
        cv_.notify_one();
        return;
      }
    }
    work();
  }

 private:
  void Run() {
    SetThreadName("api-retry");
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        exited_ = true;
        return;
      }
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  bool exited_ = false;
  std::thread thread_;  // last: started once the members above exist
};

ResourceManager::ResourceManager(store::Store* store, WatchCache* cache, MetricsRegistry* metrics)
    : retry_thread_(std::make_unique<RetryThread>()), store_(store), cache_(cache) {
  store_latency_ = metrics->GetHistogram("photon_store_request_seconds",
                                         "Latency of state store requests made by the API");
  SetRefusalWindow(std::chrono::seconds(60));
}

ResourceManager::~ResourceManager() {
  retry_thread_->Stop();  // answers the retries still queued
  refusals_->Flush(true);
}

void ResourceManager::RunOffCompletion(std::function<void()> work) {
  retry_thread_->Post(std::move(work));
}

void ResourceManager::SetRefusalWindow(std::chrono::milliseconds window) {
  refusals_ = std::make_unique<RefusalThrottle>(window, [this](const RefusalThrottle::Record& r) {
    Principal anonymous;
    anonymous.name = "anonymous";
    AuditWrite(AuditOp(anonymous, "authenticate", r.request, false, 401,
                       {{"source", r.source},
                        {"count", std::to_string(r.count)},
                        {"first", r.first_at},
                        {"last", r.last_at}}));
  });
}

Status ResourceManager::Authorize(const Principal& who, Verb verb, const KindInfo& kind,
                                  const std::string& ns) {
  if (who.Allowed(verb, kind.plural, ns)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "'" + who.name + "' may not " +
      (verb == Verb::kGet || verb == Verb::kList || verb == Verb::kWatch ? std::string("read")
                                                                         : std::string("change")) +
      " " + kind.plural + " in namespace '" + ns + "'");
}

store::TxnOp ResourceManager::AuditOp(const Principal& who, const std::string& action,
                                      const std::string& target, bool success, int code,
                                      const std::map<std::string, std::string>& metadata) {
  ++audit_decisions_on_thread;
  event::Event ev;
  auto* md = ev.mutable_metadata();
  md->set_id(NewUuid());
  md->set_created_at(NowRfc3339());
  md->set_resource_type("AuditEvent");
  ev.mutable_spec()->set_event_type("audit");
  ev.mutable_spec()->set_timestamp(md->created_at());
  ev.mutable_spec()->set_source("photon-server");
  auto* a = ev.mutable_spec()->mutable_audit_event();
  a->set_actor_id(who.name);
  a->set_action(action);
  a->set_resource_id(target);
  a->set_success(success);
  a->set_code(code);
  a->mutable_metadata()->insert(metadata.begin(), metadata.end());
  return {.type = store::TxnOp::Type::kAppend, .key = kAuditLog, .value = ev.SerializeAsString()};
}

void ResourceManager::AuditFailure(const Principal& who, const std::string& action,
                                   const std::string& target, const Status& status) {
  auto written = std::make_shared<std::promise<void>>();
  std::future<void> done = written->get_future();
  AuditFailureAsync(who, action, target, status, [written] { written->set_value(); });
  done.wait();
}

void ResourceManager::AuditWrite(store::TxnOp op) {
  store::TxnRequest txn;
  txn.success.push_back(std::move(op));
  auto r = store_->Txn(txn);
  if (!r.ok()) spdlog::warn("audit write failed: {}", r.status().ToString());
}

void ResourceManager::AuditCall(const Principal& who, const std::string& action,
                                const std::string& target, int code) {
  AuditWrite(AuditOp(who, action, target, code < 400, code));
}

void ResourceManager::AuditUnauthenticated(const std::string& source, const std::string& request) {
  refusals_->Refused(source, request);
}

void ResourceManager::AuditFailureAsync(const Principal& who, const std::string& action,
                                        const std::string& target, const Status& status,
                                        std::function<void()> then) {
  store::TxnRequest txn;
  txn.success.push_back(AuditOp(who, action, target, false, HttpStatusFromCode(status.code())));
  store_->TxnAsync(std::move(txn), [then = std::move(then)](StatusOr<store::TxnResult> r) {
    if (!r.ok()) spdlog::warn("audit write failed: {}", r.status().ToString());
    then();
  });
}

StatusOr<std::pair<MessagePtr, int64_t>> ResourceManager::ReadCurrent(const KindInfo& kind,
                                                                      const std::string& key) {
  int64_t t0 = MonotonicNanos();
  auto r = store_->Range(key);
  store_latency_->Observe((MonotonicNanos() - t0) / 1e9);
  if (!r.ok()) return r.status();
  if (r->kvs.empty())
    return absl::NotFoundError(kind.kind + " '" + key.substr(key.rfind('/') + 1) + "' not found");
  MessagePtr obj(kind.prototype->New());
  if (!obj->ParseFromString(r->kvs[0].value)) return absl::DataLossError("corrupt object " + key);
  MutableMetadata(obj.get())->set_resource_version(std::to_string(r->kvs[0].mod_revision));
  return std::make_pair(obj, r->kvs[0].mod_revision);
}

StatusOr<CreateResult> ResourceManager::Create(const Principal& who, const KindInfo& kind,
                                               const std::string& ns, MessagePtr object) {
  auto promise = std::make_shared<std::promise<StatusOr<CreateResult>>>();
  std::future<StatusOr<CreateResult>> outcome = promise->get_future();
  CreateAsync(who, kind, ns, std::move(object),
              [promise](StatusOr<CreateResult> r) { promise->set_value(std::move(r)); });
  return outcome.get();
}

// metadata.agentId on a create is a placement by hand: an admin's, checked by the scheduler's
// filters as a move is, and kept. Never dropped: a tenant's is refused.
Status ResourceManager::CheckCreatePlacement(const Principal& who, const KindInfo& kind,
                                             const Message& object) const {
  const std::string& node = GetMetadata(object).agent_id();
  if (node.empty() || kind.plural == "nodes") return absl::OkStatus();
  if (kind.plural != "computeinstances") {
    return absl::InvalidArgumentError("metadata.agentId: " + kind.plural +
                                      " are not placed on nodes; leave it empty");
  }
  if (!who.IsAdmin()) {
    return absl::PermissionDeniedError(
        "metadata.agentId: placing an instance on a node by hand is for admins; ask the "
        "scheduler with spec.schedule.nodes instead");
  }
  auto check = placement_check_.load();
  if (check && *check) return (*check)(object, node);
  return absl::OkStatus();
}

void ResourceManager::CreateAsync(const Principal& who, const KindInfo& kind,
                                  const std::string& ns_in, MessagePtr object,
                                  CreateCallback done) {
  auto* md = MutableMetadata(object.get());
  std::string ns =
      ns_in.empty() ? (md->namespace_().empty() ? "default" : md->namespace_()) : ns_in;
  const std::string target = TargetName(kind, ns, md->name());
  auto fail = [&](Status st) {
    // Answered once the refusal's record is committed, without a thread waiting for it.
    AuditFailureAsync(who, "create", target, st, [st, done = std::move(done)] { done(st); });
  };
  if (auto st = ValidateName("metadata.namespace", ns); !st.ok()) {
    done(std::move(st));
    return;
  }
  if (!md->namespace_().empty() && md->namespace_() != ns) {
    fail(absl::InvalidArgumentError("metadata.namespace: '" + md->namespace_() +
                                    "' does not match the request's namespace '" + ns + "'"));
    return;
  }
  if (auto st = Authorize(who, Verb::kCreate, kind, ns); !st.ok()) return fail(st);
  if (auto st = CheckAgentScope(who, Verb::kCreate, kind.plural, md->name(), ""); !st.ok()) {
    return fail(st);
  }
  if (!kind.user_creatable && !(kind.plural == "nodes" || kind.plural == "events")) {
    return fail(absl::InvalidArgumentError(kind.plural + " are written by the system only"));
  }
  if (auto st = ValidateName("metadata.name", md->name()); !st.ok()) return fail(st);
  if (auto st = CheckLoadBalancerOwnership(who, kind, "created"); !st.ok()) return fail(st);
  md->set_namespace_(ns);  // validation may depend on it (a Maintenance's drain)
  if (auto st = ValidateSpec(kind, *object); !st.ok()) return fail(st);
  if (auto st = CheckHostPrivileges(who, kind, *object); !st.ok()) return fail(st);
  if (auto st = CheckCreatePlacement(who, kind, *object); !st.ok()) return fail(st);
  if (auto st = SealLoadBalancerKeys(store_, kind, object.get()); !st.ok()) return fail(st);
  // Server-owned fields: whatever the client sent is replaced.
  md->set_namespace_(ns);
  md->set_id(NewUuid());
  md->set_resource_type(kind.kind);
  md->set_created_at(NowRfc3339());
  md->set_updated_at(md->created_at());
  md->set_created_by(who.name);
  md->set_generation(1);
  md->clear_resource_version();
  md->clear_deletion_timestamp();
  if (auto* st = MutableStatus(object.get()); st && kind.plural != "nodes") {
    st->Clear();
    st->set_phase(resource::ResourceStatus::PENDING);
    st->set_message("accepted");
    if (auto hint = create_status_hint_.load(); hint && *hint) (*hint)(kind, object.get());
  }

  // A create's operation is the object itself seen through its phase (GetOperation derives
  // it), so a create costs one object write, not an extra record and its updates.
  operation::Operation op =
      NewOperation(md->id(), "create", kind, ns, md->name(), md->id(), md->created_at(), who.name);
  op.mutable_status()->set_state(operation::OperationStatus::PENDING);
  op.mutable_status()->set_message("accepted");

  const std::string key = RegistryKey(kind.plural, ns, md->name());
  store::TxnRequest txn;
  txn.compares.push_back({.key = key,
                          .target = store::Compare::Target::kCreateRevision,
                          .op = store::Compare::Op::kEqual,
                          .number = 0});
  txn.success.push_back(
      {.type = store::TxnOp::Type::kPut, .key = key, .value = object->SerializeAsString()});
  txn.success.push_back(AuditOp(who, "create", target, true, 202));
  // Over quota: refused; else the usage is reserved by this transaction, and the hold keeps
  // the namespace's other creates waiting until this one is decided.
  std::shared_ptr<void> quota_hold;
  if (quotas_) {
    auto hold = quotas_->Reserve(kind, ns, *object, &txn);
    if (!hold.ok()) return fail(hold.status());
    quota_hold = std::move(*hold);
  }
  if (network_ && prismnet::NetworkManager::Plans(kind)) {
    return CreatePlanned(who, kind, ns, target, std::move(object), std::move(op), std::move(txn),
                         std::move(quota_hold), std::move(done));
  }
  int64_t t0 = MonotonicNanos();
  store_->TxnAsync(std::move(txn), [this, who, kind = &kind, ns, target, object = std::move(object),
                                    op = std::move(op), t0, quota_hold = std::move(quota_hold),
                                    done = std::move(done)](StatusOr<store::TxnResult> r) mutable {
    quota_hold.reset();  // decided: the namespace's next create may read the usage
    store_latency_->Observe((MonotonicNanos() - t0) / 1e9);
    if (!r.ok()) {
      done(r.status());
      return;
    }
    auto* md = MutableMetadata(object.get());
    if (!r->succeeded) {
      Status exists = absl::AlreadyExistsError(kind->kind + " '" + md->name() +
                                               "' already exists in namespace '" + ns + "'");
      // This runs on the store's completion thread, which must not wait for a write: the
      // refusal's audit record is queued, and the answer goes out once it is committed
      // (an audit listing right after the answer finds it, as on every other path).
      AuditFailureAsync(who, "create", target, exists,
                        [exists, done = std::move(done)] { done(exists); });
      return;
    }
    md->set_resource_version(std::to_string(r->revision));
    op.mutable_metadata()->set_resource_version(std::to_string(r->revision));
    done(CreateResult{std::move(object), std::move(op)});
  });
}

StatusOr<ConstMessagePtr> ResourceManager::Get(const Principal& who, const KindInfo& kind,
                                               const std::string& ns, const std::string& name) {
  PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kGet, kind, ns));
  PHOTON_RETURN_IF_ERROR(CheckAgentScope(who, Verb::kGet, kind.plural, name, ""));
  PHOTON_RETURN_IF_ERROR(ValidateName("name", name));
  auto cur = ReadCurrent(kind, RegistryKey(kind.plural, ns, name));
  if (!cur.ok()) return cur.status();
  PHOTON_RETURN_IF_ERROR(CheckAgentRead(who, kind, ns, *cur->first, *cache_));
  return ConstMessagePtr(cur->first);
}

StatusOr<MessagePtr> ResourceManager::Update(const Principal& who, const KindInfo& kind,
                                             const std::string& ns, const std::string& name,
                                             MessagePtr object, bool status_only) {
  auto promise = std::make_shared<std::promise<StatusOr<MessagePtr>>>();
  std::future<StatusOr<MessagePtr>> outcome = promise->get_future();
  UpdateAsync(who, kind, ns, name, std::move(object), status_only,
              [promise](StatusOr<MessagePtr> r) { promise->set_value(std::move(r)); });
  return outcome.get();
}

void ResourceManager::UpdateAsync(const Principal& who, const KindInfo& kind, const std::string& ns,
                                  const std::string& name, MessagePtr object, bool status_only,
                                  UpdateCallback done) {
  const std::string target = TargetName(kind, ns, name);
  const char* action = status_only ? "update-status" : "update";
  auto prepared = PrepareUpdate(who, kind, ns, name, std::move(object), status_only);
  if (!prepared.ok()) {
    // Answered once the refusal's record is committed, as a committed update is; no thread
    // waits for it meanwhile.
    AuditFailureAsync(who, action, target, prepared.status(),
                      [st = prepared.status(), done = std::move(done)] { done(st); });
    return;
  }
  int64_t t0 = MonotonicNanos();
  store_->TxnAsync(
      std::move(prepared->txn),
      [this, who, kind = &kind, name, target, action, stored = std::move(prepared->stored),
       quota_hold = std::move(prepared->quota_hold), t0,
       done = std::move(done)](StatusOr<store::TxnResult> r) mutable {
        quota_hold.reset();  // decided: the namespace's next write may read the usage
        store_latency_->Observe((MonotonicNanos() - t0) / 1e9);
        Status refused = !r.ok() ? r.status()
                         : !r->succeeded
                             ? absl::AbortedError("conflict: " + kind->kind + " '" + name +
                                                  "' changed meanwhile; get it again and retry")
                             : absl::OkStatus();
        if (!refused.ok()) {
          // On the completion thread, which must not wait for a write: see CreateAsync.
          AuditFailureAsync(who, action, target, refused,
                            [refused, done = std::move(done)] { done(refused); });
          return;
        }
        MutableMetadata(stored.get())->set_resource_version(std::to_string(r->revision));
        done(std::move(stored));
      });
}

StatusOr<ResourceManager::PreparedUpdate> ResourceManager::PrepareUpdate(
    const Principal& who, const KindInfo& kind, const std::string& ns, const std::string& name,
    MessagePtr object, bool status_only) {
  const std::string target = TargetName(kind, ns, name);
  const char* action = status_only ? "update-status" : "update";
  Verb verb = status_only ? Verb::kUpdateStatus : Verb::kUpdate;
  PHOTON_RETURN_IF_ERROR(Authorize(who, verb, kind, ns));
  if (status_only && !kind.status_by_agent && !who.IsAdmin()) {
    return absl::PermissionDeniedError("status of " + kind.plural + " is written by the system");
  }
  const auto& in_md = GetMetadata(*object);
  if (!in_md.name().empty() && in_md.name() != name) {
    return absl::InvalidArgumentError("metadata.name: '" + in_md.name() +
                                      "' does not match the URL's name '" + name + "'");
  }
  if (!in_md.namespace_().empty() && in_md.namespace_() != ns) {
    return absl::InvalidArgumentError(
        "metadata.namespace: cannot move an object to another namespace");
  }
  if (in_md.resource_version().empty()) {
    return absl::InvalidArgumentError(
        "metadata.resourceVersion: required for an update (get the object first)");
  }
  PHOTON_ASSIGN_OR_RETURN(int64_t want_rev,
                          ParseRevision("metadata.resourceVersion", in_md.resource_version()));
  if (!status_only) {
    PHOTON_RETURN_IF_ERROR(CheckLoadBalancerOwnership(who, kind, "changed"));
    MutableMetadata(object.get())->set_namespace_(ns);
    PHOTON_RETURN_IF_ERROR(ValidateSpec(kind, *object));
    PHOTON_RETURN_IF_ERROR(CheckHostPrivileges(who, kind, *object));
    PHOTON_RETURN_IF_ERROR(SealLoadBalancerKeys(store_, kind, object.get()));
  }
  const std::string key = RegistryKey(kind.plural, ns, name);
  PHOTON_ASSIGN_OR_RETURN(auto cur, ReadCurrent(kind, key));
  auto [stored, stored_rev] = cur;
  std::unique_ptr<Message> before;  // what it takes now: a quota checks only what is added
  if (quotas_ && !status_only) {
    before.reset(stored->New());
    before->CopyFrom(*stored);
  }
  // Before the version check: a write outside an agent's scope is refused as such.
  PHOTON_RETURN_IF_ERROR(
      CheckAgentScope(who, verb, kind.plural, name, GetMetadata(*stored).agent_id()));
  if (!status_only) PHOTON_RETURN_IF_ERROR(CheckSharedImageWrite(who, kind, *stored));
  PHOTON_RETURN_IF_ERROR(CheckPipelineWrite(who, kind));
  if (stored_rev != want_rev) {
    return absl::AbortedError("conflict: " + kind.kind + " '" + name + "' is at resourceVersion " +
                              std::to_string(stored_rev) + ", the update was based on " +
                              in_md.resource_version() + "; get it again and retry");
  }
  if (network_ && !status_only) {
    PHOTON_RETURN_IF_ERROR(network_->CheckUpdate(kind, ns, object.get(), *stored));
  }
  auto* md = MutableMetadata(stored.get());
  if (status_only) {
    prismnet::NetworkManager::MergeStatus(kind, *object, stored.get());  // keeps its VPC address
    if (kind.plural == "nodes" && !GetMetadata(*object).agent_id().empty()) {
      md->set_agent_id(GetMetadata(*object).agent_id());
    }
  } else {
    if (SpecBytes(*object) != SpecBytes(*stored)) md->set_generation(md->generation() + 1);
    CopySpec(*object, stored.get());
    *md->mutable_labels() = in_md.labels();
    *md->mutable_annotations() = in_md.annotations();
    if (who.IsAdmin() || kind.status_by_agent) {
      // The scheduler and agents record placement in metadata.
      if (!in_md.agent_id().empty() && (who.IsAdmin() || md->agent_id().empty())) {
        auto check = placement_check_.load();
        if (check && *check && kind.plural == "computeinstances" &&
            in_md.agent_id() != md->agent_id()) {
          PHOTON_RETURN_IF_ERROR((*check)(*stored, in_md.agent_id()));
        }
        md->set_agent_id(in_md.agent_id());
      }
    }
  }
  md->set_updated_at(NowRfc3339());
  md->clear_resource_version();
  PreparedUpdate out;
  out.txn.compares.push_back({.key = key,
                              .target = store::Compare::Target::kModRevision,
                              .op = store::Compare::Op::kEqual,
                              .number = stored_rev});
  out.txn.success.push_back(
      {.type = store::TxnOp::Type::kPut, .key = key, .value = stored->SerializeAsString()});
  if (network_ && !status_only) {
    // A manual placement (an admin's agentId) moves the Port too, as the scheduler's does.
    PHOTON_RETURN_IF_ERROR(network_->AddPlacementOps(kind, *stored, &out.txn));
  }
  if (quotas_ && !status_only) {  // an update that raises what the object takes
    PHOTON_ASSIGN_OR_RETURN(out.quota_hold,
                            quotas_->Reserve(kind, ns, *stored, &out.txn, before.get()));
  }
  // An agent's status write on its node is its heartbeat (every few seconds per node): a
  // liveness signal, not an audit event. Refused ones are still recorded.
  const bool heartbeat = status_only && kind.plural == "nodes" && IsAgent(who);
  if (heartbeat) {
    ++audit_decisions_on_thread;  // decided: no record, from the gateway either
  } else {
    out.txn.success.push_back(AuditOp(who, action, target, true, 200));
  }
  out.stored = std::move(stored);
  return out;
}

StatusOr<operation::Operation> ResourceManager::Delete(const Principal& who, const KindInfo& kind,
                                                       const std::string& ns,
                                                       const std::string& name,
                                                       const std::string& resource_version) {
  auto promise = std::make_shared<std::promise<StatusOr<operation::Operation>>>();
  std::future<StatusOr<operation::Operation>> outcome = promise->get_future();
  DeleteAsync(who, kind, ns, name, resource_version,
              [promise](StatusOr<operation::Operation> r) { promise->set_value(std::move(r)); });
  return outcome.get();
}

namespace {
// Without a precondition from the client, a controller's status write between a delete's read
// and its commit is no reason to fail: it reads again, this many times in all.
constexpr int kDeleteAttempts = 10;
}  // namespace

struct ResourceManager::DeleteCall {
  Principal who;
  const KindInfo* kind;
  std::string ns, name, resource_version, target;
  DeleteCallback done;
};

void ResourceManager::DeleteAsync(const Principal& who, const KindInfo& kind, const std::string& ns,
                                  const std::string& name, const std::string& resource_version,
                                  DeleteCallback done) {
  auto call = std::make_shared<DeleteCall>(DeleteCall{who, &kind, ns, name, resource_version,
                                                      TargetName(kind, ns, name), std::move(done)});
  DeleteAttempt(std::move(call), 0);
}

// Runs on the caller's thread (first attempt) or on the retry thread: both may read the store.
void ResourceManager::DeleteAttempt(std::shared_ptr<DeleteCall> call, int attempt) {
  const bool may_retry = call->resource_version.empty() && attempt + 1 < kDeleteAttempts;
  auto refuse = [this, &call](Status st) {
    // Answered once the refusal's record is committed; no thread waits for it meanwhile.
    AuditFailureAsync(call->who, "delete", call->target, st, [st, call] { call->done(st); });
  };
  auto prepared =
      PrepareDelete(call->who, *call->kind, call->ns, call->name, call->resource_version);
  if (!prepared.ok()) {
    if (prepared.status().code() == StatusCode::kAborted && may_retry) {
      return DeleteAttempt(std::move(call), attempt + 1);
    }
    return refuse(prepared.status());
  }
  auto p = std::make_shared<PreparedDelete>(std::move(*prepared));
  store::TxnRequest txn = std::move(p->txn);
  const int64_t t0 = MonotonicNanos();
  store_->TxnAsync(std::move(txn), [this, call, attempt, may_retry, p,
                                    t0](StatusOr<store::TxnResult> r) mutable {
    store_latency_->Observe((MonotonicNanos() - t0) / 1e9);
    if (!r.ok()) {
      call->done(r.status());
      return;
    }
    if (!r->succeeded) {
      if (may_retry) {
        RunOffCompletion([this, call, attempt] { DeleteAttempt(call, attempt + 1); });
        return;
      }
      Status conflict = absl::AbortedError("conflict: " + call->kind->kind + " '" + call->name +
                                           "' changed meanwhile; retry");
      // On the completion thread, which must not wait for a write: see CreateAsync.
      AuditFailureAsync(call->who, "delete", call->target, conflict,
                        [conflict, call] { call->done(conflict); });
      return;
    }
    if (network_ && !p->two_phase) network_->Released(*call->kind, *p->stored);
    p->op.mutable_metadata()->set_resource_version(std::to_string(r->revision));
    call->done(std::move(p->op));
  });
}

StatusOr<ResourceManager::PreparedDelete> ResourceManager::PrepareDelete(
    const Principal& who, const KindInfo& kind, const std::string& ns, const std::string& name,
    const std::string& resource_version) {
  const std::string target = TargetName(kind, ns, name);
  // Agents may not delete, except to finish a delete that was requested (two-phase delete).
  const bool agent_finalize = IsAgent(who) && !who.Allowed(Verb::kDelete, kind.plural, ns);
  if (!agent_finalize) PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kDelete, kind, ns));
  PHOTON_RETURN_IF_ERROR(CheckLoadBalancerOwnership(who, kind, "deleted"));
  PHOTON_ASSIGN_OR_RETURN(int64_t want_rev, ParseRevision("resourceVersion", resource_version));
  const std::string key = RegistryKey(kind.plural, ns, name);
  PHOTON_ASSIGN_OR_RETURN(auto cur, ReadCurrent(kind, key));
  auto [stored, stored_rev] = cur;
  if (!agent_finalize) PHOTON_RETURN_IF_ERROR(CheckSharedImageWrite(who, kind, *stored));
  if (!agent_finalize) PHOTON_RETURN_IF_ERROR(CheckPipelineWrite(who, kind));
  if (want_rev && want_rev != stored_rev) {
    // The client's precondition: not retried (DeleteAttempt retries only without one).
    return absl::AbortedError("conflict: " + kind.kind + " '" + name + "' is at resourceVersion " +
                              std::to_string(stored_rev));
  }
  PreparedDelete out;
  out.op = NewOperation(NewUuid(), "delete", kind, ns, name, GetMetadata(*stored).id(),
                        NowRfc3339(), who.name);
  if (network_ && !agent_finalize) {
    PHOTON_ASSIGN_OR_RETURN(stored_rev,
                            network_->PrepareDelete(kind, ns, name, *stored, stored_rev));
  }
  out.txn.compares.push_back({.key = key,
                              .target = store::Compare::Target::kModRevision,
                              .op = store::Compare::Op::kEqual,
                              .number = stored_rev});
  if (agent_finalize && (GetMetadata(*stored).deletion_timestamp().empty() ||
                         "node:" + GetMetadata(*stored).agent_id() != who.name)) {
    return absl::PermissionDeniedError("an agent only finishes deletes of objects on its own node");
  }
  out.two_phase = Assigned(*stored) && kind.plural != "nodes" && !agent_finalize;
  auto& op = out.op;
  if (out.two_phase) {
    // The agent that runs it tears it down, then removes the object.
    auto* md = MutableMetadata(stored.get());
    md->clear_resource_version();
    if (md->deletion_timestamp().empty()) md->set_deletion_timestamp(NowRfc3339());
    if (auto* st = MutableStatus(stored.get())) {
      st->set_phase(resource::ResourceStatus::DELETING);
      st->set_message("delete requested");
    }
    out.txn.success.push_back(
        {.type = store::TxnOp::Type::kPut, .key = key, .value = stored->SerializeAsString()});
    op.mutable_status()->set_state(operation::OperationStatus::RUNNING);
    op.mutable_status()->set_message("waiting for the agent to tear it down");
  } else {
    out.txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = key});
    prismnet::NetworkManager::AddReleaseOps(kind, *stored, &out.txn);  // its Port and address
    if (network_)
      PHOTON_RETURN_IF_ERROR(network_->AddFloatingIpReleaseOps(kind, *stored, &out.txn));
    op.mutable_status()->set_state(operation::OperationStatus::DONE);
    op.mutable_status()->set_message("deleted");
    op.mutable_status()->set_done_at(op.metadata().created_at());
  }
  out.txn.success.push_back({.type = store::TxnOp::Type::kPut,
                             .key = RegistryKey("operations", ns, op.metadata().id()),
                             .value = op.SerializeAsString()});
  out.txn.success.push_back(AuditOp(who, "delete", target, true, 202));
  out.stored = std::move(stored);
  return out;
}

StatusOr<ListResult> ResourceManager::List(const Principal& who, const KindInfo& kind,
                                           const std::string& ns, const std::string& selector_text,
                                           const std::string& field_selector_text, int limit,
                                           const std::string& continue_token) {
  std::vector<std::string> readable;
  if (!ns.empty()) {
    PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kList, kind, ns));
    PHOTON_RETURN_IF_ERROR(ValidateName("namespace", ns));
  } else {
    readable = who.ReadableNamespaces(kind.plural);
    if (readable.empty()) return Authorize(who, Verb::kList, kind, "*");
    // The kind too: an agent reads some kinds only (and nodes only by name).
    PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kList, kind, readable[0]));
  }
  if (limit < 0) return absl::InvalidArgumentError("limit: must be ≥ 0");
  PHOTON_ASSIGN_OR_RETURN(LabelSelector selector, LabelSelector::Parse(selector_text));
  PHOTON_ASSIGN_OR_RETURN(FieldSelector fields, FieldSelector::Parse(field_selector_text));
  PHOTON_RETURN_IF_ERROR(CheckAgentSelection(who, kind, fields));
  // Consistent read: the cache must have applied everything the store has acknowledged.
  PHOTON_ASSIGN_OR_RETURN(int64_t current, store_->CurrentRevision());
  PHOTON_RETURN_IF_ERROR(cache_->WaitForRevision(current));

  std::string prefix = RegistryPrefix(kind.plural, ns);
  std::string start = prefix;
  if (!continue_token.empty()) {
    PHOTON_ASSIGN_OR_RETURN(start, HexDecode(continue_token));
    if (start.compare(0, prefix.size(), prefix) != 0) {
      return absl::InvalidArgumentError("continue: token does not belong to this list");
    }
  }
  bool all_ns = readable.size() == 1 && readable[0] == "*";
  auto filter = [&](const CachedObject& obj) {
    if (!fields.empty() && !fields.Matches(obj.Fields())) return false;
    if (!ns.empty() || all_ns) {
      if (selector.empty()) return true;
    } else {
      // Key: /registry/<plural>/<ns>/<name>
      std::string rest = obj.key().substr(prefix.size());
      std::string obj_ns = rest.substr(0, rest.find('/'));
      if (std::find(readable.begin(), readable.end(), obj_ns) == readable.end()) return false;
      if (selector.empty()) return true;
    }
    auto msg = obj.Decoded();
    return msg && selector.Matches(GetMetadata(*msg).labels());
  };
  auto r = cache_->List(start, store::PrefixEnd(prefix), static_cast<size_t>(limit), filter);
  ListResult out;
  out.items = std::move(r.items);
  out.resource_version = std::to_string(r.revision);
  if (!r.next_key.empty()) out.continue_token = HexEncode(r.next_key);
  return out;
}

StatusOr<uint64_t> ResourceManager::Watch(const Principal& who, const KindInfo& kind,
                                          const std::string& ns, const std::string& selector_text,
                                          const std::string& field_selector_text,
                                          const std::string& resource_version, WatchSink sink) {
  std::vector<std::string> readable;
  if (!ns.empty()) {
    PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kWatch, kind, ns));
  } else {
    readable = who.ReadableNamespaces(kind.plural);
    if (readable.empty()) return Authorize(who, Verb::kWatch, kind, "*");
    // The kind too: an agent reads some kinds only (and nodes only by name).
    PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kWatch, kind, readable[0]));
    if (readable[0] == "*") readable.clear();
  }
  PHOTON_ASSIGN_OR_RETURN(int64_t from, ParseRevision("resourceVersion", resource_version));
  PHOTON_ASSIGN_OR_RETURN(LabelSelector selector, LabelSelector::Parse(selector_text));
  PHOTON_ASSIGN_OR_RETURN(FieldSelector fields, FieldSelector::Parse(field_selector_text));
  PHOTON_RETURN_IF_ERROR(CheckAgentSelection(who, kind, fields));
  std::string prefix = RegistryPrefix(kind.plural, ns);
  auto matches = [selector, fields, readable, prefix](const CachedObject& obj) {
    if (!fields.empty() && !fields.Matches(obj.Fields())) return false;
    if (!readable.empty()) {
      std::string rest = obj.key().substr(prefix.size());
      std::string obj_ns = rest.substr(0, rest.find('/'));
      if (std::find(readable.begin(), readable.end(), obj_ns) == readable.end()) return false;
    }
    if (selector.empty()) return true;
    auto msg = obj.Decoded();
    return msg && selector.Matches(GetMetadata(*msg).labels());
  };
  if (from == 0) {
    // Make the initial list consistent with acknowledged writes, as List does.
    PHOTON_ASSIGN_OR_RETURN(int64_t current, store_->CurrentRevision());
    PHOTON_RETURN_IF_ERROR(cache_->WaitForRevision(current));
  }
  auto on_events = sink.on_events;
  // The cache hands a watch of one node's objects only the events about that node.
  const std::string* agent = fields.RequiredValue("metadata.agentId");
  return cache_->Subscribe(
      prefix, from,
      [&](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t rev) {
        std::vector<CacheEvent> initial;
        for (const auto& o : snap) {
          if (matches(*o)) initial.push_back({CacheEvent::Type::kAdded, o->mod_revision(), o});
        }
        (void)rev;
        on_events(initial);
      },
      [on_events, matches](const std::vector<CacheEvent>& events) {
        std::vector<CacheEvent> mine;
        for (const auto& e : events) {
          if (e.type == CacheEvent::Type::kBookmark) {
            mine.push_back(e);
            continue;
          }
          const bool now = matches(*e.object);
          const bool before = e.previous ? matches(*e.previous) : now;
          if (now && before) {
            mine.push_back(e);
          } else if (now) {
            mine.push_back(e.type == CacheEvent::Type::kAdded ? e : e.Entered());
          } else if (before && e.previous) {
            mine.push_back(e.Left());
          }
        }
        if (!mine.empty()) on_events(mine);
      },
      /*bookmarks=*/true, agent ? *agent : std::string());
}

void ResourceManager::Unwatch(uint64_t id) { cache_->Unsubscribe(id); }

StatusOr<operation::Operation> ResourceManager::ExecuteAction(
    const Principal& who, const KindInfo& kind, const std::string& ns, const std::string& name,
    const std::string& action, const std::map<std::string, std::string>& params) {
  const std::string target = TargetName(kind, ns, name);
  auto fail = [&](Status st) {
    AuditFailure(who, "action:" + action, target, st);
    return st;
  };
  if (auto st = Authorize(who, Verb::kAction, kind, ns); !st.ok()) return fail(st);
  static const std::vector<std::string> kActions = {
      "start", "stop",   "restart", "logs",          "reboot",
      "pause", "resume", "console", "attach-volume", "detach-volume"};
  if (std::find(kActions.begin(), kActions.end(), action) == kActions.end()) {
    return fail(absl::InvalidArgumentError("action: '" + action + "' is not a known action"));
  }
  auto cur = ReadCurrent(kind, RegistryKey(kind.plural, ns, name));
  if (!cur.ok()) return fail(cur.status());
  if (!Assigned(*cur->first)) {
    return fail(absl::FailedPreconditionError(
        kind.kind + " '" + name + "' is not placed on a node yet; actions run on its node"));
  }
  operation::Operation op = NewOperation(NewUuid(), "action:" + action, kind, ns, name,
                                         GetMetadata(*cur->first).id(), NowRfc3339(), who.name);
  op.mutable_metadata()->set_agent_id(GetMetadata(*cur->first).agent_id());
  for (const auto& [k, v] : params) (*op.mutable_metadata()->mutable_annotations())[k] = v;
  op.mutable_status()->set_state(operation::OperationStatus::PENDING);
  op.mutable_status()->set_message("queued for the node agent");
  store::TxnRequest txn;
  txn.success.push_back({.type = store::TxnOp::Type::kPut,
                         .key = RegistryKey("operations", ns, op.metadata().id()),
                         .value = op.SerializeAsString()});
  txn.success.push_back(AuditOp(who, "action:" + action, target, true, 202));
  auto r = store_->Txn(txn);
  if (!r.ok()) return r.status();
  op.mutable_metadata()->set_resource_version(std::to_string(r->revision));
  return op;
}

StatusOr<operation::Operation> ResourceManager::GetOperation(const Principal& who,
                                                             const std::string& id) {
  PHOTON_ASSIGN_OR_RETURN(int64_t current, store_->CurrentRevision());
  PHOTON_RETURN_IF_ERROR(cache_->WaitForRevision(current));
  auto cached = cache_->GetById(id);
  if (!cached) {
    return absl::NotFoundError("operation '" + id + "' not found (unknown, or its object is gone)");
  }
  auto msg = cached->Decoded();
  if (!msg) return absl::DataLossError("corrupt object for operation " + id);
  const KindInfo* kind = FindKindByTypeName(msg->GetDescriptor()->full_name());
  if (!kind) return absl::NotFoundError("operation '" + id + "' not found");
  const auto& md = GetMetadata(*msg);
  PHOTON_RETURN_IF_ERROR(Authorize(who, Verb::kGet, *FindKind("operations"), md.namespace_()));
  if (!who.AgentNode().empty() && md.agent_id() != who.AgentNode()) {
    return absl::NotFoundError("operation '" + id + "' not found (unknown, or its object is gone)");
  }
  if (kind->plural == "operations") return static_cast<const operation::Operation&>(*msg);
  // The create operation of an object: its state follows the object's phase.
  operation::Operation op = NewOperation(md.id(), "create", *kind, md.namespace_(), md.name(),
                                         md.id(), md.created_at(), md.created_by());
  op.mutable_metadata()->set_resource_version(md.resource_version());
  const auto* st = GetStatus(*msg);
  auto* os = op.mutable_status();
  if (!st) {
    os->set_state(operation::OperationStatus::DONE);
    os->set_message("created");
  } else if (st->phase() == resource::ResourceStatus::RUNNING) {
    os->set_state(operation::OperationStatus::DONE);
    os->set_message("running");
    os->set_done_at(md.updated_at());
  } else if (st->phase() == resource::ResourceStatus::ERROR) {
    os->set_state(operation::OperationStatus::FAILED);
    os->set_message(st->message());
    os->set_done_at(md.updated_at());
  } else if (st->phase() == resource::ResourceStatus::PENDING && st->message() == "accepted") {
    os->set_state(operation::OperationStatus::PENDING);
    os->set_message("accepted");
  } else {
    os->set_state(operation::OperationStatus::RUNNING);
    os->set_message(resource::ResourceStatus::Phase_Name(st->phase()) + ": " + st->message());
  }
  return op;
}

StatusOr<ResourceManager::AuditPage> ResourceManager::ListAudit(const Principal& who, int limit,
                                                                const std::string& continue_token) {
  if (!who.IsAdmin()) return absl::PermissionDeniedError("the audit log is for admins only");
  if (limit < 0 || limit > kAuditPageMax) {
    return absl::InvalidArgumentError("limit: want 1 to " + std::to_string(kAuditPageMax) +
                                      " (0 or none: " + std::to_string(kAuditPageDefault) + ")");
  }
  auto page = store_->ReadLogPage(
      kAuditLog, {.limit = limit == 0 ? kAuditPageDefault : limit, .before = continue_token});
  if (!page.ok()) {
    if (page.status().code() == StatusCode::kInvalidArgument && !continue_token.empty()) {
      return absl::InvalidArgumentError("continue: malformed token");
    }
    return page.status();
  }
  AuditPage out;
  out.items.reserve(page->records.size());
  for (const auto& record : page->records) {
    event::Event ev;
    if (!ev.ParseFromString(record)) continue;
    auto a = ev.spec().audit_event();
    (*a.mutable_metadata())["timestamp"] = ev.spec().timestamp();
    out.items.push_back(std::move(a));
  }
  out.continue_token = std::move(page->next);
  return out;
}

StatusOr<int64_t> ResourceManager::TrimAudit(const store::LogRetention& retention) {
  return store_->TrimLog(kAuditLog, retention);
}

Status ResourceManager::MigrateLegacyAudit() {
  const std::string end = store::PrefixEnd(kLegacyAuditPrefix);
  int64_t moved = 0;
  for (;;) {
    // Keys are time-ordered, so each page is the oldest remaining; 64 records make 128 ops,
    // the most one txn may carry (etcd's default too). Nothing else writes /audit/ any more.
    auto page = store_->Range(kLegacyAuditPrefix, {.end = end, .limit = 64});
    if (!page.ok()) return page.status();
    if (page->kvs.empty()) break;
    store::TxnRequest txn;
    for (const auto& kv : page->kvs) {
      txn.success.push_back(
          {.type = store::TxnOp::Type::kAppend, .key = kAuditLog, .value = kv.value});
      txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = kv.key});
    }
    auto r = store_->Txn(txn);
    if (!r.ok()) return r.status();
    moved += static_cast<int64_t>(page->kvs.size());
  }
  if (moved > 0) spdlog::info("moved {} audit records from /audit/ keys into the audit log", moved);
  return absl::OkStatus();
}

Status ResourceManager::WriteStatusAsSystem(const KindInfo& kind, const Message& object) {
  return WriteSystem(kind, object, false);
}

Status ResourceManager::WriteSystem(const KindInfo& kind, const Message& object, bool fenced) {
  std::optional<store::Compare> fence;
  if (fenced && leader_fence_) {
    PHOTON_ASSIGN_OR_RETURN(fence, leader_fence_());
  }
  const auto& md = GetMetadata(object);
  auto rev = ParseRevision("resourceVersion", md.resource_version());
  if (!rev.ok()) return rev.status();
  MessagePtr copy(object.New());
  copy->CopyFrom(object);
  MutableMetadata(copy.get())->clear_resource_version();
  MutableMetadata(copy.get())->set_updated_at(NowRfc3339());
  prismnet::NetworkManager::NormalizeStatus(kind, copy.get());
  const std::string key = RegistryKey(kind.plural, md.namespace_(), md.name());
  store::TxnRequest txn;
  txn.compares.push_back({.key = key,
                          .target = store::Compare::Target::kModRevision,
                          .op = store::Compare::Op::kEqual,
                          .number = *rev});
  if (fence) txn.compares.push_back(*fence);
  txn.success.push_back(
      {.type = store::TxnOp::Type::kPut, .key = key, .value = copy->SerializeAsString()});
  // A placement moves the instance's Port to the same node in the same transaction.
  if (network_) PHOTON_RETURN_IF_ERROR(network_->AddPlacementOps(kind, *copy, &txn));
  auto r = store_->Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded) {
    return absl::AbortedError(fence ? "conflict writing " + key + " (or the leader term ended)"
                                    : "conflict writing status of " + key);
  }
  return absl::OkStatus();
}

Status ResourceManager::RecordEvent(const std::string& ns, const std::string& reason,
                                    const std::string& object, const std::string& message) {
  event::Event ev;
  auto* md = ev.mutable_metadata();
  md->set_id(NewUuid());
  md->set_name(md->id());
  md->set_namespace_(ns);
  md->set_resource_type("Event");
  md->set_created_at(NowRfc3339());
  md->set_created_by("system:controller");
  ev.mutable_spec()->set_event_type(reason);
  ev.mutable_spec()->set_timestamp(md->created_at());
  ev.mutable_spec()->set_source("photon-server");
  auto* re = ev.mutable_spec()->mutable_resource_event();
  re->set_resource_type(object.substr(0, object.find('/')));
  re->set_name(object);
  re->set_namespace_(ns);
  re->set_reason(reason);
  re->set_message(message);
  auto r = store_->Put(RegistryKey("events", ns, md->id()), ev.SerializeAsString());
  return r.ok() ? absl::OkStatus() : r.status();
}

Status ResourceManager::WriteOperation(const operation::Operation& op) {
  operation::Operation copy = op;
  copy.mutable_metadata()->clear_resource_version();
  auto r = store_->Put(RegistryKey("operations", op.metadata().namespace_(), op.metadata().id()),
                       copy.SerializeAsString());
  return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace photon::server
