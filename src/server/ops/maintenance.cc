#include "server/ops/maintenance.h"

#include <spdlog/spdlog.h>

#include <map>

#include "photon/node.pb.h"
#include "server/kinds.h"
#include "server/ops/ops_internal.h"
#include "server/scheduler/scheduler_controller.h"

namespace photon::server::opsengine {

namespace {

using photon::ops::Maintenance;

// A node's cordon from before its maintenance, so the end gives back only what it took.
constexpr char kWasCordoned[] = "photon.io/maintenance-was-cordoned";

std::vector<Maintenance> Active(const WatchCache* cache, const std::string& ns, int64_t now) {
  std::vector<Maintenance> out;
  const std::string prefix = RegistryPrefix("maintenances", ns);
  for (const auto& o : cache->List(prefix, store::PrefixEnd(prefix), 0, nullptr).items) {
    Maintenance m;
    if (!m.ParseFromString(o->value())) continue;
    const int64_t start = m.spec().start_time().empty() ? ParseMs(m.metadata().created_at())
                                                        : ParseMs(m.spec().start_time());
    if (start <= now && now < ParseMs(m.spec().end_time())) out.push_back(std::move(m));
  }
  return out;
}

bool Holds(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& v) {
  return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

std::string MaintenanceFor(const WatchCache* cache, const std::string& ns, const event::Event& ev,
                           int64_t now) {
  const auto& o = ev.spec().ops_event();
  auto it = o.labels().find("instance");
  const std::string instance = it == o.labels().end() ? "" : it->second;
  std::vector<std::string> spaces{"system"};
  if (ns != "system") spaces.push_back(ns);
  for (const std::string& space : spaces) {
    for (const auto& m : Active(cache, space, now)) {
      const std::string& mns = m.metadata().namespace_();
      bool covers = Holds(m.spec().nodes(), o.node());
      // An instance label is "NS/NAME" (the agent's checks) or NAME in the event's namespace.
      for (const auto& i : m.spec().instances()) {
        const std::string full = i.find('/') == std::string::npos ? mns + "/" + i : i;
        covers = covers || (!instance.empty() && (full == instance || full == ns + "/" + instance));
      }
      if (covers) return mns + "/" + m.metadata().name();
    }
  }
  return "";
}

void ReconcileMaintenanceDrains(ResourceManager* resources, int64_t now) {
  const WatchCache* cache = resources->cache();
  std::map<std::string, std::string> want;  // node → the record draining it
  for (const auto& m : Active(cache, "system", now)) {
    if (!m.spec().drain()) continue;
    for (const auto& n : m.spec().nodes()) want.try_emplace(n, "system/" + m.metadata().name());
  }
  const KindInfo* kind = FindKind("nodes");
  const std::string prefix = RegistryPrefix("nodes");
  for (const auto& o : cache->List(prefix, store::PrefixEnd(prefix), 0, nullptr).items) {
    node::Node n;
    if (!n.ParseFromString(o->value())) continue;
    auto& ann = *n.mutable_metadata()->mutable_annotations();
    const auto cur = ann.find(kMaintenanceAnnotation);
    const std::string had = cur == ann.end() ? "" : cur->second;
    const auto w = want.find(n.metadata().name());
    const std::string should = w == want.end() ? "" : w->second;
    if (had == should) continue;
    if (!should.empty() && had.empty()) {
      if (n.spec().unschedulable()) ann[kWasCordoned] = "true";
      n.mutable_spec()->set_unschedulable(true);
      ann[kDrainAnnotation] = "requested";
      ann[kMaintenanceAnnotation] = should;
    } else if (should.empty()) {
      n.mutable_spec()->set_unschedulable(ann.count(kWasCordoned) > 0);
      ann.erase(kWasCordoned);
      ann.erase(kDrainAnnotation);
      ann.erase(kMaintenanceAnnotation);
    } else {
      ann[kMaintenanceAnnotation] = should;  // handed from one record to the next
    }
    n.mutable_metadata()->set_resource_version(std::to_string(o->mod_revision()));
    if (auto st = resources->WriteAsSystem(*kind, n); !st.ok()) {
      // Tried again at the next round (a heartbeat or an operator wrote the node meanwhile).
      spdlog::info("ops: maintenance of node {}: {}", n.metadata().name(), st.ToString());
    } else {
      (void)resources->RecordEvent(
          "system", should.empty() ? "MaintenanceEnded" : "MaintenanceDrain",
          "nodes/system/" + n.metadata().name(),
          should.empty() ? "maintenance " + had + " ended: node given back"
                         : "maintenance " + should + ": node cordoned and drained");
    }
  }
}

}  // namespace photon::server::opsengine
