#include "server/network/network_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/util.h"
#include "server/network/network_internal.h"
#include "server/object_util.h"

namespace photon::server::prismnet {

NetworkController::NetworkController(ResourceManager* resources, NetworkManager* network,
                                     NetworkControllerOptions options)
    : resources_(resources), network_(network), options_(options) {}

Status NetworkController::Start() {
  network_->SetOnRelease([this] { Kick(); });
  const std::string ports = RegistryPrefix("ports");
  auto id = resources_->cache()->Subscribe(
      ports, 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        std::lock_guard lock(mu_);
        for (const auto& o : snap) IndexPort(o->key(), o.get());
      },
      [this](const std::vector<CacheEvent>& events) {
        std::lock_guard lock(mu_);
        for (const auto& e : events) {
          if (e.type == CacheEvent::Type::kBookmark || !e.object) continue;
          if (e.type == CacheEvent::Type::kDeleted) kicked_ = true;  // an address came back
          IndexPort(e.object->key(),
                    e.type == CacheEvent::Type::kDeleted ? nullptr : e.object.get());
        }
        if (kicked_ || !members_changed_.empty()) cv_.notify_one();
      });
  if (!id.ok()) return id.status();
  subscription_ = *id;
  const std::string groups = RegistryPrefix("securitygroups");
  auto gid = resources_->cache()->Subscribe(
      groups, 0, [](const std::vector<std::shared_ptr<const CachedObject>>&, int64_t) {},
      [this, groups](const std::vector<CacheEvent>& events) {
        std::lock_guard lock(mu_);
        for (const auto& e : events) {
          if (e.type != CacheEvent::Type::kModified || !e.previous) continue;
          auto now = e.object->Decoded(), before = e.previous->Decoded();
          if (!now || !before) continue;
          const auto& a = static_cast<const network::SecurityGroup&>(*now);
          const auto& b = static_cast<const network::SecurityGroup&>(*before);
          if (a.spec().SerializeAsString() == b.spec().SerializeAsString()) continue;
          changed_groups_[e.object->key().substr(groups.size())] = e.revision;
          kicked_ = true;
        }
        cv_.notify_one();
      });
  if (!gid.ok()) return gid.status();
  groups_subscription_ = *gid;
  thread_ = std::thread([this] {
    SetThreadName("network");
    Run();
  });
  return absl::OkStatus();
}

void NetworkController::Stop() {
  for (uint64_t* id : {&subscription_, &groups_subscription_}) {
    if (*id) resources_->cache()->Unsubscribe(*id);
    *id = 0;
  }
  network_->SetOnRelease(nullptr);
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NetworkController::Kick() {
  std::lock_guard lock(mu_);
  kicked_ = true;
  cv_.notify_one();
}

void NetworkController::Run() {
  auto next_sweep = std::chrono::steady_clock::now();
  for (;;) {
    bool retry = false;
    {
      std::unique_lock lock(mu_);
      const bool woken = cv_.wait_for(lock, options_.retry, [this] {
        return kicked_ || !members_changed_.empty() || publish_all_ || stop_;
      });
      if (stop_) return;
      retry = kicked_ || !woken;  // a release, a group change, or the period
      kicked_ = false;
      if (retry) members_changed_.merge(members_failed_);
    }
    PublishMembers();
    NudgePorts();
    // Lists every instance: not for a mere membership change (a burst of creates with
    // security groups would list them all once per Port).
    if (retry) RetryWaiting();
    if (std::chrono::steady_clock::now() >= next_sweep) {
      Sweep();
      next_sweep = std::chrono::steady_clock::now() + options_.sweep;
    }
  }
}

void NetworkController::RetryWaiting() {
  const std::string prefix = RegistryPrefix("computeinstances");
  // Only unplaced ones can be waiting (the scheduler places none before its address), and an
  // object's fields are decoded once per version (agents' field-selector watches need them
  // too): a burst of deletes, each a kick, no longer decodes every instance each time.
  auto list =
      resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0,
                                [](const CachedObject& o) { return o.Fields().agent_id.empty(); });
  std::set<std::string> full;  // "ns/subnet" found full this round
  for (const auto& o : list.items) {
    auto m = o->Decoded();
    if (!m) continue;
    const auto& ci = static_cast<const compute::ComputeInstance&>(*m);
    if (!AwaitingAddress(ci) || !ci.metadata().deletion_timestamp().empty() ||
        !ci.metadata().agent_id().empty()) {
      continue;
    }
    auto d = ci.status().details().find(kDetailSubnet);
    const std::string pool =
        ci.metadata().namespace_() + "/" + (d == ci.status().details().end() ? "" : d->second);
    if (full.count(pool)) continue;
    if (!Retry(ci)) full.insert(pool);
  }
}

