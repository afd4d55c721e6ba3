#include "agent/net/port_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/net/ipv4.h"
#include "agent/net/netns.h"
#include "agent/net/nft_netlink.h"
#include "agent/net/nft_ruleset.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace photon::agent::net {
namespace {

constexpr char kNetnsDir[] = "/run/netns/";
constexpr char kAliasPrefix[] = "photon-port:";
constexpr char kGateway[] = "169.254.1.1";
constexpr char kMetadata[] = "169.254.1.2";
constexpr uint32_t kLinkBase = 0xa9fe2000;  // 169.254.32.0

// `ip -j -batch` prints one JSON document a line.
std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    out.push_back(j.is_discarded() ? nlohmann::json::array() : j);
  }
  return out;
}

bool HasFlag(const nlohmann::json& link, const char* flag) {
  for (const auto& f : link.value("flags", nlohmann::json::array())) {
    if (f.is_string() && f.get<std::string>() == flag) return true;
  }
  return false;
}

std::string FirstV4(const nlohmann::json& link) {
  for (const auto& a : link.value("addr_info", nlohmann::json::array())) {
    if (a.value("family", "") == "inet" && a.value("prefixlen", 0) == 32) {
      return a.value("local", "");
    }
  }
  return "";
}

int SlotOfIfName(const std::string& name) {
  if (name.size() < 3 || name.compare(0, 2, "pc") != 0) return -1;
  unsigned slot = 0;
  if (std::sscanf(name.c_str() + 2, "%x", &slot) != 1 || slot >= kMaxPortsPerNode) return -1;
  return name == PortManager::HostIfName(static_cast<int>(slot)) ? static_cast<int>(slot) : -1;
}

// Each port with a rule change keeps an nfnetlink socket (and a create opens rtnetlink ones):
// a node of kMaxPortsPerNode ports needs more descriptors than the usual soft limit of 1024.
// The soft limit goes up to what that needs, within the hard limit; short of it, the ports
// past the limit get their rule changes through nft (logged) instead of failing.
void RaiseFdLimit() {
  constexpr rlim_t kWanted = 2 * kMaxPortsPerNode + 1024;
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= kWanted) return;
  rlim_t want = std::min<rlim_t>(kWanted, r.rlim_max);
  if (want <= r.rlim_cur) {
    spdlog::warn("network: open files limited to {} (hard limit)", r.rlim_cur);
    return;
  }
  r.rlim_cur = want;
  ::setrlimit(RLIMIT_NOFILE, &r);
}

}  // namespace

std::string PortManager::LinkAddress(int slot) { return FormatIpv4(kLinkBase + slot); }

std::string PortManager::HostIfName(int slot) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "pc%04x", slot);
  return buf;
}

std::string PortManager::NetnsName(const std::string& id) const {
  return options_.netns_prefix + id;
}

std::string PortManager::NetnsPath(const std::string& id) const {
  return kNetnsDir + NetnsName(id);
}

StatusOr<std::string> PortManager::Run(const std::vector<std::string>& argv,
                                       const std::string& netns, const std::string& input,
                                       bool change) {
  if (change) changes_.fetch_add(1);
  ExecOptions o;
  o.netns = netns;
  o.stdin_data = input;
  return ExecOk(argv, o);
}

StatusOr<std::unique_ptr<PortManager>> PortManager::Open(PortManagerOptions options) {
  if (options.netns_prefix.empty() || options.netns_prefix.size() > 40) {
    return absl::InvalidArgumentError("netns_prefix: must be 1-40 characters");
  }
  // How `ip link add ... netns X`, run inside a port namespace, names the node's namespace:
  // its name under /run/netns, or for our own namespace our pid.
  std::string host_ref = std::to_string(::getpid());
  if (!options.host_netns.empty()) {
    if (!absl::StartsWith(options.host_netns, kNetnsDir) ||
        options.host_netns.find('/', sizeof(kNetnsDir) - 1) != std::string::npos) {
      return absl::InvalidArgumentError("host_netns: must be /run/netns/NAME or empty");
    }
    host_ref = options.host_netns.substr(sizeof(kNetnsDir) - 1);
  }
  RaiseFdLimit();
  std::unique_ptr<PortManager> m(new PortManager(std::move(options)));
  m->host_ref_ = host_ref;
  const std::string host_ns =
      m->options_.host_netns.empty() ? "/proc/self/ns/net" : m->options_.host_netns;
  m->host_netns_fd_ = ::open(host_ns.c_str(), O_RDONLY | O_CLOEXEC);
  if (m->host_netns_fd_ < 0) {
    return absl::NotFoundError("network namespace " + host_ns + ": " + strerror(errno));
  }
  PHOTON_ASSIGN_OR_RETURN(m->probe_, LinkProbe::Open(m->options_.host_netns));
  PHOTON_RETURN_IF_ERROR(PrepareNetnsDir());
  PHOTON_RETURN_IF_ERROR(m->PrepareNode());
  PHOTON_RETURN_IF_ERROR(m->Scan());
  m->reaper_ = std::thread([pm = m.get()] { pm->ReapLoop(); });
  return m;
}

