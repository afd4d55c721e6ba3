// The fiberlb controller; see lb.h.
#include "fiberlb/lb.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "common/file_util.h"
#include "common/http_server.h"

namespace photon::fiberlb {
namespace {

using nlohmann::json;

// The state without members: when this is unchanged, a change is members only.
json Structure(const State& s) {
  json j = ToJson(s);
  for (auto& p : j["pools"]) p.erase("members");
  return j;
}

// "127.0.0.1:80" → "127.0.0.1 port 80" for "set server ... addr".
std::string AddrAndPort(const std::string& address) {
  std::string host;
  int port = 0;
  (void)ParseHostPort(address, &host, &port);
  return host + " port " + std::to_string(port);
}

// Fails fast, naming the field, when another process holds a new listener's address (HAProxy
// would otherwise fail the reload after a timeout). Addresses fiberlb already serves are not
// probed: HAProxy holds them.
Status ProbeBind(const std::string& address, const std::string& where) {
  std::string host;
  int port = 0;
  PHOTON_RETURN_IF_ERROR(ParseHostPort(address, &host, &port));
  bool v6 = host.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host == "*" ? "::" : host.c_str(), &a->sin6_addr) != 1) {
      close(fd);
      return absl::InvalidArgumentError(where + ": '" + host + "' is not an IP address");
    }
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, host == "*" ? "0.0.0.0" : host.c_str(), &a->sin_addr) != 1) {
      close(fd);
      return absl::InvalidArgumentError(where + ": '" + host + "' is not an IP address");
    }
    len = sizeof *a;
  }
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
  int e = errno;
  close(fd);
  if (rc != 0) {
    return absl::FailedPreconditionError(where + ": cannot bind '" + address + "': " + strerror(e));
  }
  return absl::OkStatus();
}

double Num(const StatRow& row, const std::string& key) {
  auto it = row.find(key);
  return it == row.end() || it->second.empty() ? 0 : atof(it->second.c_str());
}

std::string Field(const StatRow& row, const std::string& key) {
  auto it = row.find(key);
  return it == row.end() ? "" : it->second;
}

std::set<std::string> VipSet(const State& state) {
  std::set<std::string> out;
  for (const auto& [name, l] : state.listeners) {
    if (l.announce) out.insert(AnnouncedVip(l));
  }
  return out;
}

// A member HAProxy sends new connections to: UP (also "UP 1/3", going down) or without checks.
bool Serves(const std::string& status) {
  return status.rfind("UP", 0) == 0 || status == "no check";
}

}  // namespace

Lb::Lb(const LbOptions& options) : options_(options) {
  paths_.run_dir = options.data_dir + "/run";
  paths_.access_log = options.access_log != "off";
  HaproxyOptions h;
  h.binary = options.haproxy_binary;
  h.run_dir = paths_.run_dir;
  if (paths_.access_log) {
    h.access_log_path =
        options.access_log.empty() ? options.data_dir + "/access.log" : options.access_log;
  }
  haproxy_ = std::make_unique<Haproxy>(h);
}

StatusOr<std::unique_ptr<Lb>> Lb::Start(const LbOptions& options, const State& initial) {
  PHOTON_RETURN_IF_ERROR(MakeDirs(options.data_dir, 0700));
  PHOTON_RETURN_IF_ERROR(MakeDirs(options.data_dir + "/run/certs", 0700));
  std::unique_ptr<Lb> lb(new Lb(options));
  State state = initial;
  auto saved = ReadFile(options.data_dir + "/state.json");
  if (saved.ok()) {
    json j = json::parse(*saved, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::DataLossError(options.data_dir + "/state.json: not JSON");
    auto parsed = StateFromJson(j);
    if (!parsed.ok()) {
      return absl::DataLossError(options.data_dir +
                                 "/state.json: " + std::string(parsed.status().message()));
    }
    state = *parsed;
    spdlog::info("re-applying {} listeners and {} pools from {}/state.json", state.listeners.size(),
                 state.pools.size(), options.data_dir);
  }
  PHOTON_RETURN_IF_ERROR(Validate(state, options.api_address));
  PHOTON_RETURN_IF_ERROR(lb->CheckAnnounce(state));
  if (options.bgp_route_protocol > 0) {
    // Before HAProxy binds them; what an earlier run held and no listener binds now goes.
    PHOTON_ASSIGN_OR_RETURN(lb->vips_, L7Vips::Open(options.bgp_route_protocol));
    PHOTON_RETURN_IF_ERROR(lb->vips_->Hold(VipSet(state)));
    PHOTON_RETURN_IF_ERROR(lb->vips_->ReleaseExcept(VipSet(state)));
  }
  PHOTON_RETURN_IF_ERROR(lb->WriteFiles(state, lb->haproxy_->ConfigPath()));
  PHOTON_RETURN_IF_ERROR(lb->haproxy_->Check(lb->haproxy_->ConfigPath()));
  PHOTON_RETURN_IF_ERROR(lb->haproxy_->Start());
  lb->state_ = state;
  PHOTON_RETURN_IF_ERROR(
      WriteFileAtomic(options.data_dir + "/state.json", ToJson(state).dump(1), 0600));
  lb->drainer_ = std::thread([p = lb.get()] { p->DrainLoop(); });
  if (lb->vips_) lb->announcer_ = std::thread([p = lb.get()] { p->AnnounceLoop(); });
  return lb;
}

Lb::~Lb() { Stop(); }

void Lb::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (drainer_.joinable()) drainer_.join();
  if (announcer_.joinable()) announcer_.join();
  // Withdrawn before HAProxy stops, so the router moves new flows away first.
  if (vips_) (void)vips_->Announce({});
  haproxy_->Stop();
  if (vips_) (void)vips_->ReleaseExcept({});
}

