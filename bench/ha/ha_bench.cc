// photon-bench-ha: the HA control plane's figures, on this host, all real processes.
//  1. Failover: three etcd members, three photon-servers (lease TTL 1 s), a photon-hollow
//     fleet; kill -9 of the leader, then the time until an instance created right after the
//     kill is placed (by the new leader). p50/p99 over --kills kills; the killed server is
//     started again (as a follower) before the next one.
//  2. Create throughput: API creates/s through one server on SQLite, through three servers on
//     the three-member etcd (clients spread over them), and etcd's own put rate (raw gRPC
//     client, the same concurrency) in the same run.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>

#include "../../tests/server/ha_cluster.h"

namespace ha = photon::testing::ha;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

bool Placed(const std::string& urls, const std::string& token, const std::string& name) {
  auto c = photon::HttpClient::Create(urls, token);
  c->set_timeout(milliseconds(2000));
  auto r = c->Do("GET", "/v1/namespaces/default/computeinstances/" + name);
  if (!r.ok() || r->status != 200) return false;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return !j.is_discarded() && !j["metadata"].value("agentId", "").empty();
}

int Failover(const std::string& dir, int kills) {
  auto etcd = ha::EtcdCluster::Start(dir + "/failover-etcd");
  if (!etcd) return std::fprintf(stderr, "etcd cluster did not start\n"), 1;
  ha::ControlPlane cp(
      dir, etcd->spec(), 3,
      {"--leader-lease-ttl", "1", "--node-suspect-after", "60000", "--node-down-after", "120000"});
  if (!cp.WaitUp()) return std::fprintf(stderr, "servers did not start\n"), 1;
  int leader = cp.WaitLeader(seconds(20));
  if (leader < 0) return std::fprintf(stderr, "no leader\n"), 1;
  const std::string token = cp.server(0).AdminToken();
  const auto& via = cp.server((leader + 1) % 3);
  ha::Proc hollow(
      {PHOTON_HOLLOW_BIN, "--server", via.url, "--join-token", via.dir + "/data/join.token",
       "--data-dir", dir + "/hollow", "--nodes", "3", "--heartbeat-seconds", "1", "--vcpu", "1024",
       "--memory-mb", "1048576", "--listen", "127.0.0.1:" + std::to_string(ha::FreePort())},
      dir + "/hollow.log");
  // Placements need READY nodes: wait for the first probe to be placed.
  auto client = *photon::HttpClient::Create(cp.urls(), token);
  client.set_timeout(seconds(10));
  client.Do("POST", "/v1/namespaces/default/computeinstances", ha::ProcessInstance("warm"))
      .IgnoreError();
  if (!ha::Poll([&] { return Placed(cp.urls(), token, "warm"); }, seconds(60))) {
    return std::fprintf(stderr, "nothing placed before the first kill\n"), 1;
  }
  std::vector<double> took;
  for (int k = 0; k < kills; ++k) {
    leader = cp.WaitLeader(seconds(20));
    if (leader < 0) return std::fprintf(stderr, "kill %d: no leader\n", k), 1;
    // A random point in the leader's keepalive cycle.
    std::this_thread::sleep_for(milliseconds(300 + 97 * k % 700));
    const std::string name = "probe-" + std::to_string(k);
    const auto killed = Clock::now();
    cp.server(leader).proc->Kill();
    auto r =
        client.Do("POST", "/v1/namespaces/default/computeinstances", ha::ProcessInstance(name));
    if (!r.ok() || r->status != 202) {
      return std::fprintf(stderr, "kill %d: create failed: %s\n", k,
                          r.ok() ? r->body.c_str() : std::string(r.status().message()).c_str()),
             1;
    }
    if (!ha::Poll([&] { return Placed(cp.urls(), token, name); }, seconds(30), milliseconds(10))) {
      return std::fprintf(stderr, "kill %d: %s never placed\n", k, name.c_str()), 1;
    }
    took.push_back(Ms(Clock::now() - killed));
    std::printf("kill %d: server %d, placed after %.0f ms\n", k, leader, took.back());
    std::fflush(stdout);
    cp.server(leader).Start();
    if (!ha::Poll([&] { return cp.server(leader).Health()["role"] == "follower"; }, seconds(30))) {
      return std::fprintf(stderr, "kill %d: the killed server did not come back\n", k), 1;
    }
  }
  std::printf(
      "failover (leader kill -> first placement by the new leader), %d kills: p50 %.0f ms"
      ", p99 %.0f ms, max %.0f ms (target <= 2000 ms)\n",
      kills, Percentile(took, 0.5), Percentile(took, 0.99), Percentile(took, 1.0));
  return 0;
}