PortManager::~PortManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  reaper_wake_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (host_netns_fd_ >= 0) ::close(host_netns_fd_);
}

void PortManager::ReapLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    reaper_wake_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_ || dying_.empty()) continue;
    // The kernel is asked without the lock: Apply and Delete must not wait for a walk over
    // thousands of going links. A dying slot is not reused until it leaves dying_ here.
    auto dying = dying_;
    lock.unlock();
    std::vector<int> gone = GoneSlots(dying, std::chrono::seconds(3));
    lock.lock();
    for (int slot : gone) {
      if (dying_.erase(slot) > 0) slot_used_[slot] = false;
    }
  }
}

Status PortManager::PrepareNode() {
  const std::string& ns = options_.host_netns;
  PHOTON_ASSIGN_OR_RETURN(std::string lo,
                          Run({"ip", "-j", "addr", "show", "dev", "lo"}, ns, "", false));
  std::string batch;
  for (const char* addr : {kGateway, kMetadata}) {
    if (lo.find(absl::StrCat("\"local\":\"", addr, "\"")) == std::string::npos) {
      absl::StrAppend(&batch, "addr add ", addr, "/32 dev lo\n");
    }
  }
  if (!batch.empty()) PHOTON_RETURN_IF_ERROR(Run({"ip", "-batch", "-"}, ns, batch).status());
  // Forwarding between ports and the underlay; strict reverse-path check on every link made
  // from now on (the port veths): a port's packets must come from its own /32.
  PHOTON_ASSIGN_OR_RETURN(std::string sysctl, Run({"sysctl", "-n", "net.ipv4.ip_forward",
                                                   "net.ipv4.conf.default.rp_filter"},
                                                  ns, "", false));
  if (sysctl != "1\n1\n") {
    PHOTON_RETURN_IF_ERROR(
        Run({"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.default.rp_filter=1"}, ns)
            .status());
  }
  return absl::OkStatus();
}

Status PortManager::Scan() {
  PHOTON_ASSIGN_OR_RETURN(
      std::string out,
      Run({"ip", "-j", "-d", "-batch", "-"}, options_.host_netns,
          absl::StrCat("addr show type veth\nroute show proto ", options_.route_protocol, "\n"),
          false));
  auto docs = JsonLines(out);
  if (docs.size() != 2) return absl::InternalError("unexpected output of ip: " + out);
  std::map<std::string, std::string> id_of_if;
  for (const auto& link : docs[0]) {
    std::string alias = link.value("ifalias", "");
    std::string name = link.value("ifname", "");
    int slot = SlotOfIfName(name);
    if (!absl::StartsWith(alias, kAliasPrefix) || slot < 0) continue;
    PortState& p = ports_[alias.substr(sizeof(kAliasPrefix) - 1)];
    p.instance_id = alias.substr(sizeof(kAliasPrefix) - 1);
    p.slot = slot;
    slot_used_[slot] = true;
    p.host_link = HasFlag(link, "UP") && FirstV4(link) == LinkAddress(slot);
    p.host_present = true;
    id_of_if[name] = p.instance_id;
  }
  for (const auto& route : docs[1]) {
    auto it = id_of_if.find(route.value("dev", ""));
    if (it != id_of_if.end()) ports_[it->second].routed_ip = route.value("dst", "");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(kNetnsDir), ::closedir);
  while (dir != nullptr) {
    dirent* e = ::readdir(dir.get());
    if (e == nullptr) break;
    std::string name = e->d_name;
    if (!absl::StartsWith(name, options_.netns_prefix)) continue;
    std::string id = name.substr(options_.netns_prefix.size());
    if (!ValidateInstanceId(id).ok()) continue;  // not a port namespace of this prefix
    PortState& p = ports_[id];
    p.instance_id = id;
    p.netns = true;
    PHOTON_RETURN_IF_ERROR(ScanPort(&p));
  }
  // A host end without its namespace belongs to a port deleted just before (the kernel is
  // still dismantling the namespace): not a port, but its name stays taken until it goes.
  for (auto it = ports_.begin(); it != ports_.end();) {
    if (it->second.netns || !it->second.host_present) {
      ++it;
      continue;
    }
    dying_[it->second.slot] = std::chrono::steady_clock::now();
    it = ports_.erase(it);
  }
  return absl::OkStatus();
}

