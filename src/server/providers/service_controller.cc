// See service_controller.h.
#include "server/providers/service_controller.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/util.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {

using Phase = resource::ResourceStatus;

// Deterministic: status.details is a map, and protobuf serializes maps in hash order by
// default, so two equal statuses could compare unequal — every status write would then look
// like someone else's change and re-apply the object in a loop.
std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string Fingerprint(const google::protobuf::Message& obj) {
  const auto* st = GetStatus(obj);
  return SpecBytes(obj) + '\0' + (st ? DeterministicBytes(*st) : std::string());
}

}  // namespace

const std::vector<std::string>& ServiceKinds() {
  static const std::vector<std::string> kinds = {"dnszones", "dnsrecords", "buckets",
                                                 "loadbalancers", "globalservices"};
  return kinds;
}

ServiceController::ServiceController(ResourceManager* resources, MetricsRegistry* metrics,
                                     std::vector<std::unique_ptr<ServiceProvider>> providers,
                                     ServiceControllerOptions options)
    : resources_(resources),
      metrics_(metrics),
      providers_(std::move(providers)),
      options_(options) {}

Status ServiceController::Start() {
  for (const auto& k : ServiceKinds()) by_kind_[k] = nullptr;
  for (const auto& p : providers_) {
    for (const auto& k : p->kinds()) {
      if (!FindKind(k)) {
        return absl::InvalidArgumentError("providers: " + p->driver() + " claims unknown kind '" +
                                          k + "'");
      }
      if (by_kind_[k] != nullptr) {
        return absl::InvalidArgumentError("providers: both " + by_kind_[k]->driver() + " and " +
                                          p->driver() + " realize " + k + "; configure one");
      }
      by_kind_[k] = p.get();
    }
    spdlog::info("service provider {} realizes {}", p->driver(), [&] {
      std::string s;
      for (const auto& k : p->kinds()) s += (s.empty() ? "" : ", ") + k;
      return s;
    }());
  }
  auto id = resources_->cache()->Subscribe(
      "/registry/", 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        for (const auto& o : snap) {
          if (!KindOfKey(o->key()).empty()) Enqueue(o->key());
        }
      },
      [this](const std::vector<CacheEvent>& events) { OnEvents(events); });
  if (!id.ok()) return id.status();
  subscription_ = *id;
  lb_owner_ = std::make_unique<LoadBalancerOwner>(resources_, options_.resync);
  PHOTON_RETURN_IF_ERROR(lb_owner_->Start());
  next_sweep_ = Clock::now();
  worker_ = std::thread([this] {
    SetThreadName("svc-controller");
    Run();
  });
  return absl::OkStatus();
}

void ServiceController::Stop() {
  if (lb_owner_) lb_owner_->Stop();
  if (subscription_) {
    resources_->cache()->Unsubscribe(subscription_);
    subscription_ = 0;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::string ServiceController::KindOfKey(const std::string& key) const {
  // /registry/<plural>/<ns>/<name>
  static const std::string kPrefix = "/registry/";
  if (key.compare(0, kPrefix.size(), kPrefix) != 0) return "";
  size_t end = key.find('/', kPrefix.size());
  if (end == std::string::npos) return "";
  std::string plural = key.substr(kPrefix.size(), end - kPrefix.size());
  return by_kind_.count(plural) ? plural : "";
}

void ServiceController::Enqueue(const std::string& key, Clock::time_point when) {
  std::lock_guard lock(mu_);
  auto it = due_.find(key);
  if (it != due_.end()) {
    if (it->second <= when) return;  // already due sooner
    order_.erase({it->second, key});
  }
  due_[key] = when;
  order_.insert({when, key});
  cv_.notify_one();
}

void ServiceController::OnEvents(const std::vector<CacheEvent>& events) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : events) {
      const std::string& key = e.object->key();
      auto dep = dependents_.find(key);
      if (dep != dependents_.end()) keys.insert(keys.end(), dep->second.begin(), dep->second.end());
      if (KindOfKey(key).empty()) continue;
      if (e.type == CacheEvent::Type::kDeleted) {
        deleted_[key] = e.object->Decoded();
        written_.erase(key);
      } else {
        auto w = written_.find(key);
        auto msg = e.object->Decoded();
        if (w != written_.end() && msg && w->second == Fingerprint(*msg)) continue;
        deleted_.erase(key);  // re-created before its old self was removed: apply it instead
      }
      keys.push_back(key);
    }
  }
  for (const auto& k : keys) Enqueue(k);
}

