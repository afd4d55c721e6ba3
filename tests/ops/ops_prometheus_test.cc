// Prometheus with the operations pipeline (docs/operations.md "Prometheus"): Debian's real
// prometheus finds photon-server and the agents through the discovery endpoint and scrapes
// them, and an alerting rule firing in it reaches photon as an Event through
// POST /api/v2/alerts.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "../agent/cluster.h"
#include "agent/host/run.h"
#include "common/hex.h"
#include "server/ops/stats.h"
#include "store/sqlite_store.h"

namespace photon::agent::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPrometheus[] = "/usr/bin/prometheus";

// DIR/prometheus.yml from scripts/prometheus-config.sh, the generator scripts/start.sh runs
// (1 s intervals here), checked by promtool as start.sh checks it.
::testing::AssertionResult WritePrometheusConfig(const std::string& dir, const std::string& server,
                                                 const std::string& token,
                                                 const std::string& rules) {
  std::vector<std::string> argv = {
      "/bin/bash",          PHOTON_SOURCE_DIR "/scripts/prometheus-config.sh",
      "--server",           server,
      "--token-file",       token,
      "--scrape-interval",  "1s",
      "--refresh-interval", "1s"};
  if (!rules.empty()) argv.insert(argv.end(), {"--rules", rules});
  auto made = RunCommand(argv, 30s);
  if (!made.ok() || made->exit_code != 0) {
    return ::testing::AssertionFailure()
           << "prometheus-config.sh: " << (made.ok() ? made->output : made.status().ToString());
  }
  if (!WriteFileAtomic(dir + "/prometheus.yml", made->output, 0600).ok()) {
    return ::testing::AssertionFailure() << "cannot write " << dir << "/prometheus.yml";
  }
  auto checked = RunCommand({"/usr/bin/promtool", "check", "config", dir + "/prometheus.yml"}, 60s);
  if (!checked.ok() || checked->exit_code != 0) {
    return ::testing::AssertionFailure()
           << "promtool check config: " << (checked.ok() ? checked->output : "did not run") << "\n"
           << made->output;
  }
  return ::testing::AssertionSuccess();
}

std::map<std::string, std::string> TargetHealth(cli::HttpClient& api);

// Debian's prometheus, on a port of its own. A port FreePort() found free may be bound by
// another test (or by a daemon of this one) before prometheus binds it; prometheus then exits
// and whatever holds the port answers there (CI once saw photon-server read "bad version" from
// it for a whole test). So it is started on fresh ports until one answers as Prometheus, ready.
class Prometheus {
 public:
  // DIR/prometheus.yml is its config (one with no jobs is written when there is none yet);
  // DIR/data its store, DIR/prometheus.log its log.
  explicit Prometheus(const std::string& dir, std::vector<std::string> flags = {}) : dir_(dir) {
    if (!std::filesystem::exists(dir + "/prometheus.yml")) {
      std::ofstream(dir + "/prometheus.yml") << "global: {scrape_interval: 1s}\n";
    }
    for (int attempt = 0; attempt < 5 && !daemon_; ++attempt) {
      port_ = FreePort();
      std::vector<std::string> argv = {kPrometheus, "--config.file=" + dir + "/prometheus.yml",
                                       "--storage.tsdb.path=" + dir + "/data",
                                       "--web.listen-address=" + address()};
      argv.insert(argv.end(), flags.begin(), flags.end());
      auto d = std::make_unique<Daemon>(argv, dir + "/prometheus.log");
      if (WaitFor([&] { return !d->Running() || Ready(); }, 60s) && d->Running()) {
        daemon_ = std::move(d);
      }
    }
  }
  bool ok() const { return daemon_ != nullptr; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "http://" + address(); }
  std::string LogTail() const {
    std::string l = Slurp(dir_ + "/prometheus.log");
    return l.substr(l.size() > 3000 ? l.size() - 3000 : 0);
  }
  // Rereads prometheus.yml (SIGHUP) and returns once the config it serves holds `marker`.
  bool Reload(const std::string& marker) {
    if (!daemon_ || kill(daemon_->pid(), SIGHUP) != 0) return false;
    auto api = cli::HttpClient::Create(url(), "");
    return api.ok() && WaitFor(
                           [&] {
                             auto r = api->Do("GET", "/api/v1/status/config");
                             return r.ok() && r->status == 200 &&
                                    r->body.find(marker) != std::string::npos;
                           },
                           30s);
  }

