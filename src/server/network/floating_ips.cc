// NetworkManager: FloatingIps (docs/networking.md "Floating IPs").
//
// The address is the key /fipam/<address>, created in the FloatingIp's create transaction
// with a compare that it is new and deleted in its delete transaction, as IPAM does for
// instances. The association is the instance's Port: its spec.floatingIp names the address,
// written in the same transaction as the FloatingIp and compared on the Port's revision, so
// an instance never gets two floating IPs and the node agent that runs the instance (which
// watches its Ports) learns of it with no other watch. The instance's final delete removes its
// Port (and so the mapping on the node) and dissociates the FloatingIp in its transaction.
#include <set>

#include "common/util.h"
#include "server/network/network_internal.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::prismnet {

namespace {

std::string FipamKey(uint32_t address) { return kFloatingIpamRoot + FormatAddress(address); }

void Dissociated(network::FloatingIp* fip) {
  auto* st = fip->mutable_status();
  st->set_phase(resource::ResourceStatus::RUNNING);
  st->set_message("allocated, not associated with an instance");
  st->clear_details();
  (*st->mutable_details())["address"] = fip->spec().address();
}

}  // namespace

Status NetworkManager::InitFloatingPool() {
  if (options_.floating_pool.empty()) return absl::OkStatus();
  PHOTON_ASSIGN_OR_RETURN(Cidr c, ParseCidr("floating_ip_pool", options_.floating_pool));
  if (c.prefix < 8) {
    return absl::InvalidArgumentError("floating_ip_pool: " + c.ToString() +
                                      " is larger than a /8; give the public range you own");
  }
  static const char* const kReserved[] = {"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",
                                          "224.0.0.0/3"};
  for (const char* r : kReserved) {
    if (ParseCidr("", r)->Overlaps(c)) {
      return absl::InvalidArgumentError("floating_ip_pool: " + c.ToString() + " overlaps " + r +
                                        " (reserved)");
    }
  }
  if (c.Overlaps(pool_)) {
    return absl::InvalidArgumentError("floating_ip_pool: " + c.ToString() +
                                      " overlaps default_vpc_pool " + pool_.ToString() +
                                      " (floating IPs are outside the cloud's VPCs)");
  }
  floating_pool_ = c;
  return absl::OkStatus();
}

StatusOr<uint32_t> NetworkManager::PickFloatingAddress(const std::string& wanted) {
  const Cidr& pool = *floating_pool_;
  // A /31 or /32 pool is all usable; larger ones lose their network and broadcast addresses.
  const uint32_t first = pool.prefix >= 31 ? pool.base : pool.base + 1;
  const uint32_t last = pool.prefix >= 31 ? pool.last() : pool.last() - 1;
  if (!wanted.empty()) {
    PHOTON_ASSIGN_OR_RETURN(uint32_t a, ParseAddress("spec.address", wanted));
    if (a < first || a > last) {
      return absl::InvalidArgumentError("spec.address: " + wanted +
                                        " is not a usable address of the floating IP pool " +
                                        pool.ToString());
    }
    auto r = store_->Range(FipamKey(a));
    if (!r.ok()) return r.status();
    if (!r->kvs.empty()) {
      return absl::InvalidArgumentError(
          "spec.address: " + wanted + " is taken by " +
          r->kvs[0].value.substr(r->kvs[0].value.find("/floatingips/") + 1));
    }
    return a;
  }
  auto r = store_->Range(kFloatingIpamRoot,
                         {.end = store::PrefixEnd(kFloatingIpamRoot), .keys_only = true});
  if (!r.ok()) return r.status();
  std::set<std::string> taken;
  for (const auto& kv : r->kvs) taken.insert(kv.key);
  for (uint64_t a = first; a <= last; ++a) {
    if (!taken.count(FipamKey(static_cast<uint32_t>(a)))) return static_cast<uint32_t>(a);
  }
  return absl::ResourceExhaustedError("floatingips: the floating IP pool " + pool.ToString() +
                                      " is exhausted (" + std::to_string(last - first + 1) +
                                      " addresses, all allocated); delete a FloatingIp");
}

Status NetworkManager::PlanFloatingIp(const std::string& ns, network::FloatingIp* fip,
                                      CreatePlan* plan) {
  if (!floating_pool_) {
    return absl::FailedPreconditionError(
        "floatingips: no floating IP pool is configured (photon-server floating_ip_pool); "
        "nothing was created");
  }
  PHOTON_ASSIGN_OR_RETURN(uint32_t a, PickFloatingAddress(fip->spec().address()));
  fip->mutable_spec()->set_address(FormatAddress(a));
  plan->compares.push_back(Absent(FipamKey(a)));
  plan->ops.push_back(PutOp(FipamKey(a), RegistryKey("floatingips", ns, fip->metadata().name())));
  Dissociated(fip);
  if (fip->spec().instance().empty()) return absl::OkStatus();
  return Associate(ns, fip, plan);
}