// Runs `op(thread, i)` on `threads` threads for `duration`; successful ops per second.
double Rate(int threads, seconds duration, const std::function<bool(int, int)>& op) {
  std::atomic<int64_t> ok{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) ok += op(t, i) ? 1 : 0;
    });
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& t : ts) t.join();
  return static_cast<double>(ok.load()) /
         std::chrono::duration<double>(Clock::now() - start).count();
}

double CreateRate(const std::vector<std::string>& urls, const std::string& token, int threads,
                  seconds duration, const std::string& prefix) {
  return Rate(threads, duration, [&](int t, int i) {
    thread_local std::optional<photon::HttpClient> c;
    if (!c) c = *photon::HttpClient::Create(urls[t % urls.size()], token);
    auto r = c->Do("POST", "/v1/namespaces/default/computeinstances",
                   ha::ProcessInstance(prefix + std::to_string(t) + "-" + std::to_string(i)));
    return r.ok() && r->status == 202;
  });
}

int Throughput(const std::string& dir, int threads, seconds duration, int servers) {
  double sqlite = 0;
  {
    ha::ControlPlane one(dir + "/sqlite", "sqlite", 1, {});
    if (!one.WaitUp()) return std::fprintf(stderr, "sqlite server did not start\n"), 1;
    sqlite = CreateRate({one.server(0).url}, one.server(0).AdminToken(), threads, duration, "s");
  }
  auto etcd = ha::EtcdCluster::Start(dir + "/tp-etcd");
  if (!etcd) return std::fprintf(stderr, "etcd cluster did not start\n"), 1;
  double puts = 0;
  {
    auto store = photon::store::EtcdStore::Open(etcd->endpoints());
    if (!store.ok())
      return std::fprintf(stderr, "etcd: %s\n", store.status().ToString().c_str()), 1;
    const std::string value(600, 'x');  // about an instance's stored size
    puts = Rate(threads, duration, [&](int t, int i) {
      return (*store)->Put("/bench/" + std::to_string(t) + "/" + std::to_string(i), value, 0).ok();
    });
  }
  double three = 0;
  {
    ha::ControlPlane cp(dir + "/etcd-servers", etcd->spec(), servers, {});
    if (!cp.WaitUp() || cp.WaitLeader(seconds(20)) < 0) {
      return std::fprintf(stderr, "etcd servers did not start\n"), 1;
    }
    std::vector<std::string> urls;
    for (size_t i = 0; i < cp.size(); ++i) urls.push_back(cp.server(i).url);
    three = CreateRate(urls, cp.server(0).AdminToken(), threads, duration, "e");
  }
  std::printf(
      "creates/s, %d clients, %lld s each: 1 server on SQLite %.0f; %d server(s) on "
      "3-member etcd %.0f; etcd raw puts/s %.0f (ratio creates/puts %.2f; etcd/SQLite %.2f)\n",
      threads, static_cast<long long>(duration.count()), sqlite, servers, three, puts,
      puts > 0 ? three / puts : 0, sqlite > 0 ? three / sqlite : 0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"photon-bench-ha: failover time and create throughput of the HA control plane"};
  int kills = 10, threads = 16, secs = 10, servers = 3;
  bool failover_only = false, throughput_only = false;
  app.add_option("--kills", kills, "leader kills to measure");
  app.add_option("--threads", threads, "concurrent clients for the throughput runs");
  app.add_option("--seconds", secs, "length of each throughput run");
  app.add_option("--etcd-servers", servers, "photon-servers on etcd in the throughput run");
  app.add_flag("--failover-only", failover_only);
  app.add_flag("--throughput-only", throughput_only);
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const std::string dir = ha::MakeTempDir("bench-ha");
  if (dir.empty()) return 1;
  int rc = 0;
  if (!throughput_only) rc = Failover(dir + "/f", kills);
  if (rc == 0 && !failover_only) rc = Throughput(dir + "/t", threads, seconds(secs), servers);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}