Status PortManager::ScanPort(PortState* port) {
  std::string ns = NetnsPath(port->instance_id);
  PHOTON_ASSIGN_OR_RETURN(std::string out,
                          Run({"ip", "-j", "-batch", "-"}, ns, "addr show\nroute show\n", false));
  auto docs = JsonLines(out);
  if (docs.size() != 2) return absl::InternalError("unexpected output of ip: " + out);
  bool up = false, tap_up = false;
  for (const auto& link : docs[0]) {
    const std::string name = link.value("ifname", "");
    if (name == kTapIfName) {
      port->tap = true;
      tap_up = HasFlag(link, "UP");
    }
    if (name != kPortIfName) continue;
    port->inner_mac = link.value("address", "");
    port->inner_ip = FirstV4(link);
    up = HasFlag(link, "UP");
  }
  bool gw = false;
  std::string tap_routed;  // a VM port's address: routed to its tap
  for (const auto& r : docs[1]) {
    gw |= r.value("dst", "") == "default" && r.value("gateway", "") == kGateway;
    if (r.value("dev", "") == kTapIfName) tap_routed = r.value("dst", "");
  }
  port->inner_ready = up && gw;
  if (port->tap) {
    // eth0 must carry no address (the namespace would deliver the guest's packets locally).
    port->inner_ready =
        port->inner_ready && tap_up && port->inner_ip.empty() && !tap_routed.empty();
    port->inner_ip = tap_routed;
  }
  ExecOptions o;
  o.netns = ns;
  PHOTON_ASSIGN_OR_RETURN(ExecResult nft, Exec({"nft", "list", "chains", "inet"}, o));
  auto pos = nft.output.find(std::string("chain ") + kRevisionChain);
  if (nft.exit_code == 0 && pos != std::string::npos) {
    size_t start = pos + 6 + sizeof(kRevisionChain) - 1;
    port->revision = nft.output.substr(start, nft.output.find_first_of(" {", start) - start);
  }
  pos = nft.output.find(std::string("chain ") + kMembersChain);
  if (nft.exit_code == 0 && pos != std::string::npos) {
    size_t start = pos + 6 + sizeof(kMembersChain) - 1;
    port->members = nft.output.substr(start, nft.output.find_first_of(" {", start) - start);
  }
  return absl::OkStatus();
}

int PortManager::AllocateSlotLocked() {
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < kMaxPortsPerNode; ++i) {
      if (!slot_used_[i]) {
        slot_used_[i] = true;
        return i;
      }
    }
    ReapSlotsLocked(std::chrono::hours(1));  // all taken: some links may have gone by now
  }
  return -1;
}

Status PortManager::Apply(const PortSpec& spec) {
  PHOTON_RETURN_IF_ERROR(ValidatePortSpec(spec));
  PortState port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    PortState& p = ports_[spec.instance_id];
    p.instance_id = spec.instance_id;
    if (p.slot < 0) p.slot = AllocateSlotLocked();
    if (p.slot < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("node has all ", kMaxPortsPerNode, " port link addresses in use"));
    }
    port = p;
  }
  Status s = ApplyPort(spec, &port);
  std::lock_guard<std::mutex> lock(mu_);
  ports_[spec.instance_id] = port;  // what is now in the kernel, even after a failure
  return s;
}

