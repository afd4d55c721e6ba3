#include "server/identity/quota.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/storage.pb.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::identity {

using nlohmann::json;

namespace {

constexpr char kPrefix[] = "/quotas/";
constexpr char kMarkerPrefix[] = "/quota-usage/";

const std::vector<std::string>& Resources() {
  static const std::vector<std::string> r = {"instances", "vcpu",    "memoryMb",     "diskGb",
                                             "addresses", "buckets", "loadbalancers"};
  return r;
}

// The kinds whose objects take each resource.
const std::map<std::string, std::vector<std::string>>& KindsOf() {
  static const std::map<std::string, std::vector<std::string>> m = {
      {"instances", {"computeinstances"}},          {"vcpu", {"computeinstances"}},
      {"memoryMb", {"computeinstances"}},           {"diskGb", {"computeinstances", "volumes"}},
      {"addresses", {"computeinstances", "ports"}}, {"buckets", {"buckets"}},
      {"loadbalancers", {"loadbalancers"}}};
  return m;
}

std::string Key(const std::string& ns, const std::string& name) {
  return kPrefix + ns + "/" + name;
}

Status ValidateLimits(const json& spec) {
  if (!spec.is_object()) return absl::InvalidArgumentError("spec: want {\"limits\":{...}}");
  for (const auto& [k, v] : spec.items()) {
    if (k != "limits") return absl::InvalidArgumentError("spec." + k + ": unknown field");
  }
  if (!spec.contains("limits") || !spec["limits"].is_object() || spec["limits"].empty()) {
    return absl::InvalidArgumentError("spec.limits: want a map of resource to a number");
  }
  for (const auto& [k, v] : spec["limits"].items()) {
    if (std::find(Resources().begin(), Resources().end(), k) == Resources().end()) {
      return absl::InvalidArgumentError(
          "spec.limits." + k +
          ": not a resource (known: instances, vcpu, memoryMb, diskGb, addresses, buckets, "
          "loadbalancers)");
    }
    if (!v.is_number_integer() || v.get<int64_t>() < 0) {
      return absl::InvalidArgumentError("spec.limits." + k + ": want an integer ≥ 0");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::map<std::string, int64_t> Demand(const KindInfo& kind,
                                      const google::protobuf::Message& object) {
  std::map<std::string, int64_t> d;
  if (const auto* ci = dynamic_cast<const compute::ComputeInstance*>(&object)) {
    const auto& r = ci->spec().resources();
    d["instances"] = 1;
    d["vcpu"] = r.vcpu();
    d["memoryMb"] = r.memory_mb();
    d["diskGb"] = r.disk_gb();
    const auto& net = ci->spec().network();
    if (!net.host_network() && (!net.vpc().empty() || !net.subnet().empty())) d["addresses"] = 1;
  } else if (const auto* v = dynamic_cast<const storage::Volume*>(&object)) {
    d["diskGb"] = v->spec().size_gb();
  } else if (kind.plural == "ports") {
    d["addresses"] = 1;
  } else if (kind.plural == "buckets") {
    d["buckets"] = 1;
  } else if (kind.plural == "loadbalancers") {
    d["loadbalancers"] = 1;
  }
  return d;
}

Status Quotas::Load() {
  auto r = store_->Range(kPrefix, {.end = store::PrefixEnd(kPrefix)});
  if (!r.ok()) return r.status();
  std::lock_guard lock(mu_);
  for (const auto& kv : r->kvs) {
    auto j = json::parse(kv.value, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("metadata") ||
        !j["metadata"].is_object() || !ValidateLimits(j.value("spec", json())).ok()) {
      return absl::DataLossError("quota " + kv.key + " is not a quota object");
    }
    quotas_[j["metadata"].value("namespace", "")][j["metadata"].value("name", "")] = j;
  }
  loaded_revision_ = r->revision;
  return absl::OkStatus();
}

Status Quotas::Follow() {
  auto on_events = [this](const std::vector<store::WatchEvent>& events) {
    std::lock_guard lock(mu_);
    for (const auto& e : events) {
      // Keys are /quotas/NS/NAME (see Put).
      const std::string rest = e.kv.key.substr(sizeof(kPrefix) - 1);
      const auto slash = rest.find('/');
      if (slash == std::string::npos) continue;
      const std::string ns = rest.substr(0, slash), name = rest.substr(slash + 1);
      if (e.type == store::WatchEvent::Type::kDelete) {
        quotas_[ns].erase(name);
        continue;
      }
      auto j = json::parse(e.kv.value, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !ValidateLimits(j.value("spec", json())).ok()) {
        spdlog::error("quotas: ignoring {} written elsewhere: not a quota object", e.kv.key);
        continue;
      }
      quotas_[ns][name] = std::move(j);
    }
  };
  auto on_error = [](const Status& st) {
    spdlog::error("quotas: no longer following changes of other servers: {}", st.ToString());
  };
  PHOTON_ASSIGN_OR_RETURN(follow_, store_->Watch(kPrefix, store::PrefixEnd(kPrefix),
                                                 loaded_revision_ + 1, on_events, on_error));
  return absl::OkStatus();
}

Quotas::Hold Quotas::TakeTurn(const std::string& ns) {
  std::shared_ptr<Turn> turn;
  {
    std::lock_guard lock(mu_);
    auto& t = turns_[ns];
    if (!t) t = std::make_shared<Turn>();
    turn = t;
  }
  {
    std::unique_lock lock(turn->mu);
    turn->cv.wait(lock, [&] { return !turn->busy; });
    turn->busy = true;
  }
  // Released from whichever thread learns the create's outcome: a flag, not a mutex.
  return Hold(turn.get(), [turn](void*) {
    {
      std::lock_guard lock(turn->mu);
      turn->busy = false;
    }
    turn->cv.notify_one();
  });
}

StatusOr<std::map<std::string, int64_t>> Quotas::Usage(const std::string& ns,
                                                       const std::set<std::string>& resources) {
  std::set<std::string> kinds;
  for (const auto& r : resources) {
    for (const auto& k : KindsOf().at(r)) kinds.insert(k);
  }
  std::map<std::string, int64_t> used;
  for (const auto& r : resources) used[r] = 0;
  for (const auto& plural : kinds) {
    const KindInfo* kind = FindKind(plural);
    if (!kind) continue;
    const std::string prefix = RegistryPrefix(plural, ns);
    auto objs = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
    if (!objs.ok()) return objs.status();
    std::unique_ptr<google::protobuf::Message> msg(kind->prototype->New());
    for (const auto& kv : objs->kvs) {
      if (!msg->ParseFromString(kv.value)) return absl::DataLossError("corrupt object " + kv.key);
      for (const auto& [r, n] : Demand(*kind, *msg)) {
        if (used.count(r)) used[r] += n;
      }
    }
  }
  return used;
}

StatusOr<Quotas::Hold> Quotas::Reserve(const KindInfo& kind, const std::string& ns,
                                       const google::protobuf::Message& object,
                                       store::TxnRequest* txn,
                                       const google::protobuf::Message* replaced) {
  auto demand = Demand(kind, object);
  if (replaced) {
    for (const auto& [r, n] : Demand(kind, *replaced)) demand[r] -= n;
  }
  std::map<std::string, json> quotas;
  std::set<std::string> bound;  // resources this create takes that some quota limits
  {
    std::lock_guard lock(mu_);
    auto it = quotas_.find(ns);
    if (it == quotas_.end()) return Hold();
    quotas = it->second;
  }
  for (const auto& [name, q] : quotas) {
    for (const auto& [r, limit] : q["spec"]["limits"].items()) {
      auto d = demand.find(r);
      if (d != demand.end() && d->second > 0) bound.insert(r);
    }
  }
  if (bound.empty()) return Hold();
  Hold hold = TakeTurn(ns);
  // The marker first: a create committed after this read changes it, so the compare below
  // fails rather than two creates passing on the same usage. Deletes only lower usage.
  const std::string marker = kMarkerPrefix + ns;
  auto m = store_->Range(marker);
  if (!m.ok()) return m.status();
  const int64_t marker_rev = m->kvs.empty() ? 0 : m->kvs[0].mod_revision;
  PHOTON_ASSIGN_OR_RETURN(auto used, Usage(ns, bound));
  for (const auto& [name, q] : quotas) {
    for (const auto& [r, limit_json] : q["spec"]["limits"].items()) {
      if (!bound.count(r)) continue;
      const int64_t limit = limit_json.get<int64_t>(), want = demand.at(r);
      if (used[r] + want <= limit) continue;
      Status st = absl::ResourceExhaustedError(
          "quota '" + name + "' of namespace '" + ns + "' exceeded: " + r + " used " +
          std::to_string(used[r]) + " + requested " + std::to_string(want) + " > limit " +
          std::to_string(limit));
      st.SetPayload(kHttpStatusPayload, absl::Cord("403"));
      return st;
    }
  }
  txn->compares.push_back({.key = marker,
                           .target = store::Compare::Target::kModRevision,
                           .op = store::Compare::Op::kEqual,
                           .number = marker_rev});
  txn->success.push_back(
      {.type = store::TxnOp::Type::kPut, .key = marker, .value = std::to_string(marker_rev)});
  return hold;
}

json Quotas::WithStatus(json quota, const std::map<std::string, int64_t>& used) {
  json u = json::object();
  for (const auto& [r, limit] : quota["spec"]["limits"].items()) {
    u[r] = used.count(r) ? used.at(r) : 0;
  }
  quota["status"] = {{"used", u}};
  return quota;
}

StatusOr<std::vector<json>> Quotas::List(const std::string& ns) {
  std::vector<json> items;
  {
    std::lock_guard lock(mu_);
    for (const auto& [qns, byname] : quotas_) {
      if (!ns.empty() && qns != ns) continue;
      for (const auto& [name, q] : byname) items.push_back(q);
    }
  }
  for (auto& q : items) {
    std::set<std::string> resources;
    for (const auto& [r, v] : q["spec"]["limits"].items()) resources.insert(r);
    PHOTON_ASSIGN_OR_RETURN(auto used, Usage(q["metadata"].value("namespace", ""), resources));
    q = WithStatus(std::move(q), used);
  }
  return items;
}

StatusOr<json> Quotas::Get(const std::string& ns, const std::string& name) {
  PHOTON_ASSIGN_OR_RETURN(auto items, List(ns));
  for (auto& q : items) {
    if (q["metadata"].value("name", "") == name) return q;
  }
  return absl::NotFoundError("quota '" + name + "' not found in namespace '" + ns + "'");
}

StatusOr<json> Quotas::Put(const Principal& who, const std::string& ns, json object, bool replace) {
  if (!object.is_object()) return absl::InvalidArgumentError("want a JSON object");
  for (const auto& [k, v] : object.items()) {
    if (k != "kind" && k != "apiVersion" && k != "metadata" && k != "spec" && k != "status") {
      return absl::InvalidArgumentError(k + ": unknown field");
    }
  }
  object.erase("status");  // computed, never stored
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    return absl::InvalidArgumentError("metadata.name: required");
  }
  json& md = object["metadata"];
  const std::string name = md.value("name", "");
  PHOTON_RETURN_IF_ERROR(ValidateName("metadata.name", name));
  if (md.contains("namespace") && md["namespace"] != ns) {
    return absl::InvalidArgumentError("metadata.namespace: does not match the URL's '" + ns + "'");
  }
  md["namespace"] = ns;
  PHOTON_RETURN_IF_ERROR(ValidateLimits(object.value("spec", json())));
  std::lock_guard lock(mu_);
  auto& byname = quotas_[ns];
  auto old = byname.find(name);
  if (!replace && old != byname.end()) {
    return absl::AlreadyExistsError("quota '" + name + "' already exists in namespace '" + ns +
                                    "'");
  }
  if (replace && old == byname.end()) {
    return absl::NotFoundError("quota '" + name + "' not found in namespace '" + ns + "'");
  }
  md["createdAt"] = old == byname.end() ? json(NowRfc3339()) : old->second["metadata"]["createdAt"];
  md["createdBy"] = old == byname.end() ? json(who.name) : old->second["metadata"]["createdBy"];
  md["updatedAt"] = NowRfc3339();
  auto put = store_->Put(Key(ns, name), object.dump());
  if (!put.ok()) return put.status();
  byname[name] = object;
  return object;
}

Status Quotas::Delete(const std::string& ns, const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = quotas_.find(ns);
  if (it == quotas_.end() || !it->second.count(name)) {
    return absl::NotFoundError("quota '" + name + "' not found in namespace '" + ns + "'");
  }
  auto del = store_->Delete(Key(ns, name));
  if (!del.ok()) return del.status();
  it->second.erase(name);
  if (it->second.empty()) quotas_.erase(it);
  return absl::OkStatus();
}

}  // namespace photon::server::identity
