// See private_dns.h.
#include "server/network/private_dns.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/network/network_internal.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::prismnet {

namespace {

const std::string kVpcPrefix = "/registry/vpcs/";

// "/registry/vpcs/NS/NAME" → {NS, NAME}.
std::pair<std::string, std::string> SplitVpcKey(const std::string& key) {
  const std::string rest = key.substr(kVpcPrefix.size());
  const size_t slash = rest.find('/');
  return {rest.substr(0, slash), slash == std::string::npos ? "" : rest.substr(slash + 1)};
}

std::string Detail(const resource::ResourceStatus& st, const std::string& key) {
  auto it = st.details().find(key);
  return it == st.details().end() ? "" : it->second;
}

}  // namespace

std::string PrivateZoneName(const std::string& ns, const std::string& vpc) {
  return vpc + "." + ns + ".internal.";
}

PrivateDnsController::PrivateDnsController(ResourceManager* resources,
                                           std::unique_ptr<ZoneBackend> backend,
                                           PrivateDnsOptions options)
    : resources_(resources), backend_(std::move(backend)), options_(options) {}

Status PrivateDnsController::Start() {
  auto vpcs = resources_->cache()->Subscribe(
      kVpcPrefix, 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        for (const auto& o : snap) Mark(o->key());
      },
      [this](const std::vector<CacheEvent>& events) {
        for (const auto& e : events) {
          if (e.object) Mark(e.object->key());
        }
      });
  if (!vpcs.ok()) return vpcs.status();
  vpc_sub_ = *vpcs;
  auto instances = resources_->cache()->Subscribe(
      RegistryPrefix("computeinstances"), 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        for (const auto& o : snap) OnInstance(*o, false);
      },
      [this](const std::vector<CacheEvent>& events) {
        for (const auto& e : events) {
          if (e.object) OnInstance(*e.object, e.type == CacheEvent::Type::kDeleted);
        }
      });
  if (!instances.ok()) return instances.status();
  instance_sub_ = *instances;
  next_sweep_ = Clock::now();  // at once: zones of VPCs deleted while we were down
  worker_ = std::thread([this] {
    SetThreadName("private-dns");
    Run();
  });
  return absl::OkStatus();
}

void PrivateDnsController::Stop() {
  for (uint64_t* sub : {&vpc_sub_, &instance_sub_}) {
    if (*sub) resources_->cache()->Unsubscribe(*sub);
    *sub = 0;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

// Only a change of an instance's VPC address queues its name: agents' frequent status writes
// cost a decode here, not a zone update.
void PrivateDnsController::OnInstance(const CachedObject& o, bool deleted) {
  Entry now;
  if (!deleted) {
    auto msg = o.Decoded();
    if (!msg) return;
    const auto& ci = static_cast<const compute::ComputeInstance&>(*msg);
    const std::string vpc = Detail(ci.status(), kDetailVpc);
    const std::string address = Detail(ci.status(), kDetailAddress);
    if (!vpc.empty() && !address.empty() && Detail(ci.status(), kDetailMode) != "host")
      now = {RegistryKey("vpcs", ci.metadata().namespace_(), vpc), ci.metadata().name(), address};
  }
  std::lock_guard lock(mu_);
  auto it = seen_.find(o.key());
  const Entry before = it == seen_.end() ? Entry{} : it->second;
  if (before == now) return;
  if (!before.vpc_key.empty()) {
    auto& names = index_[before.vpc_key];
    names.erase(before.name);
    if (names.empty()) index_.erase(before.vpc_key);
    names_[before.vpc_key].insert(before.name);
  }
  if (now.vpc_key.empty()) {
    seen_.erase(o.key());
  } else {
    index_[now.vpc_key][now.name] = now.address;
    names_[now.vpc_key].insert(now.name);
    seen_[o.key()] = now;
  }
  cv_.notify_one();
}

void PrivateDnsController::Mark(const std::string& vpc_key, Clock::time_point when) {
  std::lock_guard lock(mu_);
  auto it = due_.find(vpc_key);
  if (it != due_.end() && it->second <= when) return;  // already due sooner
  due_[vpc_key] = when;
  cv_.notify_one();
}

// Order of work: the resync when due, then whole-zone syncs that are due, then queued names.
void PrivateDnsController::Run() {
  for (;;) {
    std::string key;
    std::set<std::string> names;
    bool sweep = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stop_) return;
        const auto now = Clock::now();
        if (now >= next_sweep_) {
          sweep = true;
          break;
        }
        auto first = std::min_element(due_.begin(), due_.end(), [](const auto& a, const auto& b) {
          return a.second < b.second;
        });
        if (first != due_.end() && first->second <= now) {
          key = first->first;
          due_.erase(first);
          break;
        }
        if (!names_.empty()) {
          key = names_.begin()->first;
          names.swap(names_.begin()->second);
          names_.erase(names_.begin());
          break;
        }
        cv_.wait_until(lock,
                       first == due_.end() ? next_sweep_ : std::min(next_sweep_, first->second));
      }
    }
    try {
      if (sweep) {
        Sweep();
      } else if (!names.empty()) {
        Update(key, names);
      } else {
        Reconcile(key, false);
      }
    } catch (const std::exception& e) {
      spdlog::error("private dns: {}: {}", sweep ? "resync" : key, e.what());
    }
  }
}

