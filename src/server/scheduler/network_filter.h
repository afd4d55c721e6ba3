// The node's network mode against what the instance needs of it (docs/networking.md "Nodes"):
// an agent in mode `none` refuses every instance that needs a port, one in mode `shared` runs
// such an instance in the node's own network but refuses a VM that needs a port and any
// instance naming security groups (it could not enforce them); only mode `ports` wires them
// all. The filter keeps those instances off such nodes, so they wait PENDING with the reason
// instead of failing on the node. A node that does not publish the attribute network.mode
// (an older agent) is not judged.
#pragma once

#include "server/scheduler/request.h"

namespace photon::scheduler {

inline constexpr char kNetworkModeAttribute[] = "network.mode";

bool NetworkModeFilter(const Context& c, int node);

}  // namespace photon::scheduler