State Lb::Snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

Status Lb::WriteFiles(const State& state, const std::string& config_path) {
  for (const auto& [name, l] : state.listeners) {
    if (l.protocol != "https") continue;
    for (size_t i = 0; i < l.certificates.size(); ++i) {
      const Certificate& c = l.certificates[i];
      std::string pem = c.cert_pem;
      if (!pem.empty() && pem.back() != '\n') pem += "\n";
      PHOTON_RETURN_IF_ERROR(
          WriteFileAtomic(CertificatePath(paths_, name, i), pem + c.key_pem, 0600));
    }
    PHOTON_RETURN_IF_ERROR(WriteFileAtomic(CrtListPath(paths_, name), CrtList(paths_, l), 0600));
  }
  std::map<std::string, std::vector<Member>> draining;
  for (const auto& [pool, members] : draining_) {
    if (!state.pools.contains(pool)) continue;
    for (const auto& [name, d] : members) draining[pool].push_back(d.member);
  }
  return WriteFileAtomic(config_path, RenderConfig(state, paths_, draining), 0600);
}

Status Lb::CheckAnnounce(const State& state) const {
  for (const auto& [name, l] : state.listeners) {
    if (l.announce && options_.bgp_route_protocol <= 0) {
      return absl::InvalidArgumentError("listeners." + name +
                                        ".announce: this fiberlb has no bgp section to announce "
                                        "the VIP with");
    }
  }
  return absl::OkStatus();
}

Status Lb::Apply(State candidate) {
  PHOTON_RETURN_IF_ERROR(CheckAnnounce(candidate));
  // A new VIP is on the loopback before HAProxy binds it; one no listener binds any more leaves
  // after HAProxy let it go (or, on a refusal, the held set returns to the current state's).
  if (vips_) PHOTON_RETURN_IF_ERROR(vips_->Hold(VipSet(candidate)));
  Status s = ApplyToHaproxy(std::move(candidate));
  if (vips_) {
    Status released = vips_->ReleaseExcept(VipSet(state_));
    if (s.ok()) s = released;
    vips_changed_ = true;
    cv_.notify_all();
  }
  return s;
}

Status Lb::ApplyToHaproxy(State candidate) {
  PHOTON_RETURN_IF_ERROR(Validate(candidate, options_.api_address));
  std::set<std::string> bound;
  for (const auto& [name, l] : state_.listeners) bound.insert(l.address);
  for (const auto& [name, l] : candidate.listeners) {
    if (!bound.contains(l.address)) {
      PHOTON_RETURN_IF_ERROR(ProbeBind(l.address, "listeners." + name + ".address"));
    }
  }
  // Members of deleted pools need no draining: their backend goes away.
  for (auto it = draining_.begin(); it != draining_.end();) {
    it = candidate.pools.contains(it->first) ? std::next(it) : draining_.erase(it);
  }
  bool structural = Structure(candidate) != Structure(state_);
  if (!structural) {
    for (const auto& [name, pool] : candidate.pools) {
      Status s = ApplyMembers(state_.pools.at(name), pool);
      if (!s.ok()) {
        // Half applied at run time: a reload from the full configuration puts HAProxy right.
        spdlog::warn("runtime change of pool {} failed ({}); reloading", name,
                     std::string(s.message()));
        structural = true;
        break;
      }
    }
  }
  std::string next = haproxy_->ConfigPath() + ".next";
  PHOTON_RETURN_IF_ERROR(WriteFiles(candidate, next));
  if (structural) {
    Status s = haproxy_->Reload(next);
    if (!s.ok()) {
      unlink(next.c_str());
      (void)WriteFiles(state_, haproxy_->ConfigPath());
      return s;
    }
  } else if (rename(next.c_str(), haproxy_->ConfigPath().c_str()) != 0) {
    return absl::InternalError("rename " + next + ": " + strerror(errno));
  }
  state_ = std::move(candidate);
  return WriteFileAtomic(options_.data_dir + "/state.json", ToJson(state_).dump(1), 0600);
}

