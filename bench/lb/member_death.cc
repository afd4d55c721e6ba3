// photon-bench-lb-member-death: member death → out of rotation on every L4 LB node (issue 20's
// target: ≤ 2 s), on the multi-host bed (tests/net) with three real fiberlb daemons (l4
// section, checks every 200 ms, timeout 200 ms, fall 2), real BIRD2 and an ECMP router, three
// DSR members and a client behind the router. Needs root.
//   sudo build/bench/lb/photon-bench-lb-member-death [--rounds N]
// Each round stops one member's server (its connections are refused from then on) and
// measures, from that moment:
// - detection: the first node's and the last node's "L4 member ... DOWN" log line;
// - the table rewrite on each node (its "table rewritten in N ms" line);
// - API: every node's GET /v1/l4 shows the member unhealthy (polled every 20 ms);
// - data path: the start of the last connection through the VIP that the dead member refused
//   (the client opens one every ~4 ms, each from a new source port, so over all nodes and slots);
// - peer, in the same run and under the same checks: HAProxy (h1's fiberlb, a tcp pool of the
//   same members with checks every 200 ms, fall 2) reporting the member DOWN.
// Medians over the rounds, and the ratio L4 (every node) / HAProxy.
#include <sys/un.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "tests/net/lb_l4_fiberlb.h"

#ifndef FIBERLB_BIN
#error "FIBERLB_BIN: path of the fiberlb binary"
#endif

namespace photon::fiberlb {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace photon::net_testing;

constexpr char kVip[] = "10.200.0.20";
constexpr int kPort = 8081;
constexpr int kPeerPort = 9081;
constexpr int kNodes = 3;
constexpr int kMembers = 3;

void Die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(1);
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string DataDir(int i) {
  return "/tmp/fiberlb-bench-md-" + std::to_string(::getpid()) + "-h" + std::to_string(i);
}

std::string Config() {
  std::string members;
  for (int i = 1; i <= kMembers; ++i) members += "          - {address: " + LbMemberIp(i) + "}\n";
  return "api: 127.0.0.1:18090\naccess_log: \"off\"\nl4:\n  device: ul0\n  listeners:\n"
         "    - name: hello\n      vip: " +
         std::string(kVip) + "\n      port: " + std::to_string(kPort) +
         "\n      protocol: tcp\n"
         "      health_check: {type: tcp, interval_ms: 200, timeout_ms: 200, rise: 2, fall: 2}\n"
         "      members:\n" +
         members + "bgp: {route_protocol: 200}\n";
}

class Bench {
 public:
  explicit Bench(NetBed& bed) : bed_(bed) {}
  ~Bench() {
    for (int i = 1; i <= kNodes; ++i) StopFiberlbPid(pids_[i], SIGTERM);
    for (auto& m : servers_) m.reset();
    for (int i = 1; i <= kNodes; ++i) {
      std::filesystem::remove_all(DataDir(i));
      std::filesystem::remove(DataDir(i) + ".yaml");
      std::filesystem::remove(DataDir(i) + ".log");
    }
  }

  void Setup() {
    if (!LbEcmpRouter(bed_).ok() || !LbClient(bed_).ok()) Die("router or client");
    for (int i = 1; i <= kMembers; ++i) {
      if (!LbMember(bed_, i, kVip).ok()) Die("member");
      StartServer(i);
    }
    for (int i = 1; i <= kNodes; ++i) {
      std::filesystem::create_directories(DataDir(i));
      std::ofstream(DataDir(i) + ".yaml") << Config();
      bed_.Run(bed_.Host(i), {"ip", "link", "set", "lo", "up"});
      pids_[i] = StartFiberlbIn(bed_, bed_.Host(i), FIBERLB_BIN, DataDir(i) + ".yaml", DataDir(i),
                                DataDir(i) + ".log");
      if (PollUntil([&] { return Call(i, "GET", "/v1/l4").first == 200; }, 30s).count() < 0)
        Die("fiberlb on h" + std::to_string(i) + " did not answer");
    }
    // The peer: HAProxy (h1's fiberlb) balancing the same members with the same checks.
    json members = json::array();
    for (int i = 1; i <= kMembers; ++i)
      members.push_back({{"name", "m" + std::to_string(i)},
                         {"address", LbMemberIp(i) + ":" + std::to_string(kPort)}});
    json pool = {
        {"members", members},
        {"health_check", {{"type", "tcp"}, {"interval_ms", 200}, {"rise", 2}, {"fall", 2}}}};
    json listener = {
        {"protocol", "tcp"}, {"address", "0.0.0.0:" + std::to_string(kPeerPort)}, {"pool", "peer"}};
    auto p = Call(1, "PUT", "/v1/pools/peer", pool.dump());
    auto l = Call(1, "PUT", "/v1/listeners/peer", listener.dump());
    if (p.first != 200 || l.first != 200) Die("peer pool/listener: " + p.second + l.second);
  }

