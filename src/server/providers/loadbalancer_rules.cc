// See loadbalancer_rules.h.
#include "server/providers/loadbalancer_rules.h"

#include <atomic>
#include <set>

#include "common/tls.h"
#include "common/util.h"
#include "photon/compute.pb.h"
#include "server/object_util.h"
#include "server/resource_manager.h"

namespace photon::server {

namespace {

std::atomic<bool> provider_configured{false};
std::atomic<bool> l4_configured{false};
std::atomic<store::Store*> key_store{nullptr};

constexpr char kKeyPrefix[] = "/secrets/loadbalancer-keys/";
constexpr size_t kMaxCertificates = 16;

Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(field + ": " + why);
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

Status ValidateHealthCheck(const network::LoadBalancerHealthCheck& hc, const std::string& where) {
  const std::string type = hc.type();
  if (!type.empty() && type != "none" && type != "tcp" && type != "http")
    return Bad(where + ".type", "'" + type + "': want none, tcp or http");
  if (type != "http" && (!hc.path().empty() || hc.expect_status() != 0))
    return Bad(where + ".path", "path and expectStatus are for type http");
  if (!hc.path().empty() && hc.path()[0] != '/') return Bad(where + ".path", "must start with /");
  if (hc.expect_status() != 0 && (hc.expect_status() < 100 || hc.expect_status() > 599))
    return Bad(where + ".expectStatus", "want 100..599");
  if (hc.interval_ms() != 0 && (hc.interval_ms() < 100 || hc.interval_ms() > 3600000))
    return Bad(where + ".intervalMs", "want 100..3600000");
  if (hc.rise() < 0 || hc.rise() > 100) return Bad(where + ".rise", "want 1..100");
  if (hc.fall() < 0 || hc.fall() > 100) return Bad(where + ".fall", "want 1..100");
  return absl::OkStatus();
}

bool IsDnsName(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  for (char c : n) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '*') return false;
  }
  return true;
}

