// See dns_validation.h.
#include "server/providers/dns_validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <vector>

#include "photon/network.pb.h"
#include "server/object_util.h"

namespace photon::server {

// A DNS name in presentation form: dot-separated labels of letters, digits, '-' and '_'
// (1-63 each, 253 in all), an optional trailing dot.
Status ValidateDnsName(const std::string& field, const std::string& name) {
  std::string n = name;
  if (!n.empty() && n.back() == '.') n.pop_back();
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(field + ": '" + name + "' is not a DNS name (" + why + ")");
  };
  if (n.empty()) return bad("empty");
  if (n.size() > 253) return bad("longer than 253 characters");
  size_t start = 0;
  while (start <= n.size()) {
    size_t dot = n.find('.', start);
    if (dot == std::string::npos) dot = n.size();
    const size_t len = dot - start;
    if (len == 0) return bad("empty label");
    if (len > 63) return bad("a label is longer than 63 characters");
    for (size_t i = start; i < dot; ++i) {
      const unsigned char c = static_cast<unsigned char>(n[i]);
      if (!isalnum(c) && c != '-' && c != '_' && !(c == '*' && len == 1))
        return bad(std::string("character '") + static_cast<char>(c) + "'");
    }
    start = dot + 1;
  }
  return absl::OkStatus();
}

static Status ValidateDnsRecord(const network::DnsRecord& r) {
  static const std::vector<std::string> kTypes = {"A",   "AAAA", "CNAME", "MX", "TXT",
                                                  "SRV", "PTR",  "NS",    "CAA"};
  const auto& s = r.spec();
  if (s.zone().empty())
    return absl::InvalidArgumentError("spec.zone: required (the name of a DnsZone object)");
  PHOTON_RETURN_IF_ERROR(ValidateName("spec.zone", s.zone()));
  if (s.name().empty())
    return absl::InvalidArgumentError("spec.name: required ('@' for the zone's apex)");
  if (s.name() != "@") PHOTON_RETURN_IF_ERROR(ValidateDnsName("spec.name", s.name()));
  std::string type;
  for (char c : s.type()) type += static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
    return absl::InvalidArgumentError("spec.type: '" + s.type() +
                                      "' is not one of A, AAAA, CNAME, MX, TXT, SRV, PTR, NS, CAA");
  }
  if (s.ttl() < 0) return absl::InvalidArgumentError("spec.ttl: must be ≥ 0 (0: 300 s)");
  if (s.values().empty()) return absl::InvalidArgumentError("spec.values: at least one value");
  if (type == "CNAME" && s.values_size() > 1)
    return absl::InvalidArgumentError("spec.values: a CNAME has exactly one value");
  for (int i = 0; i < s.values_size(); ++i) {
    const std::string field = "spec.values[" + std::to_string(i) + "]";
    const std::string& v = s.values(i);
    if (v.empty()) return absl::InvalidArgumentError(field + ": empty");
    unsigned char buf[16];
    if (type == "A" && inet_pton(AF_INET, v.c_str(), buf) != 1)
      return absl::InvalidArgumentError(field + ": '" + v + "' is not an IPv4 address");
    if (type == "AAAA" && inet_pton(AF_INET6, v.c_str(), buf) != 1)
      return absl::InvalidArgumentError(field + ": '" + v + "' is not an IPv6 address");
    if (type == "CNAME" || type == "PTR" || type == "NS")
      PHOTON_RETURN_IF_ERROR(ValidateDnsName(field, v));
  }
  return absl::OkStatus();
}

Status ValidateDnsSpec(const google::protobuf::Message& obj) {
  if (obj.GetDescriptor() == network::DnsZone::descriptor()) {
    const auto& z = static_cast<const network::DnsZone&>(obj);
    if (z.spec().name().empty())
      return absl::InvalidArgumentError("spec.name: required (the DNS name of the zone)");
    PHOTON_RETURN_IF_ERROR(ValidateDnsName("spec.name", z.spec().name()));
    // Private DNS owns that tree: a zone there would take a VPC's names (zone names are global).
    std::string n = z.spec().name();
    for (auto& c : n) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (n.back() != '.') n += '.';
    if (n == "internal." || (n.size() > 10 && n.compare(n.size() - 10, 10, ".internal.") == 0)) {
      return absl::InvalidArgumentError("spec.name: '" + z.spec().name() +
                                        "': names under internal. are VPC private DNS (a VPC's "
                                        "spec.enableDnsHostnames), not DnsZones");
    }
    return absl::OkStatus();
  }
  if (obj.GetDescriptor() == network::DnsRecord::descriptor())
    return ValidateDnsRecord(static_cast<const network::DnsRecord&>(obj));
  return absl::OkStatus();
}

}  // namespace photon::server
