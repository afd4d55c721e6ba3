// fiberlb's L4 listeners; see l4_service.h.
#include "fiberlb/l4_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/file_util.h"
#include "common/http_server.h"
#include "fiberlb/model.h"

namespace photon::fiberlb {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(where + ": " + what);
}

Status OnlyFields(const json& j, const std::string& where, const std::set<std::string>& known) {
  if (!j.is_object()) return Bad(where, "must be an object");
  for (const auto& [key, value] : j.items()) {
    if (!known.contains(key)) return Bad(where + "." + key, "unknown field");
  }
  return absl::OkStatus();
}

Status Str(const json& j, const std::string& key, const std::string& where, std::string* out,
           bool required = false) {
  if (!j.contains(key)) return required ? Bad(where + "." + key, "required") : absl::OkStatus();
  if (!j[key].is_string()) return Bad(where + "." + key, "must be a string");
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

template <typename T>
Status Int(const json& j, const std::string& key, const std::string& where, T* out, int64_t min,
           int64_t max, bool required = false) {
  if (!j.contains(key)) return required ? Bad(where + "." + key, "required") : absl::OkStatus();
  if (!j[key].is_number_integer()) return Bad(where + "." + key, "must be an integer");
  int64_t v = j[key].get<int64_t>();
  if (v < min || v > max) return Bad(where + "." + key, fmt::format("must be in {}..{}", min, max));
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

bool Ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

StatusOr<L4HealthCheck> HealthFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(
      OnlyFields(j, where, {"type", "port", "interval_ms", "timeout_ms", "rise", "fall"}));
  L4HealthCheck h;
  PHOTON_RETURN_IF_ERROR(Str(j, "type", where, &h.type));
  if (h.type == "http") {
    return Bad(where + ".type", "http checks are HAProxy's; L4 listeners take tcp or none");
  }
  if (h.type != "none" && h.type != "tcp") return Bad(where + ".type", "must be tcp or none");
  PHOTON_RETURN_IF_ERROR(Int(j, "port", where, &h.port, 0, 65535));
  PHOTON_RETURN_IF_ERROR(Int(j, "interval_ms", where, &h.interval_ms, 50, 3600000));
  PHOTON_RETURN_IF_ERROR(Int(j, "timeout_ms", where, &h.timeout_ms, 10, 60000));
  PHOTON_RETURN_IF_ERROR(Int(j, "rise", where, &h.rise, 1, 100));
  PHOTON_RETURN_IF_ERROR(Int(j, "fall", where, &h.fall, 1, 100));
  return h;
}

// A TCP connect from this node's namespace, bounded by timeout: "ok" or why it failed.
std::string CheckTcp(const std::string& address, int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  std::string result = "ok";
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) {
      result = strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (poll(&p, 1, timeout_ms) != 1) {
        result = "timeout";
      } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        result = strerror(err);
      }
    }
  }
  close(fd);
  return result;
}

l4::L4Protocol Proto(const std::string& p) {
  return p == "udp" ? l4::L4Protocol::kUdp : l4::L4Protocol::kTcp;
}

}  // namespace

