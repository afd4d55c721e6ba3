// NetworkManager: creates of Vpc, Subnet and SecurityGroup, and the default VPC.
// IPAM and instances are in ipam.cc; updates, deletes and status in network_writes.cc.
#include "server/network/network_manager.h"

#include <set>

#include "common/util.h"
#include "server/network/network_internal.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::prismnet {

namespace {

constexpr char kDefault[] = "default";
constexpr char kDefaultLabel[] = "photon.io/default";

void Ready(google::protobuf::Message* obj, const std::string& message) {
  if (auto* st = MutableStatus(obj)) {
    st->set_phase(resource::ResourceStatus::RUNNING);
    st->set_message(message);
  }
}

// Metadata of an object the server creates on its own (the default VPC and subnet).
void SystemMetadata(resource::ResourceMetadata* md, const std::string& kind, const std::string& ns,
                    const std::string& name) {
  md->set_id(NewUuid());
  md->set_name(name);
  md->set_namespace_(ns);
  md->set_resource_type(kind);
  md->set_created_at(NowRfc3339());
  md->set_updated_at(md->created_at());
  md->set_created_by("system:network");
  md->set_generation(1);
  (*md->mutable_labels())[kDefaultLabel] = "true";
}

}  // namespace

void SetCondition(resource::ResourceStatus* st, const std::string& type, bool ok,
                  const std::string& reason, const std::string& message) {
  resource::Condition* c = nullptr;
  for (auto& x : *st->mutable_conditions())
    if (x.type() == type) c = &x;
  if (!c) {
    c = st->add_conditions();
    c->set_type(type);
  }
  const std::string status = ok ? "True" : "False";
  if (c->status() != status) c->set_last_transition_time(NowRfc3339());
  c->set_status(status);
  c->set_reason(reason);
  c->set_message(message);
}

NetworkManager::NetworkManager(store::Store* store, NetworkOptions options)
    : store_(store), options_(std::move(options)) {}

Status NetworkManager::Init() {
  PHOTON_ASSIGN_OR_RETURN(pool_, ParseCidr("default_vpc_pool", options_.default_pool));
  if (options_.default_vpc_prefix < pool_.prefix || options_.default_vpc_prefix > 28) {
    return absl::InvalidArgumentError("default_vpc_prefix: want " + std::to_string(pool_.prefix) +
                                      "..28 (within default_vpc_pool " + pool_.ToString() + ")");
  }
  if (options_.default_subnet_prefix < options_.default_vpc_prefix ||
      options_.default_subnet_prefix > 30) {
    return absl::InvalidArgumentError("default_subnet_prefix: want " +
                                      std::to_string(options_.default_vpc_prefix) + "..30");
  }
  return InitFloatingPool();
}

bool NetworkManager::Plans(const KindInfo& kind) {
  static const std::set<std::string> kinds = {"computeinstances", "vpcs", "subnets",
                                              "securitygroups", "floatingips"};
  return kinds.count(kind.plural) > 0;
}

Status NetworkManager::Plan(const Principal& who, const KindInfo& kind, const std::string& ns,
                            google::protobuf::Message* object, CreatePlan* plan) {
  (void)who;  // hostNetwork is checked with the other host privileges (privilege.cc)
  *plan = CreatePlan{};
  if (kind.plural == "computeinstances") {
    return PlanInstance(ns, static_cast<compute::ComputeInstance*>(object), plan);
  }
  if (kind.plural == "vpcs") return PlanVpc(ns, static_cast<network::Vpc*>(object), plan);
  if (kind.plural == "subnets") {
    return PlanSubnet(ns, static_cast<network::Subnet*>(object), plan);
  }
  if (kind.plural == "securitygroups") {
    return PlanSecurityGroup(ns, static_cast<network::SecurityGroup*>(object), plan);
  }
  if (kind.plural == "floatingips") {
    return PlanFloatingIp(ns, static_cast<network::FloatingIp*>(object), plan);
  }
  return absl::OkStatus();
}