Status Lb::ApplyMembers(const Pool& old_pool, const Pool& new_pool) {
  std::string be = BackendName(new_pool.name);
  std::map<std::string, Member> old_members, new_members;
  for (const auto& m : old_pool.members) old_members[m.name] = m;
  for (const auto& m : new_pool.members) new_members[m.name] = m;
  auto run = [&](const std::string& command) -> Status {
    PHOTON_ASSIGN_OR_RETURN(std::string out, haproxy_->Command(command));
    // Successful commands answer nothing, or a line of news; failures say so.
    for (const char* bad : {"No such", "Unknown", "Require", "cannot", "error", "failed",
                            "Refusing", "invalid", "not found", "Invalid"}) {
      if (out.find(bad) != std::string::npos) {
        return absl::InternalError("haproxy: '" + command + "': " + out);
      }
    }
    return absl::OkStatus();
  };
  for (const auto& [name, m] : old_members) {
    if (new_members.contains(name)) continue;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(new_pool.drain_timeout_ms);
    PHOTON_RETURN_IF_ERROR(run("set server " + be + "/" + name + " state drain"));
    draining_[new_pool.name][name] = Draining{m, deadline};
    spdlog::info("member {}/{} draining (at most {} ms)", new_pool.name, name,
                 new_pool.drain_timeout_ms);
  }
  for (const auto& [name, m] : new_members) {
    auto old = old_members.find(name);
    auto& drains = draining_[new_pool.name];
    std::string server = be + "/" + name;
    if (old == old_members.end() && !drains.contains(name)) {
      PHOTON_RETURN_IF_ERROR(
          run("add server " + server + " " + m.address + " " + ServerOptions(new_pool, m)));
      if (new_pool.health_check.type != "none") {
        PHOTON_RETURN_IF_ERROR(run("enable health " + server));
      }
      PHOTON_RETURN_IF_ERROR(run("enable server " + server));
      spdlog::info("member {}/{} added at {}", new_pool.name, name, m.address);
      continue;
    }
    const Member& before = old != old_members.end() ? old->second : drains[name].member;
    if (old == old_members.end()) {  // back before its drain finished
      drains.erase(name);
      PHOTON_RETURN_IF_ERROR(run("set server " + server + " state ready"));
    }
    if (before.address != m.address) {
      PHOTON_RETURN_IF_ERROR(run("set server " + server + " addr " + AddrAndPort(m.address)));
    }
    if (before.weight != m.weight || old == old_members.end()) {
      PHOTON_RETURN_IF_ERROR(run("set weight " + server + " " + std::to_string(m.weight)));
    }
  }
  return absl::OkStatus();
}

Status Lb::FinishDrain(const std::string& pool, const Member& member) {
  std::string server = BackendName(pool) + "/" + member.name;
  PHOTON_RETURN_IF_ERROR(haproxy_->Command("set server " + server + " state maint").status());
  PHOTON_RETURN_IF_ERROR(haproxy_->Command("shutdown sessions server " + server).status());
  PHOTON_ASSIGN_OR_RETURN(std::string out, haproxy_->Command("del server " + server));
  if (out.find("Server deleted") == std::string::npos) {
    return absl::UnavailableError("del server " + server + ": " + out);
  }
  return absl::OkStatus();
}

void Lb::DrainLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping_ || draining_.empty()) continue;
    auto stats = haproxy_->ShowStat();
    if (!stats.ok()) continue;
    std::map<std::string, double> connections;  // "p_pool/member" → current sessions
    for (const auto& row : *stats) {
      connections[Field(row, "pxname") + "/" + Field(row, "svname")] = Num(row, "scur");
    }
    bool changed = false;
    auto now = std::chrono::steady_clock::now();
    for (auto& [pool, members] : draining_) {
      for (auto it = members.begin(); it != members.end();) {
        std::string server = BackendName(pool) + "/" + it->first;
        if (connections[server] > 0 && now < it->second.deadline) {
          ++it;
          continue;
        }
        Status s = FinishDrain(pool, it->second.member);
        if (!s.ok()) {
          // Idle connections to it may still be closing; the next round tries again.
          spdlog::debug("{}", std::string(s.message()));
          ++it;
          continue;
        }
        spdlog::info("member {} drained and removed", server);
        it = members.erase(it);
        changed = true;
      }
    }
    if (changed) (void)WriteFiles(state_, haproxy_->ConfigPath());
  }
}