bool NetworkController::Retry(const compute::ComputeInstance& ci) {
  compute::ComputeInstance next = ci;
  CreatePlan plan;
  Status st = network_->PlanAddress(ci.metadata().namespace_(), &next, &plan);
  if (st.code() == StatusCode::kResourceExhausted) return false;
  auto* status = next.mutable_status();
  if (!st.ok()) {
    // The subnet or a security group went away meanwhile: say so, keep waiting.
    SetCondition(status, kNetworkReady, false, "NetworkUnavailable", std::string(st.message()));
    status->set_message("waiting for an address: " + std::string(st.message()));
    if (status->message() != ci.status().message()) {
      resources_->WriteStatusAsSystem(*FindKind("computeinstances"), next).IgnoreError();
    }
    return true;
  }
  status->set_phase(resource::ResourceStatus::PENDING);
  status->set_message("address " + next.status().addresses(0) + " allocated");
  const std::string key =
      RegistryKey("computeinstances", ci.metadata().namespace_(), ci.metadata().name());
  next.mutable_metadata()->clear_resource_version();
  next.mutable_metadata()->set_updated_at(NowRfc3339());
  store::TxnRequest txn;
  txn.compares.push_back(ModIs(key, std::stoll(ci.metadata().resource_version())));
  txn.compares.insert(txn.compares.end(), plan.compares.begin(), plan.compares.end());
  txn.success.push_back(PutOp(key, next.SerializeAsString()));
  txn.success.insert(txn.success.end(), plan.ops.begin(), plan.ops.end());
  auto r = resources_->store()->Txn(txn);
  network_->Finish(plan, r.ok() && r->succeeded);
  if (!r.ok()) spdlog::warn("network: allocating for {}: {}", key, r.status().ToString());
  if (r.ok() && r->succeeded) {
    resources_
        ->RecordEvent(ci.metadata().namespace_(), "AddressAllocated",
                      "computeinstances/" + ci.metadata().name(), status->message())
        .IgnoreError();
  } else {
    Kick();  // changed meanwhile: look again
  }
  return true;
}

void NetworkController::IndexPort(const std::string& key, const CachedObject* o) {
  PortGroups now;
  if (o) {
    if (auto m = o->Decoded()) {
      const auto& port = static_cast<const network::Port&>(*m);
      now.ip = port.spec().ip_address();
      for (const auto& g : port.spec().security_groups())
        now.groups.push_back(port.metadata().namespace_() + "/" + g);
    }
  }
  auto it = port_groups_.find(key);
  if (it != port_groups_.end()) {
    if (it->second.ip == now.ip && it->second.groups == now.groups) return;
    for (const auto& g : it->second.groups) {
      auto& addresses = members_[g];
      if (--addresses[it->second.ip] <= 0) addresses.erase(it->second.ip);
      if (addresses.empty()) members_.erase(g);
      members_changed_.insert(g);
    }
    port_groups_.erase(it);
  }
  if (now.ip.empty()) return;
  for (const auto& g : now.groups) {
    ++members_[g][now.ip];
    members_changed_.insert(g);
  }
  port_groups_[key] = std::move(now);
}

void NetworkController::PublishMembers() {
  std::set<std::string> changed;
  bool all = false;
  {
    std::lock_guard lock(mu_);
    changed.swap(members_changed_);
    std::swap(all, publish_all_);
  }
  if (all) {
    const std::string prefix = RegistryPrefix("securitygroups");
    auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
    for (const auto& o : list.items) changed.insert(o->key().substr(prefix.size()));
  }
  for (const auto& group : changed) {
    if (!PublishGroup(group)) {
      std::lock_guard lock(mu_);
      members_failed_.insert(group);  // written meanwhile: again with the next retry
    }
  }
}

// One group's members into its status; then every group of the namespace whose rules name it
// is queued like a changed group, so their Ports are stamped. False: try again later.
bool NetworkController::PublishGroup(const std::string& group) {
  const std::string ns = group.substr(0, group.find('/'));
  const std::string name = group.substr(group.find('/') + 1);
  auto cached = resources_->cache()->Get(RegistryKey("securitygroups", ns, name));
  auto msg = cached ? cached->Decoded() : nullptr;
  if (!msg) return true;  // no such group (yet): its create publishes it
  std::string text;
  {
    std::lock_guard lock(mu_);
    auto it = members_.find(group);
    if (it != members_.end()) {
      for (const auto& [ip, n] : it->second) text += (text.empty() ? "" : ",") + ip;
    }
  }
  network::SecurityGroup sg = static_cast<const network::SecurityGroup&>(*msg);
  auto& details = *sg.mutable_status()->mutable_details();
  auto old = details.find(kSecurityGroupMembersDetail);
  if ((old == details.end() ? std::string() : old->second) == text) return true;
  if (text.empty()) {
    details.erase(kSecurityGroupMembersDetail);
  } else {
    details[kSecurityGroupMembersDetail] = text;
  }
  Status w = resources_->WriteStatusAsSystem(*FindKind("securitygroups"), sg);
  if (w.code() == StatusCode::kNotFound) return true;
  if (!w.ok()) return false;
  const std::string prefix = RegistryPrefix("securitygroups", ns);
  auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
  std::lock_guard lock(mu_);
  for (const auto& o : list.items) {
    auto m = o->Decoded();
    if (!m) continue;
    for (const auto& r : static_cast<const network::SecurityGroup&>(*m).spec().rules()) {
      if (r.remote_security_group() != name) continue;
      changed_groups_[o->key().substr(RegistryPrefix("securitygroups").size())] =
          o->mod_revision() * 1000 + static_cast<int64_t>(text.size() % 1000);
      break;
    }
  }
  return true;
}

