#include "agent/net/port.h"

#include <cctype>

#include "agent/net/ipv4.h"

namespace photon::agent::net {
namespace {

Status Invalid(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(field + ": " + why);
}

bool ValidMac(const std::string& mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2 ? mac[i] != ':' : !std::isxdigit(static_cast<unsigned char>(mac[i]))) {
      return false;
    }
  }
  return (std::stoi(mac.substr(0, 2), nullptr, 16) & 1) == 0;  // not multicast
}

Status ValidateRule(const SgRule& r, const std::string& field) {
  if (r.protocol != -1 && r.protocol != 1 && r.protocol != 6 && r.protocol != 17) {
    return Invalid(field + ".protocol", "must be all, icmp, tcp or udp");
  }
  bool ported = r.protocol == 6 || r.protocol == 17;
  if (!ported && (r.port_from != 0 || r.port_to != 0)) {
    return Invalid(field + ".port_from", "ports only apply to tcp and udp");
  }
  if (ported && !(r.port_from == 0 && r.port_to == 0)) {
    if (r.port_from < 1 || r.port_from > 65535) return Invalid(field + ".port_from", "not 1-65535");
    if (r.port_to < r.port_from || r.port_to > 65535) {
      return Invalid(field + ".port_to", "not port_from-65535");
    }
  }
  if (!r.remote_set.empty()) return absl::OkStatus();  // checked with the sets
  return ParseCidr(r.remote_cidr, field + ".remote_cidr").status();
}

Status ValidateSets(const PortSpec& spec) {
  for (const auto& [name, members] : spec.remote_sets) {
    const std::string field = "remote_sets[" + name + "]";
    if (name.empty() || name.size() > 32) return Invalid(field, "name not 1-32 characters");
    for (char c : name) {
      if (!std::islower(static_cast<unsigned char>(c)) &&
          !std::isdigit(static_cast<unsigned char>(c)) && c != '_') {
        return Invalid(field, "name has a character outside [a-z0-9_]");
      }
    }
    for (const auto& m : members) PHOTON_RETURN_IF_ERROR(ParseIpv4(m).status());
  }
  for (size_t i = 0; i < spec.rules.size(); ++i) {
    const auto& set = spec.rules[i].remote_set;
    if (!set.empty() && !spec.remote_sets.count(set)) {
      return Invalid("rules[" + std::to_string(i) + "].remote_set", "no set '" + set + "'");
    }
  }
  return absl::OkStatus();
}

}  // namespace

Status ValidateInstanceId(const std::string& id) {
  if (id.empty() || id.size() > 63) return Invalid("instance_id", "must be 1-63 characters");
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Invalid("instance_id", "'" + id + "' has a character outside [A-Za-z0-9._-]");
    }
  }
  return absl::OkStatus();
}

Status ValidatePortSpec(const PortSpec& spec) {
  PHOTON_RETURN_IF_ERROR(ValidateInstanceId(spec.instance_id));
  auto ip = ParseIpv4(spec.ip);
  if (!ip.ok()) return Invalid("ip", std::string(ip.status().message()));
  if (!ValidMac(spec.mac)) return Invalid("mac", "'" + spec.mac + "' is not a unicast MAC");
  PHOTON_ASSIGN_OR_RETURN(Cidr subnet, ParseCidr(spec.subnet_cidr, "subnet_cidr"));
  PHOTON_ASSIGN_OR_RETURN(Cidr vpc, ParseCidr(spec.vpc_cidr, "vpc_cidr"));
  if (!subnet.Contains(*ip)) return Invalid("ip", spec.ip + " is outside " + spec.subnet_cidr);
  if (subnet.len < vpc.len || !vpc.Contains(subnet.base)) {
    return Invalid("subnet_cidr", spec.subnet_cidr + " is outside " + spec.vpc_cidr);
  }
  if ((*ip >> 16) == 0xa9fe) return Invalid("ip", "169.254.0.0/16 is the node's link range");
  for (size_t i = 0; i < spec.lb_vips.size(); ++i) {
    auto vip = ParseIpv4(spec.lb_vips[i]);
    if (!vip.ok() || *vip == *ip)
      return Invalid("lb_vips[" + std::to_string(i) + "]",
                     "'" + spec.lb_vips[i] + "' is not a VIP");
  }
  for (size_t i = 0; i < spec.rules.size(); ++i) {
    PHOTON_RETURN_IF_ERROR(ValidateRule(spec.rules[i], "rules[" + std::to_string(i) + "]"));
  }
  return ValidateSets(spec);
}

}  // namespace photon::agent::net