bool IsKeyRef(const std::string& ref) {
  if (ref.size() != 7 + 64 || ref.compare(0, 7, "sha256:") != 0) return false;
  return ref.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

// An HTTPS listener's certificates (see SealLoadBalancerKeys for the keys given by reference).
Status ValidateCertificates(const network::Listener& l, const std::string& proto,
                            const std::string& at) {
  if (proto != "HTTPS") {
    if (l.certificates_size() > 0) return Bad(at + ".certificates", "for HTTPS listeners only");
    return absl::OkStatus();
  }
  if (l.certificates_size() == 0)
    return Bad(at + ".certificates", "an HTTPS listener needs at least one");
  if (static_cast<size_t>(l.certificates_size()) > kMaxCertificates)
    return Bad(at + ".certificates", "at most 16");
  for (int j = 0; j < l.certificates_size(); ++j) {
    const auto& c = l.certificates(j);
    const std::string cat = at + ".certificates[" + std::to_string(j) + "]";
    if (!InspectCertificate(c.certificate()).ok())
      return Bad(cat + ".certificate", "not a PEM certificate");
    if (c.private_key().empty() && c.private_key_ref().empty())
      return Bad(cat + ".privateKey", "required (PEM)");
    if (!c.private_key().empty() && !KeyMatchesCertificate(c.certificate(), c.private_key()))
      return Bad(cat + ".privateKey", "does not match the certificate");
    if (c.private_key().empty() && !IsKeyRef(c.private_key_ref()))
      return Bad(cat + ".privateKeyRef", "want sha256:<64 hex digits> as the server wrote it");
    for (const auto& n : c.sni()) {
      if (!IsDnsName(n)) return Bad(cat + ".sni", "'" + n + "' is not a host name");
    }
  }
  return absl::OkStatus();
}

// An HTTP or HTTPS listener's routes: each to another port of the same members.
Status ValidateRoutes(const network::Listener& l, const std::string& proto, const std::string& at) {
  if (l.routes_size() == 0) return absl::OkStatus();
  if (proto != "HTTP" && proto != "HTTPS")
    return Bad(at + ".routes", "for HTTP and HTTPS listeners only");
  if (l.routes_size() > 32) return Bad(at + ".routes", "at most 32");
  for (int k = 0; k < l.routes_size(); ++k) {
    const auto& r = l.routes(k);
    const std::string rat = at + ".routes[" + std::to_string(k) + "]";
    if (r.host().empty() && r.path_prefix().empty())
      return Bad(rat, "needs a host or a pathPrefix");
    if (!r.host().empty() && (!IsDnsName(r.host()) || r.host().find('*') != std::string::npos))
      return Bad(rat + ".host", "'" + r.host() + "' is not a host name");
    if (!r.path_prefix().empty() && r.path_prefix()[0] != '/')
      return Bad(rat + ".pathPrefix", "must start with /");
    for (char c : r.path_prefix()) {
      if (c <= ' ' || c > '~' || c == '\\' || c == '"' || c == '#')
        return Bad(rat + ".pathPrefix", "characters outside URL paths");
    }
    if (r.target_port() < 1 || r.target_port() > 65535)
      return Bad(rat + ".targetPort", "want 1..65535");
  }
  return absl::OkStatus();
}

// The spec that holds the listeners: a RegionService's spec.loadBalancer or a LoadBalancer's
// spec; nullptr for other kinds. `where` is its field path.
network::LoadBalancerSpec* MutableLbSpec(const KindInfo& kind, google::protobuf::Message* obj,
                                         std::string* where) {
  if (kind.plural == "regionservices") {
    auto* rs = static_cast<compute::RegionService*>(obj);
    if (!rs->spec().has_load_balancer()) return nullptr;
    *where = "spec.loadBalancer";
    return rs->mutable_spec()->mutable_load_balancer();
  }
  if (kind.plural == "loadbalancers") {
    *where = "spec";
    return static_cast<network::LoadBalancer*>(obj)->mutable_spec();
  }
  return nullptr;
}

std::string KeyPath(const std::string& ns, const std::string& ref) {
  return kKeyPrefix + ns + "/" + ref.substr(7);
}

StatusOr<std::string> ReadKey(store::Store* store, const std::string& ns, const std::string& ref) {
  PHOTON_ASSIGN_OR_RETURN(auto r, store->Range(KeyPath(ns, ref)));
  if (r.kvs.empty()) return absl::NotFoundError("no key " + ref + " in namespace " + ns);
  return r.kvs.front().value;
}

// One certificate: a given key is stored and replaced by its reference; a reference alone must
// name a stored key of this namespace that matches the certificate.
Status SealCertificate(store::Store* store, const std::string& ns, const std::string& at,
                       network::ListenerCertificate* c) {
  if (!c->private_key().empty()) {
    const std::string ref = "sha256:" + Sha256Hex(c->private_key());
    PHOTON_RETURN_IF_ERROR(store->Put(KeyPath(ns, ref), c->private_key()).status());
    c->set_private_key_ref(ref);
    c->clear_private_key();
    return absl::OkStatus();
  }
  auto key = ReadKey(store, ns, c->private_key_ref());
  if (key.status().code() == StatusCode::kNotFound)
    return Bad(at + ".privateKeyRef",
               "no key stored under it in namespace " + ns + ": give the certificate's privateKey");
  PHOTON_RETURN_IF_ERROR(key.status());
  if (!KeyMatchesCertificate(c->certificate(), *key))
    return Bad(
        at + ".privateKey",
        "the stored key (privateKeyRef) does not match the certificate: give its privateKey");
  // Written again: a new mod revision tells the key collector that it is about to be used
  // (it may have been unreferenced for a while, e.g. an object deleted and posted again).
  return store->Put(KeyPath(ns, c->private_key_ref()), *key).status();
}

}  // namespace

void SetLoadBalancerKeyStore(store::Store* store) { key_store = store; }
store::Store* LoadBalancerKeyStore() { return key_store; }

StatusOr<std::string> LoadBalancerKey(const std::string& ns, const std::string& ref) {
  store::Store* store = key_store;
  if (!store) return absl::UnavailableError("load balancer keys: no store yet");
  if (!IsKeyRef(ref)) return absl::InvalidArgumentError("privateKeyRef '" + ref + "' is malformed");
  return ReadKey(store, ns, ref);
}