 private:
  bool Ready() const {
    auto api = cli::HttpClient::Create(url(), "");
    if (!api.ok()) return false;
    api->set_timeout(2s);  // whatever else holds the port may never answer
    auto r = api->Do("GET", "/-/ready");
    return r.ok() && r->status == 200 && r->body.find("Prometheus") != std::string::npos;
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Daemon> daemon_;
};

TEST(OpsPrometheus, ScrapesThroughDiscoveryAndItsAlertsBecomeEvents) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << "prometheus is not installed (scripts/install-deps.sh)";
  Cluster c;
  ASSERT_TRUE(c.StartAgent("prom1", "role=prom"));
  const std::string dir = c.dir() + "/prometheus";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(std::filesystem::copy_file(c.dir() + "/server/admin.token", dir + "/token"));
  const std::string server = "127.0.0.1:" + std::to_string(c.port());
  std::ofstream(dir + "/rules.yml") << R"(groups:
- name: photon-test
  rules:
  - alert: PhotonTestFiring
    expr: vector(1)
    labels: {severity: critical, node: prom1, team: ops}
    annotations: {summary: "the test rule fired"}
)";
  ASSERT_TRUE(WritePrometheusConfig(dir, server, dir + "/token", dir + "/rules.yml"));
  const auto started = std::chrono::steady_clock::now();
  Prometheus prom(dir, {"--rules.alert.resend-delay=1s"});
  ASSERT_TRUE(prom.ok()) << prom.LogTail();
  auto api = cli::HttpClient::Create(prom.url(), "");
  ASSERT_TRUE(api.ok());

  // Both found through discovery, both scraped and up.
  std::map<std::string, std::string> health;  // job → health
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = api->Do("GET", "/api/v1/targets?state=active");
        if (!r.ok() || r->status != 200) return false;
        json j = json::parse(r->body, nullptr, false);
        if (!j.is_object()) return false;
        health.clear();
        for (const auto& t : j["data"]["activeTargets"]) {
          health[t["labels"].value("job", "")] = t.value("health", "");
        }
        return health["photon-server"] == "up" && health["photon-agent"] == "up";
      },
      60s))
      << json(health) << "\n"
      << prom.LogTail();
  // And what it scraped is queryable with the discovery's labels.
  auto q =
      api->Do("GET", "/api/v1/query?query=up%7Bjob%3D%22photon-agent%22%2Cnode%3D%22prom1%22%7D");
  ASSERT_TRUE(q.ok());
  json result = json::parse(q->body, nullptr, false)["data"]["result"];
  ASSERT_EQ(result.size(), 1u) << q->body;
  EXPECT_EQ(result[0]["value"][1], "1");

  std::cout << "scraped after " << (std::chrono::steady_clock::now() - started) / 1ms << " ms\n";

  // An instance whose workload serves metrics of its own is a target of its own: a process
  // on the host network (admins) answering /metrics on a free port, found at its node's
  // address with its namespace and name, and what it serves is queryable.
  const int metrics_port = FreePort();
  const std::string server_py =
      "import http.server\n"
      "class H(http.server.BaseHTTPRequestHandler):\n"
      "  def do_GET(self):\n"
      "    b = b'photon_test_workload_answer 42\\n' if self.path == '/app/metrics' else b''\n"
      "    self.send_response(200 if b else 404); self.end_headers(); self.wfile.write(b)\n"
      "  def log_message(self, *a): pass\n"
      "http.server.HTTPServer(('127.0.0.1', " +
      std::to_string(metrics_port) + "), H).serve_forever()\n";
  json inst = {{"metadata",
                {{"name", "exporter"},
                 {"agentId", "prom1"},
                 {"annotations",
                  {{"prometheus.io/scrape", "true"},
                   {"prometheus.io/port", std::to_string(metrics_port)},
                   {"prometheus.io/path", "/app/metrics"}}}}},
               {"spec",
                {{"process", {{"command", {"/usr/bin/python3", "-c", server_py}}}},
                 {"network", {{"hostNetwork", true}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  auto created = c.Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(created.status, 202) << created.body;
  ASSERT_TRUE(WaitFor([&] { return c.Phase("exporter") == "RUNNING"; }, 30s))
      << c.Phase("exporter");
  auto sd = c.Call("GET", "/v1/ops/prometheus/targets");
  ASSERT_EQ(sd.status, 200) << sd.body;
  json found;
  for (const auto& t : json::parse(sd.body)) {
    if (t["labels"].value("job", "") == "photon-instance") found = t;
  }
  ASSERT_TRUE(found.is_object()) << sd.body;
  EXPECT_EQ(found["targets"][0], "127.0.0.1:" + std::to_string(metrics_port));
  EXPECT_EQ(found["labels"]["namespace"], "default");
  EXPECT_EQ(found["labels"]["instance"], "exporter");
  EXPECT_EQ(found["labels"]["node"], "prom1");
  EXPECT_EQ(found["labels"]["__metrics_path__"], "/app/metrics");
  json workload;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto w = api->Do("GET",
                         "/api/v1/query?query=photon_test_workload_answer%7Bjob%3D%22photon-"
                         "instance%22%2Cnamespace%3D%22default%22%2Cinstance%3D%22exporter%22%7D");
        if (!w.ok() || w->status != 200) return false;
        workload = json::parse(w->body, nullptr, false)["data"]["result"];
        return workload.is_array() && workload.size() == 1;
      },
      60s))
      << workload << "\n"
      << json(TargetHealth(*api));
  EXPECT_EQ(workload[0]["value"][1], "42");
  // A bad port is refused with the annotation named, not accepted and never scraped.
  inst["metadata"]["name"] = "bad-exporter";
  inst["metadata"]["annotations"]["prometheus.io/port"] = "70000";
  auto bad_port = c.Call("POST", "/v1/namespaces/default/computeinstances", inst);
  EXPECT_EQ(bad_port.status, 400) << bad_port.body;
  EXPECT_NE(bad_port.body.find("prometheus.io/port"), std::string::npos) << bad_port.body;
  // The rule fires; Prometheus posts it to photon-server, which makes it an Event.
  json event;
  ASSERT_TRUE(WaitFor(
      [&] {
        json list = c.Get("/v1/namespaces/system/events");
        if (!list.is_object()) return false;
        for (const auto& e : list["items"]) {
          if (e["spec"].value("opsEvent", json::object()).value("check", "") ==
              "PhotonTestFiring") {
            event = e;
          }
        }
        return event.is_object();
      },
      120s))
      << prom.LogTail();
  std::cout << "event after " << (std::chrono::steady_clock::now() - started) / 1ms << " ms\n";
  const json o = event["spec"]["opsEvent"];
  EXPECT_EQ(o["severity"], "CRITICAL");
  EXPECT_EQ(o["node"], "prom1");
  EXPECT_EQ(o["labels"]["team"], "ops");
  EXPECT_EQ(o["output"], "the test rule fired");
  EXPECT_EQ(event["spec"]["source"], "prometheus");

  // The endpoint refuses what it cannot take, and callers without a token.
  auto anon = cli::HttpClient::Create(c.base(), "");
  auto r = anon->Do("POST", "/api/v2/alerts", "[]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  auto bad = c.Call("POST", "/api/v2/alerts", json::array({{{"labels", {{"team", "x"}}}}}));
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("alertname"), std::string::npos) << bad.body;
  // An ended alert resolves its event.
  auto ended = c.Call(
      "POST", "/api/v2/alerts",
      json::array({{{"labels", {{"alertname", "Manual"}}}, {"endsAt", "2020-01-01T00:00:00Z"}}}));
  EXPECT_EQ(ended.status, 200) << ended.body;
}

// Prometheus's active targets, job → health.
std::map<std::string, std::string> TargetHealth(cli::HttpClient& api) {
  std::map<std::string, std::string> health;
  auto r = api.Do("GET", "/api/v1/targets?state=active");
  if (!r.ok() || r->status != 200) return health;
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return health;
  for (const auto& t : j["data"]["activeTargets"]) {
    health[t["labels"].value("job", "")] = t.value("health", "");
  }
  return health;
}

// The standalone daemons photon-server drives through its service providers are discovered
// too: real flashdns, lightningstor and fiberlb, each scraped on its own /metrics.
TEST(OpsPrometheus, DiscoversTheProvidersDaemons) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << "prometheus is not installed (scripts/install-deps.sh)";
  const std::string dir = MakeTempDir("opsdaemons");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  const std::string dns_api = "127.0.0.1:" + std::to_string(FreePort());
  const std::string s3 = "127.0.0.1:" + std::to_string(FreePort());
  const std::string lb_api = "127.0.0.1:" + std::to_string(FreePort());
  for (const char* d : {"/flashdns", "/lightningstor", "/fiberlb", "/prometheus"}) {
    std::filesystem::create_directories(dir + d);
  }
  std::ofstream(dir + "/flashdns/flashdns.yaml")
      << "listen: [\"127.0.0.1:" << FreePort() << "\"]\napi: " << dns_api << "\ndata_dir: " << dir
      << "/flashdns\nworkers: 1\nzones: []\n";
  std::ofstream(dir + "/lightningstor/ls.yaml")
      << "listen: " << s3 << "\ndata_dir: " << dir << "/lightningstor\nregion: local\n";
  std::ofstream(dir + "/fiberlb/fiberlb.yaml")
      << "api: " << lb_api << "\ndata_dir: " << dir << "/fiberlb/data\n";
  const std::string key = dir + "/lightningstor/photon-server.key";
  auto made = RunCommand({LIGHTNINGSTOR_BIN, "--config", dir + "/lightningstor/ls.yaml", "keys",
                          "create", "photon-server"},
                         30s);
  ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->output : "");
  // The output holds stderr too ("key … acts as user …"): keep the two lines stdout printed.
  std::string credentials;
  std::istringstream lines(made->output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("access_key_id:", 0) == 0 || line.rfind("secret_access_key:", 0) == 0) {
      credentials += line + "\n";
    }
  }
  ASSERT_TRUE(WriteFileAtomic(key, credentials, 0600).ok());
  Daemon dns({FLASHDNS_BIN, "--config", dir + "/flashdns/flashdns.yaml"}, dir + "/flashdns.log");
  Daemon ls({LIGHTNINGSTOR_BIN, "--config", dir + "/lightningstor/ls.yaml"},
            dir + "/lightningstor.log");
  Daemon lb({FIBERLB_BIN, "--config", dir + "/fiberlb/fiberlb.yaml"}, dir + "/fiberlb.log");
  struct StopLb {  // fiberlb stops its HAProxy on SIGTERM
    Daemon* d;
    ~StopLb() { d->Kill(SIGTERM); }
  } stop_lb{&lb};
  ASSERT_TRUE(WaitFor(
      [&] {
        return std::filesystem::exists(dir + "/flashdns/api.token") &&
               std::filesystem::exists(dir + "/fiberlb/data/api.token");
      },
      20s));
  std::ofstream(dir + "/server.yaml")
      << "providers:\n"
      << "  - driver: flashdns\n    endpoint: http://" << dns_api << "\n    token_file: " << dir
      << "/flashdns/api.token\n"
      << "  - driver: lightningstor\n    endpoint: http://" << s3
      << "\n    region: local\n    credentials_file: " << key << "\n"
      << "  - driver: fiberlb\n    endpoint: http://" << lb_api << "\n    token_file: " << dir
      << "/fiberlb/data/api.token\n";
  Cluster c({"--config", dir + "/server.yaml"});
  ASSERT_TRUE(
      std::filesystem::copy_file(c.dir() + "/server/admin.token", dir + "/prometheus/token"));

  // The discovery names each daemon at its endpoint.
  auto answer = c.Call("GET", "/v1/ops/prometheus/targets");
  ASSERT_EQ(answer.status, 200) << answer.body << "\n"
                                << agent::TailFile(c.dir() + "/server.log", 30);
  json targets = json::parse(answer.body, nullptr, false);
  std::map<std::string, json> by_job;
  for (const auto& t : targets) by_job[t["labels"].value("job", "")] = t;
  ASSERT_TRUE(by_job.count("flashdns") && by_job.count("lightningstor") && by_job.count("fiberlb"))
      << targets;
  EXPECT_EQ(by_job["flashdns"]["targets"][0], dns_api);
  EXPECT_EQ(by_job["lightningstor"]["targets"][0], s3);
  EXPECT_EQ(by_job["fiberlb"]["labels"]["endpoint"], "http://" + lb_api);

  const std::string server = "127.0.0.1:" + std::to_string(c.port());
  ASSERT_TRUE(WritePrometheusConfig(dir + "/prometheus", server, dir + "/prometheus/token", ""));
  Prometheus prom(dir + "/prometheus");
  ASSERT_TRUE(prom.ok()) << prom.LogTail();
  auto api = cli::HttpClient::Create(prom.url(), "");
  ASSERT_TRUE(api.ok());
  std::map<std::string, std::string> health;
  ASSERT_TRUE(WaitFor(
      [&] {
        health = TargetHealth(*api);
        return health["flashdns"] == "up" && health["lightningstor"] == "up" &&
               health["fiberlb"] == "up";
      },
      60s))
      << json(health) << "\n"
      << prom.LogTail();
  // What it scraped carries the daemon's own metrics under the discovery's labels.
  auto q = api->Do("GET", "/api/v1/query?query=count%28%7Bjob%3D%22flashdns%22%7D%29");
  ASSERT_TRUE(q.ok());
  json result = json::parse(q->body, nullptr, false)["data"]["result"];
  ASSERT_EQ(result.size(), 1u) << q->body;
  EXPECT_GT(std::stoi(result[0]["value"][1].get<std::string>()), 5) << q->body;
}