PrivateDnsController::Records PrivateDnsController::Desired(const std::string& vpc_key) {
  const auto [ns, vpc] = SplitVpcKey(vpc_key);
  const std::string zone = PrivateZoneName(ns, vpc);
  Records out;
  std::lock_guard lock(mu_);
  names_.erase(vpc_key);  // this sync covers them; later changes queue again
  auto it = index_.find(vpc_key);
  if (it == index_.end()) return out;
  for (const auto& [name, address] : it->second) out[name + "." + zone] = address;
  return out;
}

void PrivateDnsController::Backoff(const std::string& key) {
  const int n = ++failures_[key];
  auto delay = options_.initial_backoff * (1 << std::min(n - 1, 16));
  Mark(key, Clock::now() + std::min<std::chrono::milliseconds>(delay, options_.max_backoff));
}

void PrivateDnsController::Update(const std::string& key, const std::set<std::string>& names) {
  if (!backend_) return;  // NoProvider: the whole-zone sync said so in the VPC's status
  auto last = synced_.find(key);
  if (last == synced_.end()) {
    // Not synced whole (new, DNS off, or its last sync failed): a whole-zone sync covers these
    // names; one already queued (a backoff) keeps its time.
    std::lock_guard lock(mu_);
    if (due_.emplace(key, Clock::time_point{}).second) cv_.notify_one();
    return;
  }
  const auto [ns, vpc] = SplitVpcKey(key);
  const std::string zone = PrivateZoneName(ns, vpc);
  Records changes;
  {
    std::lock_guard lock(mu_);
    auto index = index_.find(key);
    for (const auto& name : names) {
      const std::string fqdn = name + "." + zone;
      std::string want;
      if (index != index_.end()) {
        auto a = index->second.find(name);
        if (a != index->second.end()) want = a->second;
      }
      auto have = last->second.find(fqdn);
      if (have == last->second.end() ? want.empty() : have->second == want) continue;
      changes[fqdn] = want;
    }
  }
  if (changes.empty()) return;
  Status st = backend_->UpdateRecords(ManagedRef{"vpcs", ns, vpc, {}}, zone, changes, options_.ttl);
  if (!st.ok()) {
    spdlog::warn("private dns: update of zone {}: {}", zone, st.ToString());
    synced_.erase(key);
    return Backoff(key);  // the whole-zone sync then says what is wrong in the VPC's status
  }
  for (const auto& [fqdn, address] : changes) {
    if (address.empty()) {
      last->second.erase(fqdn);
    } else {
      last->second[fqdn] = address;
    }
  }
}