std::map<std::string, std::string> Lb::ServingVips(const State& state) {
  std::map<std::string, std::string> out;
  if (VipSet(state).empty()) return out;  // nothing to announce: no runtime API call
  auto stats = haproxy_->ShowStat();
  if (!stats.ok()) return out;    // HAProxy not answering: nothing is served here
  std::set<std::string> serving;  // backends with a member that takes new connections
  for (const auto& row : *stats) {
    std::string sv = Field(row, "svname");
    if (sv != "BACKEND" && sv != "FRONTEND" && Serves(Field(row, "status"))) {
      serving.insert(Field(row, "pxname"));
    }
  }
  for (const auto& [name, l] : state.listeners) {
    if (l.announce && serving.contains(BackendName(l.pool))) out[AnnouncedVip(l)] = name;
  }
  return out;
}

void Lb::AnnounceLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_ || vips_changed_; });
    if (stopping_) break;
    vips_changed_ = false;
    State state = state_;
    bool draining = vips_draining_;
    lock.unlock();
    std::set<std::string> want;
    if (!draining) {
      for (const auto& [vip, listener] : ServingVips(state)) want.insert(vip);
    }
    if (Status s = vips_->Announce(want); !s.ok()) {
      spdlog::warn("l7 vips: {}", std::string(s.message()));
    }
    lock.lock();
  }
}

StatusOr<json> Lb::DescribeVips() {
  if (!vips_) return absl::NotFoundError("this fiberlb has no bgp section");
  State state = Snapshot();
  bool draining;
  {
    std::lock_guard lock(mu_);
    draining = vips_draining_;
  }
  std::set<std::string> announced = vips_->announced();
  json listeners = json::array();
  for (const auto& [name, l] : state.listeners) {
    if (!l.announce) continue;
    std::string vip = AnnouncedVip(l);
    listeners.push_back({{"name", name}, {"vip", vip}, {"announced", announced.contains(vip)}});
  }
  return json{{"draining", draining},
              {"held", vips_->held()},
              {"announced", announced},
              {"listeners", listeners}};
}

Status Lb::SetVipsDraining(bool draining) {
  if (!vips_) return absl::NotFoundError("this fiberlb has no bgp section");
  std::lock_guard lock(mu_);
  vips_draining_ = draining;
  vips_changed_ = true;
  cv_.notify_all();
  return absl::OkStatus();
}

Status Lb::PutListener(const Listener& listener) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  candidate.listeners[listener.name] = listener;
  return Apply(std::move(candidate));
}

Status Lb::DeleteListener(const std::string& name) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  if (candidate.listeners.erase(name) == 0) return absl::NotFoundError("no listener " + name);
  return Apply(std::move(candidate));
}

Status Lb::PutPool(const Pool& pool) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  candidate.pools[pool.name] = pool;
  return Apply(std::move(candidate));
}

Status Lb::DeletePool(const std::string& name) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  if (candidate.pools.erase(name) == 0) return absl::NotFoundError("no pool " + name);
  return Apply(std::move(candidate));
}

Status Lb::PutMember(const std::string& pool, const Member& member) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  auto it = candidate.pools.find(pool);
  if (it == candidate.pools.end()) return absl::NotFoundError("no pool " + pool);
  auto& members = it->second.members;
  auto m = std::find_if(members.begin(), members.end(),
                        [&](const Member& x) { return x.name == member.name; });
  if (m == members.end()) {
    members.push_back(member);
  } else {
    *m = member;
  }
  return Apply(std::move(candidate));
}

Status Lb::RemoveMember(const std::string& pool, const std::string& member) {
  std::lock_guard lock(mu_);
  State candidate = state_;
  auto it = candidate.pools.find(pool);
  if (it == candidate.pools.end()) return absl::NotFoundError("no pool " + pool);
  auto& members = it->second.members;
  auto m = std::find_if(members.begin(), members.end(),
                        [&](const Member& x) { return x.name == member; });
  if (m == members.end()) return absl::NotFoundError("no member " + member + " in pool " + pool);
  members.erase(m);
  return Apply(std::move(candidate));
}