StatusOr<int64_t> NetworkManager::TopologyRevision(CreatePlan* plan) {
  auto r = store_->Range(kTopologyKey);
  if (!r.ok()) return r.status();
  const int64_t rev = r->kvs.empty() ? 0 : r->kvs[0].mod_revision;
  plan->compares.push_back(ModIs(kTopologyKey, rev));
  plan->ops.push_back(PutOp(kTopologyKey, NowRfc3339()));
  return rev;
}

StatusOr<std::map<std::string, Cidr>> NetworkManager::AllVpcs() {
  const std::string prefix = RegistryPrefix("vpcs");
  auto r = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!r.ok()) return r.status();
  std::map<std::string, Cidr> out;
  for (const auto& kv : r->kvs) {
    network::Vpc v;
    if (!v.ParseFromString(kv.value)) continue;
    auto c = ParseCidr("spec.cidrBlock", v.spec().cidr_block());
    if (c.ok()) out[v.metadata().namespace_() + "/" + v.metadata().name()] = *c;
  }
  return out;
}

Status NetworkManager::CheckVpcOverlap(const std::string& self, const Cidr& cidr,
                                       const std::map<std::string, Cidr>& vpcs) {
  for (const auto& [name, other] : vpcs) {
    if (name == self || !other.Overlaps(cidr)) continue;
    return absl::InvalidArgumentError("spec.cidrBlock: " + cidr.ToString() + " overlaps VPC '" +
                                      name + "' (" + other.ToString() +
                                      "); VPCs share one routing domain, so their CIDRs may "
                                      "not overlap");
  }
  return absl::OkStatus();
}

Status NetworkManager::PlanVpc(const std::string& ns, network::Vpc* vpc, CreatePlan* plan) {
  PHOTON_ASSIGN_OR_RETURN(Cidr cidr, ParseCidr("spec.cidrBlock", vpc->spec().cidr_block()));
  PHOTON_RETURN_IF_ERROR(TopologyRevision(plan).status());
  PHOTON_ASSIGN_OR_RETURN(auto vpcs, AllVpcs());
  PHOTON_RETURN_IF_ERROR(CheckVpcOverlap(ns + "/" + vpc->metadata().name(), cidr, vpcs));
  if (floating_pool_ && floating_pool_->Overlaps(cidr)) {
    return absl::InvalidArgumentError("spec.cidrBlock: " + cidr.ToString() +
                                      " overlaps the floating IP pool " +
                                      floating_pool_->ToString());
  }
  Ready(vpc, "ready");
  return absl::OkStatus();
}

Status NetworkManager::PlanSubnet(const std::string& ns, network::Subnet* subnet,
                                  CreatePlan* plan) {
  auto* spec = subnet->mutable_spec();
  const std::string vpc_key = RegistryKey("vpcs", ns, spec->vpc_id());
  PHOTON_ASSIGN_OR_RETURN(auto vpc, ReadObject<network::Vpc>(store_, vpc_key));
  if (!vpc) {
    return absl::InvalidArgumentError("spec.vpcId: VPC '" + spec->vpc_id() +
                                      "' not found in namespace '" + ns + "'");
  }
  if (!vpc->first.metadata().deletion_timestamp().empty()) {
    return absl::FailedPreconditionError("spec.vpcId: VPC '" + spec->vpc_id() +
                                         "' is being deleted");
  }
  plan->compares.push_back(ModIs(vpc_key, vpc->second));
  PHOTON_ASSIGN_OR_RETURN(Cidr vpc_cidr,
                          ParseCidr("VPC cidrBlock", vpc->first.spec().cidr_block()));
  PHOTON_ASSIGN_OR_RETURN(Cidr cidr, ParseCidr("spec.cidrBlock", spec->cidr_block()));
  if (!vpc_cidr.Contains(cidr)) {
    return absl::InvalidArgumentError("spec.cidrBlock: " + cidr.ToString() + " is outside VPC '" +
                                      spec->vpc_id() + "' (" + vpc_cidr.ToString() + ")");
  }
  PHOTON_RETURN_IF_ERROR(TopologyRevision(plan).status());
  const std::string prefix = RegistryPrefix("subnets", ns);
  auto siblings = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!siblings.ok()) return siblings.status();
  for (const auto& kv : siblings->kvs) {
    network::Subnet s;
    if (!s.ParseFromString(kv.value) || s.spec().vpc_id() != spec->vpc_id()) continue;
    auto c = ParseCidr("", s.spec().cidr_block());
    if (!c.ok() || !c->Overlaps(cidr)) continue;
    return absl::InvalidArgumentError("spec.cidrBlock: " + cidr.ToString() + " overlaps subnet '" +
                                      s.metadata().name() + "' (" + c->ToString() + ") of VPC '" +
                                      spec->vpc_id() + "'");
  }
  uint32_t gateway = cidr.base + 1;
  if (!spec->gateway().empty()) {
    PHOTON_ASSIGN_OR_RETURN(gateway, ParseAddress("spec.gateway", spec->gateway()));
    if (!cidr.Contains(gateway) || gateway == cidr.base || gateway == cidr.last()) {
      return absl::InvalidArgumentError("spec.gateway: " + spec->gateway() +
                                        " is not a host address of " + cidr.ToString());
    }
  }
  spec->set_gateway(FormatAddress(gateway));
  Ready(subnet, "ready");
  (*subnet->mutable_status()->mutable_details())["usable"] = std::to_string(Usable(cidr, gateway));
  return absl::OkStatus();
}