Status SealLoadBalancerKeys(store::Store* store, const KindInfo& kind,
                            google::protobuf::Message* object) {
  std::string where;
  network::LoadBalancerSpec* spec = MutableLbSpec(kind, object, &where);
  if (!spec) return absl::OkStatus();
  const std::string& ns = GetMetadata(*object).namespace_();
  for (int i = 0; i < spec->listeners_size(); ++i) {
    auto* l = spec->mutable_listeners(i);
    for (int j = 0; j < l->certificates_size(); ++j) {
      const std::string at =
          where + ".listeners[" + std::to_string(i) + "].certificates[" + std::to_string(j) + "]";
      PHOTON_RETURN_IF_ERROR(SealCertificate(store, ns, at, l->mutable_certificates(j)));
    }
  }
  return absl::OkStatus();
}

void SetLoadBalancerProviderConfigured(bool configured) { provider_configured = configured; }
bool LoadBalancerProviderConfigured() { return provider_configured; }
void SetLoadBalancerL4Configured(bool configured) { l4_configured = configured; }
bool LoadBalancerL4Configured() { return l4_configured; }

// An L4 listener (stateless, DSR: the member holds the VIP and serves the listener's port
// itself, so nothing of L7 applies and the port cannot be translated).
static Status ValidateL4Listener(const network::Listener& l, const std::string& proto,
                                 const std::string& at) {
  if (proto != "TCP" && proto != "UDP")
    return Bad(at + ".protocol", "'" + l.protocol() + "': an L4 listener is TCP or UDP");
  if (l.routes_size() > 0) return Bad(at + ".routes", "HTTP routing is L7's; not on L4");
  if (l.certificates_size() > 0)
    return Bad(at + ".certificates", "TLS termination is L7's; not on L4");
  if (l.target_port() != 0 && l.target_port() != l.port())
    return Bad(at + ".targetPort",
               "L4 is direct server return: the members serve the listener's port " +
                   std::to_string(l.port()) + " on the VIP itself; leave 0 or the same port");
  return absl::OkStatus();
}

Status ValidateLoadBalancerSpec(const network::LoadBalancerSpec& spec, const std::string& where) {
  const bool l4 = spec.type() == network::LoadBalancerSpec::L4;
  if (l4 && !LoadBalancerL4Configured()) {
    return Bad(where + ".type",
               "L4 needs the fiberlb provider's L4 LB nodes and VIP pool (l4_endpoints, "
               "vip_pool), which this photon-server does not have; use L7");
  }
  if (l4 && spec.health_check().type() == "http")
    return Bad(where + ".healthCheck.type", "http checks are L7's; an L4 member is checked by tcp");
  if (spec.subnet_ids_size() > 0)
    return Bad(where + ".subnetIds", "not supported yet (the VIP comes from the provider)");
  if (spec.backends_size() > 0)
    return Bad(where + ".backends",
               "members are the RegionService's RUNNING replicas; leave empty");
  if (spec.listeners_size() == 0) return Bad(where + ".listeners", "at least one is required");
  if (spec.listeners_size() > 16) return Bad(where + ".listeners", "at most 16");
  std::set<std::pair<int, std::string>> ports;
  for (int i = 0; i < spec.listeners_size(); ++i) {
    const auto& l = spec.listeners(i);
    const std::string at = where + ".listeners[" + std::to_string(i) + "]";
    const std::string proto = Upper(l.protocol());
    if (l.port() < 1 || l.port() > 65535) return Bad(at + ".port", "want 1..65535");
    // TCP and UDP of one port are two L4 listeners; L7 listeners are all TCP.
    if (!ports.insert({l.port(), l4 && proto == "UDP" ? "UDP" : "TCP"}).second)
      return Bad(at + ".port", std::to_string(l.port()) + " is used by another listener");
    if (!l.target_group_id().empty())
      return Bad(at + ".targetGroupId", "not supported: the target is the RegionService");
    if (l4) {
      PHOTON_RETURN_IF_ERROR(ValidateL4Listener(l, proto, at));
      const std::string& hc = spec.health_check().type();
      if (proto == "UDP" && !hc.empty() && hc != "none")
        return Bad(where + ".healthCheck.type", "'" + hc + "' cannot check the UDP listener " + at +
                                                    ": want none with UDP listeners");
      continue;
    }
    if (proto != "HTTP" && proto != "HTTPS" && proto != "TCP") {
      return Bad(at + ".protocol",
                 "'" + l.protocol() + "': want HTTP, HTTPS or TCP (UDP is for type L4)");
    }
    PHOTON_RETURN_IF_ERROR(ValidateCertificates(l, proto, at));
    PHOTON_RETURN_IF_ERROR(ValidateRoutes(l, proto, at));
    if (l.target_port() < 0 || l.target_port() > 65535)
      return Bad(at + ".targetPort", "want 0..65535 (0: the listener's port)");
  }
  return ValidateHealthCheck(spec.health_check(), where + ".healthCheck");
}

