#include "agent/port_wiring.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/str_split.h"
#include "agent/config.h"
#include "agent/net/bird.h"
#include "agent/net/exec.h"
#include "agent/net/ipv4.h"
#include "agent/net/netns.h"
#include "agent/net/nft_ruleset.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
using json = nlohmann::json;

namespace {

template <typename T>
StatusOr<T> ParseObject(const json& j, const std::string& what) {
  T msg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(j.dump(), &msg, opts);
  if (!st.ok()) return absl::DataLossError("bad " + what + " JSON: " + std::string(st.message()));
  return msg;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// One SecurityGroup rule as PortManager enforces it; FAILED_PRECONDITION for what the node
// cannot enforce faithfully (rather than enforcing something else).
StatusOr<net::SgRule> ConvertRule(const network::SecurityRule& r, const std::string& field) {
  if (r.stateless()) {
    return absl::FailedPreconditionError(
        field +
        ".stateless: stateless rules are not enforced by the node agents yet (every "
        "rule is stateful)");
  }
  net::SgRule out;
  out.direction = r.direction() == "egress" ? net::Direction::kEgress : net::Direction::kIngress;
  const std::string proto = Lower(r.protocol());
  if (proto == "tcp") {
    out.protocol = 6;
  } else if (proto == "udp") {
    out.protocol = 17;
  } else if (proto == "icmp") {
    out.protocol = 1;
  } else if (proto.empty() || proto == "any") {
    out.protocol = -1;
  } else {
    return absl::FailedPreconditionError(field + ".protocol: '" + r.protocol() +
                                         "' is not enforced");
  }
  if (out.protocol == 6 || out.protocol == 17) {
    int lo = r.port_min(), hi = r.port_max() == 0 ? r.port_min() : r.port_max();
    if (lo != 0 || hi != 0) {
      out.port_from = std::max(lo, 1);
      out.port_to = hi;
    }
  }
  out.remote_cidr = r.cidr().empty() ? "0.0.0.0/0" : r.cidr();
  return out;
}

}  // namespace

Status ConfigureNodeBird(const AgentOptions& o) {
  if (o.bird_config.empty()) return absl::OkStatus();
  net::BirdOptions b;
  b.router_id = o.bird_router_id;
  b.local_address = o.bird_router_id;
  b.local_as = static_cast<uint32_t>(o.bird_local_as);
  std::vector<std::pair<std::string, int64_t>> peers;
  PHOTON_RETURN_IF_ERROR(ParseBirdPeers(o.bird_peers, &peers));
  for (const auto& [address, as] : peers) b.peers.push_back({address, static_cast<uint32_t>(as)});
  b.log_path = o.bird_log;
  PHOTON_RETURN_IF_ERROR(net::ValidateBirdOptions(b));
  Status s = net::ReconfigureBird(o.bird_config, o.bird_socket, net::RenderNodeBirdConfig(b));
  if (!s.ok()) return absl::FailedPreconditionError("BIRD: " + std::string(s.message()));
  spdlog::info("network: BIRD at {} runs the rendered {} ({} peers)", o.bird_socket, o.bird_config,
               b.peers.size());
  return absl::OkStatus();
}

PortWiring::PortWiring(WiringOptions options, ApiClient* api, MetricsRegistry* metrics)
    : options_(std::move(options)), api_(api) {
  applies_ = metrics->GetCounter("photon_agent_port_applies_total", "Port applies (PortManager)");
  failures_ = metrics->GetCounter("photon_agent_port_failures_total", "Failed port applies");
  apply_seconds_ = metrics->GetHistogram("photon_agent_port_apply_seconds", "Time per port apply");
  kernel_changes_ = metrics->GetGauge("photon_agent_port_kernel_changes",
                                      "Kernel changes made by the port data path since start");
  set_updates_ = metrics->GetGauge(
      "photon_agent_port_set_updates",
      "Of those, remote security groups' member sets updated in place since start");
}

Status PortWiring::Open() {
  if (options_.mode != "ports") return absl::OkStatus();
  net::PortManagerOptions o;
  o.host_netns = options_.host_netns;
  o.netns_prefix = options_.netns_prefix;
  auto pm = net::PortManager::Open(o);
  if (!pm.ok()) {
    return absl::FailedPreconditionError(
        "network mode ports: preparing the node's data path failed (it needs root with "
        "CAP_NET_ADMIN, iproute2 and nftables): " +
        std::string(pm.status().message()));
  }
  ports_ = std::move(*pm);
  spdlog::info("network: port namespaces {}*, {} ports found", options_.netns_prefix,
               ports_->List().size());
  return absl::OkStatus();
}

StatusOr<std::string> PortWiring::VpcCidr(const std::string& ns, const std::string& vpc) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = vpc_cidrs_.find(ns + "/" + vpc);
    if (it != vpc_cidrs_.end()) return it->second;
  }
  PHOTON_ASSIGN_OR_RETURN(json j, api_->Get("/v1/namespaces/" + ns + "/vpcs/" + vpc));
  PHOTON_ASSIGN_OR_RETURN(network::Vpc v, ParseObject<network::Vpc>(j, "Vpc"));
  std::lock_guard<std::mutex> l(mu_);
  vpc_cidrs_[ns + "/" + vpc] = v.spec().cidr_block();  // immutable (docs/networking.md)
  return v.spec().cidr_block();
}

