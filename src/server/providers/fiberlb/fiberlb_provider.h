// The fiberlb driver: realizes LoadBalancer objects (owned by RegionServices, seed 003) on a
// fiberlb daemon through its REST API (docs/fiberlb.md, docs/providers.md).
//
// Each listener of a LoadBalancer becomes a fiberlb listener on `listen_address`:port and a pool
// of the same name, "<owner>.<namespace>.<name>.<port>", whose members are the RegionService's
// replicas that are RUNNING (not being deleted), at status.addresses[0]:targetPort (the node's
// address for an instance in its node's network, agent mode `shared`). A replica
// that leaves (deleted, moved, not RUNNING) is dropped from the pool, which fiberlb drains.
// A listener's routes add a pool per other members' port ("<...>.<port>-<targetPort>"); an
// HTTPS listener's certificates are sent with their keys, read from the store where the API
// sealed them (loadbalancer_rules.h). Only fiberlb objects whose names start with "<owner>."
// are ever changed or removed.
//
// Config keys (photon-server `providers:` entry):
//   endpoint: http://127.0.0.1:18090   # fiberlb API (required)
//   token_file: /path/api.token       # fiberlb API token (required; read again on a 401)
//   listen_address: 127.0.0.1         # the VIP every listener binds (default 127.0.0.1)
//   owner: photon                     # name prefix; distinct per photon cluster
//   drain_timeout_ms: 10000           # how long a leaving replica keeps its connections
//   timeout_ms: 2000                  # per HTTP call
//   # type L4 (stateless, DSR; docs/fiberlb.md "L4 LoadBalancers"): every L4 LB node's fiberlb
//   l4_endpoints: http://10.0.0.11:18090,http://10.0.0.12:18090
//   l4_token_files: /path/h1.token,/path/h2.token   # one per endpoint, or one for all
//   vip_pool: 10.200.0.0/24           # the L4 VIPs, one per LoadBalancer, kept in the store
//   l7_announce: "true"               # L7 LoadBalancers also get a VIP of their own from
//                                     # vip_pool (instead of listen_address), which the L7
//                                     # fiberlb holds and announces by BGP (its `bgp` section)
//                                     # while a member is UP: status.details.vipAnnounced
//
// L4: each listener is an L4 listener "<owner>.<namespace>.<name>.<port>" ("-udp" for UDP) on
// every L4 node, on the LoadBalancer's VIP; its members are the distinct addresses of the
// RUNNING replicas that hold the VIP (their agent reports status.details["network.lbVip"],
// agent/port_wiring.h), weighted by how many replicas share an address.
#pragma once

#include <memory>

#include "server/providers/service_provider.h"

namespace photon::server {

StatusOr<std::unique_ptr<ServiceProvider>> NewFiberLbProvider(const ProviderConfig& config);

}  // namespace photon::server