Status PortManager::ApplyPort(const PortSpec& spec, PortState* port) {
  std::string ns = NetnsPath(spec.instance_id);
  if (!port->netns) {
    changes_.fetch_add(1);
    PHOTON_RETURN_IF_ERROR(CreateNetns(NetnsName(spec.instance_id)));
    port->netns = true;
  }
  // Two batches: the namespace side (the pair is made from there, so its addresses and
  // default route go in the same process), then the host side ending with the /32 route, which
  // is what BIRD announces: the port is reachable only once ready.
  bool fresh = !port->host_present || port->inner_mac.empty();
  if (fresh && port->host_present) {
    // Half a pair cannot be trusted: make a new one (its route goes with the old link).
    PHOTON_RETURN_IF_ERROR(
        Run({"ip", "link", "del", HostIfName(port->slot)}, options_.host_netns).status());
  }
  bool link_was_up = port->host_link && !fresh;
  std::unique_ptr<LinkProbe> inner;  // rtnetlink in the port's namespace, for a fresh pair
  const bool in_process = fresh && !spec.tap && !port->tap;
  if (in_process) {
    // The hot path of an instance create: rtnetlink in-process (an `ip -batch` process on
    // each side cost 5-15 ms here). Repairs and VM ports keep `ip` (below). The pair is made
    // before the rules, both ends down (nothing passes yet): registering a device waits for
    // its namespace's nf_tables mutex, which the rules' libnftables context holds for an RCU
    // grace period (~10 ms) while its socket closes, just after the rules are in.
    PHOTON_ASSIGN_OR_RETURN(inner, LinkProbe::Open(ns));
    PHOTON_RETURN_IF_ERROR(AddPair(spec, inner.get(), port));
  }
  // Rules before anything is up: the namespace never carries traffic without them.
  PHOTON_RETURN_IF_ERROR(ApplyRules(spec, port));
  if (in_process) {
    PHOTON_RETURN_IF_ERROR(WireInner(spec, inner.get(), port));
    PHOTON_RETURN_IF_ERROR(WireHost(spec, port));
  } else {
    PHOTON_RETURN_IF_ERROR(ApplyInner(spec, fresh, port));
    PHOTON_RETURN_IF_ERROR(ApplyHost(spec, fresh, port));
  }
  if (link_was_up || !options_.wait_pair_up) return absl::OkStatus();
  return WaitPairUp(spec.instance_id, HostIfName(port->slot), inner.get());
}

// What ApplyInner's batch does for a fresh pair, in two steps: the veth made from the port's
// namespace with its MAC (both ends down); then lo up, the /32, eth0 up, the default route
// on-link via the gateway.
Status PortManager::AddPair(const PortSpec& spec, LinkProbe* inner, PortState* port) {
  changes_.fetch_add(1);
  PHOTON_RETURN_IF_ERROR(
      inner->AddVeth(kPortIfName, spec.mac, HostIfName(port->slot), host_netns_fd_));
  port->host_present = true;
  port->host_link = false;
  port->routed_ip.clear();
  return absl::OkStatus();
}

Status PortManager::WireInner(const PortSpec& spec, LinkProbe* inner, PortState* port) {
  PHOTON_ASSIGN_OR_RETURN(int lo, inner->IfIndex("lo"));
  PHOTON_RETURN_IF_ERROR(inner->SetUp(lo));
  PHOTON_ASSIGN_OR_RETURN(int eth, inner->IfIndex(kPortIfName));
  PHOTON_RETURN_IF_ERROR(inner->ReplaceAddress(eth, spec.ip));
  PHOTON_RETURN_IF_ERROR(inner->SetUp(eth));
  PHOTON_RETURN_IF_ERROR(inner->ReplaceRoute("", kGateway, eth, RTPROT_BOOT));
  port->inner_ip = spec.ip;
  port->inner_mac = spec.mac;
  port->inner_ready = true;
  return absl::OkStatus();
}

// What ApplyHost's batch does for a fresh pair: the host end's link address, alias and up,
// then the /32 route (what BIRD announces) last.
Status PortManager::WireHost(const PortSpec& spec, PortState* port) {
  changes_.fetch_add(1);
  PHOTON_ASSIGN_OR_RETURN(int host, probe_->IfIndex(HostIfName(port->slot)));
  PHOTON_RETURN_IF_ERROR(probe_->ReplaceAddress(host, LinkAddress(port->slot)));
  PHOTON_RETURN_IF_ERROR(probe_->SetUp(host, kAliasPrefix + spec.instance_id));
  port->host_link = true;
  PHOTON_RETURN_IF_ERROR(probe_->ReplaceRoute(spec.ip, "", host, options_.route_protocol));
  port->routed_ip = spec.ip;
  return absl::OkStatus();
}