  // One round: member `victim` dies; the figures in ms, -1 when not seen within 10 s.
  struct Round {
    double first_down = -1, last_down = -1, rewrite_max = -1, api_all = -1, data_path = -1,
           haproxy = -1;
    int refused = 0, probes = 0;
  };
  Round Kill(int victim) {
    WaitAllUp();
    Round r;
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<std::pair<Clock::time_point, bool>> probes;  // start, refused
    std::thread prober([&] {
      while (!stop) {
        auto start = Clock::now();
        bool refused = Probe();
        std::lock_guard lock(mu);
        probes.push_back({start, refused});
        std::this_thread::sleep_for(3ms);
      }
    });
    std::this_thread::sleep_for(300ms);
    const auto wall0 = std::chrono::system_clock::now();
    const auto t0 = Clock::now();
    servers_[victim]->Stop();
    auto ms = [&](Clock::time_point t) {
      return std::chrono::duration<double, std::milli>(t - t0).count();
    };
    const std::string address = LbMemberIp(victim);
    // HAProxy polled on its own thread: a GET /v1/l4 waits for that node's table rewrite, and
    // must not delay the peer's reading.
    std::thread peer([&] {
      while (Clock::now() - t0 < 10s && HaproxyStatus(victim).rfind("DOWN", 0) != 0) {
        std::this_thread::sleep_for(20ms);
      }
      if (Clock::now() - t0 < 10s) r.haproxy = ms(Clock::now());
    });
    std::set<int> down;
    while (Clock::now() - t0 < 10s && down.size() < kNodes) {
      for (int i = 1; i <= kNodes; ++i) {
        if (!down.count(i) && NodeSees(i, address, false)) down.insert(i);
      }
      if (down.size() == kNodes) r.api_all = ms(Clock::now());
      std::this_thread::sleep_for(20ms);
    }
    peer.join();
    std::this_thread::sleep_for(1000ms);  // probes after the last node's rewrite: none refused
    stop = true;
    prober.join();
    for (const auto& [start, refused] : probes) {
      if (start < t0) continue;
      ++r.probes;
      if (!refused) continue;
      ++r.refused;
      r.data_path = std::max(r.data_path, ms(start));
    }
    for (int i = 1; i <= kNodes; ++i) {
      auto [down_ms, rewrite_ms] = FromLog(i, address, wall0);
      if (down_ms >= 0) {
        r.first_down = r.first_down < 0 ? down_ms : std::min(r.first_down, down_ms);
        r.last_down = std::max(r.last_down, down_ms);
      }
      r.rewrite_max = std::max(r.rewrite_max, rewrite_ms);
    }
    StartServer(victim);
    return r;
  }