void PrivateDnsController::Reconcile(const std::string& key, bool force) {
  const auto [ns, name] = SplitVpcKey(key);
  const std::string zone = PrivateZoneName(ns, name);
  const ManagedRef ref{"vpcs", ns, name, {}};
  auto cached = resources_->cache()->Get(key);
  auto msg = cached ? cached->Decoded() : nullptr;
  const auto* vpc = static_cast<const network::Vpc*>(msg.get());
  if (!vpc || !vpc->spec().enable_dns_hostnames()) {
    if (vpc) Report(key, false, "", "", "");  // drops a condition left from when it was on
    if (!synced_.count(key)) return;          // leftovers of a past run: Sweep finds them
    if (backend_) {
      if (auto st = backend_->RemoveZone(ref, zone); !st.ok()) {
        spdlog::warn("private dns: remove zone {}: {}", zone, st.ToString());
        return Backoff(key);
      }
    }
    synced_.erase(key);
    failures_.erase(key);
    return;
  }
  Records want = Desired(key);
  auto last = synced_.find(key);
  if (!force && last != synced_.end() && last->second == want) return;
  if (!backend_) {
    return Report(key, false, "NoProvider",
                  "private DNS needs a DNS provider in photon-server's config (providers: "
                  "driver flashdns)",
                  zone);
  }
  Status st = backend_->SyncZone(ref, zone, want, options_.ttl);
  if (st.code() == StatusCode::kUnavailable) {
    synced_.erase(key);
    Report(key, false, "BackendUnavailable", std::string(st.message()) + "; retrying", zone);
    return Backoff(key);
  }
  if (!st.ok()) {
    synced_.erase(key);
    failures_.erase(key);
    return Report(key, false, "ZoneConflict", std::string(st.message()), zone);
  }
  synced_[key] = std::move(want);
  failures_.erase(key);
  Report(key, true, "Synced", "zone " + zone + " holds the VPC's instances", zone);
}

void PrivateDnsController::Report(const std::string& key, bool ok, const std::string& reason,
                                  const std::string& message, const std::string& zone) {
  const KindInfo* info = FindKind("vpcs");
  auto cached = resources_->cache()->Get(key);
  auto msg = cached ? cached->Decoded() : nullptr;
  if (!msg || !info) return;
  std::unique_ptr<google::protobuf::Message> next(msg->New());
  next->CopyFrom(*msg);
  auto* st = MutableStatus(next.get());
  if (reason.empty()) {  // DNS off: no condition, no zone
    auto* conds = st->mutable_conditions();
    conds->erase(std::remove_if(conds->begin(), conds->end(),
                                [](const auto& c) { return c.type() == kDnsReady; }),
                 conds->end());
    st->mutable_details()->erase(kDetailDnsZone);
  } else {
    SetCondition(st, kDnsReady, ok, reason, message);
    (*st->mutable_details())[kDetailDnsZone] = zone;
  }
  const auto* before = GetStatus(*msg);
  if (before && before->conditions_size() == st->conditions_size() &&
      Detail(*before, kDetailDnsZone) == Detail(*st, kDetailDnsZone)) {
    bool same = true;
    for (int i = 0; i < st->conditions_size(); ++i) {
      const auto &a = before->conditions(i), &b = st->conditions(i);
      same = same && a.type() == b.type() && a.status() == b.status() && a.reason() == b.reason() &&
             a.message() == b.message();
    }
    if (same) return;
  }
  Status w = resources_->WriteStatusAsSystem(*info, *next);
  if (w.ok() || w.code() == StatusCode::kNotFound) return;
  // Changed meanwhile (or the store failed): sync and report again.
  spdlog::debug("private dns: {} status: {}", key, w.ToString());
  synced_.erase(key);
  Mark(key, Clock::now() + options_.initial_backoff);
}

void PrivateDnsController::Sweep() {
  next_sweep_ = Clock::now() + options_.resync;
  const std::string prefix = RegistryPrefix("vpcs");
  auto list = resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
  for (const auto& o : list.items) Reconcile(o->key(), true);
  if (!backend_) return;
  auto zones = backend_->ListZones("vpcs");
  if (!zones.ok()) {
    spdlog::warn("private dns: cannot list zones (orphans stay until it answers): {}",
                 zones.status().ToString());
    next_sweep_ = std::min(next_sweep_, Clock::now() + options_.initial_backoff * 10);
    return;
  }
  for (const auto& ref : *zones) {
    const std::string key = RegistryKey("vpcs", ref.ns, ref.name);
    const std::string zone = ref.details.count("zone") ? ref.details.at("zone") : "";
    auto cached = resources_->cache()->Get(key);
    auto msg = cached ? cached->Decoded() : nullptr;
    const auto* vpc = static_cast<const network::Vpc*>(msg.get());
    if (vpc && vpc->spec().enable_dns_hostnames() && zone == PrivateZoneName(ref.ns, ref.name))
      continue;
    spdlog::info("private dns: removing zone {} of {} (VPC gone or DNS off)", zone, key);
    if (auto st = backend_->RemoveZone(ref, zone); !st.ok())
      spdlog::warn("private dns: remove zone {}: {}", zone, st.ToString());
  }
}

}  // namespace photon::server::prismnet