Status PortManager::ApplyRules(const PortSpec& spec, PortState* port) {
  const std::string ns = NetnsPath(spec.instance_id);
  std::string rules = RenderPortRules(spec);
  std::string revision = RulesRevision(rules);
  std::string members = RenderMembers(spec);
  std::string members_revision = members.empty() ? "" : RulesRevision(members);
  const bool members_changed = port->members != members_revision;
  if (port->revision != revision) {
    changes_.fetch_add(1);
    // The usual edit (a rule's ports or addresses) changes set elements only: update them in
    // place, through the port's own nfnetlink socket, when the table holds what we applied.
    // A refused change (the table was changed behind our back) leaves it as it was (one
    // transaction), and the replacement then brings it to the spec.
    std::optional<std::vector<SetDelta>> sets;
    if (port->revision == RulesRevision(port->rules)) sets = RulesDeltaSets(port->rules, rules);
    Status native = sets ? CommitNative(spec, &*sets, port->rules, rules, members_changed,
                                        members_revision, port)
                         : absl::FailedPreconditionError("");
    if (native.ok()) {
      rule_updates_.fetch_add(1);
    } else if (sets) {
      fallbacks_.fetch_add(1);
      spdlog::warn("port {}: rule change in place not made ({}); replacing its table",
                   spec.instance_id, native.ToString());
      PHOTON_RETURN_IF_ERROR(NftRunIn(ns, RenderPortTransaction(rules, members)));
    } else {
      PHOTON_RETURN_IF_ERROR(NftRunIn(ns, RenderPortTransaction(rules, members)));
    }
    port->revision = revision;
    port->members = members_revision;
    port->rules = std::move(rules);
  } else if (members_changed) {
    // A remote group's members changed: refill its sets, the ruleset stays (its counters and
    // the flows it tracks are untouched).
    changes_.fetch_add(1);
    set_updates_.fetch_add(1);
    Status st = CommitNative(spec, nullptr, "", "", true, members_revision, port);
    if (!st.ok() && !absl::IsAborted(st)) {
      // No socket: nft does it (the kernel refusing it means the table is not ours: below).
      fallbacks_.fetch_add(1);
      spdlog::warn("port {}: member update through nft ({})", spec.instance_id, st.ToString());
      st = NftRunIn(ns, RenderMembersTransaction(members, port->members));
    }
    if (!st.ok()) {
      port->revision.clear();  // the table is not what we think: replace it next time
      return st;
    }
    port->members = members_revision;
  }
  return absl::OkStatus();
}

// One transaction on the port's nfnetlink socket: the old rules marker goes first (the kernel
// refuses the whole batch when the table is not the one we applied), then the sets' elements
// (every removal before any addition: an element that replaces an overlapping one must not
// meet it), the remote sets refilled when their members changed, the markers moved.
Status PortManager::CommitNative(const PortSpec& spec, const std::vector<SetDelta>* sets,
                                 const std::string& old_rules, const std::string& new_rules,
                                 bool members_changed, const std::string& members_revision,
                                 PortState* port) {
  NftBatch batch(kPortTable);
  if (sets != nullptr) {
    batch.DeleteChain(kRevisionChain + RulesRevision(old_rules));
    for (const SetDelta& d : *sets)
      PHOTON_RETURN_IF_ERROR(batch.DeleteElements(d.set, d.type, d.interval, d.remove));
    for (const SetDelta& d : *sets)
      PHOTON_RETURN_IF_ERROR(batch.AddElements(d.set, d.type, d.interval, d.add));
  }
  if (members_changed) {
    if (!port->members.empty()) batch.DeleteChain(kMembersChain + port->members);
    for (const auto& [name, members] : spec.remote_sets) {
      batch.FlushSet(name);
      std::set<std::string> unique(members.begin(), members.end());  // nft refuses duplicates
      PHOTON_RETURN_IF_ERROR(
          batch.AddElements(name, "ipv4_addr", false, {unique.begin(), unique.end()}));
    }
    if (!members_revision.empty()) batch.AddChain(kMembersChain + members_revision);
  }
  if (sets != nullptr) batch.AddChain(kRevisionChain + RulesRevision(new_rules));
  if (port->nft == nullptr) {
    PHOTON_ASSIGN_OR_RETURN(port->nft, NftSocket::Open(NetnsPath(spec.instance_id)));
  }
  return port->nft->Commit(batch);
}

