// See loadbalancer_owner.h.
#include "server/providers/loadbalancer_owner.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/object_util.h"
#include "server/providers/loadbalancer_rules.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {

constexpr char kOwnerLabel[] = "photon.io/regionservice";

// "namespace/name" of a regionservices or loadbalancers key; "" for other keys.
std::string OwnedName(const std::string& key) {
  for (const char* plural : {"regionservices", "loadbalancers"}) {
    const std::string prefix = RegistryPrefix(plural);
    if (key.compare(0, prefix.size(), prefix) == 0) return key.substr(prefix.size());
  }
  return "";
}

}  // namespace

Status LoadBalancerOwner::Start() {
  // The provider of this leader reads HTTPS listeners' keys from here.
  SetLoadBalancerKeyStore(resources_->store());
  auto id = resources_->cache()->Subscribe(
      "/registry/", 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        for (const auto& o : snap) Enqueue(OwnedName(o->key()));
      },
      [this](const std::vector<CacheEvent>& events) {
        for (const auto& e : events) Enqueue(OwnedName(e.object->key()));
      });
  if (!id.ok()) return id.status();
  subscription_ = *id;
  worker_ = std::thread([this] {
    SetThreadName("lb-owner");
    Run();
  });
  return absl::OkStatus();
}

void LoadBalancerOwner::Stop() {
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

void LoadBalancerOwner::Enqueue(const std::string& ns_name) {
  if (ns_name.empty()) return;
  std::lock_guard lock(mu_);
  queue_.insert(ns_name);
  cv_.notify_one();
}

void LoadBalancerOwner::Run() {
  auto next_resync = Clock::now() + resync_;
  std::set<std::string> retry;
  while (true) {
    std::set<std::string> batch;
    {
      std::unique_lock lock(mu_);
      auto until = retry.empty() ? next_resync : Clock::now() + std::chrono::seconds(1);
      cv_.wait_until(lock, std::min(until, next_resync), [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      batch.swap(queue_);
    }
    batch.insert(retry.begin(), retry.end());
    retry.clear();
    const bool resync = Clock::now() >= next_resync;
    if (resync) {
      next_resync = Clock::now() + resync_;
      for (const char* plural : {"regionservices", "loadbalancers"}) {
        const std::string prefix = RegistryPrefix(plural);
        auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
        for (const auto& o : list.items) batch.insert(o->key().substr(prefix.size()));
      }
    }
    for (const auto& ns_name : batch) {
      const size_t slash = ns_name.find('/');
      if (slash == std::string::npos) continue;
      try {
        if (!Reconcile(ns_name.substr(0, slash), ns_name.substr(slash + 1))) retry.insert(ns_name);
      } catch (const std::exception& e) {
        spdlog::error("loadbalancer owner: {}: {}", ns_name, e.what());
        retry.insert(ns_name);
      }
    }
    if (resync || !batch.empty()) CollectKeys();
  }
}

void LoadBalancerOwner::CollectKeys() {
  std::set<std::string> refs;
  for (const char* plural : {"regionservices", "loadbalancers"}) {
    const KindInfo& kind = *FindKind(plural);
    const std::string prefix = RegistryPrefix(plural);
    auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
    for (const auto& o : list.items) {
      auto msg = o->Decoded();
      if (msg) CollectLoadBalancerKeyRefs(kind, *msg, &refs);
    }
  }
  auto deleted = keys_.Sweep(resources_->store(), refs);
  if (!deleted.ok()) {
    spdlog::warn("loadbalancer keys: {}", deleted.status().ToString());
  } else if (*deleted > 0) {
    spdlog::info("loadbalancer keys: {} no longer referred to, deleted", *deleted);
  }
}

bool LoadBalancerOwner::Reconcile(const std::string& ns, const std::string& name) {
  const KindInfo& lb_kind = *FindKind("loadbalancers");
  auto rs_obj = resources_->cache()->Get(RegistryKey("regionservices", ns, name));
  auto lb_obj = resources_->cache()->Get(RegistryKey("loadbalancers", ns, name));
  auto rs_msg = rs_obj ? rs_obj->Decoded() : nullptr;
  auto lb_msg = lb_obj ? lb_obj->Decoded() : nullptr;
  const auto* rs = static_cast<const compute::RegionService*>(rs_msg.get());
  const auto* lb = static_cast<const network::LoadBalancer*>(lb_msg.get());
  const bool want =
      rs && rs->spec().has_load_balancer() && rs->metadata().deletion_timestamp().empty();
  if (!want) {
    if (!lb || lb->spec().region_service() != name) return true;
    auto r = resources_->Delete(SystemPrincipal(), lb_kind, ns, name, "");
    if (!r.ok() && r.status().code() != StatusCode::kNotFound) {
      spdlog::warn("loadbalancer {}/{}: delete with its RegionService: {}", ns, name,
                   r.status().ToString());
      return false;
    }
    return true;
  }
  network::LoadBalancerSpec spec = rs->spec().load_balancer();
  spec.set_region_service(name);
  if (!lb) {
    auto obj = std::make_shared<network::LoadBalancer>();
    obj->mutable_metadata()->set_name(name);
    obj->mutable_metadata()->set_namespace_(ns);
    (*obj->mutable_metadata()->mutable_labels())[kOwnerLabel] = name;
    *obj->mutable_spec() = spec;
    auto r = resources_->Create(SystemPrincipal(), lb_kind, ns, obj);
    if (!r.ok() && r.status().code() != StatusCode::kAlreadyExists) {
      spdlog::warn("loadbalancer {}/{}: create for its RegionService: {}", ns, name,
                   r.status().ToString());
      return false;
    }
    return true;
  }
  if (google::protobuf::util::MessageDifferencer::Equals(lb->spec(), spec)) return true;
  network::LoadBalancer next = *lb;
  *next.mutable_spec() = spec;
  next.mutable_metadata()->set_generation(lb->metadata().generation() + 1);
  auto w = resources_->WriteAsSystem(lb_kind, next);
  if (!w.ok() && w.code() != StatusCode::kAborted) {
    spdlog::warn("loadbalancer {}/{}: spec from its RegionService: {}", ns, name, w.ToString());
    return false;
  }
  return w.ok();
}

}  // namespace photon::server
