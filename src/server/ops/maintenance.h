// Maintenance records (seed 003 MaintenanceData; docs/operations.md "Maintenance"): which
// event a record covers, and the drains of the records that ask for one. Stateless;
// thread-safe.
#pragma once

#include <string>

#include "photon/event.pb.h"
#include "photon/ops.pb.h"
#include "server/resource_manager.h"
#include "server/watch_cache.h"

namespace photon::server::opsengine {

// "ns/name" of the first active maintenance (of `ns` or of "system") whose nodes hold the
// event's node or whose instances hold its instance label; "" when none.
std::string MaintenanceFor(const WatchCache* cache, const std::string& ns, const event::Event& ev,
                           int64_t now_ms);

// Annotation on a node cordoned and drained by a maintenance: "ns/name" of the record.
inline constexpr char kMaintenanceAnnotation[] = "photon.io/maintenance";

// Cordons and drains the nodes of active `drain` records of namespace "system" (the
// scheduler moves their instances away, as for `photon node drain`), and gives back the nodes
// of records that ended or went. A node an operator had cordoned before stays cordoned.
void ReconcileMaintenanceDrains(ResourceManager* resources, int64_t now_ms);

}  // namespace photon::server::opsengine