// Prometheus's value of `promql` at Unix time `at` for the series whose `label` is `subject`;
// NaN when it has none.
double PromValue(cli::HttpClient& api, const std::string& promql, int64_t at,
                 const std::string& label, const std::string& subject) {
  auto r =
      api.Do("GET", "/api/v1/query?query=" + PercentEncode(promql) + "&time=" + std::to_string(at));
  if (!r.ok()) return std::nan("");
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return std::nan("");
  for (const auto& s : j["data"]["result"]) {
    if (s["metric"].value(label, "") == subject) {
      return std::strtod(s["value"][1].get<std::string>().c_str(), nullptr);
    }
  }
  return std::nan("");
}

int64_t UnixOf(const std::string& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return 0;
  return timegm(&tm);
}

// Every record a StatsController stored: key → value (with `revisions`, value and the
// revision it was last written at).
std::map<std::string, std::string> StoredStats(store::Store& s, bool revisions) {
  std::map<std::string, std::string> out;
  auto r = s.Range("/ops/stats/", {.end = store::PrefixEnd("/ops/stats/")});
  if (!r.ok()) return out;
  for (const auto& kv : r->kvs) {
    if (revisions) {
      out[kv.key] = kv.value + " @" + std::to_string(kv.mod_revision);
    } else if (kv.key.rfind("/ops/stats/done/", 0) != 0) {
      out[kv.key] = kv.value;
    }
  }
  return out;
}

