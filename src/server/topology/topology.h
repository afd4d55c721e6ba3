// The physical topology kinds (proto/photon/topology.proto): Datacenter, Floor, Rack and
// PhysicalResource. Cluster-scoped like nodes: their objects live in the "system" namespace and
// /v1/{plural}[/NAME] addresses them without one. Stateless; thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "common/status.h"
#include "server/kinds.h"

namespace photon::server::topology {

// Tallest rack accepted, in rack units (the tallest standard racks are 58 U).
constexpr int kMaxRackUnits = 60;

// True for the plural of a topology kind ("racks"), which the REST gateway serves without a
// namespace, as it does nodes.
bool IsTopologyPlural(const std::string& plural);

// Checks a topology object's spec, naming the offending field ("spec.heightU: ..."). OK for
// every other kind. Checks within the object only: a rack or peer that does not exist (yet)
// is drawn by the dashboard as unplaced, since documents of a whole floor arrive in any order.
Status ValidateTopology(const KindInfo& kind, const google::protobuf::Message& obj);

}  // namespace photon::server::topology
