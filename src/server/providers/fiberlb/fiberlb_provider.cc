// See fiberlb_provider.h.
#include "server/providers/fiberlb/fiberlb_provider.h"

#include <nlohmann/json.hpp>
#include <set>

#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/providers/daemon_client.h"
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
  std::string address;  // without the port
};

class FiberLbProvider : public ServiceProvider {
 public:
  FiberLbProvider(std::string endpoint, std::string token_file, std::string listen,
                  std::string owner, int drain_timeout_ms, std::chrono::milliseconds timeout)
      : api_("fiberlb", std::move(endpoint), std::move(token_file), timeout),
        listen_(std::move(listen)),
        owner_(std::move(owner)),
        drain_timeout_ms_(drain_timeout_ms) {}

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
    o.details["vip"] = listen_;
    const auto& md = lb.metadata();
    const std::string prefix = Prefix(md.namespace_(), md.name());
    if (prefix.size() + 6 > 64) {
      o.phase = Phase::ERROR;
      o.message = "namespace and name too long for fiberlb's names ('" + prefix +
                  "<port>' must fit in 64 characters)";
      return o;
    }
    std::vector<Member> members = RunningMembers(lb, lookup, &o.depends_on);
    if (auto st = Sync(lb, prefix, members); !st.ok())
      return ObservedFromError(st, Phase::CREATING, o);
    return Report(lb, prefix, members, o);
  }

  Status Remove(const ManagedRef& ref) override {
    return RemoveExcept(Prefix(ref.ns, ref.name), {});
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
      out.push_back({n, ReachableAddress(ci.status())});
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
              const std::vector<Member>& members) {
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
                       {"address", MemberAddress(listen_, l.port())},
                       {"pool", name}};
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
                  const std::vector<Member>& members, Observed o) {
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
    }
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
    o.addresses.push_back(listen_);
    o.phase = Phase::RUNNING;
    o.message = "VIP " + listen_ + " (" + listeners + "): " + std::to_string(members.size()) +
                " RUNNING member(s), " + std::to_string(up) + " UP";
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
};

}  // namespace

StatusOr<std::unique_ptr<ServiceProvider>> NewFiberLbProvider(const ProviderConfig& config) {
  std::string endpoint, token_file, listen = "127.0.0.1", owner = "photon";
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
      } else if (key == "owner") {
        owner = value;
      } else if (key == "timeout_ms") {
        timeout_ms = std::stoi(value);
      } else if (key == "drain_timeout_ms") {
        drain_timeout_ms = std::stoi(value);
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
  return std::unique_ptr<ServiceProvider>(
      std::make_unique<FiberLbProvider>(endpoint, token_file, listen, owner, drain_timeout_ms,
                                        std::chrono::milliseconds(timeout_ms)));
}

}  // namespace photon::server
