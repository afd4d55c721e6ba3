#include "server/topology/topology.h"

#include <arpa/inet.h>

#include <set>

#include "photon/topology.pb.h"
#include "server/object_util.h"

namespace photon::server::topology {

namespace {

namespace pt = ::photon::topology;

Status Invalid(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(field + ": " + why);
}

Status RequiredName(const std::string& field, const std::string& value) {
  if (value.empty()) return Invalid(field, "required");
  return ValidateName(field, value);
}

Status Units(const std::string& field, int value, int min) {
  if (value < min || value > kMaxRackUnits) {
    return Invalid(field, std::to_string(value) + " is out of range " + std::to_string(min) + ".." +
                              std::to_string(kMaxRackUnits));
  }
  return absl::OkStatus();
}

bool IsMac(const std::string& mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2 ? mac[i] != ':' : !isxdigit(static_cast<unsigned char>(mac[i]))) return false;
  }
  return true;
}

bool IsIp(const std::string& ip) {
  unsigned char buf[16];
  return inet_pton(AF_INET, ip.c_str(), buf) == 1 || inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

Status CheckPort(const std::string& field, const pt::PhysicalPort& p) {
  if (p.name().empty()) return Invalid(field + ".name", "required");
  if (!p.ip().empty() && !IsIp(p.ip())) {
    return Invalid(field + ".ip", "'" + p.ip() + "' is not an IPv4 or IPv6 address");
  }
  if (!p.mac().empty() && !IsMac(p.mac())) {
    return Invalid(field + ".mac", "'" + p.mac() + "' is not a MAC address (aa:bb:cc:dd:ee:ff)");
  }
  return absl::OkStatus();
}

Status CheckPortsAndLinks(const pt::PhysicalResourceSpec& s) {
  std::set<std::string> names;
  for (int i = 0; i < s.ports_size(); ++i) {
    const std::string field = "spec.ports[" + std::to_string(i) + "]";
    PHOTON_RETURN_IF_ERROR(CheckPort(field, s.ports(i)));
    if (!names.insert(s.ports(i).name()).second) {
      return Invalid(field + ".name", "'" + s.ports(i).name() + "' is declared twice");
    }
  }
  std::set<std::string> cabled;
  for (int i = 0; i < s.links_size(); ++i) {
    const std::string field = "spec.links[" + std::to_string(i) + "]";
    const auto& l = s.links(i);
    if (!names.count(l.port())) {
      return Invalid(field + ".port", "'" + l.port() + "' is not one of spec.ports");
    }
    if (!cabled.insert(l.port()).second) {
      return Invalid(field + ".port", "'" + l.port() + "' already has a link (one cable a port)");
    }
    PHOTON_RETURN_IF_ERROR(RequiredName(field + ".peer", l.peer()));
    if (l.peer_port().empty()) return Invalid(field + ".peerPort", "required");
  }
  return absl::OkStatus();
}

Status CheckPhysicalResource(const pt::PhysicalResource& r) {
  const auto& s = r.spec();
  if (s.model().empty()) return Invalid("spec.model", "required");
  static const std::set<std::string> kTypes = {"server",  "switch", "router",
                                               "storage", "pdu",    "other"};
  if (!kTypes.count(s.type())) {
    return Invalid("spec.type",
                   "'" + s.type() + "': want server, switch, router, storage, pdu or other");
  }
  PHOTON_RETURN_IF_ERROR(RequiredName("spec.rack", s.rack()));
  PHOTON_RETURN_IF_ERROR(Units("spec.positionU", s.position_u(), 1));
  PHOTON_RETURN_IF_ERROR(Units("spec.heightU", s.height_u(), 1));
  if (s.position_u() + s.height_u() - 1 > kMaxRackUnits) {
    return Invalid("spec.heightU", "units " + std::to_string(s.position_u()) + ".." +
                                       std::to_string(s.position_u() + s.height_u() - 1) +
                                       " pass the tallest rack (" + std::to_string(kMaxRackUnits) +
                                       " U)");
  }
  if (s.face() != "front" && s.face() != "rear") {
    return Invalid("spec.face", "'" + s.face() + "': want front or rear");
  }
  if (!s.node().empty()) PHOTON_RETURN_IF_ERROR(ValidateName("spec.node", s.node()));
  if (!s.node().empty() && s.type() != "server") {
    return Invalid("spec.node", "only a server backs a Node (spec.type is " + s.type() + ")");
  }
  return CheckPortsAndLinks(s);
}

}  // namespace

bool IsTopologyPlural(const std::string& plural) {
  return plural == "datacenters" || plural == "floors" || plural == "racks" ||
         plural == "physicalresources";
}

Status ValidateTopology(const KindInfo& kind, const google::protobuf::Message& obj) {
  if (!IsTopologyPlural(kind.plural)) return absl::OkStatus();
  const std::string& ns = GetMetadata(obj).namespace_();
  if (!ns.empty() && ns != "system") {
    return Invalid("metadata.namespace", kind.plural + " are cluster-scoped: use /v1/" +
                                             kind.plural + " (namespace system), not '" + ns + "'");
  }
  if (kind.plural == "floors") {
    return RequiredName("spec.datacenter", static_cast<const pt::Floor&>(obj).spec().datacenter());
  }
  if (kind.plural == "racks") {
    const auto& s = static_cast<const pt::Rack&>(obj).spec();
    PHOTON_RETURN_IF_ERROR(RequiredName("spec.floor", s.floor()));
    PHOTON_RETURN_IF_ERROR(Units("spec.heightU", s.height_u(), 1));
    if (s.row() < 0) return Invalid("spec.row", "must not be negative");
    if (s.position() < 0) return Invalid("spec.position", "must not be negative");
    return absl::OkStatus();
  }
  if (kind.plural == "physicalresources") {
    return CheckPhysicalResource(static_cast<const pt::PhysicalResource&>(obj));
  }
  return absl::OkStatus();
}

}  // namespace photon::server::topology