// A veth end brought up before its peer gets its transmit queue only later, from the kernel's
// link-watch work once the peer is up too; until then it drops what it sends. Ready must mean
// passing traffic: a workload's first packet (the ARP for its gateway) lost there waits for
// the ARP retry 1 s later (the bench's ~1 s p99 of create → first TCP, with eth0's tx_dropped
// at 1). The inner end comes up first, so wait for both ends to be operationally up.
Status PortManager::WaitPairUp(const std::string& instance_id, const std::string& host_ifname,
                               LinkProbe* inner) {
  std::unique_ptr<LinkProbe> opened;
  if (inner == nullptr) {
    PHOTON_ASSIGN_OR_RETURN(opened, LinkProbe::Open(NetnsPath(instance_id)));
    inner = opened.get();
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (LinkProbe* probe : {inner, probe_.get()}) {
    const std::string ifname = probe == inner ? kPortIfName : host_ifname;
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool up, probe->OperUp(ifname));
      if (up) break;
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("port ", instance_id, ": ", ifname,
                         " not operationally up 5 s after its pair was made"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return absl::OkStatus();
}

Status PortManager::ApplyInner(const PortSpec& spec, bool fresh, PortState* port) {
  std::string batch;
  if (fresh) {
    absl::StrAppend(&batch, "link add ", kPortIfName, " type veth peer name ",
                    HostIfName(port->slot), " netns ", host_ref_, "\n");
    port->host_present = true;
    port->host_link = false;
    port->routed_ip.clear();
  } else if (port->inner_ip == spec.ip && port->inner_mac == spec.mac && port->inner_ready &&
             port->tap == spec.tap) {
    return absl::OkStatus();
  }
  if (spec.tap) return ApplyTap(spec, batch, port);
  std::string eth = kPortIfName;
  absl::StrAppend(&batch, "link set lo up\naddr flush dev ", eth, "\nlink set ", eth, " address ",
                  spec.mac, "\naddr add ", spec.ip, "/32 dev ", eth, "\nlink set ", eth,
                  " up\nroute replace default via ", kGateway, " dev ", eth, " onlink\n");
  PHOTON_RETURN_IF_ERROR(Run({"ip", "-batch", "-"}, NetnsPath(spec.instance_id), batch).status());
  port->inner_ip = spec.ip;
  port->inner_mac = spec.mac;
  port->inner_ready = true;
  return absl::OkStatus();
}

// A VM's port: eth0 without an address, the persistent tap0 the VMM attaches to, forwarding
// with proxy ARP between them; the route to the guest comes last (what Scan calls ready).
Status PortManager::ApplyTap(const PortSpec& spec, std::string batch, PortState* port) {
  const std::string ns = NetnsPath(spec.instance_id);
  const std::string eth = kPortIfName, tap = kTapIfName;
  if (!port->tap) absl::StrAppend(&batch, "tuntap add dev ", tap, " mode tap\n");
  absl::StrAppend(&batch, "link set lo up\naddr flush dev ", eth, "\nlink set ", eth, " address ",
                  spec.mac, "\nlink set ", eth, " up\nlink set ", tap,
                  " up\nroute replace default via ", kGateway, " dev ", eth, " onlink\n");
  PHOTON_RETURN_IF_ERROR(Run({"ip", "-batch", "-"}, ns, batch).status());
  port->tap = true;
  // Proxy ARP answers at once (no random delay): the node asks for the guest's IP on eth0, the
  // guest for its gateway on tap0; each is routed out of the other interface.
  PHOTON_RETURN_IF_ERROR(Run({"sysctl", "-qw", "net.ipv4.ip_forward=1",
                              absl::StrCat("net.ipv4.conf.", eth, ".proxy_arp=1"),
                              absl::StrCat("net.ipv4.conf.", tap, ".proxy_arp=1"),
                              absl::StrCat("net.ipv4.neigh.", eth, ".proxy_delay=0"),
                              absl::StrCat("net.ipv4.neigh.", tap, ".proxy_delay=0")},
                             ns)
                             .status());
  PHOTON_RETURN_IF_ERROR(
      Run({"ip", "-batch", "-"}, ns,
          absl::StrCat("neigh replace ", spec.ip, " lladdr ", spec.mac, " dev ", tap,
                       " nud permanent\nroute replace ", spec.ip, "/32 dev ", tap, "\n"))
          .status());
  port->inner_ip = spec.ip;
  port->inner_mac = spec.mac;
  port->inner_ready = true;
  return absl::OkStatus();
}

Status PortManager::ApplyHost(const PortSpec& spec, bool fresh, PortState* port) {
  std::string host = HostIfName(port->slot);
  std::string batch;
  if (fresh)
    absl::StrAppend(&batch, "link set ", host, " alias ", kAliasPrefix, spec.instance_id, "\n");
  if (!port->host_link) {
    absl::StrAppend(&batch, "addr replace ", LinkAddress(port->slot), "/32 dev ", host,
                    "\nlink set ", host, " up\n");
  }
  if (port->routed_ip != spec.ip) {
    if (!port->routed_ip.empty()) {
      absl::StrAppend(&batch, "route del ", port->routed_ip, "/32 proto ", options_.route_protocol,
                      "\n");
    }
    absl::StrAppend(&batch, "route replace ", spec.ip, "/32 dev ", host, " proto ",
                    options_.route_protocol, " scope link\n");
  }
  if (batch.empty()) return absl::OkStatus();
  PHOTON_RETURN_IF_ERROR(Run({"ip", "-batch", "-"}, options_.host_netns, batch).status());
  port->host_link = true;
  port->routed_ip = spec.ip;
  return absl::OkStatus();
}

Status PortManager::Delete(const std::string& id) {
  PortState port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = ports_.find(id);
    if (it == ports_.end()) return absl::OkStatus();
    port = it->second;
  }
  if (port.netns) {
    // The /32 first: it stops being routed and announced now. Then the namespace is dropped
    // (what still runs inside is killed: the instance is gone), in-process, and the kernel
    // dismantles it (its eth0, so the host end of the pair) in the background. It batches all
    // namespaces dropped meanwhile: 200 go in ~0.1 s, where deleting their links one by one
    // under the RTNL lock takes 18 ms each, and waiting here for each would cap a batch at
    // the number of callers. The slot is reused once its link has gone (ReapSlotsLocked,
    // which deletes a link still there 3 s on: an orphaned TCP socket closing towards a
    // peer that went first keeps its namespace alive for minutes).
    changes_.fetch_add(1);
    if (!port.routed_ip.empty()) {
      PHOTON_RETURN_IF_ERROR(probe_->DeleteHostRoute(port.routed_ip, options_.route_protocol));
    }
    PHOTON_RETURN_IF_ERROR(DeleteNetns(NetnsName(id)));
  } else if (port.host_present) {
    PHOTON_ASSIGN_OR_RETURN(bool exists, probe_->Exists(HostIfName(port.slot)));
    if (exists) {
      PHOTON_RETURN_IF_ERROR(
          Run({"ip", "link", "del", HostIfName(port.slot)}, options_.host_netns).status());
    }
    port.host_present = false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (port.slot >= 0 && port.host_present) {
    dying_[port.slot] = std::chrono::steady_clock::now();
  } else if (port.slot >= 0) {
    slot_used_[port.slot] = false;
  }
  ports_.erase(id);
  return absl::OkStatus();
}

std::vector<int> PortManager::GoneSlots(
    const std::map<int, std::chrono::steady_clock::time_point>& dying,
    std::chrono::seconds force_after) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<int> gone;
  for (const auto& [slot, since] : dying) {
    const std::string ifname = HostIfName(slot);
    StatusOr<bool> exists = probe_->Exists(ifname);
    if (!exists.ok()) continue;
    if (!*exists || (now - since > force_after && probe_->DeleteLink(ifname).ok())) {
      gone.push_back(slot);
    }
  }
  return gone;
}

void PortManager::ReapSlotsLocked(std::chrono::seconds force_after) {
  for (int slot : GoneSlots(dying_, force_after)) {
    dying_.erase(slot);
    slot_used_[slot] = false;
  }
}

std::vector<PortState> PortManager::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PortState> out;
  for (const auto& [id, p] : ports_) out.push_back(p);
  return out;
}

}  // namespace photon::agent::net