Status PortWiring::AddGroupRules(const std::string& ns, const std::string& group,
                                 net::PortSpec* spec) {
  auto j = api_->Get("/v1/namespaces/" + ns + "/securitygroups/" + group);
  if (!j.ok() && j.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError("security group '" + group + "' not found in namespace '" +
                                         ns + "'");
  }
  if (!j.ok()) return j.status();
  PHOTON_ASSIGN_OR_RETURN(network::SecurityGroup sg,
                          ParseObject<network::SecurityGroup>(*j, "SecurityGroup"));
  for (int i = 0; i < sg.spec().rules_size(); ++i) {
    const auto& r = sg.spec().rules(i);
    PHOTON_ASSIGN_OR_RETURN(
        net::SgRule rule,
        ConvertRule(r, "securitygroups/" + group + ": spec.rules[" + std::to_string(i) + "]"));
    if (!r.remote_security_group().empty()) {
      PHOTON_ASSIGN_OR_RETURN(rule.remote_set, AddRemoteSet(ns, r.remote_security_group(), spec));
    }
    spec->rules.push_back(rule);
  }
  return absl::OkStatus();
}

StatusOr<std::string> PortWiring::AddRemoteSet(const std::string& ns, const std::string& group,
                                               net::PortSpec* spec) {
  // nft set names are short identifiers; group names are DNS labels: a hash of the name.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : group) h = (h ^ c) * 1099511628211ull;
  char name[24];
  std::snprintf(name, sizeof(name), "rg_%016llx", static_cast<unsigned long long>(h));
  if (spec->remote_sets.count(name)) return std::string(name);
  auto j = api_->Get("/v1/namespaces/" + ns + "/securitygroups/" + group);
  if (!j.ok() && j.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError("remote security group '" + group +
                                         "' not found in namespace '" + ns + "'");
  }
  if (!j.ok()) return j.status();
  PHOTON_ASSIGN_OR_RETURN(network::SecurityGroup sg,
                          ParseObject<network::SecurityGroup>(*j, "SecurityGroup"));
  auto& members = spec->remote_sets[name];
  auto it = sg.status().details().find(kSecurityGroupMembersDetail);
  if (it == sg.status().details().end()) return std::string(name);
  for (const auto& m : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
    members.emplace_back(m);
  }
  return std::string(name);
}

