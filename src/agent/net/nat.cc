// See nat.h.
#include "agent/net/nat.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "agent/net/exec.h"
#include "agent/net/ipv4.h"
#include "agent/net/netns.h"

namespace photon::agent::net {

namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

Status ValidateNatSpec(const NatSpec& spec) {
  std::vector<Cidr> cloud;
  for (size_t i = 0; i < spec.cloud_cidrs.size(); ++i) {
    PHOTON_ASSIGN_OR_RETURN(
        Cidr c, ParseCidr(spec.cloud_cidrs[i], "cloud_cidrs[" + std::to_string(i) + "]"));
    cloud.push_back(c);
  }
  if (cloud.empty() && (spec.snat || !spec.floating_ips.empty()))
    return absl::InvalidArgumentError("cloud_cidrs: at least one (what is not NATed)");
  const std::string& i = spec.snat_interface;
  if (i.size() > 15 || i == "." || i == ".." ||
      i.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
          std::string::npos) {
    return absl::InvalidArgumentError("snat_interface: '" + i + "' is not an interface name");
  }
  if (!spec.snat_address.empty() && !ParseIpv4(spec.snat_address).ok()) {
    return absl::InvalidArgumentError("snat_address: " + spec.snat_address + " is not IPv4");
  }
  std::set<uint32_t> publics, privates;
  for (size_t i = 0; i < spec.floating_ips.size(); ++i) {
    const std::string f = "floating_ips[" + std::to_string(i) + "]";
    const auto& m = spec.floating_ips[i];
    auto pub = ParseIpv4(m.address);
    if (!pub.ok()) return absl::InvalidArgumentError(f + ".address: " + m.address + " is not IPv4");
    auto priv = ParseIpv4(m.private_ip);
    if (!priv.ok())
      return absl::InvalidArgumentError(f + ".private_ip: " + m.private_ip + " is not IPv4");
    for (const auto& c : cloud) {
      if (c.Contains(*pub))
        return absl::InvalidArgumentError(f + ".address: " + m.address +
                                          " is inside the cloud's range " + c.ToString());
    }
    if (!publics.insert(*pub).second)
      return absl::InvalidArgumentError(f + ".address: " + m.address + " is mapped twice");
    if (!privates.insert(*priv).second)
      return absl::InvalidArgumentError(f + ".private_ip: " + m.private_ip +
                                        " has two floating IPs");
  }
  return absl::OkStatus();
}

std::string RenderNatRuleset(const std::string& table, const NatSpec& spec) {
  std::vector<std::string> in, out;
  for (const auto& m : spec.floating_ips) {
    in.push_back(m.address + " : " + m.private_ip);
    out.push_back(m.private_ip + " : " + m.address);
  }
  const std::string t = "table ip " + table;
  // Declaring the table first makes the delete succeed whether or not it existed; the three
  // statements are one transaction, so packets see the old table or the new one.
  std::string s = t + " {}\ndelete " + t + "\n" + t + " {\n";
  s += "  set cloud { type ipv4_addr; flags interval;";
  if (!spec.cloud_cidrs.empty()) s += " elements = { " + Join(spec.cloud_cidrs) + " };";
  s += " }\n";
  s += "  map fip_in { type ipv4_addr : ipv4_addr;";
  if (!in.empty()) s += " elements = { " + Join(in) + " };";
  s += " }\n";
  s += "  map fip_out { type ipv4_addr : ipv4_addr;";
  if (!out.empty()) s += " elements = { " + Join(out) + " };";
  s += " }\n";
  s += "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n";
  s += "    dnat to ip daddr map @fip_in\n  }\n";
  s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
  s += "    ip daddr @cloud return\n";
  s += "    snat to ip saddr map @fip_out\n";  // a miss in the map: the rule does not apply
  if (spec.snat) {
    s += "    ip saddr @cloud";
    if (!spec.snat_interface.empty()) s += " oifname \"" + spec.snat_interface + "\"";
    s += spec.snat_address.empty() ? " masquerade\n" : " snat to " + spec.snat_address + "\n";
  }
  s += "  }\n}\n";
  return s;
}

Status NodeNat::Apply(const NatSpec& spec) {
  PHOTON_RETURN_IF_ERROR(ValidateNatSpec(spec));
  PHOTON_RETURN_IF_ERROR(NftRunIn(options_.host_netns, RenderNatRuleset(options_.table, spec)));
  std::vector<std::string> want;
  for (const auto& m : spec.floating_ips) want.push_back(m.address);
  return SyncRoutes(want);
}

Status NodeNat::Clear() {
  const std::string t = "table ip " + options_.table;
  PHOTON_RETURN_IF_ERROR(NftRunIn(options_.host_netns, t + " {}\ndelete " + t + "\n"));
  return SyncRoutes({});
}

StatusOr<std::vector<std::string>> NodeNat::RoutedFloatingIps() const {
  ExecOptions o;
  o.netns = options_.host_netns;
  PHOTON_ASSIGN_OR_RETURN(std::string out,
                          ExecOk({"ip", "-j", "route", "show", "type", "blackhole", "proto",
                                  std::to_string(options_.route_protocol)},
                                 o));
  auto routes = nlohmann::json::parse(out, nullptr, false);
  if (!routes.is_array()) return absl::InternalError("ip -j route: not a JSON list: " + out);
  std::vector<std::string> found;
  for (const auto& r : routes) {
    if (r.value("metric", -1) == options_.route_metric) found.push_back(r.value("dst", ""));
  }
  return found;
}

Status NodeNat::SyncRoutes(const std::vector<std::string>& want) {
  PHOTON_ASSIGN_OR_RETURN(std::vector<std::string> have, RoutedFloatingIps());
  const std::string tail = "/32 proto " + std::to_string(options_.route_protocol) + " metric " +
                           std::to_string(options_.route_metric) + "\n";
  std::string batch;
  for (const auto& a : want) {
    if (std::find(have.begin(), have.end(), a) == have.end())
      batch += "route replace blackhole " + a + tail;
  }
  for (const auto& a : have) {
    if (std::find(want.begin(), want.end(), a) == want.end())
      batch += "route del blackhole " + a + tail;
  }
  if (batch.empty()) return absl::OkStatus();
  ExecOptions o;
  o.netns = options_.host_netns;
  o.stdin_data = batch;
  return ExecOk({"ip", "-batch", "-"}, o).status();
}

}  // namespace photon::agent::net