Status NetworkManager::Associate(const std::string& ns, network::FloatingIp* fip,
                                 CreatePlan* plan) {
  const std::string& name = fip->spec().instance();
  PHOTON_ASSIGN_OR_RETURN(auto ci, ReadObject<compute::ComputeInstance>(
                                       store_, RegistryKey("computeinstances", ns, name)));
  if (!ci) {
    return absl::InvalidArgumentError("spec.instance: instance '" + name +
                                      "' not found in namespace '" + ns + "'");
  }
  if (!ci->first.metadata().deletion_timestamp().empty()) {
    return absl::FailedPreconditionError("spec.instance: instance '" + name + "' is being deleted");
  }
  if (ci->first.spec().network().host_network()) {
    return absl::InvalidArgumentError("spec.instance: instance '" + name +
                                      "' runs in its node's network (hostNetwork) and has no "
                                      "port to map a floating IP to");
  }
  const auto& d = ci->first.status().details();
  auto port_name = d.find(kDetailPort);
  if (port_name == d.end()) {
    return absl::FailedPreconditionError("spec.instance: instance '" + name +
                                         "' has no VPC address yet; retry when it has one");
  }
  const std::string port_key = RegistryKey("ports", ns, port_name->second);
  PHOTON_ASSIGN_OR_RETURN(auto port, ReadObject<network::Port>(store_, port_key));
  if (!port) {
    return absl::FailedPreconditionError("spec.instance: instance '" + name +
                                         "' has no port yet; retry");
  }
  const std::string& held = port->first.spec().floating_ip();
  if (!held.empty() && held != fip->spec().address()) {
    return absl::InvalidArgumentError("spec.instance: instance '" + name +
                                      "' already has floating IP " + held +
                                      " (one floating IP per instance)");
  }
  port->first.mutable_spec()->set_floating_ip(fip->spec().address());
  port->first.mutable_metadata()->set_updated_at(NowRfc3339());
  port->first.mutable_metadata()->clear_resource_version();
  plan->compares.push_back(ModIs(port_key, port->second));
  plan->ops.push_back(PutOp(port_key, port->first.SerializeAsString()));

  auto* st = fip->mutable_status();
  const std::string& node = ci->first.metadata().agent_id();
  (*st->mutable_details())["instance"] = name;
  (*st->mutable_details())["privateIp"] = port->first.spec().ip_address();
  (*st->mutable_details())["node"] = node;
  st->set_phase(node.empty() ? resource::ResourceStatus::PENDING
                             : resource::ResourceStatus::RUNNING);
  st->set_message(node.empty()
                      ? "associated; waiting for the instance to be placed"
                      : "mapped 1:1 to " + port->first.spec().ip_address() + " on node " + node);
  return absl::OkStatus();
}

Status NetworkManager::Dissociate(const std::string& ns, const std::string& instance,
                                  const std::string& address, CreatePlan* plan) {
  // A Port is named after its instance (docs/networking.md, the contract).
  const std::string port_key = RegistryKey("ports", ns, instance);
  PHOTON_ASSIGN_OR_RETURN(auto port, ReadObject<network::Port>(store_, port_key));
  if (!port || port->first.spec().floating_ip() != address) return absl::OkStatus();
  port->first.mutable_spec()->clear_floating_ip();
  port->first.mutable_metadata()->set_updated_at(NowRfc3339());
  port->first.mutable_metadata()->clear_resource_version();
  plan->compares.push_back(ModIs(port_key, port->second));
  plan->ops.push_back(PutOp(port_key, port->first.SerializeAsString()));
  return absl::OkStatus();
}

// An update's transaction: the old instance's Port loses the address, the new one's gains it,
// and the FloatingIp's status (already in the transaction) says so.
Status NetworkManager::FloatingIpUpdateOps(const network::FloatingIp& updated,
                                           store::TxnRequest* txn) {
  const std::string& ns = updated.metadata().namespace_();
  const std::string key = RegistryKey("floatingips", ns, updated.metadata().name());
  PHOTON_ASSIGN_OR_RETURN(auto old, ReadObject<network::FloatingIp>(store_, key));
  if (!old || old->first.spec().instance() == updated.spec().instance()) return absl::OkStatus();
  network::FloatingIp fip = updated;
  CreatePlan plan;
  if (!old->first.spec().instance().empty()) {
    PHOTON_RETURN_IF_ERROR(
        Dissociate(ns, old->first.spec().instance(), fip.spec().address(), &plan));
  }
  Dissociated(&fip);
  if (!fip.spec().instance().empty()) PHOTON_RETURN_IF_ERROR(Associate(ns, &fip, &plan));
  for (auto& op : txn->success) {
    if (op.key == key && op.type == store::TxnOp::Type::kPut) op.value = fip.SerializeAsString();
  }
  txn->compares.insert(txn->compares.end(), plan.compares.begin(), plan.compares.end());
  txn->success.insert(txn->success.end(), plan.ops.begin(), plan.ops.end());
  return absl::OkStatus();
}