Status NetworkManager::CheckSecurityGroups(const std::string& field, const std::string& ns,
                                           const std::vector<std::string>& names,
                                           const std::string& self, CreatePlan* plan) {
  std::set<std::string> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (name.empty() || name == self || !seen.insert(name).second) continue;
    const std::string f = field == "spec.network.securityGroups"
                              ? field + "[" + std::to_string(i) + "]"
                              : "spec.rules[" + std::to_string(i) + "].remoteSecurityGroup";
    PHOTON_RETURN_IF_ERROR(ValidateName(f, name));
    const std::string key = RegistryKey("securitygroups", ns, name);
    PHOTON_ASSIGN_OR_RETURN(auto sg, ReadObject<network::SecurityGroup>(store_, key));
    if (!sg) {
      return absl::InvalidArgumentError(f + ": security group '" + name +
                                        "' not found in namespace '" + ns + "'");
    }
    if (!sg->first.metadata().deletion_timestamp().empty()) {
      return absl::FailedPreconditionError(f + ": security group '" + name + "' is being deleted");
    }
    if (plan) plan->compares.push_back(ModIs(key, sg->second));
  }
  return absl::OkStatus();
}

Status NetworkManager::PlanSecurityGroup(const std::string& ns, network::SecurityGroup* sg,
                                         CreatePlan* plan) {
  // Index i of the list is the rule's index, so a missing group names its rule.
  std::vector<std::string> remotes;
  for (const auto& r : sg->spec().rules()) remotes.push_back(r.remote_security_group());
  PHOTON_RETURN_IF_ERROR(
      CheckSecurityGroups("spec.rules", ns, remotes, sg->metadata().name(), plan));
  Ready(sg, "ready");
  return absl::OkStatus();
}

StatusOr<NetworkManager::SubnetRef> NetworkManager::EnsureDefault(const std::string& ns) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto s = ReadSubnet("spec.network.subnet", ns, kDefault);
    if (s.ok() || s.status().code() != StatusCode::kNotFound) return s;
    Status created = CreateDefault(ns);
    if (!created.ok() && created.code() != StatusCode::kAborted) return created;
  }
  return absl::AbortedError("spec.network: the default VPC of namespace '" + ns +
                            "' kept changing while it was being created; retry");
}

