// See loadbalancer_rules.h.
#include "server/providers/loadbalancer_rules.h"

#include <atomic>
#include <set>

#include "server/resource_manager.h"

namespace photon::server {

namespace {

std::atomic<bool> provider_configured{false};

Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(field + ": " + why);
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

Status ValidateHealthCheck(const network::LoadBalancerHealthCheck& hc, const std::string& where) {
  const std::string type = hc.type();
  if (!type.empty() && type != "none" && type != "tcp" && type != "http")
    return Bad(where + ".type", "'" + type + "': want none, tcp or http");
  if (type != "http" && (!hc.path().empty() || hc.expect_status() != 0))
    return Bad(where + ".path", "path and expectStatus are for type http");
  if (!hc.path().empty() && hc.path()[0] != '/') return Bad(where + ".path", "must start with /");
  if (hc.expect_status() != 0 && (hc.expect_status() < 100 || hc.expect_status() > 599))
    return Bad(where + ".expectStatus", "want 100..599");
  if (hc.interval_ms() != 0 && (hc.interval_ms() < 100 || hc.interval_ms() > 3600000))
    return Bad(where + ".intervalMs", "want 100..3600000");
  if (hc.rise() < 0 || hc.rise() > 100) return Bad(where + ".rise", "want 1..100");
  if (hc.fall() < 0 || hc.fall() > 100) return Bad(where + ".fall", "want 1..100");
  return absl::OkStatus();
}

}  // namespace

void SetLoadBalancerProviderConfigured(bool configured) { provider_configured = configured; }
bool LoadBalancerProviderConfigured() { return provider_configured; }

Status ValidateLoadBalancerSpec(const network::LoadBalancerSpec& spec, const std::string& where) {
  if (spec.type() != network::LoadBalancerSpec::L7) {
    return Bad(where + ".type",
               "L4 load balancers of RegionServices are not implemented yet; use L7 (HAProxy "
               "through fiberlb)");
  }
  if (spec.subnet_ids_size() > 0)
    return Bad(where + ".subnetIds",
               "not supported yet (the VIP is the provider's listen_address)");
  if (spec.backends_size() > 0)
    return Bad(where + ".backends",
               "members are the RegionService's RUNNING replicas; leave empty");
  if (spec.listeners_size() == 0) return Bad(where + ".listeners", "at least one is required");
  if (spec.listeners_size() > 16) return Bad(where + ".listeners", "at most 16");
  std::set<int> ports;
  for (int i = 0; i < spec.listeners_size(); ++i) {
    const auto& l = spec.listeners(i);
    const std::string at = where + ".listeners[" + std::to_string(i) + "]";
    if (l.port() < 1 || l.port() > 65535) return Bad(at + ".port", "want 1..65535");
    if (!ports.insert(l.port()).second)
      return Bad(at + ".port", std::to_string(l.port()) + " is used by another listener");
    const std::string proto = Upper(l.protocol());
    if (proto != "HTTP" && proto != "TCP") {
      return Bad(at + ".protocol", "'" + l.protocol() +
                                       "': want HTTP or TCP (HTTPS and UDP are not implemented "
                                       "for RegionService load balancers yet)");
    }
    if (l.target_port() < 0 || l.target_port() > 65535)
      return Bad(at + ".targetPort", "want 0..65535 (0: the listener's port)");
    if (!l.target_group_id().empty())
      return Bad(at + ".targetGroupId", "not supported: the target is the RegionService");
  }
  return ValidateHealthCheck(spec.health_check(), where + ".healthCheck");
}

Status CheckLoadBalancerOwnership(const Principal& who, const KindInfo& kind, const char* verb) {
  if (kind.plural != "loadbalancers" || who.name == SystemPrincipal().name) return absl::OkStatus();
  return absl::InvalidArgumentError(
      std::string("loadbalancers cannot be ") + verb +
      " directly: a LoadBalancer is created and deleted only with its RegionService (set or "
      "remove the RegionService's spec.loadBalancer, or delete the RegionService)");
}

}  // namespace photon::server