void NetworkController::NudgePorts() {
  std::map<std::string, int64_t> changed;
  {
    std::lock_guard lock(mu_);
    changed.swap(changed_groups_);
  }
  for (const auto& [group, revision] : changed) {
    const std::string ns = group.substr(0, group.find('/'));
    const std::string name = group.substr(group.find('/') + 1);
    const std::string stamp = name + "@" + std::to_string(revision);
    const std::string prefix = RegistryPrefix("ports", ns);
    auto list =
        resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, [&](const CachedObject& o) {
          auto m = o.Decoded();
          if (!m) return false;
          const auto& groups = static_cast<const network::Port&>(*m).spec().security_groups();
          return std::find(groups.begin(), groups.end(), name) != groups.end();
        });
    for (const auto& o : list.items) {
      if (!NudgePort(o->key(), stamp)) {
        spdlog::warn("network: could not tell {} of the change of security group {}", o->key(),
                     group);
      }
    }
  }
}

// One Port's stamp, compared on its revision (re-read and retried when it changed meanwhile).
bool NetworkController::NudgePort(const std::string& key, const std::string& stamp) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = ReadObject<network::Port>(resources_->store(), key);
    if (!port.ok()) return false;
    if (!*port) return true;  // gone meanwhile: nothing to tell
    network::Port p = (*port)->first;
    (*p.mutable_metadata()->mutable_annotations())[kSecurityGroupsAnnotation] = stamp;
    p.mutable_metadata()->clear_resource_version();
    p.mutable_metadata()->set_updated_at(NowRfc3339());
    store::TxnRequest txn;
    txn.compares.push_back(ModIs(key, (*port)->second));
    txn.success.push_back(PutOp(key, p.SerializeAsString()));
    auto r = resources_->store()->Txn(txn);
    if (!r.ok()) return false;
    if (r->succeeded) return true;
  }
  return false;
}

void NetworkController::Sweep() {
  SweepPorts();
  SweepAddresses();
}

// A Port whose instance is gone (or is another instance of the same name).
void NetworkController::SweepPorts() {
  store::Store* store = resources_->store();
  const std::string prefix = RegistryPrefix("ports");
  auto r = store->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!r.ok()) return;
  for (const auto& kv : r->kvs) {
    network::Port port;
    if (!port.ParseFromString(kv.value)) continue;
    const auto& md = port.metadata();
    const std::string ci_key = RegistryKey("computeinstances", md.namespace_(), md.name());
    auto ci = ReadObject<compute::ComputeInstance>(store, ci_key);
    if (!ci.ok()) continue;
    if (*ci && (*ci)->first.metadata().id() == port.spec().instance()) continue;
    store::TxnRequest txn;
    txn.compares.push_back(ModIs(kv.key, kv.mod_revision));
    txn.compares.push_back(*ci ? ModIs(ci_key, (*ci)->second) : Absent(ci_key));
    txn.success.push_back(DeleteOp(kv.key));
    NetworkManager::AddReleaseOps(*FindKind("ports"), port, &txn);
    auto w = store->Txn(txn);
    if (w.ok() && w->succeeded) {
      spdlog::warn("network: removed port {} of a gone instance", kv.key);
      network_->Released(*FindKind("ports"), port);
    }
  }
}

// An address whose Port is gone or holds another address.
void NetworkController::SweepAddresses() {
  store::Store* store = resources_->store();
  auto r = store->Range(kIpamRoot, {.end = store::PrefixEnd(kIpamRoot)});
  if (!r.ok()) return;
  for (const auto& kv : r->kvs) {
    // Key /ipam/<ns>/<subnet>/<address>; value: the instance's registry key.
    const std::string rest = kv.key.substr(sizeof(kIpamRoot) - 1);
    const size_t a = rest.find('/'), b = rest.rfind('/');
    if (a == std::string::npos || a == b) continue;
    const std::string ns = rest.substr(0, a), subnet = rest.substr(a + 1, b - a - 1);
    const std::string address = rest.substr(b + 1);
    const std::string name = kv.value.substr(kv.value.rfind('/') + 1);
    const std::string port_key = RegistryKey("ports", ns, name);
    auto port = ReadObject<network::Port>(store, port_key);
    if (!port.ok()) continue;
    if (*port && (*port)->first.spec().subnet() == subnet &&
        (*port)->first.spec().ip_address() == address) {
      continue;
    }
    store::TxnRequest txn;
    txn.compares.push_back(ModIs(kv.key, kv.mod_revision));
    txn.compares.push_back(*port ? ModIs(port_key, (*port)->second) : Absent(port_key));
    txn.success.push_back(DeleteOp(kv.key));
    auto w = store->Txn(txn);
    if (w.ok() && w->succeeded) spdlog::warn("network: released orphan address {}", kv.key);
  }
}

}  // namespace photon::server::prismnet