// The default VPC (when missing) and its default subnet in one transaction; ABORTED when
// someone else changed the topology meanwhile (the caller reads again).
Status NetworkManager::CreateDefault(const std::string& ns) {
  CreatePlan plan;
  PHOTON_RETURN_IF_ERROR(TopologyRevision(&plan).status());
  const std::string vpc_key = RegistryKey("vpcs", ns, kDefault);
  PHOTON_ASSIGN_OR_RETURN(auto existing, ReadObject<network::Vpc>(store_, vpc_key));
  Cidr vpc_cidr;
  if (existing) {
    plan.compares.push_back(ModIs(vpc_key, existing->second));
    PHOTON_ASSIGN_OR_RETURN(vpc_cidr,
                            ParseCidr("spec.cidrBlock", existing->first.spec().cidr_block()));
  } else {
    PHOTON_ASSIGN_OR_RETURN(auto vpcs, AllVpcs());
    const uint64_t step = uint64_t{1} << (32 - options_.default_vpc_prefix);
    bool found = false;
    for (uint64_t b = pool_.base; b + step - 1 <= pool_.last() && !found; b += step) {
      vpc_cidr = Cidr{static_cast<uint32_t>(b), options_.default_vpc_prefix};
      found = CheckVpcOverlap("", vpc_cidr, vpcs).ok();
    }
    if (!found) {
      return absl::ResourceExhaustedError(
          "spec.network: the default VPC pool " + pool_.ToString() + " has no free /" +
          std::to_string(options_.default_vpc_prefix) + " for namespace '" + ns +
          "'; create a VPC and subnet and name them in spec.network");
    }
    network::Vpc vpc;
    SystemMetadata(vpc.mutable_metadata(), "Vpc", ns, kDefault);
    vpc.mutable_spec()->set_cidr_block(vpc_cidr.ToString());
    vpc.mutable_spec()->set_enable_dns_support(true);
    vpc.mutable_spec()->set_enable_dns_hostnames(true);
    Ready(&vpc, "created on first use by an instance without spec.network");
    plan.compares.push_back(Absent(vpc_key));
    plan.ops.push_back(PutOp(vpc_key, vpc.SerializeAsString()));
  }
  // The default subnet: the VPC's first block of the default size that no subnet holds.
  const std::string prefix = RegistryPrefix("subnets", ns);
  auto siblings = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!siblings.ok()) return siblings.status();
  std::vector<Cidr> used;
  for (const auto& kv : siblings->kvs) {
    network::Subnet s;
    if (!s.ParseFromString(kv.value) || s.spec().vpc_id() != kDefault) continue;
    if (auto c = ParseCidr("", s.spec().cidr_block()); c.ok()) used.push_back(*c);
  }
  const int sp = std::max(options_.default_subnet_prefix, vpc_cidr.prefix);
  const uint64_t step = uint64_t{1} << (32 - sp);
  std::optional<Cidr> pick;
  for (uint64_t b = vpc_cidr.base; b + step - 1 <= vpc_cidr.last() && !pick; b += step) {
    Cidr c{static_cast<uint32_t>(b), sp};
    bool free = true;
    for (const auto& u : used) free = free && !u.Overlaps(c);
    if (free) pick = c;
  }
  if (!pick) {
    return absl::ResourceExhaustedError("spec.network: the default VPC of namespace '" + ns +
                                        "' has no room for a default subnet; name a subnet in "
                                        "spec.network");
  }
  network::Subnet subnet;
  SystemMetadata(subnet.mutable_metadata(), "Subnet", ns, kDefault);
  subnet.mutable_spec()->set_vpc_id(kDefault);
  subnet.mutable_spec()->set_cidr_block(pick->ToString());
  subnet.mutable_spec()->set_gateway(FormatAddress(pick->base + 1));
  Ready(&subnet, "created on first use by an instance without spec.network");
  (*subnet.mutable_status()->mutable_details())["usable"] =
      std::to_string(Usable(*pick, pick->base + 1));
  const std::string subnet_key = RegistryKey("subnets", ns, kDefault);
  plan.compares.push_back(Absent(subnet_key));
  plan.ops.push_back(PutOp(subnet_key, subnet.SerializeAsString()));

  store::TxnRequest txn;
  txn.compares = std::move(plan.compares);
  txn.success = std::move(plan.ops);
  auto r = store_->Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded) return absl::AbortedError("network topology changed meanwhile");
  return absl::OkStatus();
}

}  // namespace photon::server::prismnet
