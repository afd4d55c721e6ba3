// See fiberlb_provider.h.
#include "server/providers/fiberlb/fiberlb_provider.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/providers/daemon_client.h"
#include "server/providers/fiberlb/vip_pool.h"
#include "server/providers/loadbalancer_rules.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {

using nlohmann::json;
using Phase = resource::ResourceStatus;

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// True when every key of `want` is in `have` with the same value, objects in lists compared
// the same way: fiberlb's answers carry defaults we do not set (a certificate's sni).
bool Covers(const json& have, const json& want) {
  if (want.is_object()) {
    if (!have.is_object()) return false;
    for (const auto& [k, v] : want.items()) {
      if (!have.contains(k) || !Covers(have[k], v)) return false;
    }
    return true;
  }
  if (want.is_array()) {
    if (!have.is_array() || have.size() != want.size()) return false;
    for (size_t i = 0; i < want.size(); ++i) {
      if (!Covers(have[i], want[i])) return false;
    }
    return true;
  }
  return have == want;
}

// A replica the pool should hold.
struct Member {
  std::string name;
  std::string address;   // without the port
  std::string lb_vip;    // the L4 VIP its agent put on its loopback ("" none)
  bool in_port = false;  // in its port namespace (agent mode ports), not its node's network
};

// The detail an agent reports once an instance's network holds its L4 LoadBalancer's VIP.
constexpr char kLbVipDetail[] = "network.lbVip";
// ... and the node address the LB nodes reach it at (its own may be 127.0.0.1 in mode shared).
constexpr char kLbAddressDetail[] = "network.lbAddress";

// One L4 LB node's fiberlb.
struct L4Node {
  std::string endpoint;
  std::unique_ptr<DaemonClient> api;
};

class FiberLbProvider : public ServiceProvider {
 public:
  FiberLbProvider(std::string endpoint, std::string token_file, std::string listen,
                  std::string owner, int drain_timeout_ms, std::chrono::milliseconds timeout,
                  std::vector<L4Node> l4, std::optional<VipPool> vips, bool l7_announce)
      : api_("fiberlb", std::move(endpoint), std::move(token_file), timeout),
        listen_(std::move(listen)),
        owner_(std::move(owner)),
        drain_timeout_ms_(drain_timeout_ms),
        l4_(std::move(l4)),
        vips_(std::move(vips)),
        l7_announce_(l7_announce) {}

  std::string driver() const override { return "fiberlb"; }
  std::vector<std::string> kinds() const override { return {"loadbalancers"}; }

  Observed Apply(const google::protobuf::Message& object, const ObjectLookup& lookup) override {
    Observed o;
    if (object.GetDescriptor() != network::LoadBalancer::descriptor()) {
      o.phase = Phase::ERROR;
      o.message = "fiberlb provider: cannot realize " + object.GetDescriptor()->name();
      return o;
    }
    const auto& lb = static_cast<const network::LoadBalancer&>(object);
    o.details["provider"] = "fiberlb";
    const auto& md = lb.metadata();
    const std::string prefix = Prefix(md.namespace_(), md.name());
    if (lb.spec().type() == network::LoadBalancerSpec::L4) return ApplyL4(lb, prefix, lookup, o);
    if (prefix.size() + 6 > 64) {
      o.phase = Phase::ERROR;
      o.message = "namespace and name too long for fiberlb's names ('" + prefix +
                  "<port>' must fit in 64 characters)";
      return o;
    }
    // With l7_announce each L7 LoadBalancer has a VIP of its own from the pool, which the L7
    // node holds and announces by BGP (fiberlb `announce`); else the provider's listen_address.
    std::string vip = listen_;
    if (l7_announce_) {
      auto got = vips_->Acquire(LoadBalancerKeyStore(), md.namespace_(), md.name());
      if (!got.ok()) {
        return ObservedFromError(
            got.status(),
            got.status().code() == StatusCode::kUnavailable ? Phase::CREATING : Phase::ERROR, o);
      }
      vip = *got;
    }
    o.details["vip"] = vip;
    std::vector<Member> members = RunningMembers(lb, lookup, &o.depends_on);
    if (auto st = Sync(lb, prefix, members, vip); !st.ok())
      return ObservedFromError(st, Phase::CREATING, o);
    return Report(lb, prefix, members, vip, o);
  }

