// NetworkManager: an instance's attachment, its address (IPAM) and its Port.
#include "common/util.h"
#include "server/network/network_internal.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::prismnet {

namespace {

// A pool is reloaded from the store at most this often when it looks full, so a namespace
// whose subnet stays full does not scan the store on every create.
constexpr int64_t kReloadFullNanos = 1'000'000'000;

void ClearNetworkStatus(resource::ResourceStatus* st) {
  for (const char* k : {kDetailVpc, kDetailSubnet, kDetailCidr, kDetailAddress, kDetailMac,
                        kDetailPort, kDetailMode})
    st->mutable_details()->erase(k);
  auto* conds = st->mutable_conditions();
  for (int i = conds->size() - 1; i >= 0; --i) {
    if (conds->Get(i).type() == kNetworkReady) conds->DeleteSubrange(i, 1);
  }
}

}  // namespace

std::string IpamPrefix(const std::string& ns, const std::string& subnet) {
  return std::string(kIpamRoot) + ns + "/" + subnet + "/";
}

std::string IpamKey(const std::string& ns, const std::string& subnet, uint32_t address) {
  return IpamPrefix(ns, subnet) + FormatAddress(address);
}

std::string MacFor(const std::string& instance_id) {
  // FNV-1a: stable across builds and hosts (std::hash is neither).
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : instance_id) h = (h ^ c) * 1099511628211ULL;
  char buf[18];
  snprintf(buf, sizeof buf, "02:%02x:%02x:%02x:%02x:%02x", static_cast<unsigned>(h >> 32 & 255),
           static_cast<unsigned>(h >> 24 & 255), static_cast<unsigned>(h >> 16 & 255),
           static_cast<unsigned>(h >> 8 & 255), static_cast<unsigned>(h & 255));
  return buf;
}

bool AwaitingAddress(const compute::ComputeInstance& ci) {
  for (const auto& c : ci.status().conditions()) {
    if (c.type() == kNetworkReady) return c.status() != "True";
  }
  return false;
}

StatusOr<NetworkManager::SubnetRef> NetworkManager::ReadSubnet(const std::string& field,
                                                               const std::string& ns,
                                                               const std::string& name) {
  const std::string key = RegistryKey("subnets", ns, name);
  PHOTON_ASSIGN_OR_RETURN(auto s, ReadObject<network::Subnet>(store_, key));
  if (!s) {
    return absl::NotFoundError(field + ": subnet '" + name + "' not found in namespace '" + ns +
                               "'");
  }
  if (!s->first.metadata().deletion_timestamp().empty()) {
    return absl::FailedPreconditionError(field + ": subnet '" + name + "' is being deleted");
  }
  SubnetRef ref;
  ref.subnet = std::move(s->first);
  ref.revision = s->second;
  PHOTON_ASSIGN_OR_RETURN(ref.cidr, ParseCidr(field, ref.subnet.spec().cidr_block()));
  ref.gateway = ref.cidr.base + 1;
  if (!ref.subnet.spec().gateway().empty()) {
    PHOTON_ASSIGN_OR_RETURN(ref.gateway, ParseAddress(field, ref.subnet.spec().gateway()));
  }
  return ref;
}

StatusOr<NetworkManager::SubnetRef> NetworkManager::ResolveSubnet(
    const std::string& ns, const compute::NetworkAttachment& net, CreatePlan* plan) {
  StatusOr<SubnetRef> s = absl::UnknownError("");
  if (net.vpc().empty() && net.subnet().empty()) {
    s = EnsureDefault(ns);
  } else if (net.subnet().empty()) {
    return absl::InvalidArgumentError(
        "spec.network.subnet: required with spec.network.vpc (a VPC has several subnets)");
  } else {
    PHOTON_RETURN_IF_ERROR(ValidateName("spec.network.subnet", net.subnet()));
    s = ReadSubnet("spec.network.subnet", ns, net.subnet());
  }
  if (!s.ok()) {
    // A subnet that is not there is a mistake in the request, not a missing URL.
    if (s.status().code() == StatusCode::kNotFound)
      return absl::InvalidArgumentError(s.status().message());
    return s.status();
  }
  if (!net.vpc().empty() && net.vpc() != s->subnet.spec().vpc_id()) {
    return absl::InvalidArgumentError("spec.network.vpc: '" + net.vpc() +
                                      "' is not the VPC of subnet '" + s->subnet.metadata().name() +
                                      "' (that is '" + s->subnet.spec().vpc_id() + "')");
  }
  plan->compares.push_back(
      ModIs(RegistryKey("subnets", ns, s->subnet.metadata().name()), s->revision));
  return s;
}