 private:
  std::pair<int, std::string> Call(int i, const std::string& method, const std::string& path,
                                   const std::string& body = "") {
    return FiberlbCall(bed_.NsPath(bed_.Host(i)), DataDir(i), 18090, method, path, body);
  }
  void StartServer(int i) {
    servers_[i] = std::make_unique<LbHelloServer>(bed_.NsPath("m" + std::to_string(i)),
                                                  "m" + std::to_string(i), kPort);
    if (!servers_[i]->ok()) Die("member server " + std::to_string(i));
  }
  bool NodeSees(int i, const std::string& address, bool healthy) {
    auto [code, body] = Call(i, "GET", "/v1/l4");
    json s = json::parse(body, nullptr, false);
    if (code != 200 || !s.is_object() || s["listeners"].empty()) return false;
    for (const auto& m : s["listeners"][0]["members"]) {
      if (m["address"] == address) return m["healthy"] == healthy;
    }
    return false;
  }
  // The member's status in h1's HAProxy, read from its runtime API socket ("show stat"), not
  // through fiberlb's API, which a GET /v1/l4 waiting for a table rewrite holds up.
  std::string HaproxyStatus(int member) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = DataDir(1) + "/run/admin.sock";
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    std::string out;
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::send(fd, "show stat\n", 10, MSG_NOSIGNAL) == 10) {
      char buf[8192];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, n);
    }
    if (fd >= 0) ::close(fd);
    // CSV: pxname,svname,...; status is the 18th field.
    const std::string row = "p_peer,m" + std::to_string(member) + ",";
    size_t at = out.find("\n" + row);
    if (at == std::string::npos) return "";
    std::string line = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    size_t field = 0, start = 0;
    for (size_t i = 0; i <= line.size() && field < 17; ++i) {
      if (i == line.size() || line[i] == ',') {
        ++field;
        start = i + 1;
      }
    }
    return line.substr(start, line.find(',', start) - start);
  }
  void WaitAllUp() {
    auto up = [&] {
      for (int m = 1; m <= kMembers; ++m) {
        for (int i = 1; i <= kNodes; ++i) {
          if (!NodeSees(i, LbMemberIp(m), true)) return false;
        }
        if (HaproxyStatus(m).rfind("UP", 0) != 0) return false;
      }
      return LbRouterPaths(bed_, kVip) == kNodes;
    };
    if (PollUntil(up, 30s).count() < 0) Die("members did not all come up");
  }
  // One connection through the VIP from a new source port: true when it was refused.
  bool Probe() {
    int fd = SocketIn(bed_.NsPath("c"), SOCK_STREAM | SOCK_NONBLOCK);
    if (fd < 0) return false;
    sockaddr_in a = Addr(kVip, kPort);
    bool refused = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (::poll(&p, 1, 500) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
        refused = err == ECONNREFUSED;
      }
    }
    linger lg{1, 0};  // RST: no TIME_WAIT left in the client
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
    return refused;
  }
  // From node i's log: ms from `wall0` to its "L4 member hello/ADDRESS DOWN" line, and the
  // duration of the table rewrite logged after it ({-1, -1} if absent).
  std::pair<double, double> FromLog(int i, const std::string& address,
                                    std::chrono::system_clock::time_point wall0) {
    std::ifstream in(DataDir(i) + ".log");
    static const std::regex stamp(R"(^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+) )");
    static const std::regex rewrite(R"(table rewritten in (\d+) ms)");
    double down = -1, took = -1;
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (!std::regex_search(line, m, stamp)) continue;
      std::tm tm{};
      tm.tm_year = std::stoi(m[1]) - 1900;
      tm.tm_mon = std::stoi(m[2]) - 1;
      tm.tm_mday = std::stoi(m[3]);
      tm.tm_hour = std::stoi(m[4]);
      tm.tm_min = std::stoi(m[5]);
      tm.tm_sec = std::stoi(m[6]);
      tm.tm_isdst = -1;
      auto t = std::chrono::system_clock::from_time_t(std::mktime(&tm)) +
               std::chrono::milliseconds(std::stoi(m[7]));
      double at = std::chrono::duration<double, std::milli>(t - wall0).count();
      if (at < -1) continue;
      if (down < 0 && line.find("/" + address + " DOWN") != std::string::npos) {
        down = at;
      } else if (down >= 0 && took < 0 && std::regex_search(line, m, rewrite)) {
        took = std::stod(m[1]);
      }
    }
    return {down, took};
  }

  NetBed& bed_;
  pid_t pids_[kNodes + 1] = {};
  std::unique_ptr<LbHelloServer> servers_[kMembers + 1];
};

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

int Main(int argc, char** argv) {
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
  }
  if (::geteuid() != 0) Die("needs root (network namespaces)");
  ::signal(SIGPIPE, SIG_IGN);
  std::string error;
  auto bed = NetBed::Up(kNodes, &error);
  if (!bed) Die("bed: " + error);
  std::vector<double> first, last, rewrite, api, data, peer, loads;
  {
    Bench b(*bed);
    b.Setup();
    for (int r = 0; r < rounds; ++r) {
      loads.push_back(LoadAverage());
      auto x = b.Kill(1 + r % kMembers);
      std::printf(
          "round %d (m%d, load %.1f): DOWN first %.0f ms, last %.0f ms; longest rewrite %.0f ms; "
          "API on every node %.0f ms; last refused connection %.0f ms (%d of %d probes refused); "
          "HAProxy DOWN %.0f ms\n",
          r + 1, 1 + r % kMembers, loads.back(), x.first_down, x.last_down, x.rewrite_max,
          x.api_all, x.data_path, x.refused, x.probes, x.haproxy);
      std::fflush(stdout);
      first.push_back(x.first_down);
      last.push_back(x.last_down);
      rewrite.push_back(x.rewrite_max);
      api.push_back(x.api_all);
      data.push_back(x.data_path);
      peer.push_back(x.haproxy);
    }
  }
  std::printf(
      "\nmember death, checks every 200 ms, fall 2, %d rounds, load average %.1f-%.1f "
      "(medians):\n"
      "  detected (DOWN logged): first node %.0f ms, last node %.0f ms\n"
      "  table rewrite (longest node): %.0f ms\n"
      "  out of rotation on every L4 node: API %.0f ms, data path (last refused connection) "
      "%.0f ms (target <= 2000 ms)\n"
      "  peer, HAProxy with the same checks: DOWN after %.0f ms; L4 every node / HAProxy = "
      "%.2f\n",
      rounds, *std::min_element(loads.begin(), loads.end()),
      *std::max_element(loads.begin(), loads.end()), Median(first), Median(last), Median(rewrite),
      Median(api), Median(data), Median(peer), Median(api) / Median(peer));
  return 0;
}

}  // namespace
}  // namespace photon::fiberlb

int main(int argc, char** argv) { return photon::fiberlb::Main(argc, argv); }