  // Both planes (the object's type is not known any more): its L7 listeners and pools, its
  // L4 listeners on every L4 node, then its VIP, given back only once no node uses it.
  Status Remove(const ManagedRef& ref) override {
    const std::string prefix = Prefix(ref.ns, ref.name);
    PHOTON_RETURN_IF_ERROR(RemoveExcept(prefix, {}));
    if (!vips_) return absl::OkStatus();
    for (auto& node : l4_) {
      PHOTON_ASSIGN_OR_RETURN(json state, GetL4(node));
      PHOTON_RETURN_IF_ERROR(RemoveL4Except(node, state, prefix, {}));
    }
    return vips_->Release(LoadBalancerKeyStore(), ref.ns, ref.name);
  }

  StatusOr<std::vector<ManagedRef>> ListManaged() override {
    PHOTON_ASSIGN_OR_RETURN(json state, GetState());
    std::set<std::pair<std::string, std::string>> seen;
    for (const char* list : {"listeners", "pools"}) {
      for (const auto& x : state.value(list, json::array())) {
        auto parts = Split(x.value("name", ""), '.');
        if (parts.size() != 4 || parts[0] != owner_) continue;
        seen.insert({parts[1], parts[2]});
      }
    }
    // L4 listeners on the L4 nodes, and VIPs held in the store (a LoadBalancer deleted while
    // this server was down still holds its VIP until its removal gives it back).
    for (auto& node : l4_) {
      PHOTON_ASSIGN_OR_RETURN(json l4, GetL4(node));
      for (const auto& x : l4.value("listeners", json::array())) {
        auto parts = Split(x.value("name", ""), '.');
        if (parts.size() == 4 && parts[0] == owner_) seen.insert({parts[1], parts[2]});
      }
    }
    if (vips_) {
      PHOTON_ASSIGN_OR_RETURN(auto held, vips_->Holders(LoadBalancerKeyStore()));
      for (const auto& h : held) {
        const size_t slash = h.find('/');
        if (slash != std::string::npos) seen.insert({h.substr(0, slash), h.substr(slash + 1)});
      }
    }
    std::vector<ManagedRef> out;
    for (const auto& [ns, name] : seen) out.push_back({"loadbalancers", ns, name, {}});
    return out;
  }

 private:
  std::string Prefix(const std::string& ns, const std::string& name) const {
    return owner_ + "." + ns + "." + name + ".";
  }

  // The owning RegionService's replicas that are RUNNING, not being deleted and have an
  // address. Each one looked at is a dependency: its change applies the LoadBalancer again.
  static std::vector<Member> RunningMembers(const network::LoadBalancer& lb,
                                            const ObjectLookup& lookup,
                                            std::vector<std::string>* depends_on) {
    const std::string& ns = lb.metadata().namespace_();
    const std::string rs_name =
        lb.spec().region_service().empty() ? lb.metadata().name() : lb.spec().region_service();
    depends_on->push_back(RegistryKey("regionservices", ns, rs_name));
    std::vector<Member> out;
    auto rs_obj = lookup("regionservices", ns, rs_name);
    if (!rs_obj) return out;
    const auto& rs = static_cast<const compute::RegionService&>(*rs_obj);
    auto listed = rs.status().details().find("members");
    if (listed == rs.status().details().end()) return out;
    for (const auto& n : Split(listed->second, ',')) {
      depends_on->push_back(RegistryKey("computeinstances", ns, n));
      auto ci_obj = lookup("computeinstances", ns, n);
      if (!ci_obj) continue;
      const auto& ci = static_cast<const compute::ComputeInstance&>(*ci_obj);
      auto label = ci.metadata().labels().find("photon.io/regionservice");
      if (label == ci.metadata().labels().end() || label->second != rs_name) continue;
      if (ci.status().phase() != Phase::RUNNING || !ci.metadata().deletion_timestamp().empty() ||
          ci.status().addresses().empty()) {
        continue;
      }
      Member m{n, ReachableAddress(ci.status()), "", false};
      if (auto w = ci.status().details().find("network.wired");
          w != ci.status().details().end() && w->second == "port")
        m.in_port = true;
      // An L4 member holding the VIP is reached at the address its agent reported for it.
      const auto& d = ci.status().details();
      if (auto vip = d.find(kLbVipDetail); vip != d.end()) m.lb_vip = vip->second;
      if (auto at = d.find(kLbAddressDetail); at != d.end() && !m.lb_vip.empty())
        m.address = at->second;
      out.push_back(m);
    }
    return out;
  }