// Dissociates first (one transaction compared on both revisions), so the delete that follows
// removes only the object and its address key.
StatusOr<int64_t> NetworkManager::PrepareFloatingIpDelete(const std::string& ns,
                                                          const network::FloatingIp& fip,
                                                          int64_t revision) {
  if (fip.spec().instance().empty()) return revision;
  CreatePlan plan;
  PHOTON_RETURN_IF_ERROR(Dissociate(ns, fip.spec().instance(), fip.spec().address(), &plan));
  network::FloatingIp bare = fip;
  bare.mutable_spec()->clear_instance();
  bare.mutable_metadata()->clear_resource_version();
  Dissociated(&bare);
  const std::string key = RegistryKey("floatingips", ns, fip.metadata().name());
  store::TxnRequest txn;
  txn.compares = std::move(plan.compares);
  txn.compares.push_back(ModIs(key, revision));
  txn.success = std::move(plan.ops);
  txn.success.push_back(PutOp(key, bare.SerializeAsString()));
  auto r = store_->Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded) {
    return absl::AbortedError("conflict: FloatingIp '" + fip.metadata().name() +
                              "' or its instance's port changed meanwhile; retry");
  }
  return r->revision;
}

Status NetworkManager::AddFloatingIpReleaseOps(const KindInfo& kind,
                                               const google::protobuf::Message& stored,
                                               store::TxnRequest* txn) {
  if (kind.plural != "computeinstances") return absl::OkStatus();
  const auto& ci = static_cast<const compute::ComputeInstance&>(stored);
  const auto& d = ci.status().details();
  auto port_name = d.find(kDetailPort);
  if (port_name == d.end()) return absl::OkStatus();
  const std::string& ns = ci.metadata().namespace_();
  const std::string port_key = RegistryKey("ports", ns, port_name->second);
  PHOTON_ASSIGN_OR_RETURN(auto port, ReadObject<network::Port>(store_, port_key));
  if (!port || port->first.spec().floating_ip().empty()) return absl::OkStatus();
  // The Port is deleted by this transaction: an associate that wrote it meanwhile must fail it.
  txn->compares.push_back(ModIs(port_key, port->second));
  auto a = ParseAddress("", port->first.spec().floating_ip());
  if (!a.ok()) return absl::OkStatus();
  auto r = store_->Range(FipamKey(*a));
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) return absl::OkStatus();
  const std::string fip_key = r->kvs[0].value;
  PHOTON_ASSIGN_OR_RETURN(auto fip, ReadObject<network::FloatingIp>(store_, fip_key));
  if (!fip || fip->first.spec().instance() != ci.metadata().name()) return absl::OkStatus();
  network::FloatingIp bare = fip->first;
  bare.mutable_spec()->clear_instance();
  bare.mutable_metadata()->clear_resource_version();
  bare.mutable_metadata()->set_updated_at(NowRfc3339());
  Dissociated(&bare);
  bare.mutable_status()->set_message("allocated, not associated: its instance '" +
                                     ci.metadata().name() + "' was deleted");
  txn->compares.push_back(ModIs(fip_key, fip->second));
  txn->success.push_back(PutOp(fip_key, bare.SerializeAsString()));
  return absl::OkStatus();
}

Status NetworkManager::FloatingIpFollows(const network::Port& port, const std::string& node,
                                         store::TxnRequest* txn) {
  if (port.spec().floating_ip().empty()) return absl::OkStatus();
  auto a = ParseAddress("", port.spec().floating_ip());
  if (!a.ok()) return absl::OkStatus();
  auto r = store_->Range(FipamKey(*a));
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) return absl::OkStatus();
  const std::string key = r->kvs[0].value;
  PHOTON_ASSIGN_OR_RETURN(auto fip, ReadObject<network::FloatingIp>(store_, key));
  if (!fip) return absl::OkStatus();
  auto* st = fip->first.mutable_status();
  (*st->mutable_details())["node"] = node;
  st->set_phase(node.empty() ? resource::ResourceStatus::PENDING
                             : resource::ResourceStatus::RUNNING);
  st->set_message(node.empty() ? "associated; waiting for the instance to be placed"
                               : "mapped 1:1 to " + port.spec().ip_address() + " on node " + node);
  fip->first.mutable_metadata()->clear_resource_version();
  txn->compares.push_back(ModIs(key, fip->second));
  txn->success.push_back(PutOp(key, fip->first.SerializeAsString()));
  return absl::OkStatus();
}

}  // namespace photon::server::prismnet