StatusOr<L4ListenerSpec> L4ListenerFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(OnlyFields(j, where,
                                    {"name", "vip", "port", "protocol", "members", "health_check",
                                     "l3dsr_dscp", "drain_timeout_ms"}));
  L4ListenerSpec l;
  PHOTON_RETURN_IF_ERROR(Str(j, "name", where, &l.name, true));
  if (!ValidName(l.name)) return Bad(where + ".name", "must be [A-Za-z0-9_.-], 1..64");
  PHOTON_RETURN_IF_ERROR(Str(j, "vip", where, &l.vip, true));
  if (!Ipv4(l.vip)) return Bad(where + ".vip", "'" + l.vip + "' is not an IPv4 address");
  PHOTON_RETURN_IF_ERROR(Int(j, "port", where, &l.port, 1, 65535, true));
  PHOTON_RETURN_IF_ERROR(Str(j, "protocol", where, &l.protocol));
  if (l.protocol != "tcp" && l.protocol != "udp") {
    return Bad(where + ".protocol", "must be tcp or udp (http and https are HAProxy's listeners)");
  }
  PHOTON_RETURN_IF_ERROR(Int(j, "l3dsr_dscp", where, &l.l3dsr_dscp, 0, 63));
  PHOTON_RETURN_IF_ERROR(Int(j, "drain_timeout_ms", where, &l.drain_timeout_ms, 0, 3600000));
  if (l.protocol == "udp" && j.contains("drain_timeout_ms") && l.drain_timeout_ms != 0) {
    // A UDP flow has no SYN that tells a new one from an established one.
    return Bad(where + ".drain_timeout_ms", "tcp only (udp listeners take 0)");
  }
  if (l.protocol == "udp") l.drain_timeout_ms = 0;
  if (j.contains("health_check")) {
    PHOTON_ASSIGN_OR_RETURN(l.health_check,
                            HealthFromJson(j["health_check"], where + ".health_check"));
  }
  if (l.protocol == "udp" && l.health_check.type == "tcp" && l.health_check.port == 0) {
    return Bad(where + ".health_check.port", "a tcp check of a udp listener needs a port");
  }
  if (j.contains("members") && !j["members"].is_array()) return Bad(where + ".members", "a list");
  std::set<std::string> seen;
  for (size_t i = 0; j.contains("members") && i < j["members"].size(); ++i) {
    const json& m = j["members"][i];
    std::string w = fmt::format("{}.members[{}]", where, i);
    PHOTON_RETURN_IF_ERROR(OnlyFields(m, w, {"address", "weight", "forward"}));
    L4MemberSpec spec;
    PHOTON_RETURN_IF_ERROR(Str(m, "address", w, &spec.address, true));
    if (!Ipv4(spec.address)) {
      // DSR keeps the destination port: the member serves the listener's port itself.
      return Bad(w + ".address", "'" + spec.address +
                                     "' is not an IPv4 address (no port: with DSR the member "
                                     "serves the listener's port)");
    }
    if (!seen.insert(spec.address).second) return Bad(w + ".address", "listed twice");
    PHOTON_RETURN_IF_ERROR(Int(m, "weight", w, &spec.weight, 0, 65535));
    if (m.contains("forward")) {
      PHOTON_RETURN_IF_ERROR(Str(m, "forward", w, &spec.forward, true));
      if (spec.forward != "auto" && spec.forward != "l2" && spec.forward != "l3")
        return Bad(w + ".forward", "'" + spec.forward + "' is not auto, l2 or l3");
    }
    l.members.push_back(spec);
  }
  return l;
}

json ToJson(const L4ListenerSpec& l) {
  json members = json::array();
  for (const auto& m : l.members)
    members.push_back({{"address", m.address}, {"weight", m.weight}, {"forward", m.forward}});
  const L4HealthCheck& h = l.health_check;
  return {{"name", l.name},
          {"vip", l.vip},
          {"port", l.port},
          {"protocol", l.protocol},
          {"members", members},
          {"health_check",
           {{"type", h.type},
            {"port", h.port},
            {"interval_ms", h.interval_ms},
            {"timeout_ms", h.timeout_ms},
            {"rise", h.rise},
            {"fall", h.fall}}},
          {"l3dsr_dscp", l.l3dsr_dscp},
          {"drain_timeout_ms", l.drain_timeout_ms}};
}

StatusOr<L4Settings> L4SettingsFromJson(const json& l4, const json& bgp) {
  L4Settings s;
  if (!bgp.is_null()) {
    if (l4.is_null()) return Bad("bgp", "announces the VIPs of L4 listeners: needs an l4 section");
    PHOTON_RETURN_IF_ERROR(OnlyFields(bgp, "bgp", {"route_protocol"}));
    PHOTON_RETURN_IF_ERROR(Int(bgp, "route_protocol", "bgp", &s.route_protocol, 1, 254));
  }
  PHOTON_RETURN_IF_ERROR(OnlyFields(l4, "l4", {"device", "table", "hash_seed", "listeners"}));
  PHOTON_RETURN_IF_ERROR(Str(l4, "device", "l4", &s.device, true));
  PHOTON_RETURN_IF_ERROR(Str(l4, "table", "l4", &s.table));
  PHOTON_RETURN_IF_ERROR(Int(l4, "hash_seed", "l4", &s.hash_seed, 0, 0xffffffffLL));
  if (l4.contains("listeners") && !l4["listeners"].is_array()) {
    return Bad("l4.listeners", "must be a list");
  }
  std::set<std::string> names;
  for (size_t i = 0; l4.contains("listeners") && i < l4["listeners"].size(); ++i) {
    PHOTON_ASSIGN_OR_RETURN(
        auto l, L4ListenerFromJson(l4["listeners"][i], fmt::format("l4.listeners[{}]", i)));
    if (!names.insert(l.name).second) {
      return Bad(fmt::format("l4.listeners[{}].name", i), "'" + l.name + "' listed twice");
    }
    s.listeners.push_back(std::move(l));
  }
  return s;
}