StatusOr<net::PortSpec> PortWiring::Resolve(const std::string& ns, const network::Port& port) {
  net::PortSpec spec;
  spec.instance_id = port.spec().instance();
  spec.ip = port.spec().ip_address();
  spec.mac = Lower(port.spec().mac_address());  // as the kernel reports it: no false difference
  spec.subnet_cidr = port.spec().cidr();
  PHOTON_ASSIGN_OR_RETURN(spec.vpc_cidr, VpcCidr(ns, port.spec().vpc()));
  if (port.spec().security_groups().empty()) {
    // No group named: AWS's default group, egress anywhere; ingress from the VPC only (the
    // ruleset always admits the port's own VPC).
    spec.rules.push_back({net::Direction::kEgress, -1, 0, 0, "0.0.0.0/0"});
  }
  for (const auto& g : port.spec().security_groups()) {
    PHOTON_RETURN_IF_ERROR(AddGroupRules(ns, g, &spec));
  }
  Status valid = net::ValidatePortSpec(spec);
  if (!valid.ok()) {
    return absl::FailedPreconditionError("port " + ns + "/" + port.metadata().name() + ": " +
                                         std::string(valid.message()));
  }
  return spec;
}

StatusOr<std::string> PortWiring::Wire(const compute::ComputeInstance& instance,
                                       const std::optional<json>& port_json) {
  const std::string& id = instance.metadata().id();
  const std::string& ns = instance.metadata().namespace_();
  const auto& want = instance.spec().network();
  auto remember = [&](const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    netns_[id] = path;
    return path;
  };
  if (want.host_network() || options_.mode == "shared") {
    // In the node's network: an L4 LoadBalancer member holds its VIP on the node's loopback.
    PHOTON_ASSIGN_OR_RETURN(std::string vip, L4VipFor(instance));
    if (!want.host_network() && instance.spec().has_vm()) vip.clear();  // refused below
    PHOTON_RETURN_IF_ERROR(HoldLbVip(id, vip));
  }
  if (want.host_network()) return remember("");
  if (options_.mode == "none") {
    return absl::FailedPreconditionError(
        "spec.network: node " + options_.node_name +
        " does not wire instance networks (photon-agent network mode 'none'); only "
        "spec.network.hostNetwork instances run there");
  }
  if (options_.mode == "shared") {
    if (instance.spec().has_vm()) {
      // A VM has no interface in the node's network (its NIC is a tap in a port namespace).
      return absl::FailedPreconditionError(
          "spec.vm: node " + options_.node_name +
          " runs instances in its own network (photon-agent network mode 'shared'), where a VM "
          "gets no interface; run it on a node in network mode 'ports' or with "
          "spec.network.hostNetwork");
    }
    if (!want.security_groups().empty()) {
      return absl::FailedPreconditionError(
          "spec.network.securityGroups: node " + options_.node_name +
          " runs instances in its own network (photon-agent network mode 'shared') and cannot "
          "enforce security groups");
    }
    return remember("");
  }
  // An L4 LoadBalancer member in its port namespace: reached by L3DSR at its VPC address.
  PortVip l4;
  PHOTON_ASSIGN_OR_RETURN(l4.vip, L4VipFor(instance, &l4.dscp));
  if (!l4.vip.empty() && instance.spec().has_vm()) {
    return absl::FailedPreconditionError(
        "spec.vm: the RegionService's L4 LoadBalancer (VIP " + l4.vip +
        ") answers its clients directly from the VIP (DSR), which a VM cannot hold in its guest "
        "on node " +
        options_.node_name +
        " (network mode 'ports'); run its replicas as processes or containers, or use an L7 "
        "LoadBalancer");
  }
  if (!port_json) return absl::UnavailableError("waiting for the instance's Port");
  PHOTON_ASSIGN_OR_RETURN(network::Port port, ParseObject<network::Port>(*port_json, "Port"));
  if (port.spec().instance() != id) {
    return absl::UnavailableError("the Port " + ns + "/" + port.metadata().name() +
                                  " is still an older instance's");
  }
  if (port.metadata().agent_id() != options_.node_name) {
    return absl::UnavailableError("the Port is not assigned to node " + options_.node_name +
                                  " yet");
  }
  PHOTON_ASSIGN_OR_RETURN(net::PortSpec spec, Resolve(ns, port));
  spec.tap = instance.spec().has_vm();  // the VM provider attaches QEMU to the port's tap
  if (!l4.vip.empty()) spec.lb_vips = {l4.vip};
  const int64_t t0 = MonotonicNanos();
  const int64_t changes_before = ports_->changes();
  Status s = ports_->Apply(spec);
  apply_seconds_->Observe(static_cast<double>(MonotonicNanos() - t0) / 1e9);
  applies_->Inc();
  kernel_changes_->Set(static_cast<double>(ports_->changes()));
  set_updates_->Set(static_cast<double>(ports_->set_updates()));
  // A port the apply changed may have been made anew (its namespace was gone): what it held
  // is read again. (The count is the node's: another port's change only costs a read.)
  if (s.ok()) s = HoldPortVip(spec, l4, ports_->changes() != changes_before);
  if (!s.ok()) {
    failures_->Inc();
    return s;
  }
  return remember(ports_->NetnsPath(id));
}