  // status.addresses[0] (the VPC address) for an instance wired to its port; one that runs in
  // its node's network (agent network mode `shared`, details["network.wired"] = node) is
  // reached at the address its agent reported, the first one that is not the VPC address.
  static std::string ReachableAddress(const resource::ResourceStatus& st) {
    auto wired = st.details().find("network.wired");
    if (wired == st.details().end() || wired->second != "node") return st.addresses(0);
    auto vpc = st.details().find("network.address");
    for (const auto& a : st.addresses()) {
      if (vpc == st.details().end() || a != vpc->second) return a;
    }
    return st.addresses(0);
  }

  json HealthCheckJson(const network::LoadBalancerHealthCheck& hc) const {
    const std::string type = hc.type().empty() ? "none" : hc.type();
    json j = {{"type", type},
              {"interval_ms", hc.interval_ms() > 0 ? hc.interval_ms() : 2000},
              {"rise", hc.rise() > 0 ? hc.rise() : 2},
              {"fall", hc.fall() > 0 ? hc.fall() : 3}};
    if (type == "http") {
      j["path"] = hc.path().empty() ? "/" : hc.path();
      j["expect_status"] = hc.expect_status() > 0 ? hc.expect_status() : 200;
    }
    return j;
  }

  static std::string MemberAddress(const std::string& address, int port) {
    const bool v6 = address.find(':') != std::string::npos;
    return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  }

  // One fiberlb pool and listener per LoadBalancer listener; PUT only what differs (a pool's
  // member change goes through HAProxy's runtime API, a removed member drains); our listeners
  // and pools of this LoadBalancer that are no longer wanted are removed.
  Status Sync(const network::LoadBalancer& lb, const std::string& prefix,
              const std::vector<Member>& members, const std::string& vip) {
    PHOTON_ASSIGN_OR_RETURN(json state, GetState());
    std::map<std::string, json> pools, listeners;
    for (const auto& p : state.value("pools", json::array())) pools[p.value("name", "")] = p;
    for (const auto& l : state.value("listeners", json::array()))
      listeners[l.value("name", "")] = l;
    std::set<std::string> wanted;
    for (int i = 0; i < lb.spec().listeners_size(); ++i) {
      const auto& l = lb.spec().listeners(i);
      const std::string at = "spec.listeners[" + std::to_string(i) + "]";
      const std::string name = prefix + std::to_string(l.port());
      const int target = l.target_port() > 0 ? l.target_port() : l.port();
      // One pool per members' port: the listener's, and each other port its routes name.
      auto pool_of = [&](int port) {
        return port == target ? name : name + "-" + std::to_string(port);
      };
      std::set<int> ports = {target};
      for (const auto& r : l.routes()) ports.insert(r.target_port());
      for (int port : ports) {
        const std::string pool_name = pool_of(port);
        if (pool_name.size() > 64)
          return absl::InvalidArgumentError(at + ": fiberlb pool name '" + pool_name +
                                            "' is longer than 64 characters");
        wanted.insert(pool_name);
        json pool = PoolJson(lb, pool_name, members, port);
        if (!Covers(pools[pool_name], pool)) {
          PHOTON_RETURN_IF_ERROR(
              api_.AsStatus(api_.Call("PUT", "/v1/pools/" + pool_name, pool), at + " pool"));
        }
      }
      const std::string protocol = AsciiLower(l.protocol());
      json listener = {{"name", name},
                       {"protocol", protocol},
                       {"address", MemberAddress(vip, l.port())},
                       {"pool", name}};
      if (l7_announce_) listener["announce"] = true;
      if (protocol != "tcp") {  // always sent, so that removed routes are removed
        json routes = json::array();
        for (const auto& r : l.routes()) {
          json rj = {{"pool", pool_of(r.target_port())}};
          if (!r.host().empty()) rj["host"] = AsciiLower(r.host());
          if (!r.path_prefix().empty()) rj["path_prefix"] = r.path_prefix();
          routes.push_back(rj);
        }
        listener["routes"] = routes;
      }
      if (!l.certificates().empty()) {
        PHOTON_ASSIGN_OR_RETURN(listener["certificates"],
                                CertificatesJson(lb.metadata().namespace_(), l, i));
      }
      if (!Covers(listeners[name], listener)) {
        PHOTON_RETURN_IF_ERROR(
            api_.AsStatus(api_.Call("PUT", "/v1/listeners/" + name, listener), at));
      }
    }
    return RemoveExcept(prefix, wanted);
  }