Status NetworkManager::PlanInstance(const std::string& ns, compute::ComputeInstance* ci,
                                    CreatePlan* plan) {
  auto* st = ci->mutable_status();
  ClearNetworkStatus(st);
  const auto& net = ci->spec().network();
  if (net.host_network()) {
    if (!net.vpc().empty() || !net.subnet().empty() || net.security_groups_size() > 0 ||
        !net.fixed_ip().empty()) {
      return absl::InvalidArgumentError(
          "spec.network.hostNetwork: an instance on the host's network has no VPC, subnet, "
          "security groups or fixed IP; set either hostNetwork or those");
    }
    (*st->mutable_details())[kDetailMode] = "host";
    return absl::OkStatus();
  }
  Status planned = PlanAddress(ns, ci, plan);
  if (planned.code() != StatusCode::kResourceExhausted || !net.fixed_ip().empty()) return planned;
  // Full: created without an address, left unplaced until one frees up (network_controller).
  st->set_phase(resource::ResourceStatus::PENDING);
  st->set_message("waiting for an address: " + std::string(planned.message()));
  SetCondition(st, kNetworkReady, false, kSubnetExhausted, std::string(planned.message()));
  return absl::OkStatus();
}

Status NetworkManager::PlanAddress(const std::string& ns, compute::ComputeInstance* ci,
                                   CreatePlan* plan) {
  const auto& net = ci->spec().network();
  PHOTON_ASSIGN_OR_RETURN(SubnetRef s, ResolveSubnet(ns, net, plan));
  std::vector<std::string> groups(net.security_groups().begin(), net.security_groups().end());
  PHOTON_RETURN_IF_ERROR(CheckSecurityGroups("spec.network.securityGroups", ns, groups, "", plan));
  const std::string subnet = s.subnet.metadata().name();
  auto* st = ci->mutable_status();
  auto& d = *st->mutable_details();
  d[kDetailVpc] = s.subnet.spec().vpc_id();
  d[kDetailSubnet] = subnet;
  d[kDetailCidr] = s.cidr.ToString();
  const std::string instance_key = RegistryKey("computeinstances", ns, ci->metadata().name());
  PHOTON_ASSIGN_OR_RETURN(uint32_t addr, TakeAddress(ns, s, net.fixed_ip(), instance_key));
  plan->pool = ns + "/" + subnet;
  plan->address = addr;

  network::Port port;
  auto* md = port.mutable_metadata();
  md->set_id(NewUuid());
  md->set_name(ci->metadata().name());
  md->set_namespace_(ns);
  md->set_resource_type("Port");
  md->set_created_at(NowRfc3339());
  md->set_updated_at(md->created_at());
  md->set_created_by("system:network");
  md->set_generation(1);
  md->set_agent_id(ci->metadata().agent_id());
  (*md->mutable_labels())["photon.io/instance"] = ci->metadata().name();
  auto* ps = port.mutable_spec();
  ps->set_subnet(subnet);
  ps->set_ip_address(FormatAddress(addr));
  ps->set_mac_address(MacFor(ci->metadata().id()));
  *ps->mutable_security_groups() = net.security_groups();
  ps->set_instance(ci->metadata().id());
  ps->set_vpc(s.subnet.spec().vpc_id());
  ps->set_cidr(s.cidr.ToString());
  port.mutable_status()->set_phase(resource::ResourceStatus::PENDING);
  port.mutable_status()->set_message("waiting for its instance to be placed");

  const std::string ipam_key = IpamKey(ns, subnet, addr);
  const std::string port_key = RegistryKey("ports", ns, ci->metadata().name());
  plan->compares.push_back(Absent(ipam_key));
  plan->compares.push_back(Absent(port_key));
  plan->ops.push_back(PutOp(ipam_key, instance_key));
  plan->ops.push_back(PutOp(port_key, port.SerializeAsString()));

  d[kDetailAddress] = ps->ip_address();
  d[kDetailMac] = ps->mac_address();
  d[kDetailPort] = port.metadata().name();
  st->clear_addresses();
  st->add_addresses(ps->ip_address());
  SetCondition(st, kNetworkReady, true, "Allocated",
               ps->ip_address() + " in subnet '" + subnet + "' (" + s.cidr.ToString() + ")");
  return absl::OkStatus();
}