StatusOr<json> Lb::PoolStatus(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = state_.pools.find(name);
  if (it == state_.pools.end()) return absl::NotFoundError("no pool " + name);
  json out = ToJson(it->second);
  std::set<std::string> draining;
  for (const auto& [member, d] : draining_[name]) draining.insert(member);
  lock.unlock();
  PHOTON_ASSIGN_OR_RETURN(auto stats, haproxy_->ShowStat());
  std::map<std::string, StatRow> rows;
  for (const auto& row : stats) {
    if (Field(row, "pxname") == BackendName(name)) rows[Field(row, "svname")] = row;
  }
  for (auto& m : out["members"]) {
    const StatRow& row = rows[m["name"].get<std::string>()];
    m["status"] = Field(row, "status");
    m["check_status"] = Field(row, "check_status");
    m["connections"] = Num(row, "scur");
  }
  json drains = json::array();
  for (const auto& d : draining) {
    drains.push_back({{"name", d}, {"connections", Num(rows[d], "scur")}});
  }
  out["draining"] = drains;
  return out;
}

bool Lb::Healthy() { return haproxy_->Command("show info").ok(); }

std::string Lb::Metrics() {
  auto stats = haproxy_->ShowStat();
  std::string out =
      "# HELP fiberlb_haproxy_up Whether HAProxy's runtime API answers.\n"
      "# TYPE fiberlb_haproxy_up gauge\n";
  out += std::string("fiberlb_haproxy_up ") + (stats.ok() ? "1" : "0") + "\n";
  if (vips_) {
    std::set<std::string> announced = vips_->announced();
    out +=
        "# HELP fiberlb_l7_vip_announced Whether this node announces an L7 listener's VIP by "
        "BGP.\n# TYPE fiberlb_l7_vip_announced gauge\n";
    for (const auto& [name, l] : Snapshot().listeners) {
      if (!l.announce) continue;
      std::string vip = AnnouncedVip(l);
      out += fmt::format("fiberlb_l7_vip_announced{{listener=\"{}\",vip=\"{}\"}} {}\n", name, vip,
                         announced.contains(vip) ? 1 : 0);
    }
  }
  if (!stats.ok()) return out;
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    std::string text;
  };
  std::vector<Family> families = {
      {"fiberlb_listener_connections", "gauge", "Current client connections.", ""},
      {"fiberlb_listener_connections_total", "counter", "Client connections accepted.", ""},
      {"fiberlb_listener_requests_total", "counter", "HTTP requests received.", ""},
      {"fiberlb_listener_errors_total", "counter", "Bad requests and denied ones.", ""},
      {"fiberlb_member_up", "gauge", "1 when the member takes traffic (UP or DRAIN).", ""},
      {"fiberlb_member_connections", "gauge", "Current connections to the member.", ""},
      {"fiberlb_member_connections_total", "counter", "Connections made to the member.", ""},
      {"fiberlb_member_errors_total", "counter", "Connection and response errors.", ""},
      {"fiberlb_member_responses_5xx_total", "counter", "5xx responses of the member.", ""},
      {"fiberlb_member_weight", "gauge", "Effective weight.", ""},
  };
  auto add = [&](size_t i, const std::string& labels, double v) {
    families[i].text += fmt::format("{}{{{}}} {}\n", families[i].name, labels, v);
  };
  for (const auto& row : *stats) {
    std::string px = Field(row, "pxname"), sv = Field(row, "svname");
    if (sv == "FRONTEND" && px.rfind("l_", 0) == 0) {
      std::string labels = fmt::format("listener=\"{}\"", px.substr(2));
      add(0, labels, Num(row, "scur"));
      add(1, labels, Num(row, "stot"));
      add(2, labels, Num(row, "req_tot"));
      add(3, labels, Num(row, "ereq") + Num(row, "dreq"));
    } else if (px.rfind("p_", 0) == 0 && sv != "BACKEND" && sv != "FRONTEND") {
      std::string labels = fmt::format("pool=\"{}\",member=\"{}\"", px.substr(2), sv);
      std::string status = Field(row, "status");
      add(4, labels, status.rfind("UP", 0) == 0 || status.rfind("DRAIN", 0) == 0 ? 1 : 0);
      add(5, labels, Num(row, "scur"));
      add(6, labels, Num(row, "stot"));
      add(7, labels, Num(row, "econ") + Num(row, "eresp"));
      add(8, labels, Num(row, "hrsp_5xx"));
      add(9, labels, Num(row, "weight"));
    }
  }
  for (const auto& f : families) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", f.name, f.help, f.name, f.type, f.text);
  }
  return out;
}

}  // namespace photon::fiberlb