StatusOr<std::string> PortWiring::L4VipFor(const compute::ComputeInstance& instance, int* dscp) {
  const auto& labels = instance.metadata().labels();
  auto rs = labels.find("photon.io/regionservice");
  if (rs == labels.end() || rs->second.empty()) return std::string();
  auto j = api_->Get("/v1/namespaces/" + instance.metadata().namespace_() + "/loadbalancers/" +
                     rs->second);
  if (!j.ok() && j.status().code() == absl::StatusCode::kNotFound) return std::string();
  if (!j.ok()) return j.status();
  PHOTON_ASSIGN_OR_RETURN(network::LoadBalancer lb,
                          ParseObject<network::LoadBalancer>(*j, "LoadBalancer"));
  if (lb.spec().type() != network::LoadBalancerSpec::L4) return std::string();
  auto vip = lb.status().details().find("vip");
  // Not allocated yet: the instance waits (retried), so that it never runs as a member
  // without the VIP and is not left without it until some later pass.
  if (vip == lb.status().details().end())
    return absl::UnavailableError("waiting for the VIP of L4 LoadBalancer " + rs->second);
  if (!net::ParseIpv4(vip->second).ok())
    return absl::FailedPreconditionError("LoadBalancer " + rs->second + ": VIP '" + vip->second +
                                         "' is not an IPv4 address");
  if (dscp != nullptr) {
    // The provider gives it with the VIP; an older one does not: wait rather than run a
    // member the LB nodes cannot reach.
    auto mark = lb.status().details().find("l3dsrDscp");
    *dscp = mark == lb.status().details().end() ? 0 : std::atoi(mark->second.c_str());
    if (*dscp < 1 || *dscp > 63)
      return absl::UnavailableError("waiting for the L3DSR DSCP of L4 LoadBalancer " + rs->second +
                                    " (details.l3dsrDscp, 1-63)");
  }
  return vip->second;
}

namespace {

// TCP connections established to `vip` (any port) in the network namespace `netns` ("" this
// process's).
int EstablishedTo(const std::string& vip, const std::string& netns) {
  auto ip = net::ParseIpv4(vip);
  if (!ip.ok()) return 0;
  // /proc/net/tcp prints the address as the in-memory (network order) word in hex.
  char want[9];
  std::snprintf(want, sizeof want, "%08X", __builtin_bswap32(*ip));
  std::stringstream in;
  if (netns.empty()) {
    in << std::ifstream("/proc/net/tcp").rdbuf();
  } else {
    net::ExecOptions o;
    o.netns = netns;
    auto out = net::ExecOk({"cat", "/proc/net/tcp"}, o);
    if (!out.ok()) return 1;  // unknown: keep waiting (bounded by the drain timeout)
    in << *out;
  }
  std::string line;
  int n = 0;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string slot, local, remote, state;
    f >> slot >> local >> remote >> state;
    if (state == "01" && local.compare(0, 8, want) == 0) ++n;
  }
  return n;
}

}  // namespace

