#include "server/kinds.h"

#include "photon/compute.pb.h"
#include "photon/event.pb.h"
#include "photon/network.pb.h"
#include "photon/node.pb.h"
#include "photon/operation.pb.h"
#include "photon/ops.pb.h"
#include "photon/storage.pb.h"
#include "photon/topology.pb.h"

namespace photon::server {

namespace {

template <typename T>
KindInfo Make(const std::string& plural, bool user_creatable, bool status_by_agent) {
  return KindInfo{T::descriptor()->name(), plural, &T::default_instance(), user_creatable,
                  status_by_agent};
}

std::vector<KindInfo> BuildKinds() {
  return {
      Make<compute::ComputeInstance>("computeinstances", true, true),
      Make<compute::Flavor>("flavors", true, false),
      Make<compute::Image>("images", true, true),
      Make<compute::RegionService>("regionservices", true, false),
      Make<network::Vpc>("vpcs", true, true),
      Make<network::Subnet>("subnets", true, true),
      Make<network::Port>("ports", false, true),
      Make<network::SecurityGroup>("securitygroups", true, true),
      Make<network::FloatingIp>("floatingips", true, true),
      Make<network::LoadBalancer>("loadbalancers", true, false),
      Make<network::DnsZone>("dnszones", true, true),
      Make<network::DnsRecord>("dnsrecords", true, true),
      Make<network::GlobalService>("globalservices", true, false),
      Make<storage::Volume>("volumes", true, true),
      Make<storage::Bucket>("buckets", true, true),
      Make<node::Node>("nodes", false, true),
      Make<event::Event>("events", false, false),
      Make<operation::Operation>("operations", false, true),
      Make<ops::Check>("checks", true, false),
      Make<ops::EventRule>("eventrules", true, false),
      Make<ops::Alert>("alerts", false, false),
      Make<ops::Maintenance>("maintenances", true, false),
      // Physical topology (cluster-scoped, namespace system; server/topology/topology.h).
      Make<topology::Datacenter>("datacenters", true, false),
      Make<topology::Floor>("floors", true, false),
      Make<topology::Rack>("racks", true, false),
      Make<topology::PhysicalResource>("physicalresources", true, false),
  };
}

}  // namespace

const std::vector<KindInfo>& AllKinds() {
  static const std::vector<KindInfo> kinds = BuildKinds();
  return kinds;
}

const KindInfo* FindKind(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(tolower(c));
  for (const auto& k : AllKinds()) {
    std::string kind_lower;
    for (char c : k.kind) kind_lower += static_cast<char>(tolower(c));
    if (lower == k.plural || lower == kind_lower) return &k;
  }
  return nullptr;
}

const KindInfo* FindKindByTypeName(const std::string& full_name) {
  for (const auto& k : AllKinds()) {
    if (k.prototype->GetDescriptor()->full_name() == full_name) return &k;
  }
  return nullptr;
}

std::string KnownKindNames() {
  std::string out;
  for (const auto& k : AllKinds()) {
    if (!k.user_creatable) continue;
    if (!out.empty()) out += ", ";
    out += k.plural;
  }
  return out;
}

}  // namespace photon::server