StatusOr<NetworkManager::Pool*> NetworkManager::LoadPool(const std::string& ns, const SubnetRef& s,
                                                         bool force) {
  const std::string name = ns + "/" + s.subnet.metadata().name();
  Pool& p = pools_[name];
  const bool same = p.subnet_id == s.subnet.metadata().id() && p.cidr.base == s.cidr.base &&
                    p.cidr.prefix == s.cidr.prefix && p.gateway == s.gateway;
  if (same && !force && p.loaded_ns != 0) return &p;
  if (!same) p.in_flight.clear();
  const std::string prefix = IpamPrefix(ns, s.subnet.metadata().name());
  auto r = store_->Range(prefix, {.end = store::PrefixEnd(prefix), .keys_only = true});
  if (!r.ok()) return r.status();
  p.subnet_id = s.subnet.metadata().id();
  p.cidr = s.cidr;
  p.gateway = s.gateway;
  p.taken.assign(s.cidr.size(), false);
  for (const auto& kv : r->kvs) {
    auto a = ParseAddress("", kv.key.substr(prefix.size()));
    if (a.ok() && s.cidr.Contains(*a)) p.taken[*a - s.cidr.base] = true;
  }
  for (uint32_t a : p.in_flight) p.taken[a - s.cidr.base] = true;
  p.loaded_ns = MonotonicNanos();
  return &p;
}

StatusOr<uint32_t> NetworkManager::TakeAddress(const std::string& ns, const SubnetRef& s,
                                               const std::string& fixed,
                                               const std::string& owner_key) {
  (void)owner_key;
  const std::string subnet = s.subnet.metadata().name();
  const std::string where = "subnet '" + subnet + "' (" + s.cidr.ToString() + ")";
  std::lock_guard lock(mu_);
  PHOTON_ASSIGN_OR_RETURN(Pool * p, LoadPool(ns, s, false));
  if (!fixed.empty()) {
    PHOTON_ASSIGN_OR_RETURN(uint32_t a, ParseAddress("spec.network.fixedIp", fixed));
    if (!s.cidr.Contains(a)) {
      return absl::InvalidArgumentError("spec.network.fixedIp: " + fixed + " is outside " + where);
    }
    if (Reserved(s.cidr, s.gateway, a)) {
      return absl::InvalidArgumentError("spec.network.fixedIp: " + fixed + " is reserved in " +
                                        where + " (network, first, gateway or broadcast address)");
    }
    if (p->taken[a - s.cidr.base]) {
      PHOTON_ASSIGN_OR_RETURN(p, LoadPool(ns, s, true));
    }
    if (p->taken[a - s.cidr.base]) {
      return absl::InvalidArgumentError("spec.network.fixedIp: " + fixed + " is taken in " + where);
    }
    p->taken[a - s.cidr.base] = true;
    p->in_flight.insert(a);
    return a;
  }
  for (int pass = 0; pass < 2; ++pass) {
    const uint64_t n = s.cidr.size();
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t off = (p->cursor + i) % n;
      const uint32_t a = static_cast<uint32_t>(s.cidr.base + off);
      if (p->taken[off] || Reserved(s.cidr, s.gateway, a)) continue;
      p->taken[off] = true;
      p->in_flight.insert(a);
      p->cursor = off + 1;
      return a;
    }
    if (pass == 1 || MonotonicNanos() - p->loaded_ns < kReloadFullNanos) break;
    PHOTON_ASSIGN_OR_RETURN(p, LoadPool(ns, s, true));
  }
  return absl::ResourceExhaustedError(where + " has no free address");
}

void NetworkManager::Finish(const CreatePlan& plan, bool committed) {
  if (plan.pool.empty()) return;
  std::lock_guard lock(mu_);
  auto it = pools_.find(plan.pool);
  if (it == pools_.end()) return;
  Pool& p = it->second;
  p.in_flight.erase(plan.address);
  if (committed || !p.cidr.Contains(plan.address)) return;
  // Not committed: maybe someone else holds it (another server), maybe not; the next create
  // reads the pool again rather than guess.
  p.taken[plan.address - p.cidr.base] = false;
  p.loaded_ns = 0;
}

void NetworkManager::GiveBack(const std::string& pool, uint32_t address) {
  {
    std::lock_guard lock(mu_);
    auto it = pools_.find(pool);
    if (it != pools_.end() && it->second.cidr.Contains(address) &&
        !it->second.in_flight.count(address)) {
      it->second.taken[address - it->second.cidr.base] = false;
    }
  }
  if (on_release_) on_release_();
}

}  // namespace photon::server::prismnet