  // The RUNNING members at `port`, with the LoadBalancer's health check.
  json PoolJson(const network::LoadBalancer& lb, const std::string& name,
                const std::vector<Member>& members, int port) const {
    json ms = json::array();
    for (const auto& m : members)
      ms.push_back({{"name", m.name}, {"address", MemberAddress(m.address, port)}, {"weight", 1}});
    return {{"name", name},
            {"algorithm", "roundrobin"},
            {"members", ms},
            {"health_check", HealthCheckJson(lb.spec().health_check())},
            {"drain_timeout_ms", drain_timeout_ms_}};
  }

  // fiberlb's certificates of an HTTPS listener, each key read from where the server sealed
  // it (loadbalancer_rules.h): the LoadBalancer object only holds its reference.
  static StatusOr<json> CertificatesJson(const std::string& ns, const network::Listener& l, int i) {
    json out = json::array();
    for (int j = 0; j < l.certificates_size(); ++j) {
      const auto& c = l.certificates(j);
      auto key = LoadBalancerKey(ns, c.private_key_ref());
      if (!key.ok()) {
        const std::string at = "spec.listeners[" + std::to_string(i) + "].certificates[" +
                               std::to_string(j) + "].privateKeyRef: ";
        return Status(key.status().code(), at + std::string(key.status().message()));
      }
      json cj = {{"cert", c.certificate()}, {"key", *key}};
      if (!c.sni().empty()) cj["sni"] = std::vector<std::string>(c.sni().begin(), c.sni().end());
      out.push_back(cj);
    }
    return out;
  }

  // Deletes our listeners, then pools, named `prefix`* and not in `keep`.
  Status RemoveExcept(const std::string& prefix, const std::set<std::string>& keep) {
    PHOTON_ASSIGN_OR_RETURN(json state, GetState());
    for (const char* list : {"listeners", "pools"}) {
      for (const auto& x : state.value(list, json::array())) {
        const std::string name = x.value("name", "");
        if (name.rfind(prefix, 0) != 0 || keep.count(name)) continue;
        DaemonReply del = api_.Call("DELETE", std::string("/v1/") + list + "/" + name);
        if (del.reached && del.status == 404) continue;
        PHOTON_RETURN_IF_ERROR(api_.AsStatus(del, std::string("delete ") + list + " " + name));
      }
    }
    return absl::OkStatus();
  }