std::string PortWiring::LbDrainPending(const compute::ComputeInstance& instance,
                                       std::chrono::steady_clock::duration waited) {
  const std::string vip = LbVipOf(instance.metadata().id());
  const auto& labels = instance.metadata().labels();
  auto rs = labels.find("photon.io/regionservice");
  if (rs == labels.end() || rs->second.empty()) return "";
  auto j = api_->Get("/v1/namespaces/" + instance.metadata().namespace_() + "/loadbalancers/" +
                     rs->second);
  // The provider's default drain timeout bounds the wait while the LoadBalancer cannot be read.
  int timeout_ms = 10000;
  if (!j.ok()) {
    if (j.status().code() == absl::StatusCode::kNotFound) return "";
    return waited >= std::chrono::milliseconds(timeout_ms) ? "" : "reading its LoadBalancer";
  }
  auto lb = ParseObject<network::LoadBalancer>(*j, "LoadBalancer");
  if (!lb.ok()) return "";
  const auto& d = lb->status().details();
  if (auto t = d.find("drainTimeoutMs"); t != d.end()) timeout_ms = std::atoi(t->second.c_str());
  if (waited >= std::chrono::milliseconds(timeout_ms)) return "";
  if (d.count("member." + instance.metadata().name())) return "still a member of " + rs->second;
  // L7: the provider lists a leaving member until HAProxy has drained it; nothing else to wait.
  if (vip.empty()) return "";
  // The node's connections to the VIP (those of every replica here that holds it).
  const int open = EstablishedTo(vip, NetnsOf(instance.metadata().id()));
  return open == 0 ? "" : std::to_string(open) + " connection(s) to " + vip + " still open";
}

Status PortWiring::HoldLbVip(const std::string& instance_id, const std::string& vip) {
  std::string old;
  bool still_held = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = lb_vips_.find(instance_id);
    if (it != lb_vips_.end()) old = it->second;
    if (old == vip) return absl::OkStatus();
    for (const auto& [id, v] : lb_vips_) {
      if (id != instance_id && v == old) still_held = true;
    }
  }
  net::ExecOptions in_node;
  in_node.netns = options_.host_netns;
  if (!vip.empty()) {
    // The node must not answer ARP for the VIP (the LB nodes own it on the wire) nor source
    // ARP from it; DSR answers leave from the VIP on the node's own route.
    PHOTON_RETURN_IF_ERROR(net::ExecOk({"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                                        "net.ipv4.conf.all.arp_announce=2"},
                                       in_node)
                               .status());
    // The label marks it as an L4 VIP of ours, for SweepLbVips after a restart.
    in_node.stdin_data = "link set lo up\naddress replace " + vip + "/32 dev lo label " +
                         std::string(kLbVipLabel) + "\n";
    PHOTON_RETURN_IF_ERROR(net::ExecOk({"ip", "-batch", "-"}, in_node).status());
    in_node.stdin_data.clear();
    if (lb_address_.empty()) {
      // Where the LB nodes send the VIP's packets: the node's source address on its default
      // route (the underlay), found once. The workload's own address (127.0.0.1 for a process
      // in mode shared) is not reachable from another node.
      PHOTON_ASSIGN_OR_RETURN(
          std::string route, net::ExecOk({"ip", "-4", "-o", "route", "get", "192.0.2.1"}, in_node));
      const size_t at = route.find(" src ");
      std::string src = at == std::string::npos ? "" : route.substr(at + 5);
      src = src.substr(0, src.find(' '));
      if (!net::ParseIpv4(src).ok())
        return absl::FailedPreconditionError(
            "L4 LoadBalancer member: node " + options_.node_name +
            " has no default route, so the LB nodes' address of it is unknown: " + route);
      std::lock_guard<std::mutex> l(mu_);
      lb_address_ = src;
    }
    spdlog::info("network: {} holds L4 VIP {} on the node's loopback", instance_id, vip);
  }
  if (!old.empty() && !still_held && old != vip) {
    auto r = net::Exec({"ip", "address", "del", old + "/32", "dev", "lo"}, in_node);
    if (!r.ok()) return r.status();  // a non-zero exit: already gone
    spdlog::info("network: L4 VIP {} left the node's loopback", old);
  }
  std::lock_guard<std::mutex> l(mu_);
  if (vip.empty()) {
    lb_vips_.erase(instance_id);
  } else {
    lb_vips_[instance_id] = vip;
  }
  return absl::OkStatus();
}

