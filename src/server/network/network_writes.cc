// NetworkManager: syntax of network specs, updates, deletes, and the instance status fields
// the server owns.
#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "common/util.h"
#include "server/network/network_internal.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/watch_cache.h"

namespace photon::server::prismnet {

namespace {

using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

// Ranges a VPC may not take: they are this host's or the data path's own (seed 003 uses
// 169.254.0.0/16 for port links, the gateway and the metadata service).
Status CheckReservedRange(const Cidr& c) {
  static const std::pair<const char*, const char*> kReserved[] = {
      {"0.0.0.0/8", "'this' network"},
      {"127.0.0.0/8", "loopback"},
      {"169.254.0.0/16", "link-local: port links, gateway and metadata service"},
      {"224.0.0.0/3", "multicast and reserved"},
  };
  for (const auto& [text, why] : kReserved) {
    Cidr r = *ParseCidr("", text);
    if (r.Overlaps(c)) {
      return absl::InvalidArgumentError("spec.cidrBlock: " + c.ToString() + " overlaps " + text +
                                        " (" + why + ")");
    }
  }
  return absl::OkStatus();
}

Status ValidateRule(const std::string& f, const network::SecurityRule& r) {
  if (r.direction() != "ingress" && r.direction() != "egress") {
    return absl::InvalidArgumentError(f + ".direction: '" + r.direction() +
                                      "' is not one of ingress, egress");
  }
  const std::string& p = r.protocol();
  if (!p.empty() && p != "any" && p != "tcp" && p != "udp" && p != "icmp") {
    return absl::InvalidArgumentError(f + ".protocol: '" + p +
                                      "' is not one of tcp, udp, icmp, any");
  }
  for (const auto& [name, v] : {std::pair{"portMin", r.port_min()}, {"portMax", r.port_max()}}) {
    if (v < 0 || v > 65535) {
      return absl::InvalidArgumentError(f + "." + name + ": " + std::to_string(v) +
                                        " is not a port (0..65535)");
    }
  }
  if ((r.port_min() || r.port_max()) && p != "tcp" && p != "udp") {
    return absl::InvalidArgumentError(f + ".portMin: ports apply to tcp and udp only");
  }
  if (r.port_max() && r.port_max() < r.port_min()) {
    return absl::InvalidArgumentError(f + ".portMax: " + std::to_string(r.port_max()) +
                                      " is below portMin " + std::to_string(r.port_min()));
  }
  if (!r.cidr().empty() && !r.remote_security_group().empty()) {
    return absl::InvalidArgumentError(f + ".cidr: give a cidr or a remoteSecurityGroup, not both");
  }
  if (!r.cidr().empty()) PHOTON_RETURN_IF_ERROR(ParseCidr(f + ".cidr", r.cidr()).status());
  return absl::OkStatus();
}

const char* const kOwnedDetails[] = {kDetailVpc, kDetailSubnet, kDetailCidr, kDetailAddress,
                                     kDetailMac, kDetailPort,   kDetailMode};

}  // namespace

Status ValidateNetworkSyntax(const KindInfo& kind, const Message& obj) {
  if (kind.plural == "vpcs") {
    const auto& v = static_cast<const network::Vpc&>(obj);
    PHOTON_ASSIGN_OR_RETURN(Cidr c, ParseCidr("spec.cidrBlock", v.spec().cidr_block()));
    if (c.prefix < 8 || c.prefix > 28) {
      return absl::InvalidArgumentError("spec.cidrBlock: " + c.ToString() +
                                        " is not /8../28 (the sizes a VPC may have)");
    }
    return CheckReservedRange(c);
  }
  if (kind.plural == "subnets") {
    const auto& s = static_cast<const network::Subnet&>(obj);
    if (s.spec().vpc_id().empty()) return absl::InvalidArgumentError("spec.vpcId: required");
    PHOTON_RETURN_IF_ERROR(ValidateName("spec.vpcId", s.spec().vpc_id()));
    PHOTON_ASSIGN_OR_RETURN(Cidr c, ParseCidr("spec.cidrBlock", s.spec().cidr_block()));
    if (c.prefix > 30) {
      return absl::InvalidArgumentError("spec.cidrBlock: " + c.ToString() +
                                        " leaves no address after the network, gateway and "
                                        "broadcast addresses (want /30 or larger)");
    }
    return absl::OkStatus();
  }
  if (kind.plural == "securitygroups") {
    const auto& sg = static_cast<const network::SecurityGroup&>(obj);
    for (int i = 0; i < sg.spec().rules_size(); ++i) {
      PHOTON_RETURN_IF_ERROR(
          ValidateRule("spec.rules[" + std::to_string(i) + "]", sg.spec().rules(i)));
    }
    return absl::OkStatus();
  }
  if (kind.plural == "floatingips") {
    const auto& f = static_cast<const network::FloatingIp&>(obj);
    if (!f.spec().address().empty())
      PHOTON_RETURN_IF_ERROR(ParseAddress("spec.address", f.spec().address()).status());
    if (f.spec().instance().empty()) return absl::OkStatus();  // allocated, not associated
    return ValidateName("spec.instance", f.spec().instance());
  }
  if (kind.plural == "computeinstances") {
    const auto& net = static_cast<const compute::ComputeInstance&>(obj).spec().network();
    if (!net.vpc().empty()) PHOTON_RETURN_IF_ERROR(ValidateName("spec.network.vpc", net.vpc()));
    if (!net.fixed_ip().empty()) {
      PHOTON_RETURN_IF_ERROR(ParseAddress("spec.network.fixedIp", net.fixed_ip()).status());
    }
  }
  return absl::OkStatus();
}

Status NetworkManager::CheckUpdate(const KindInfo& kind, const std::string& ns, Message* in,
                                   const Message& stored) {
  auto immutable = [](const std::string& field, const std::string& a, const std::string& b,
                      const std::string& why) {
    if (a == b) return absl::OkStatus();
    return absl::InvalidArgumentError(field + ": cannot change ('" + b + "' → '" + a + "'); " +
                                      why);
  };
  if (kind.plural == "computeinstances") {
    const auto& a = static_cast<const compute::ComputeInstance*>(in)->spec().network();
    const auto& b = static_cast<const compute::ComputeInstance&>(stored).spec().network();
    if (!MessageDifferencer::Equals(a, b)) {
      return absl::InvalidArgumentError(
          "spec.network: cannot change after creation (its port and address were allocated "
          "from it); delete the instance and create it again");
    }
  } else if (kind.plural == "vpcs") {
    return immutable("spec.cidrBlock", static_cast<network::Vpc*>(in)->spec().cidr_block(),
                     static_cast<const network::Vpc&>(stored).spec().cidr_block(),
                     "subnets and addresses were carved from it; create another VPC");
  } else if (kind.plural == "subnets") {
    auto* a = static_cast<network::Subnet*>(in)->mutable_spec();
    const auto& b = static_cast<const network::Subnet&>(stored).spec();
    if (a->gateway().empty()) a->set_gateway(b.gateway());  // the server's default, kept
    const std::string why = "addresses were allocated from it; create another subnet";
    PHOTON_RETURN_IF_ERROR(immutable("spec.vpcId", a->vpc_id(), b.vpc_id(), why));
    PHOTON_RETURN_IF_ERROR(immutable("spec.cidrBlock", a->cidr_block(), b.cidr_block(), why));
    return immutable("spec.gateway", a->gateway(), b.gateway(), why);
  } else if (kind.plural == "securitygroups") {
    const auto& sg = *static_cast<const network::SecurityGroup*>(in);
    std::vector<std::string> remotes;
    for (const auto& r : sg.spec().rules()) remotes.push_back(r.remote_security_group());
    return CheckSecurityGroups("spec.rules", ns, remotes, GetMetadata(stored).name(), nullptr);
  } else if (kind.plural == "ports") {
    return absl::PermissionDeniedError(
        "ports: written by photon-server from their instance's spec.network; change or "
        "re-create the instance instead");
  } else if (kind.plural == "floatingips") {
    // The instance may change (AddPlacementOps moves the mapping); the address may not.
    auto* a = static_cast<network::FloatingIp*>(in)->mutable_spec();
    const auto& b = static_cast<const network::FloatingIp&>(stored).spec();
    if (a->address().empty()) a->set_address(b.address());
    return immutable("spec.address", a->address(), b.address(),
                     "allocate another FloatingIp for another address");
  }
  return absl::OkStatus();
}

void NetworkManager::MergeStatus(const KindInfo& kind, const Message& from, Message* to) {
  if (kind.plural != "computeinstances") {
    CopyStatus(from, to);
    return;
  }
  auto* st = static_cast<compute::ComputeInstance*>(to)->mutable_status();
  std::map<std::string, std::string> kept;
  for (const char* k : kOwnedDetails) {
    auto it = st->details().find(k);
    if (it != st->details().end()) kept[k] = it->second;
  }
  std::optional<resource::Condition> ready;
  for (const auto& c : st->conditions())
    if (c.type() == kNetworkReady) ready = c;
  CopyStatus(from, to);
  for (const char* k : kOwnedDetails) st->mutable_details()->erase(k);
  for (auto& [k, v] : kept) (*st->mutable_details())[k] = v;
  auto* conds = st->mutable_conditions();
  for (int i = conds->size() - 1; i >= 0; --i)
    if (conds->Get(i).type() == kNetworkReady) conds->DeleteSubrange(i, 1);
  if (ready) *st->add_conditions() = *ready;
  NormalizeStatus(kind, to);
}

void NetworkManager::NormalizeStatus(const KindInfo& kind, Message* object) {
  if (kind.plural != "computeinstances") return;
  auto* st = static_cast<compute::ComputeInstance*>(object)->mutable_status();
  auto it = st->details().find(kDetailAddress);
  if (it == st->details().end()) return;
  const std::string vpc = it->second;
  if (st->addresses_size() > 0 && st->addresses(0) == vpc) return;
  std::vector<std::string> rest;
  for (const auto& a : st->addresses())
    if (a != vpc) rest.push_back(a);
  st->clear_addresses();
  st->add_addresses(vpc);
  for (auto& a : rest) st->add_addresses(std::move(a));
}

void NetworkManager::AddReleaseOps(const KindInfo& kind, const Message& stored,
                                   store::TxnRequest* txn) {
  const auto& md = GetMetadata(stored);
  if (kind.plural == "computeinstances") {
    const auto& d = static_cast<const compute::ComputeInstance&>(stored).status().details();
    auto port = d.find(kDetailPort), subnet = d.find(kDetailSubnet), addr = d.find(kDetailAddress);
    if (port == d.end() || subnet == d.end() || addr == d.end()) return;
    auto a = ParseAddress("", addr->second);
    if (!a.ok()) return;
    txn->success.push_back(DeleteOp(RegistryKey("ports", md.namespace_(), port->second)));
    txn->success.push_back(DeleteOp(IpamKey(md.namespace_(), subnet->second, *a)));
  } else if (kind.plural == "ports") {
    const auto& spec = static_cast<const network::Port&>(stored).spec();
    auto a = ParseAddress("", spec.ip_address());
    if (a.ok()) txn->success.push_back(DeleteOp(IpamKey(md.namespace_(), spec.subnet(), *a)));
  } else if (kind.plural == "floatingips") {
    const auto& spec = static_cast<const network::FloatingIp&>(stored).spec();
    if (!spec.address().empty())
      txn->success.push_back(DeleteOp(kFloatingIpamRoot + spec.address()));
  }
}

void NetworkManager::Released(const KindInfo& kind, const Message& stored) {
  const auto& md = GetMetadata(stored);
  std::string subnet, addr;
  if (kind.plural == "computeinstances") {
    const auto& d = static_cast<const compute::ComputeInstance&>(stored).status().details();
    if (!d.contains(kDetailAddress) || !d.contains(kDetailSubnet)) return;
    subnet = d.at(kDetailSubnet);
    addr = d.at(kDetailAddress);
  } else if (kind.plural == "ports") {
    subnet = static_cast<const network::Port&>(stored).spec().subnet();
    addr = static_cast<const network::Port&>(stored).spec().ip_address();
  } else {
    return;
  }
  if (auto a = ParseAddress("", addr); a.ok()) GiveBack(md.namespace_() + "/" + subnet, *a);
}

Status NetworkManager::AddPlacementOps(const KindInfo& kind, const Message& object,
                                       store::TxnRequest* txn) {
  if (kind.plural == "floatingips") {
    return FloatingIpUpdateOps(static_cast<const network::FloatingIp&>(object), txn);
  }
  if (kind.plural != "computeinstances") return absl::OkStatus();
  const auto& ci = static_cast<const compute::ComputeInstance&>(object);
  auto it = ci.status().details().find(kDetailPort);
  if (it == ci.status().details().end()) return absl::OkStatus();
  const std::string key = RegistryKey("ports", ci.metadata().namespace_(), it->second);
  PHOTON_ASSIGN_OR_RETURN(auto port, ReadObject<network::Port>(store_, key));
  if (!port || port->first.metadata().agent_id() == ci.metadata().agent_id()) {
    return absl::OkStatus();
  }
  port->first.mutable_metadata()->set_agent_id(ci.metadata().agent_id());
  port->first.mutable_metadata()->set_updated_at(NowRfc3339());
  port->first.mutable_metadata()->clear_resource_version();
  txn->compares.push_back(ModIs(key, port->second));
  txn->success.push_back(PutOp(key, port->first.SerializeAsString()));
  return FloatingIpFollows(port->first, ci.metadata().agent_id(), txn);
}

StatusOr<std::vector<std::string>> NetworkManager::UsersOf(const KindInfo& kind,
                                                           const std::string& ns,
                                                           const std::string& name) {
  std::vector<std::string> users;
  if (kind.plural == "subnets") {
    const std::string prefix = IpamPrefix(ns, name);
    auto r = store_->Range(prefix, {.end = store::PrefixEnd(prefix), .limit = 5});
    if (!r.ok()) return r.status();
    for (const auto& kv : r->kvs)
      users.push_back(kv.value.substr(kv.value.find("/computeinstances/") + 1));
    if (r->more) users.push_back("and " + std::to_string(r->count - 5) + " more");
    return users;
  }
  const std::string plural = kind.plural == "vpcs" ? "subnets" : "ports";
  const std::string prefix = RegistryPrefix(plural, ns);
  auto r = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!r.ok()) return r.status();
  for (const auto& kv : r->kvs) {
    if (kind.plural == "vpcs") {
      network::Subnet s;
      if (s.ParseFromString(kv.value) && s.spec().vpc_id() == name)
        users.push_back("subnets/" + s.metadata().name());
    } else {
      network::Port p;
      if (!p.ParseFromString(kv.value)) continue;
      for (const auto& g : p.spec().security_groups())
        if (g == name) users.push_back("ports/" + p.metadata().name());
    }
  }
  if (kind.plural == "securitygroups") {
    const std::string sgs = RegistryPrefix("securitygroups", ns);
    auto g = store_->Range(sgs, {.end = store::PrefixEnd(sgs)});
    if (!g.ok()) return g.status();
    for (const auto& kv : g->kvs) {
      network::SecurityGroup sg;
      if (!sg.ParseFromString(kv.value) || sg.metadata().name() == name) continue;
      for (const auto& rule : sg.spec().rules()) {
        if (rule.remote_security_group() == name) {
          users.push_back("securitygroups/" + sg.metadata().name());
          break;
        }
      }
    }
  }
  return users;
}