  // RUNNING with the VIP and each member's health as HAProxy sees it. Retried (with backoff)
  // while a member is not UP, so the status follows its health checks.
  Observed Report(const network::LoadBalancer& lb, const std::string& prefix,
                  const std::vector<Member>& members, const std::string& vip, Observed o) {
    std::string listeners;
    std::map<std::string, std::string> health;  // member → worst status over the listeners
    for (const auto& l : lb.spec().listeners()) {
      const int target = l.target_port() > 0 ? l.target_port() : l.port();
      listeners += (listeners.empty() ? "" : ",") + std::to_string(l.port()) + "/" +
                   AsciiLower(l.protocol()) + "->" + std::to_string(target);
      DaemonReply got = api_.Call("GET", "/v1/pools/" + prefix + std::to_string(l.port()));
      if (auto st = api_.AsStatus(got, "get pool"); !st.ok())
        return ObservedFromError(st, Phase::CREATING, o);
      for (const auto& m : got.body.value("members", json::array())) {
        std::string s = m.value("status", "");
        std::string& h = health[m.value("name", "")];
        if (h.empty() || s.rfind("UP", 0) != 0) h = s;
      }
      // A replica that left stays listed while fiberlb drains it: its agent keeps it running
      // until then (agent/port_wiring.h LbDrainPending), bounded by drainTimeoutMs.
      for (const auto& d : got.body.value("draining", json::array())) {
        o.details["member." + d.value("name", "")] =
            "draining, " + std::to_string(d.value("connections", 0)) + " connection(s)";
        o.retry = true;
      }
    }
    o.details["drainTimeoutMs"] = std::to_string(drain_timeout_ms_);
    int up = 0;
    for (const auto& m : members) {
      const std::string h = health.count(m.name) ? health[m.name] : "";
      o.details["member." + m.name] = m.address + " " + (h.empty() ? "unknown" : h);
      if (h.rfind("UP", 0) == 0) {
        ++up;
      } else {
        o.retry = true;
      }
    }
    o.details["listeners"] = listeners;
    std::string announced;
    if (l7_announce_) {  // by BGP from the L7 node while a member is UP there
      DaemonReply got = api_.Call("GET", "/v1/vips");
      if (auto st = api_.AsStatus(got, "get vips"); !st.ok())
        return ObservedFromError(st, Phase::CREATING, o);
      const json list = got.body.value("announced", json::array());
      const bool on = std::find(list.begin(), list.end(), json(vip)) != list.end();
      o.details["vipAnnounced"] = on ? "true" : "false";
      announced = on ? ", announced" : ", not announced";
      if (!on) o.retry = true;
    }
    o.addresses.push_back(vip);
    o.phase = Phase::RUNNING;
    o.message = "VIP " + vip + announced + " (" + listeners +
                "): " + std::to_string(members.size()) + " RUNNING member(s), " +
                std::to_string(up) + " UP";
    return o;
  }

  // ---- L4 (stateless, DSR) ----------------------------------------------------------------

  static std::string L4Name(const std::string& prefix, const network::Listener& l) {
    return prefix + std::to_string(l.port()) + (AsciiLower(l.protocol()) == "udp" ? "-udp" : "");
  }

  // fiberlb's L4 listener: the VIP, the distinct member addresses (weight: replicas there).
  json L4ListenerJson(const network::LoadBalancer& lb, const network::Listener& l,
                      const std::string& name, const std::string& vip,
                      const std::map<std::string, int>& addresses,
                      const std::set<std::string>& in_ports) const {
    json ms = json::array();
    // A member in its node's network restores no DSCP: on-link only (L2 DSR), so one behind a
    // router is refused by fiberlb instead of sent packets it cannot take. A member in a port
    // namespace is reached by L3DSR (its port restores the VIP).
    for (const auto& [address, replicas] : addresses)
      ms.push_back({{"address", address},
                    {"weight", replicas},
                    {"forward", in_ports.count(address) ? "auto" : "l2"}});
    const auto& hc = lb.spec().health_check();
    const int interval = hc.interval_ms() > 0 ? hc.interval_ms() : 2000;
    json check = {{"type", hc.type() == "tcp" ? "tcp" : "none"},
                  {"interval_ms", interval},
                  {"timeout_ms", std::min(interval, 1000)},
                  {"rise", hc.rise() > 0 ? hc.rise() : 2},
                  {"fall", hc.fall() > 0 ? hc.fall() : 3}};
    json out = {{"name", name},     {"vip", vip},
                {"port", l.port()}, {"protocol", AsciiLower(l.protocol())},
                {"members", ms},    {"health_check", check}};
    // A leaving replica's established flows stay with it this long (its agent keeps it running
    // until they finish or this passes: details.drainTimeoutMs).
    if (AsciiLower(l.protocol()) == "tcp") out["drain_timeout_ms"] = drain_timeout_ms_;
    // Members behind a router (VPC addresses of replicas in port namespaces) get L3DSR with the
    // VIP's mark; on-link members keep L2 DSR (fiberlb's forward auto).
    out["l3dsr_dscp"] = vips_->Dscp(vip);
    return out;
  }