void CollectLoadBalancerKeyRefs(const KindInfo& kind, const google::protobuf::Message& object,
                                std::set<std::string>* refs) {
  const network::LoadBalancerSpec* spec = nullptr;
  if (kind.plural == "regionservices") {
    const auto& rs = static_cast<const compute::RegionService&>(object);
    if (rs.spec().has_load_balancer()) spec = &rs.spec().load_balancer();
  } else if (kind.plural == "loadbalancers") {
    spec = &static_cast<const network::LoadBalancer&>(object).spec();
  }
  if (!spec) return;
  const std::string& ns = GetMetadata(object).namespace_();
  for (const auto& l : spec->listeners()) {
    for (const auto& c : l.certificates()) {
      if (!c.private_key_ref().empty()) refs->insert(ns + "/" + c.private_key_ref());
    }
  }
}

StatusOr<int> LoadBalancerKeyCollector::Sweep(store::Store* store,
                                              const std::set<std::string>& referenced) {
  const std::string prefix = kKeyPrefix;
  store::RangeOptions o;
  o.end = store::PrefixEnd(prefix);
  o.keys_only = true;
  PHOTON_ASSIGN_OR_RETURN(auto keys, store->Range(prefix, o));
  const auto now = std::chrono::steady_clock::now();
  std::map<std::string, Unreferenced> next;
  int deleted = 0;
  for (const auto& kv : keys.kvs) {
    // <prefix><namespace>/<hex> → "<namespace>/sha256:<hex>"
    const std::string rest = kv.key.substr(prefix.size());
    const size_t slash = rest.rfind('/');
    if (slash == std::string::npos) continue;
    if (referenced.contains(rest.substr(0, slash) + "/sha256:" + rest.substr(slash + 1))) continue;
    auto seen = unreferenced_.find(kv.key);
    if (seen == unreferenced_.end() || seen->second.mod_revision != kv.mod_revision) {
      next[kv.key] = {kv.mod_revision, now};
      continue;
    }
    if (now - seen->second.since < grace_) {
      next[kv.key] = seen->second;
      continue;
    }
    store::TxnRequest txn;
    txn.compares.push_back({kv.key, store::Compare::Target::kModRevision,
                            store::Compare::Op::kEqual, kv.mod_revision, ""});
    store::TxnOp del;
    del.type = store::TxnOp::Type::kDelete;
    del.key = kv.key;
    txn.success.push_back(del);
    PHOTON_ASSIGN_OR_RETURN(auto r, store->Txn(txn));
    if (r.succeeded) ++deleted;  // else written meanwhile: looked at again next time
  }
  unreferenced_ = std::move(next);
  return deleted;
}

Status CheckLoadBalancerOwnership(const Principal& who, const KindInfo& kind, const char* verb) {
  if (kind.plural != "loadbalancers" || who.name == SystemPrincipal().name) return absl::OkStatus();
  return absl::InvalidArgumentError(
      std::string("loadbalancers cannot be ") + verb +
      " directly: a LoadBalancer is created and deleted only with its RegionService (set or "
      "remove the RegionService's spec.loadBalancer, or delete the RegionService)");
}

}  // namespace photon::server