// Seed 003's long-term statistics: days (4 s here) and months (2 days) of a namespace's and a
// node's usage, computed from the real Prometheus by photon-server and served by GET /v1/stats
// and `photon stats`; computed once, the same when computed again.
TEST(OpsPrometheus, LongTermStatisticsPerDayAndMonth) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << "prometheus is not installed (scripts/install-deps.sh)";
  // Prometheus first (photon-server is told its address), its scrape config once the server
  // it scrapes is up.
  const std::string dir = MakeTempDir("opsstats");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  Prometheus prom(dir);
  ASSERT_TRUE(prom.ok()) << prom.LogTail();
  Cluster c(
      {"--prometheus-url", prom.url(), "--stats-day-seconds", "4", "--stats-month-days", "2"});
  ASSERT_TRUE(c.StartAgent("stat1", "role=stats"));
  const std::string name = "spin-" + std::to_string(getpid());
  json inst = {{"metadata", {{"name", name}, {"agentId", "stat1"}}},
               {"spec",
                {{"process", {{"command", {"/bin/sh", "-c", "while :; do :; done"}}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(WaitFor([&] { return c.Phase(name) == "RUNNING"; }, 30s)) << c.Phase(name);
  ASSERT_TRUE(std::filesystem::copy_file(c.dir() + "/server/admin.token", dir + "/token"));
  const std::string server = "127.0.0.1:" + std::to_string(c.port());
  ASSERT_TRUE(WritePrometheusConfig(dir, server, dir + "/token", ""));
  ASSERT_TRUE(prom.Reload(server)) << prom.LogTail();
  auto api = cli::HttpClient::Create(prom.url(), "");
  ASSERT_TRUE(api.ok());
  // Six Critical events of the namespace, counted by photon-server (scraped by Prometheus).
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(c.Call("POST", "/v1/namespaces/default/events",
                     {{"spec",
                       {{"opsEvent",
                         {{"check", "stats-probe"},
                          {"severity", "CRITICAL"},
                          {"dedupKey", "stats-" + std::to_string(i)},
                          {"output", "failing"}}}}}})
                  .status,
              201);
  }

  // A day of the busy instance: its namespace's record, with the figures Prometheus gives.
  json day;
  ASSERT_TRUE(WaitFor(
      [&] {
        json l = c.Get("/v1/stats?period=day&kind=namespace&subject=default");
        if (!l.is_object()) return false;
        for (const auto& d : l["items"]) {
          if (d["values"].value("cpuCoreSeconds", 0.0) > 0.2 &&
              d["values"].value("instancesAvg", 0.0) > 0.9) {
            day = d;
          }
        }
        return day.is_object();
      },
      90s))
      << c.Get("/v1/stats?period=day&kind=namespace") << "\n"
      << agent::TailFile(c.dir() + "/server.log", 20);
  EXPECT_EQ(day["subject"], "default");
  const int64_t start = UnixOf(day["start"]), end = UnixOf(day["end"]);
  EXPECT_EQ(end - start, 4);
  EXPECT_EQ(start % 4, 0);
  const json& v = day["values"];
  EXPECT_DOUBLE_EQ(
      v["cpuCoreSeconds"].get<double>(),
      PromValue(*api, "sum by (namespace) (increase(photon_instance_cpu_seconds_total[3999ms]))",
                end, "namespace", "default"));
  EXPECT_DOUBLE_EQ(v["cpuCoresAvg"].get<double>(), v["cpuCoreSeconds"].get<double>() / 4);
  EXPECT_GT(v.value("memoryBytesAvg", 0.0), 0) << day;
  EXPECT_GE(v.value("memoryBytesMax", 0.0), v.value("memoryBytesAvg", 0.0)) << day;
  EXPECT_LE(v.value("memoryBytesMax", 0.0), 64.0 * 1024 * 1024) << day;

  // The days of the events add up to the six, each what Prometheus answers for it.
  double events = 0;
  json events_day;
  ASSERT_TRUE(WaitFor(
      [&] {
        events = 0;
        const json l = c.Get("/v1/stats?period=day&kind=namespace&subject=default");
        for (const auto& d : l["items"]) {
          events += d["values"].value("criticalEvents", 0.0);
          if (d["values"].value("criticalEvents", 0.0) > 0) events_day = d;
        }
        return events >= 6;
      },
      60s))
      << c.Get("/v1/stats?period=day&kind=namespace&subject=default");
  EXPECT_EQ(events, 6);
  const std::string x = "photon_ops_events_issued_total{severity=\"CRITICAL\"}";
  EXPECT_EQ(
      events_day["values"]["criticalEvents"].get<double>(),
      PromValue(*api,
                "sum by (namespace) (clamp_min(" + x + " - " + x + " offset 4s, 0) or " + x + ")",
                UnixOf(events_day["end"]), "namespace", "default"));

  // The node's day; its agent was scraped throughout.
  json node_days = c.Get("/v1/stats?period=day&kind=node&subject=stat1");
  json nd;
  for (const auto& d : node_days["items"]) {
    if (d["start"] == day["start"]) nd = d;
  }
  ASSERT_TRUE(nd.is_object()) << node_days;
  EXPECT_GE(nd["values"].value("cpus", 0.0), 1) << nd;
  EXPECT_GT(nd["values"].value("memoryTotalBytes", 0.0), 0) << nd;
  EXPECT_GT(nd["values"].value("memoryUsedBytesAvg", 0.0), 0) << nd;
  EXPECT_GE(nd["values"].value("cpuCoresMax", 0.0), nd["values"].value("cpuCoresAvg", 0.0)) << nd;
  EXPECT_EQ(nd["values"].value("agentDownRatio", -1.0), 0) << nd;

  // A month (2 days) once both its days are stored: their sum and the days it holds.
  json month;
  ASSERT_TRUE(WaitFor(
      [&] {
        json l = c.Get("/v1/stats?period=month&kind=namespace&subject=default");
        if (!l.is_object()) return false;
        for (const auto& m : l["items"]) {
          if (m.value("days", 0) == 2) month = m;
        }
        return month.is_object();
      },
      40s))
      << c.Get("/v1/stats?period=month&kind=namespace");
  const int64_t ms = UnixOf(month["start"]), me = UnixOf(month["end"]);
  EXPECT_EQ(me - ms, 8);
  double sum = 0;
  std::set<std::string> starts;
  json days = c.Get("/v1/stats?period=day&kind=namespace&subject=default");
  for (const auto& d : days["items"]) {
    EXPECT_TRUE(starts.insert(d["start"]).second) << "a day stored twice: " << d;
    const int64_t s = UnixOf(d["start"]);
    if (s >= ms && s < me) sum += d["values"].value("cpuCoreSeconds", 0.0);
  }
  EXPECT_NEAR(month["values"]["cpuCoreSeconds"].get<double>(), sum, 1e-9) << month << days;
  json ranged = c.Get("/v1/stats?period=day&kind=namespace&subject=default&from=" +
                      month["start"].get<std::string>() + "&to=" + month["end"].get<std::string>());
  EXPECT_EQ(ranged["items"].size(), 2u) << ranged;

  // Who may read what; bad requests name their field.
  auto t = c.Call(
      "POST", "/v1/tokens",
      {{"principal", "viewer-x"}, {"bindings", {{{"namespace", "team-x"}, {"role", "viewer"}}}}});
  const std::string viewer = json::parse(t.body, nullptr, false).value("token", "");
  ASSERT_FALSE(viewer.empty()) << t.body;
  auto as_viewer = cli::HttpClient::Create(c.base(), viewer);
  auto got = as_viewer->Do("GET", "/v1/stats?kind=namespace&subject=default");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, 403) << got->body;
  got = as_viewer->Do("GET", "/v1/stats?kind=node");
  EXPECT_EQ(got->status, 403) << got->body;
  got = as_viewer->Do("GET", "/v1/stats?kind=namespace");
  EXPECT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(json::parse(got->body)["items"].size(), 0u) << got->body;
  for (const char* bad : {"period=week", "kind=rack", "from=yesterday", "colour=red"}) {
    auto b = c.Call("GET", std::string("/v1/stats?") + bad);
    EXPECT_EQ(b.status, 400) << bad;
    EXPECT_NE(b.body.find(std::string(bad).substr(0, std::string(bad).find('='))),
              std::string::npos)
        << b.body;
  }
  auto cli = RunCommand(
      {"/usr/bin/env",
       "PHOTON_TOKEN=" + Slurp(dir + "/token").substr(0, Slurp(dir + "/token").find('\n')),
       "HOME=" + c.dir(), PHOTON_CLI_BIN, "-s", c.base(), "stats", "-n", "default", "--period",
       "month"},
      30s);
  ASSERT_TRUE(cli.ok());
  EXPECT_EQ(cli->exit_code, 0) << cli->output;
  EXPECT_NE(cli->output.find(month["start"].get<std::string>()), std::string::npos) << cli->output;

  // Computed once and the same again: a controller over a store of its own (a server's first
  // start) stores the days and months; a second one on that store (a restart) changes
  // nothing; a third on a fresh store, at the same time, stores the very same records (the
  // last 2 days: Prometheus has run for a few only).
  const int64_t now = std::time(nullptr);
  server::opsengine::StatsOptions so{.prometheus_url = prom.url(),
                                     .day = std::chrono::seconds(4),
                                     .month_days = 2,
                                     .catchup_days = 2};
  std::map<std::string, std::string> first, written, again, fresh;
  for (int i = 0; i < 3; ++i) {
    auto s = store::SqliteStore::Open(c.dir() + (i == 2 ? "/stats-b.db" : "/stats-a.db"), {});
    ASSERT_TRUE(s.ok()) << s.status();
    server::opsengine::StatsController ctl(s->get(), so);
    ASSERT_TRUE(ctl.RunOnce(now).ok());
    if (i == 0) first = StoredStats(**s, false), written = StoredStats(**s, true);
    if (i == 1) again = StoredStats(**s, true);
    if (i == 2) fresh = StoredStats(**s, false);
  }
  EXPECT_GE(first.size(), 4u);  // 2 days (and a month) of a namespace and a node
  EXPECT_EQ(again, written);    // not one key written again
  EXPECT_EQ(fresh, first);
}

}  // namespace
}  // namespace photon::agent::testing
