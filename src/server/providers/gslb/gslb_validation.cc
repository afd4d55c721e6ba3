// See gslb_validation.h.
#include "server/providers/gslb/gslb_validation.h"

#include <arpa/inet.h>

#include <set>
#include <string>

#include "photon/network.pb.h"
#include "server/object_util.h"
#include "server/providers/dns_validation.h"

namespace photon::server {

namespace {

constexpr int kMaxMembers = 64;  // one flashdns probe carries every member (its cap is 64)

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// 0 (the default) or lo..hi.
Status Range(const std::string& field, int value, int lo, int hi) {
  if (value == 0 || (value >= lo && value <= hi)) return absl::OkStatus();
  return absl::InvalidArgumentError(field + ": " + std::to_string(value) + " is outside " +
                                    std::to_string(lo) + ".." + std::to_string(hi));
}

Status ValidateMembers(const network::GlobalServiceSpec& spec) {
  if (spec.members().empty())
    return absl::InvalidArgumentError("spec.members: at least one member is required");
  if (spec.members().size() > kMaxMembers)
    return absl::InvalidArgumentError("spec.members: at most " + std::to_string(kMaxMembers));
  std::set<std::string> seen;
  bool by_address = false;
  for (int i = 0; i < spec.members().size(); ++i) {
    const auto& m = spec.members(i);
    const std::string at = "spec.members[" + std::to_string(i) + "]";
    if (m.region_service().empty() == m.address().empty()) {
      return absl::InvalidArgumentError(at + ": give exactly one of regionService and address");
    }
    if (!m.address().empty() && !IsIpLiteral(m.address())) {
      return absl::InvalidArgumentError(at + ".address: '" + m.address() +
                                        "' is not an IPv4 or IPv6 address");
    }
    if (!m.region_service().empty())
      PHOTON_RETURN_IF_ERROR(ValidateName(at + ".regionService", m.region_service()));
    if (m.region().size() > 63)
      return absl::InvalidArgumentError(at + ".region: at most 63 characters");
    by_address = by_address || !m.address().empty();
    const std::string id = m.address().empty() ? "rs:" + m.region_service() : m.address();
    if (!seen.insert(id).second)
      return absl::InvalidArgumentError(at + ": the same member is listed twice");
  }
  if (by_address && spec.health_check().port() == 0) {
    return absl::InvalidArgumentError(
        "spec.healthCheck.port: required when a member is given by address (a RegionService "
        "member defaults to its LoadBalancer's first listener port)");
  }
  return absl::OkStatus();
}

}  // namespace

Status ValidateGlobalService(const google::protobuf::Message& obj) {
  if (obj.GetDescriptor() != network::GlobalService::descriptor()) return absl::OkStatus();
  const auto& spec = static_cast<const network::GlobalService&>(obj).spec();
  if (spec.zone().empty())
    return absl::InvalidArgumentError("spec.zone: required (a DnsZone object in this namespace)");
  PHOTON_RETURN_IF_ERROR(ValidateName("spec.zone", spec.zone()));
  if (spec.name().empty())
    return absl::InvalidArgumentError("spec.name: required (the name in the zone; @ for its apex)");
  if (spec.name() != "@") PHOTON_RETURN_IF_ERROR(ValidateDnsName("spec.name", spec.name()));
  if (spec.name().find('*') != std::string::npos)
    return absl::InvalidArgumentError("spec.name: a wildcard cannot be a GlobalService's name");
  PHOTON_RETURN_IF_ERROR(Range("spec.ttl", spec.ttl(), 1, 86400));
  const auto& hc = spec.health_check();
  PHOTON_RETURN_IF_ERROR(Range("spec.healthCheck.port", hc.port(), 1, 65535));
  PHOTON_RETURN_IF_ERROR(Range("spec.healthCheck.intervalMs", hc.interval_ms(), 100, 60000));
  const int interval = hc.interval_ms() == 0 ? 1000 : hc.interval_ms();
  PHOTON_RETURN_IF_ERROR(Range("spec.healthCheck.timeoutMs", hc.timeout_ms(), 10, interval));
  PHOTON_RETURN_IF_ERROR(Range("spec.healthCheck.rise", hc.rise(), 1, 100));
  PHOTON_RETURN_IF_ERROR(Range("spec.healthCheck.fall", hc.fall(), 1, 100));
  return ValidateMembers(spec);
}

}  // namespace photon::server
