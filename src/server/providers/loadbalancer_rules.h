// The API's rules for LoadBalancers (seed 003: a RegionService owns its LoadBalancer, which is
// created and deleted only with it) and the checks of a load balancer spec, shared by the
// RegionService's spec.loadBalancer and the LoadBalancer object the server derives from it.
#pragma once

#include <string>

#include "common/status.h"
#include "photon/network.pb.h"
#include "server/auth.h"
#include "server/kinds.h"

namespace photon::server {

// Whether this photon-server has a provider that realizes loadbalancers (driver fiberlb).
// Set once at start-up from the config; without one a spec.loadBalancer is refused, so no
// LoadBalancer waits for a provider that does not exist.
void SetLoadBalancerProviderConfigured(bool configured);
bool LoadBalancerProviderConfigured();

// INVALID_ARGUMENT naming the field (`where` is its prefix, "spec.loadBalancer"): L7 only,
// 1..16 listeners with distinct ports, TCP or HTTP, ports 1..65535, the health check's bounds.
Status ValidateLoadBalancerSpec(const network::LoadBalancerSpec& spec, const std::string& where);

// Refuses a create, spec update or delete of a LoadBalancer by anyone but the system's
// controllers, naming the rule. OK for other kinds.
Status CheckLoadBalancerOwnership(const Principal& who, const KindInfo& kind, const char* verb);

}  // namespace photon::server
