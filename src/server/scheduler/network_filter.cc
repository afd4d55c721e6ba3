// See network_filter.h.
#include "server/scheduler/network_filter.h"

namespace photon::scheduler {

bool NetworkModeFilter(const Context& c, int node) {
  if (c.req->port == PortNeed::kNone) return true;
  const auto& attrs = c.state->nodes()[node].attributes;
  auto it = attrs.find(kNetworkModeAttribute);
  if (it == attrs.end()) return true;
  if (it->second == "ports") return true;
  if (it->second == "shared") return c.req->port == PortNeed::kNodeNetworkWillDo;
  return false;  // none, or a mode this server does not know
}

}  // namespace photon::scheduler