StatusOr<int64_t> NetworkManager::PrepareDelete(const KindInfo& kind, const std::string& ns,
                                                const std::string& name, const Message& stored,
                                                int64_t revision) {
  if (kind.plural == "ports") {
    PHOTON_ASSIGN_OR_RETURN(auto ci, ReadObject<compute::ComputeInstance>(
                                         store_, RegistryKey("computeinstances", ns, name)));
    if (ci &&
        ci->first.metadata().id() == static_cast<const network::Port&>(stored).spec().instance()) {
      return absl::FailedPreconditionError("port '" + name + "' belongs to instance '" + name +
                                           "'; delete the instance (its port goes with it)");
    }
    return revision;
  }
  if (kind.plural == "floatingips") {
    return PrepareFloatingIpDelete(ns, static_cast<const network::FloatingIp&>(stored), revision);
  }
  if (kind.plural != "subnets" && kind.plural != "vpcs" && kind.plural != "securitygroups") {
    return revision;
  }
  // Mark first: a create that read the object before this fails its compare, and one that
  // reads it after sees it being deleted; then nothing can start using it while we look.
  const std::string key = RegistryKey(kind.plural, ns, name);
  std::unique_ptr<Message> marked(stored.New());
  marked->CopyFrom(stored);
  MutableMetadata(marked.get())->clear_resource_version();
  if (GetMetadata(stored).deletion_timestamp().empty())
    MutableMetadata(marked.get())->set_deletion_timestamp(NowRfc3339());
  store::TxnRequest mark;
  mark.compares.push_back(ModIs(key, revision));
  mark.success.push_back(PutOp(key, marked->SerializeAsString()));
  auto m = store_->Txn(mark);
  if (!m.ok()) return m.status();
  if (!m->succeeded)
    return absl::AbortedError("conflict: " + kind.kind + " '" + name +
                              "' changed meanwhile; retry");
  PHOTON_ASSIGN_OR_RETURN(auto users, UsersOf(kind, ns, name));
  if (users.empty()) return m->revision;
  std::unique_ptr<Message> restored(stored.New());
  restored->CopyFrom(stored);
  MutableMetadata(restored.get())->clear_resource_version();
  store::TxnRequest undo;
  undo.compares.push_back(ModIs(key, m->revision));
  undo.success.push_back(PutOp(key, restored->SerializeAsString()));
  auto u = store_->Txn(undo);
  if (!u.ok()) return u.status();
  std::string list;
  for (const auto& x : users) list += (list.empty() ? "" : ", ") + x;
  return absl::FailedPreconditionError(kind.kind + " '" + name + "' is in use (" + list +
                                       "); delete those first");
}

}  // namespace photon::server::prismnet