void ServiceController::Run() {
  while (true) {
    std::string key;
    bool sweep = false;
    {
      std::unique_lock lock(mu_);
      while (true) {
        if (stop_) return;
        const auto now = Clock::now();
        if (now >= next_sweep_) {
          sweep = true;
          break;
        }
        if (!order_.empty() && order_.begin()->first <= now) {
          key = order_.begin()->second;
          order_.erase(order_.begin());
          due_.erase(key);
          break;
        }
        auto until = next_sweep_;
        if (!order_.empty()) until = std::min(until, order_.begin()->first);
        cv_.wait_until(lock, until);
      }
    }
    try {
      if (sweep) {
        Sweep();
      } else {
        Reconcile(key);
      }
    } catch (const std::exception& e) {
      spdlog::error("service controller: {}: {}", sweep ? "resync" : key, e.what());
    }
  }
}

void ServiceController::Count(const std::string& kind, const std::string& result) {
  metrics_
      ->GetCounter("photon_provider_reconciles_total",
                   "Reconciles of server-side service objects, by kind and result",
                   {{"kind", kind}, {"result", result}})
      ->Inc();
}

void ServiceController::ReportRemoveFailure(const ManagedRef& ref, const Status& st) {
  if (st.code() == StatusCode::kUnavailable) return;  // transient: retried, not the user's move
  const std::string key = RegistryKey(ref.kind, ref.ns, ref.name);
  const std::string message(st.message());
  auto& last = remove_reported_[key];
  if (last == message) return;
  last = message;
  const std::string object = ref.kind + "/" + ref.ns + "/" + ref.name;
  if (auto w = resources_->RecordEvent(ref.ns, "RemoveFailed", object, message); !w.ok())
    spdlog::warn("{}: event RemoveFailed: {}", key, w.ToString());
}