  StatusOr<json> GetL4(L4Node& node) {
    DaemonReply r = node.api->Call("GET", "/v1/l4");
    PHOTON_RETURN_IF_ERROR(node.api->AsStatus(r, "get /v1/l4 on " + node.endpoint));
    if (!r.body.is_object())
      return absl::UnavailableError("fiberlb " + node.endpoint + " /v1/l4: not a JSON object");
    return r.body;
  }

  // Deletes the L4 listeners named `prefix`* and not in `keep` from one node.
  Status RemoveL4Except(L4Node& node, const json& state, const std::string& prefix,
                        const std::set<std::string>& keep) {
    for (const auto& x : state.value("listeners", json::array())) {
      const std::string name = x.value("name", "");
      if (name.rfind(prefix, 0) != 0 || keep.count(name)) continue;
      DaemonReply del = node.api->Call("DELETE", "/v1/l4/listeners/" + name);
      if (del.reached && del.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(
          node.api->AsStatus(del, "delete L4 listener " + name + " on " + node.endpoint));
    }
    return absl::OkStatus();
  }

  // Makes one node's L4 listeners of this LoadBalancer `want` (PUT only what differs); returns
  // the node's /v1/l4 as it was read, for the status.
  StatusOr<json> SyncL4Node(L4Node& node, const std::string& prefix,
                            const std::map<std::string, json>& want) {
    PHOTON_ASSIGN_OR_RETURN(json state, GetL4(node));
    std::map<std::string, json> have;
    for (const auto& x : state.value("listeners", json::array())) have[x.value("name", "")] = x;
    std::set<std::string> keep;
    for (const auto& [name, listener] : want) {
      keep.insert(name);
      if (Covers(have[name], listener)) continue;
      PHOTON_RETURN_IF_ERROR(
          node.api->AsStatus(node.api->Call("PUT", "/v1/l4/listeners/" + name, listener),
                             "L4 listener " + name + " on " + node.endpoint));
    }
    PHOTON_RETURN_IF_ERROR(RemoveL4Except(node, state, prefix, keep));
    return state;
  }

  Observed ApplyL4(const network::LoadBalancer& lb, const std::string& prefix,
                   const ObjectLookup& lookup, Observed o) {
    const auto& md = lb.metadata();
    o.details["type"] = "L4";
    if (!vips_ || l4_.empty()) {
      o.phase = Phase::ERROR;
      o.message = "fiberlb provider: type L4 needs l4_endpoints and vip_pool in its config";
      return o;
    }
    if (prefix.size() + 10 > 64) {
      o.phase = Phase::ERROR;
      o.message = "namespace and name too long for fiberlb's names ('" + prefix +
                  "<port>-udp' must fit in 64 characters)";
      return o;
    }
    auto vip = vips_->Acquire(LoadBalancerKeyStore(), md.namespace_(), md.name());
    if (!vip.ok()) {
      return ObservedFromError(
          vip.status(),
          vip.status().code() == StatusCode::kUnavailable ? Phase::CREATING : Phase::ERROR, o);
    }
    o.details["vip"] = *vip;
    // What a member's agent restores the VIP from (port_wiring.h; the same on every LB node).
    o.details["l3dsrDscp"] = std::to_string(vips_->Dscp(*vip));
    o.addresses.push_back(*vip);
    // Members: RUNNING replicas whose agent put this VIP on their loopback (DSR); the others
    // would drop the VIP's packets, so they wait.
    std::vector<Member> members = RunningMembers(lb, lookup, &o.depends_on);
    std::map<std::string, int> addresses;
    std::set<std::string> in_ports;  // addresses of members in port namespaces
    std::vector<Member> serving;
    for (const auto& m : members) {
      if (m.lb_vip != *vip) {
        o.details["member." + m.name] = m.address + " waiting for the VIP on its loopback";
        continue;
      }
      ++addresses[m.address];
      if (m.in_port) in_ports.insert(m.address);
      serving.push_back(m);
    }
    std::map<std::string, json> want;
    std::string listeners;
    for (const auto& l : lb.spec().listeners()) {
      const std::string name = L4Name(prefix, l);
      want[name] = L4ListenerJson(lb, l, name, *vip, addresses, in_ports);
      listeners += (listeners.empty() ? "" : ",") + std::to_string(l.port()) + "/" +
                   AsciiLower(l.protocol());
    }
    o.details["listeners"] = listeners;
    o.details["drainTimeoutMs"] = std::to_string(drain_timeout_ms_);
    // Every node gets the same listeners (the Maglev tables agree); one node that cannot be
    // reached keeps the others serving, and the object says which.
    std::map<std::string, int> healthy_on;  // address → nodes that see it healthy
    int reached = 0;
    std::string unreachable;
    for (size_t i = 0; i < l4_.size(); ++i) {
      auto& node = l4_[i];
      const std::string key = "node." + std::to_string(i);
      auto st = SyncL4Node(node, prefix, want);
      if (st.ok()) st = GetL4(node);  // after the changes: health and announcement now
      if (!st.ok()) {
        if (st.status().code() != StatusCode::kUnavailable)
          return ObservedFromError(st.status(), Phase::CREATING, o);
        o.details[key] = node.endpoint + " unreachable: " + std::string(st.status().message());
        unreachable += (unreachable.empty() ? "" : ", ") + node.endpoint;
        continue;
      }
      ++reached;
      const json announced = st->value("announced", json::array());
      const bool on = std::find(announced.begin(), announced.end(), *vip) != announced.end();
      o.details[key] = node.endpoint + (on ? " announces " : " does not announce ") + *vip;
      std::set<std::string> healthy;  // healthy in every listener of ours on this node
      std::map<std::string, int> seen;
      int ours = 0;
      for (const auto& x : st->value("listeners", json::array())) {
        if (!want.count(x.value("name", ""))) continue;
        ++ours;
        for (const auto& m : x.value("members", json::array())) {
          if (m.value("healthy", false)) ++seen[m.value("address", "")];
        }
      }
      for (const auto& [address, n] : seen) {
        if (n == ours) ++healthy_on[address];
      }
    }
    if (reached == 0) {
      return ObservedFromError(absl::UnavailableError("no L4 node reachable: " + unreachable),
                               Phase::CREATING, o);
    }
    int up = 0;
    for (const auto& m : serving) {
      const int n = healthy_on.count(m.address) ? healthy_on[m.address] : 0;
      o.details["member." + m.name] = m.address + (n == reached ? " UP" : " DOWN") + " on " +
                                      std::to_string(n) + "/" + std::to_string(reached) +
                                      " L4 node(s)";
      if (n == reached) {
        ++up;
      } else {
        o.retry = true;  // follow its health checks
      }
    }
    if (serving.size() != members.size() || !unreachable.empty()) o.retry = true;
    o.phase = Phase::RUNNING;
    o.message = "L4 VIP " + *vip + " (" + listeners + ") on " + std::to_string(reached) + "/" +
                std::to_string(l4_.size()) + " L4 node(s)" +
                (unreachable.empty() ? "" : " (unreachable: " + unreachable + ")") + ": " +
                std::to_string(members.size()) + " RUNNING member(s), " +
                std::to_string(serving.size()) + " holding the VIP, " + std::to_string(up) + " UP";
    return o;
  }

  StatusOr<json> GetState() {
    DaemonReply r = api_.Call("GET", "/v1/state");
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(r, "get state"));
    if (!r.body.is_object()) return absl::UnavailableError("fiberlb state: not a JSON object");
    return r.body;
  }