Status PortWiring::SweepLbVips(const std::vector<compute::ComputeInstance>& running) {
  std::set<std::string> keep, seen;  // seen: "namespace/regionservice" already read
  for (const auto& inst : running) {
    const auto& labels = inst.metadata().labels();
    auto rs = labels.find("photon.io/regionservice");
    if (rs == labels.end() || !seen.insert(inst.metadata().namespace_() + "/" + rs->second).second)
      continue;
    // An unreadable LoadBalancer keeps every VIP: better a stale address than a member's.
    PHOTON_ASSIGN_OR_RETURN(std::string vip, L4VipFor(inst));
    if (!vip.empty()) keep.insert(vip);
  }
  net::ExecOptions in_node;
  in_node.netns = options_.host_netns;
  PHOTON_ASSIGN_OR_RETURN(std::string out, net::ExecOk({"ip", "-4", "-o", "address", "show", "dev",
                                                        "lo", "label", kLbVipLabel},
                                                       in_node));
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find(" inet ");
    if (at == std::string::npos) continue;
    std::string cidr = line.substr(at + 6);
    cidr = cidr.substr(0, cidr.find(' '));
    const std::string vip = cidr.substr(0, cidr.find('/'));
    if (keep.count(vip)) continue;
    PHOTON_RETURN_IF_ERROR(
        net::ExecOk({"ip", "address", "del", cidr, "dev", "lo"}, in_node).status());
    spdlog::info("network: L4 VIP {} left the node's loopback (no instance here holds it)", vip);
  }
  return absl::OkStatus();
}

std::string PortWiring::LbVipOf(const std::string& instance_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (auto p = port_vips_.find(instance_id); p != port_vips_.end() && !p->second.vip.empty())
    return p->second.vip;
  auto it = lb_vips_.find(instance_id);
  return it == lb_vips_.end() ? "" : it->second;
}

std::string PortWiring::LbAddressOf(const std::string& instance_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (auto p = port_vips_.find(instance_id); p != port_vips_.end() && !p->second.vip.empty())
    return p->second.ip;
  return lb_address_;
}

std::string PortWiring::HostIfOf(const std::string& instance_id) const {
  for (const auto& p : ports_->List()) {
    if (p.instance_id == instance_id && p.slot >= 0) return net::PortManager::HostIfName(p.slot);
  }
  return "";
}

Status PortWiring::HoldPortVip(const net::PortSpec& spec, PortVip want, bool recheck) {
  const std::string& id = spec.instance_id;
  const std::string netns = ports_->NetnsPath(id);
  std::optional<PortVip> had;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = port_vips_.find(id); it != port_vips_.end()) had = it->second;
  }
  if (recheck && had && !had->vip.empty()) had.reset();
  want.ip = spec.ip;
  if (!want.vip.empty()) want.host_if = HostIfOf(id);
  if (had && had->vip == want.vip && had->dscp == want.dscp && had->host_if == want.host_if)
    return absl::OkStatus();
  if (!had) {
    // The first pass since the agent started: what the namespace holds (adopted: the same VIP
    // is put in place again idempotently, anything else removed).
    PHOTON_ASSIGN_OR_RETURN(had, ReadPortVip(id));
  }
  if (!had->vip.empty() && had->vip != want.vip) {
    PHOTON_RETURN_IF_ERROR(RemovePortVip(netns, *had, /*namespace_too=*/true));
  }
  if (!want.vip.empty()) {
    if (want.host_if.empty()) return absl::UnavailableError("the port of " + id + " has no veth");
    PHOTON_RETURN_IF_ERROR(AddPortVip(netns, want));
    spdlog::info("network: {} holds L4 VIP {} in its port namespace (L3DSR DSCP {})", id, want.vip,
                 want.dscp);
  }
  // Kept for a port without a VIP too: its next passes read nothing from the kernel.
  std::lock_guard<std::mutex> l(mu_);
  port_vips_[id] = want;
  return absl::OkStatus();
}

StatusOr<PortWiring::PortVip> PortWiring::ReadPortVip(const std::string& instance_id) const {
  PortVip v;
  for (const auto& p : ports_->List()) {
    if (p.instance_id != instance_id || !p.netns) continue;
    net::ExecOptions in_port;
    in_port.netns = ports_->NetnsPath(instance_id);
    PHOTON_ASSIGN_OR_RETURN(std::string out, net::ExecOk({"ip", "-4", "-o", "address", "show",
                                                          "dev", "lo", "label", kLbVipLabel},
                                                         in_port));
    if (size_t at = out.find(" inet "); at != std::string::npos) {
      v.vip = out.substr(at + 6, out.find('/', at) - at - 6);
      v.ip = p.tap ? p.routed_ip : p.inner_ip;
      if (p.slot >= 0) v.host_if = net::PortManager::HostIfName(p.slot);
    }
  }
  return v;
}