Status CheckL4Overlap(const L4ListenerSpec& l, const std::vector<std::string>& l7_addresses,
                      const std::string& where) {
  if (l.protocol != "tcp") return absl::OkStatus();  // HAProxy listens on TCP only
  for (const auto& address : l7_addresses) {
    std::string host;
    int port = 0;
    if (!ParseHostPort(address, &host, &port).ok() || port != l.port) continue;
    if (host == l.vip || host == "0.0.0.0" || host == "*" || host == "::" || host.empty()) {
      return Bad(where + ".port",
                 fmt::format("{}:{} overlaps the L7 listener on {}", l.vip, l.port, address));
    }
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<L4Service>> L4Service::Start(const std::string& data_dir,
                                                      const L4Settings& settings) {
  l4::L4BalancerOptions o;
  o.device = settings.device;
  o.table = settings.table;
  o.hash_seed = settings.hash_seed;
  o.route_protocol = settings.route_protocol;
  PHOTON_ASSIGN_OR_RETURN(auto balancer, l4::L4Balancer::Open(o));
  std::unique_ptr<L4Service> svc(new L4Service(data_dir, settings));
  svc->balancer_ = std::move(balancer);
  std::vector<L4ListenerSpec> initial = settings.listeners;
  bool draining = false;
  auto saved = ReadFile(data_dir + "/l4_state.json");
  if (saved.ok()) {
    json j = json::parse(*saved, nullptr, false);
    if (!j.is_object() || !j["listeners"].is_array()) {
      return absl::DataLossError(data_dir + "/l4_state.json: not fiberlb's L4 state");
    }
    initial.clear();
    for (const auto& l : j["listeners"]) {
      PHOTON_ASSIGN_OR_RETURN(auto spec, L4ListenerFromJson(l, "l4_state.json"));
      initial.push_back(std::move(spec));
    }
    draining = j.value("draining", false);
    spdlog::info("re-applying {} L4 listeners from {}/l4_state.json", initial.size(), data_dir);
  }
  {
    std::lock_guard lock(svc->mu_);
    svc->draining_ = draining;
    PHOTON_RETURN_IF_ERROR(svc->balancer_->SetDraining(draining));
    for (const auto& l : initial) {
      svc->listeners_[l.name] = l;
      PHOTON_RETURN_IF_ERROR(svc->ApplyLocked(l));
    }
    // Listeners a previous run left in the table but the state no longer has are gone: the
    // balancer's table is rebuilt from what was applied, routes it adopted are withdrawn.
    PHOTON_RETURN_IF_ERROR(svc->SaveLocked());
  }
  svc->checker_ = std::thread([p = svc.get()] { p->CheckLoop(); });
  return svc;
}

L4Service::~L4Service() { Stop(); }

void L4Service::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (checker_.joinable()) checker_.join();
  if (Status s = balancer_->Close(); !s.ok()) {
    spdlog::warn("L4: closing the table: {}", std::string(s.message()));
  }
}

bool L4Service::HealthyLocked(const L4ListenerSpec& l, const L4MemberSpec& m) {
  if (l.health_check.type == "none") return true;
  auto it = health_.find({l.name, m.address});
  return it != health_.end() && it->second.healthy;
}

photon::Status L4Service::ApplyLocked(const L4ListenerSpec& l) {
  l4::L4Listener out;
  out.vip = l.vip;
  out.port = static_cast<uint16_t>(l.port);
  out.protocol = Proto(l.protocol);
  out.l3dsr_dscp = static_cast<uint8_t>(l.l3dsr_dscp);
  out.drain_ms = static_cast<uint32_t>(l.drain_timeout_ms);
  for (const auto& m : l.members) {
    l4::L4Member member;
    member.address = m.address;
    member.weight = static_cast<uint32_t>(m.weight);
    member.forward = m.forward == "l2"   ? l4::L4Forward::kL2
                     : m.forward == "l3" ? l4::L4Forward::kL3
                                         : l4::L4Forward::kAuto;
    member.healthy = HealthyLocked(l, m);
    out.members.push_back(member);
  }
  photon::Status s = balancer_->Apply(out);
  if (s.ok()) {
    errors_.erase(l.name);
  } else {
    errors_[l.name] = std::string(s.message());
  }
  return s;
}

photon::Status L4Service::SaveLocked() {
  json list = json::array();
  for (const auto& [name, l] : listeners_) list.push_back(ToJson(l));
  json j = {{"listeners", list}, {"draining", draining_}};
  return WriteFileAtomic(data_dir_ + "/l4_state.json", j.dump(1), 0600);
}

photon::Status L4Service::PutListener(const L4ListenerSpec& listener) {
  std::lock_guard lock(mu_);
  for (const auto& [name, l] : listeners_) {
    if (name != listener.name && l.vip == listener.vip && l.port == listener.port &&
        l.protocol == listener.protocol) {
      return Bad("l4.listeners." + listener.name + ".port",
                 fmt::format("{}:{}/{} is listener {}'s", l.vip, l.port, l.protocol, name));
    }
  }
  auto old = listeners_.find(listener.name);
  if (old != listeners_.end() &&
      (old->second.vip != listener.vip || old->second.port != listener.port ||
       old->second.protocol != listener.protocol)) {
    PHOTON_RETURN_IF_ERROR(balancer_->Remove(
        old->second.vip, static_cast<uint16_t>(old->second.port), Proto(old->second.protocol)));
  }
  // Members new to the listener are checked at once (they are out until their first check).
  std::set<std::string> keep;
  for (const auto& m : listener.members) keep.insert(m.address);
  for (auto it = health_.begin(); it != health_.end();) {
    bool drop = it->first.first == listener.name && !keep.contains(it->first.second);
    it = drop ? health_.erase(it) : std::next(it);
  }
  PHOTON_RETURN_IF_ERROR(ApplyLocked(listener));
  listeners_[listener.name] = listener;
  cv_.notify_all();
  return SaveLocked();
}

photon::Status L4Service::DeleteListener(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = listeners_.find(name);
  if (it == listeners_.end()) return absl::NotFoundError("no L4 listener " + name);
  PHOTON_RETURN_IF_ERROR(balancer_->Remove(it->second.vip, static_cast<uint16_t>(it->second.port),
                                           Proto(it->second.protocol)));
  listeners_.erase(it);
  errors_.erase(name);
  for (auto h = health_.begin(); h != health_.end();) {
    h = h->first.first == name ? health_.erase(h) : std::next(h);
  }
  return SaveLocked();
}

photon::Status L4Service::SetDraining(bool draining) {
  std::lock_guard lock(mu_);
  PHOTON_RETURN_IF_ERROR(balancer_->SetDraining(draining));
  draining_ = draining;
  spdlog::info("L4: node {}", draining ? "draining: every VIP withdrawn" : "serving");
  return SaveLocked();
}

std::vector<L4ListenerSpec> L4Service::Listeners() const {
  std::lock_guard lock(mu_);
  std::vector<L4ListenerSpec> out;
  for (const auto& [name, l] : listeners_) out.push_back(l);
  return out;
}

json L4Service::Describe() {
  std::unique_lock lock(mu_);
  json listeners = json::array();
  std::vector<L4ListenerSpec> specs;
  for (const auto& [name, l] : listeners_) {
    json j = ToJson(l);
    for (auto& m : j["members"]) {
      std::string address = m["address"];
      auto h = health_.find({name, address});
      bool checked = l.health_check.type != "none";
      m["healthy"] = !checked || (h != health_.end() && h->second.healthy);
      m["check"] = !checked ? "none" : h == health_.end() ? "pending" : h->second.last;
    }
    if (errors_.contains(name)) j["error"] = errors_[name];
    listeners.push_back(j);
    specs.push_back(l);
  }
  json out = {{"draining", draining_}, {"announced", balancer_->AnnouncedVips()}};
  // Counters are read without the lock: nft runs as a process, and checks must not wait.
  lock.unlock();
  for (size_t i = 0; i < specs.size(); ++i) {
    auto packets = balancer_->ForwardedPackets(specs[i].vip, static_cast<uint16_t>(specs[i].port),
                                               Proto(specs[i].protocol));
    listeners[i]["forwarded_packets"] = packets.ok() ? *packets : 0;
  }
  out["listeners"] = listeners;
  return out;
}

std::string L4Service::Metrics() {
  json s = Describe();
  std::string up, packets, announced;
  for (const auto& l : s["listeners"]) {
    std::string name = l["name"];
    packets += fmt::format("fiberlb_l4_forwarded_packets_total{{listener=\"{}\"}} {}\n", name,
                           l["forwarded_packets"].get<uint64_t>());
    for (const auto& m : l["members"]) {
      up += fmt::format("fiberlb_l4_member_up{{listener=\"{}\",member=\"{}\"}} {}\n", name,
                        m["address"].get<std::string>(), m["healthy"].get<bool>() ? 1 : 0);
    }
  }
  for (const auto& vip : s["announced"]) {
    announced += fmt::format("fiberlb_l4_vip_announced{{vip=\"{}\"}} 1\n", vip.get<std::string>());
  }
  return "# HELP fiberlb_l4_forwarded_packets_total Packets this node's L4 rule forwarded.\n"
         "# TYPE fiberlb_l4_forwarded_packets_total counter\n" +
         packets +
         "# HELP fiberlb_l4_member_up 1 when the member is in this node's Maglev table.\n"
         "# TYPE fiberlb_l4_member_up gauge\n" +
         up +
         "# HELP fiberlb_l4_vip_announced VIPs this node announces (BGP through its BIRD).\n"
         "# TYPE fiberlb_l4_vip_announced gauge\n" +
         announced + fmt::format("fiberlb_l4_draining {}\n", s["draining"].get<bool>() ? 1 : 0);
}

void L4Service::CheckLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stopping_) break;
    if (photon::Status s = balancer_->ExpireDrains(); !s.ok()) {
      spdlog::warn("L4: ending flow drains: {}", std::string(s.message()));
    }
    // Due checks are collected under the lock and run without it (a check may take its
    // timeout); results are applied under it again.
    struct Due {
      std::string listener, address;
      int port, timeout_ms;
    };
    std::vector<Due> due;
    auto now = Clock::now();
    for (const auto& [name, l] : listeners_) {
      if (l.health_check.type != "tcp") continue;
      for (const auto& m : l.members) {
        Health& h = health_[{name, m.address}];
        if (h.next > now) continue;
        h.next = now + std::chrono::milliseconds(l.health_check.interval_ms);
        int port = l.health_check.port != 0 ? l.health_check.port : l.port;
        due.push_back({name, m.address, port, l.health_check.timeout_ms});
      }
    }
    if (due.empty()) continue;
    lock.unlock();
    std::vector<std::string> results;
    for (const auto& d : due) results.push_back(CheckTcp(d.address, d.port, d.timeout_ms));
    lock.lock();
    std::set<std::string> changed;
    for (size_t i = 0; i < due.size(); ++i) {
      auto l = listeners_.find(due[i].listener);
      auto it = health_.find({due[i].listener, due[i].address});
      if (l == listeners_.end() || it == health_.end()) continue;  // removed meanwhile
      Health& h = it->second;
      bool ok = results[i] == "ok";
      h.last = results[i];
      h.successes = ok ? h.successes + 1 : 0;
      h.failures = ok ? 0 : h.failures + 1;
      bool next = h.healthy;
      if (!h.known) {
        next = ok;
      } else if (ok && h.successes >= l->second.health_check.rise) {
        next = true;
      } else if (!ok && h.failures >= l->second.health_check.fall) {
        next = false;
      }
      h.known = true;
      if (next != h.healthy) {
        h.healthy = next;
        changed.insert(due[i].listener);
        spdlog::info("L4 member {}/{} {} ({})", due[i].listener, due[i].address,
                     next ? "UP" : "DOWN", results[i]);
      }
    }
    // A listener whose last apply failed (e.g. a member's MAC not resolved yet) is retried.
    for (const auto& [name, error] : errors_) changed.insert(name);
    for (const auto& name : changed) {
      auto l = listeners_.find(name);
      if (l == listeners_.end()) continue;
      const auto start = Clock::now();
      if (photon::Status s = ApplyLocked(l->second); !s.ok()) {
        spdlog::warn("L4 listener {}: {}", name, std::string(s.message()));
      } else {
        // bench/lb's member-death figures split detection from this rewrite with this line.
        spdlog::info(
            "L4 listener {}: table rewritten in {} ms", name,
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
      }
    }
  }
}

}  // namespace photon::fiberlb