void ServiceController::Reconcile(const std::string& key) {
  const std::string kind = KindOfKey(key);
  if (kind.empty()) return;
  ServiceProvider* provider = by_kind_[kind];
  const KindInfo* info = FindKind(kind);
  auto backoff = [&] {
    int n = ++failures_[key];
    auto delay = options_.initial_backoff * (1 << std::min(n - 1, 16));
    Enqueue(key, Clock::now() + std::min<std::chrono::milliseconds>(delay, options_.max_backoff));
  };
  auto cached = resources_->cache()->Get(key);
  if (!cached) {
    std::shared_ptr<const google::protobuf::Message> last;
    {
      std::lock_guard lock(mu_);
      auto it = deleted_.find(key);
      if (it != deleted_.end()) last = it->second;
      for (const auto& d : dependencies_[key]) dependents_[d].erase(key);
      dependencies_.erase(key);
    }
    if (!last || !provider) {
      std::lock_guard lock(mu_);
      deleted_.erase(key);
      failures_.erase(key);
      return;
    }
    const auto& md = GetMetadata(*last);
    ManagedRef ref{kind, md.namespace_(), md.name(), {}};
    if (const auto* st = GetStatus(*last))
      ref.details.insert(st->details().begin(), st->details().end());
    if (auto st = provider->Remove(ref); !st.ok()) {
      spdlog::warn("{}: {} remove: {}", key, provider->driver(), st.ToString());
      Count(kind, "remove_failed");
      ReportRemoveFailure(ref, st);
      backoff();
      return;
    }
    Count(kind, "removed");
    remove_reported_.erase(key);
    std::lock_guard lock(mu_);
    deleted_.erase(key);
    failures_.erase(key);
    return;
  }
  auto msg = cached->Decoded();
  if (!msg || !info) return;
  if (!GetMetadata(*msg).agent_id().empty()) return;  // a node agent realizes this one

  const int64_t seen_revision = resources_->cache()->revision();
  Observed observed;
  if (!provider) {
    observed.phase = Phase::PENDING;
    observed.message = "no provider configured for " + kind;
  } else {
    ObjectLookup lookup = [this](const std::string& plural, const std::string& ns,
                                 const std::string& name) {
      auto o = resources_->cache()->Get(RegistryKey(plural, ns, name));
      return o ? o->Decoded() : nullptr;
    };
    observed = provider->Apply(*msg, lookup);
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& d : dependencies_[key]) dependents_[d].erase(key);
    dependencies_[key] = observed.depends_on;
    for (const auto& d : observed.depends_on) dependents_[d].insert(key);
  }
  // A dependency that changed while Apply ran was dispatched before we registered for it:
  // look again (the cache applies a change before dispatching it, so Get sees it).
  for (const auto& d : observed.depends_on) {
    auto dep = resources_->cache()->Get(d);
    if (dep && dep->mod_revision() > seen_revision) {
      Enqueue(key);
      break;
    }
  }
  std::unique_ptr<google::protobuf::Message> next(msg->New());
  next->CopyFrom(*msg);
  auto* st = MutableStatus(next.get());
  if (!st) return;
  st->set_phase(observed.phase);
  st->set_message(observed.message);
  st->set_observed_generation(GetMetadata(*msg).generation());
  st->mutable_details()->clear();
  st->mutable_details()->insert(observed.details.begin(), observed.details.end());
  st->clear_addresses();
  for (const auto& a : observed.addresses) st->add_addresses(a);
  const std::string result = observed.phase == Phase::RUNNING ? "applied"
                             : observed.phase == Phase::ERROR ? "error"
                                                              : "pending";
  if (Fingerprint(*next) != Fingerprint(*msg)) {
    {
      std::lock_guard lock(mu_);
      written_[key] = Fingerprint(*next);
    }
    Status w = resources_->WriteStatusAsSystem(*info, *next);
    if (!w.ok()) {
      std::lock_guard lock(mu_);
      written_.erase(key);
    }
    if (w.code() == StatusCode::kAborted || w.code() == StatusCode::kNotFound) {
      // Changed or deleted meanwhile: its watch event brings it back.
      Count(kind, "conflict");
      return;
    }
    if (!w.ok()) {
      spdlog::warn("{}: status write: {}", key, w.ToString());
      Count(kind, "write_failed");
      backoff();
      return;
    }
  }
  Count(kind, result);
  if (observed.retry) {
    backoff();
  } else {
    failures_.erase(key);
    if (observed.requeue_after.count() > 0) Enqueue(key, Clock::now() + observed.requeue_after);
  }
}

void ServiceController::Sweep() {
  const auto now = Clock::now();
  next_sweep_ = now + options_.resync;
  for (const auto& [kind, provider] : by_kind_) {
    const std::string prefix = RegistryPrefix(kind);
    auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
    for (const auto& o : list.items) Enqueue(o->key());
  }
  for (const auto& p : providers_) {
    auto managed = p->ListManaged();
    if (!managed.ok()) {
      spdlog::warn("{}: cannot list what it manages (orphans stay until it answers): {}",
                   p->driver(), managed.status().ToString());
      next_sweep_ = std::min(next_sweep_, now + options_.initial_backoff * 10);
      continue;
    }
    for (const auto& ref : *managed) {
      const std::string key = RegistryKey(ref.kind, ref.ns, ref.name);
      if (resources_->cache()->Get(key)) continue;
      spdlog::info("{}: removing {} left without an object", p->driver(), key);
      if (auto st = p->Remove(ref); !st.ok()) {
        spdlog::warn("{}: orphan {}: {}", p->driver(), key, st.ToString());
        ReportRemoveFailure(ref, st);
        // Only a backend that may come back soon is worth an early resync; a refusal waits
        // for the user (and the next regular resync).
        if (st.code() == StatusCode::kUnavailable)
          next_sweep_ = std::min(next_sweep_, now + options_.initial_backoff * 10);
        continue;
      }
      remove_reported_.erase(key);
      metrics_
          ->GetCounter("photon_provider_orphans_removed_total",
                       "Backend state removed because its object no longer exists",
                       {{"kind", ref.kind}})
          ->Inc();
    }
  }
}

}  // namespace photon::server