Status PortWiring::AddPortVip(const std::string& netns, const PortVip& v) {
  net::ExecOptions in_node;
  in_node.netns = options_.host_netns;
  // The node: the port's veth keeps a strict source check, as nft (its address and the VIP),
  // before its rp_filter (which would drop the VIP, routed elsewhere) is lifted for that veth.
  // rp_filter's effective value is the larger of `all` and the veth's: `all` must be 0.
  PHOTON_ASSIGN_OR_RETURN(std::string all,
                          net::ExecOk({"sysctl", "-n", "net.ipv4.conf.all.rp_filter"}, in_node));
  if (all != "0\n")
    return absl::FailedPreconditionError(
        "L4 LoadBalancer member in a port namespace: node " + options_.node_name +
        " has net.ipv4.conf.all.rp_filter=" + all.substr(0, all.size() - 1) +
        ", which would drop the member's answers from the VIP (the agent keeps strict rp_filter "
        "per port veth instead: set it to 0)");
  const std::string t = std::string("inet ") + kVipSourceTable;
  const std::string dev = "\"" + v.host_if + "\"";
  std::unique_lock<std::mutex> node_lock(vipsrc_mu_);
  PHOTON_RETURN_IF_ERROR(net::NftRunIn(
      options_.host_netns,
      "table " + t +
          " {\n  set relaxed { type iface_index; }\n"
          "  set allowed { type iface_index . ipv4_addr; }\n"
          "  set vip_src { type iface_index . ipv4_addr; }\n"
          "  chain prerouting { type filter hook prerouting priority raw; policy accept; }\n}\n"
          "flush chain " +
          t + " prerouting\nadd rule " + t +
          " prerouting meta iif @relaxed meta iif . ip saddr != @allowed counter drop\n"
          // The answers from the VIP are not tracked: conntrack never saw their flow's start
          // (the client's packets came in for the VPC address), so it would take one for a
          // new flow and the node's SNAT (nat.h: masquerade of the cloud's ranges, which may
          // hold the VIP pool) would rewrite their source.
          "add rule " +
          t + " prerouting meta iif . ip saddr @vip_src notrack\nadd element " + t + " allowed { " +
          dev + " . " + v.ip + ", " + dev + " . " + v.vip + " }\nadd element " + t + " vip_src { " +
          dev + " . " + v.vip + " }\nadd element " + t + " relaxed { " + dev + " }\n"));
  PHOTON_RETURN_IF_ERROR(
      net::ExecOk({"sysctl", "-qw", "net.ipv4.conf." + v.host_if + ".rp_filter=0"}, in_node)
          .status());
  node_lock.unlock();
  // The port namespace: the VIP on its loopback, never answered for by ARP, and the L3DSR
  // restore on its interface (stateless, before conntrack and the security groups).
  net::ExecOptions in_port;
  in_port.netns = netns;
  PHOTON_RETURN_IF_ERROR(net::ExecOk({"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                                      "net.ipv4.conf.all.arp_announce=2"},
                                     in_port)
                             .status());
  const std::string l3 = std::string("table netdev ") + kL3dsrTable;
  PHOTON_RETURN_IF_ERROR(net::NftRunIn(
      netns, l3 + "\ndelete " + l3 + "\n" + l3 +
                 " {\n  chain ingress {\n    type filter hook ingress device \"" +
                 net::kPortIfName + "\" priority -500; policy accept;\n    ip dscp " +
                 std::to_string(v.dscp) + " ip daddr set " + v.vip + " ip dscp set 0\n  }\n}\n"));
  in_port.stdin_data = "address replace " + v.vip + "/32 dev lo label " + kLbVipLabel + "\n";
  return net::ExecOk({"ip", "-batch", "-"}, in_port).status();
}

Status PortWiring::RemovePortVip(const std::string& netns, const PortVip& v, bool namespace_too) {
  if (namespace_too) {
    const std::string l3 = std::string("table netdev ") + kL3dsrTable;
    PHOTON_RETURN_IF_ERROR(net::NftRunIn(netns, l3 + "\ndelete " + l3 + "\n"));
    net::ExecOptions in_port;
    in_port.netns = netns;
    (void)net::Exec({"ip", "address", "del", v.vip + "/32", "dev", "lo"}, in_port);  // or gone
  }
  if (v.host_if.empty()) return absl::OkStatus();
  net::ExecOptions in_node;
  in_node.netns = options_.host_netns;
  // Strict again before the nft check goes; a veth already gone takes its setting with it.
  (void)net::Exec({"sysctl", "-qw", "net.ipv4.conf." + v.host_if + ".rp_filter=1"}, in_node);
  const std::string t = std::string("inet ") + kVipSourceTable;
  const std::string dev = "\"" + v.host_if + "\"";
  std::lock_guard<std::mutex> node_lock(vipsrc_mu_);
  const std::string all = "delete element " + t + " allowed { " + dev + " . " + v.vip + ", " + dev +
                          " . " + v.ip + " }\ndelete element " + t + " vip_src { " + dev + " . " +
                          v.vip + " }\ndelete element " + t + " relaxed { " + dev + " }\n";
  // One transaction; else one element a transaction: an element already gone refuses only its
  // own.
  if (!net::NftRunIn(options_.host_netns, all).ok()) {
    for (const std::string& e :
         {"allowed { " + dev + " . " + v.vip + " }", "allowed { " + dev + " . " + v.ip + " }",
          "vip_src { " + dev + " . " + v.vip + " }", "relaxed { " + dev + " }"}) {
      Status gone = net::NftRunIn(options_.host_netns, "delete element " + t + " " + e + "\n");
      if (!gone.ok())
        spdlog::info("network: {} {}: {}", kVipSourceTable, e, std::string(gone.message()));
    }
  }
  // The table goes with the node's last port holding a VIP.
  auto left =
      net::ExecOk({"nft", "list", "set", t.substr(0, 4), kVipSourceTable, "relaxed"}, in_node);
  if (left.ok() && left->find("elements") == std::string::npos)
    return net::NftRunIn(options_.host_netns, "table " + t + "\ndelete table " + t + "\n");
  return absl::OkStatus();
}

std::string PortWiring::LbAddress() const {
  std::lock_guard<std::mutex> l(mu_);
  return lb_address_;
}

Status PortWiring::Unwire(const std::string& instance_id) {
  {
    std::lock_guard<std::mutex> l(mu_);
    netns_.erase(instance_id);
  }
  Status vip = HoldLbVip(instance_id, "");
  if (!ports_) return vip;
  std::optional<PortVip> in_port;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = port_vips_.find(instance_id); it != port_vips_.end()) in_port = it->second;
    port_vips_.erase(instance_id);
  }
  // The node's side of a VIP held in the port (its namespace side goes with the namespace);
  // not wired since the agent started (an orphan at its start): read from the namespace.
  if (!in_port && vip.ok()) {
    auto held = ReadPortVip(instance_id);
    if (held.ok()) in_port = *held;
  }
  if (in_port && !in_port->vip.empty() && vip.ok())
    vip = RemovePortVip("", *in_port, /*namespace_too=*/false);
  const int64_t before = ports_->changes();
  Status s = ports_->Delete(instance_id);  // OK for an instance without a port
  kernel_changes_->Set(static_cast<double>(ports_->changes()));
  if (s.ok() && ports_->changes() != before) {
    spdlog::info("network: removed the port of {}", instance_id);
  }
  return s.ok() ? vip : s;
}

std::string PortWiring::NetnsOf(const std::string& instance_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = netns_.find(instance_id);
  return it == netns_.end() ? "" : it->second;
}

std::vector<std::string> PortWiring::PortIds() const {
  std::vector<std::string> out;
  if (!ports_) return out;
  for (const auto& p : ports_->List()) out.push_back(p.instance_id);
  return out;
}

}  // namespace photon::agent