  DaemonClient api_;
  const std::string listen_;
  const std::string owner_;
  const int drain_timeout_ms_;
  std::vector<L4Node> l4_;
  const std::optional<VipPool> vips_;
  const bool l7_announce_;  // L7 LoadBalancers get their own VIP from vips_, announced
};

}  // namespace

StatusOr<std::unique_ptr<ServiceProvider>> NewFiberLbProvider(const ProviderConfig& config) {
  std::string endpoint, token_file, listen = "127.0.0.1", owner = "photon";
  std::string l4_endpoints, l4_token_files, vip_pool, l7_announce = "false";
  bool listen_given = false;
  int timeout_ms = 2000, drain_timeout_ms = 10000;
  const std::string where = "providers (fiberlb): ";
  try {
    for (const auto& [key, value] : config.settings) {
      if (key == "endpoint") {
        endpoint = value;
      } else if (key == "token_file") {
        token_file = value;
      } else if (key == "listen_address") {
        listen = value;
        listen_given = true;
      } else if (key == "owner") {
        owner = value;
      } else if (key == "timeout_ms") {
        timeout_ms = std::stoi(value);
      } else if (key == "drain_timeout_ms") {
        drain_timeout_ms = std::stoi(value);
      } else if (key == "l4_endpoints") {
        l4_endpoints = value;
      } else if (key == "l4_token_files") {
        l4_token_files = value;
      } else if (key == "vip_pool") {
        vip_pool = value;
      } else if (key == "l7_announce") {
        l7_announce = value;
      } else {
        return absl::InvalidArgumentError(where + "unknown key '" + key + "'");
      }
    }
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(where + "timeout_ms and drain_timeout_ms want numbers");
  }
  PHOTON_RETURN_IF_ERROR(ValidateDaemonConfig(where, endpoint, token_file, timeout_ms));
  if (listen.empty() || listen.find_first_of("[] /") != std::string::npos)
    return absl::InvalidArgumentError(where + "listen_address: an IP address, got '" + listen +
                                      "'");
  if (owner.empty() ||
      owner.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
    return absl::InvalidArgumentError(where + "owner: lower-case letters, digits and '-'");
  if (drain_timeout_ms < 0)
    return absl::InvalidArgumentError(where + "drain_timeout_ms: must be >= 0");
  if (l7_announce != "true" && l7_announce != "false")
    return absl::InvalidArgumentError(where + "l7_announce: true or false, got '" + l7_announce +
                                      "'");
  const bool announce = l7_announce == "true";
  if (announce && (vip_pool.empty() || listen_given))
    return absl::InvalidArgumentError(
        where + "l7_announce: L7 VIPs come from vip_pool (needed), not listen_address (remove it)");
  std::vector<L4Node> l4;
  std::optional<VipPool> vips;
  if (announce && l4_endpoints.empty() && l4_token_files.empty()) {
    auto pool = VipPool::Parse(owner, vip_pool);
    if (!pool.ok()) return absl::InvalidArgumentError(where + std::string(pool.status().message()));
    vips = std::move(*pool);
  } else if (!l4_endpoints.empty() || !l4_token_files.empty() || !vip_pool.empty()) {
    const auto ends = Split(l4_endpoints, ','), tokens = Split(l4_token_files, ',');
    if (ends.empty() || vip_pool.empty())
      return absl::InvalidArgumentError(
          where + "L4 needs l4_endpoints, l4_token_files and vip_pool together");
    if (tokens.size() != 1 && tokens.size() != ends.size())
      return absl::InvalidArgumentError(where +
                                        "l4_token_files: one per l4_endpoints entry, or one");
    for (size_t i = 0; i < ends.size(); ++i) {
      const std::string& token = tokens.size() == 1 ? tokens[0] : tokens[i];
      PHOTON_RETURN_IF_ERROR(ValidateDaemonConfig(
          where + "l4_endpoints[" + std::to_string(i) + "]: ", ends[i], token, timeout_ms));
      l4.push_back(
          {ends[i], std::make_unique<DaemonClient>("fiberlb", ends[i], token,
                                                   std::chrono::milliseconds(timeout_ms))});
    }
    auto pool = VipPool::Parse(owner, vip_pool);
    if (!pool.ok()) return absl::InvalidArgumentError(where + std::string(pool.status().message()));
    vips = std::move(*pool);
  }
  return std::unique_ptr<ServiceProvider>(std::make_unique<FiberLbProvider>(
      endpoint, token_file, listen, owner, drain_timeout_ms, std::chrono::milliseconds(timeout_ms),
      std::move(l4), std::move(vips), announce));
}

}  // namespace photon::server
