// Operations end to end (docs/operations.md): the real photon-server and photon-agent, Debian's
// monitoring-plugins run by the agent, and a webhook receiver in this process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "../agent/cluster.h"
#include "common/http_server.h"

namespace photon::agent::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kCheckDisk[] = "/usr/lib/nagios/plugins/check_disk";

// Counts webhook deliveries by delivery id; answers 500 to the first `fail_first` requests.
class Receiver {
 public:
  explicit Receiver(int fail_first) : fail_first_(fail_first) {
    auto s = HttpServer::Start({}, [this](HttpRequest& r) {
      std::lock_guard lock(mu_);
      ++requests_;
      bodies_.push_back(json::parse(r.body, nullptr, false));
      ids_.push_back(r.Header("x-photon-delivery"));
      if (requests_ <= fail_first_) return HttpResponse::Text(500, "not yet\n");
      ++delivered_;
      return HttpResponse::Text(200, "ok\n");
    });
    if (s.ok()) server_ = std::move(*s);
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + "/hook";
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int delivered() {
    std::lock_guard lock(mu_);
    return delivered_;
  }
  std::vector<std::string> ids() {
    std::lock_guard lock(mu_);
    return ids_;
  }
  std::vector<json> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  int fail_first_;
  std::mutex mu_;
  int requests_ = 0, delivered_ = 0;
  std::vector<json> bodies_;
  std::vector<std::string> ids_;
  std::unique_ptr<HttpServer> server_;
};

json Items(Cluster& c, const std::string& path) {
  json j = c.Get(path);
  return j.is_object() && j.contains("items") ? j["items"] : json::array();
}

// Events of namespace `ns` whose opsEvent.check is `check`.
std::vector<json> EventsOf(Cluster& c, const std::string& ns, const std::string& check) {
  std::vector<json> out;
  for (const auto& e : Items(c, "/v1/namespaces/" + ns + "/events")) {
    if (e["spec"].contains("opsEvent") && e["spec"]["opsEvent"].value("check", "") == check) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<json> AlertsOf(Cluster& c, const std::string& ns, const std::string& check) {
  std::vector<json> out;
  for (const auto& a : Items(c, "/v1/namespaces/" + ns + "/alerts")) {
    if (a["spec"].value("labels", json::object()).value("check", "") == check) out.push_back(a);
  }
  return out;
}

void CreateRule(Cluster& c, const std::string& ns, const std::string& name, const json& spec) {
  auto r = c.Call("POST", "/v1/namespaces/" + ns + "/eventrules",
                  json{{"metadata", {{"name", name}}}, {"spec", spec}});
  ASSERT_EQ(r.status, 202) << r.body;
}

void CreateCheck(Cluster& c, const std::string& name, const json& spec) {
  auto r = c.Call("POST", "/v1/namespaces/default/checks",
                  json{{"metadata", {{"name", name}}}, {"spec", spec}});
  ASSERT_EQ(r.status, 202) << r.body;
}

// Milliseconds of the server's RFC 3339 times ("2026-12-04T21:00:00.123Z").
int64_t Millis(const std::string& ts) {
  std::tm tm{};
  if (ts.size() < 23 || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(ts.substr(20, 3));
}

// Runs the photon CLI against the cluster as its admin; the exit status.
int RunCli(Cluster& c, std::vector<std::string> args) {
  auto token = ReadFile(c.dir() + "/server/admin.token");
  if (!token.ok()) return -1;
  std::string tok = *token;
  while (!tok.empty() && tok.back() == '\n') tok.pop_back();
  std::vector<std::string> env_s = {"PHOTON_SERVER=" + c.base(), "PHOTON_TOKEN=" + tok,
                                    "HOME=" + c.dir()};
  std::vector<char*> env;
  for (auto& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  args.insert(args.begin(), PHOTON_CLI_BIN);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), env.data()) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json Event(const std::string& check, const std::string& severity, const std::string& key,
           const json& labels = json::object()) {
  return json{{"spec",
               {{"opsEvent",
                 {{"check", check},
                  {"severity", severity},
                  {"dedupKey", key},
                  {"output", check + " is " + severity},
                  {"reissueDurationSeconds", "3600"},
                  {"labels", labels}}}}}};
}

TEST(OpsE2E, PluginCriticalAfterOccurrencesMakesOneAlertClosedWithHistory) {
  ASSERT_EQ(access(kCheckDisk, X_OK), 0) << "monitoring-plugins-basic is not installed";
  Cluster c;
  Receiver hook(/*fail_first=*/1);
  ASSERT_TRUE(c.StartAgent("ops1", "role=ops"));
  CreateRule(c, "system", "page",
             {{"type", "ACTION"},
              {"match", "severity=CRITICAL,check=disk"},
              {"actions",
               {{{"type", "CREATE_ALERT"}},
                {{"type", "API_HOOK"}, {"url", hook.url()}, {"maxAttempts", 5}}}}});
  // Critical whenever free space is below 100 %: always, on any disk.
  CreateCheck(c, "disk",
              {{"command", kCheckDisk},
               {"args", {"-w", "100%", "-c", "100%", "-p", "/"}},
               {"intervalSeconds", 1},
               {"occurrences", 3},
               {"reissueDurationSeconds", 3},
               {"nodeSelector", "role=ops"},
               {"labels", {{"team", "storage"}}}});
  const auto created = std::chrono::steady_clock::now();
  std::vector<json> alerts;
  ASSERT_TRUE(WaitFor([&] { return !(alerts = AlertsOf(c, "system", "disk")).empty(); }, 20s));
  // Three runs one second apart come before the first report.
  EXPECT_GE(std::chrono::steady_clock::now() - created, 2s);
  ASSERT_EQ(alerts.size(), 1u);
  const json first = alerts[0];
  EXPECT_EQ(first["spec"]["severity"], "CRITICAL");
  EXPECT_EQ(first["status"]["state"], "OPEN");
  EXPECT_EQ(first["spec"]["labels"]["node"], "ops1");
  EXPECT_EQ(first["spec"]["labels"]["team"], "storage");
  EXPECT_NE(first["spec"]["summary"].get<std::string>().find("DISK CRITICAL"), std::string::npos);
  auto events = EventsOf(c, "system", "disk");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["spec"]["opsEvent"]["alert"], first["metadata"]["name"]);

  // Reported every second; issued again only after the reissue duration (3 s): the same alert's
  // time and count move, no second alert.
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = AlertsOf(c, "system", "disk");
        return alerts.size() == 1 && std::stoll(alerts[0]["status"].value("count", "0")) >= 2;
      },
      20s))
      << alerts;
  EXPECT_EQ(alerts[0]["metadata"]["name"], first["metadata"]["name"]);
  EXPECT_NE(alerts[0]["status"]["lastRaised"], first["status"]["lastRaised"]);
  // Between issues the reports only count.
  ASSERT_TRUE(WaitFor(
      [&] {
        events = EventsOf(c, "system", "disk");
        return events.size() == 1 &&
               std::stoll(events[0]["spec"]["opsEvent"].value("count", "0")) >= 2;
      },
      10s))
      << events;

  // The webhook: the first attempt failed (500), the retry delivered the same delivery id.
  ASSERT_TRUE(WaitFor([&] { return hook.delivered() >= 1; }, 15s));
  auto ids = hook.ids();
  ASSERT_GE(ids.size(), 2u);
  EXPECT_FALSE(ids[0].empty());
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_EQ(hook.bodies()[1]["event"]["spec"]["opsEvent"]["severity"], "CRITICAL");

  // Closed only by an operator, with a comment; history says who and why.
  const std::string name = first["metadata"]["name"];
  const std::string close = "/v1/namespaces/system/alerts/" + name + "/close";
  EXPECT_EQ(c.Call("POST", close, json::object()).status, 400);
  EXPECT_EQ(c.Call("POST", close, json{{"comment", ""}}).status, 400);
  auto closed = c.Call("POST", close, json{{"comment", "cleaned /var/log"}});
  ASSERT_EQ(closed.status, 200) << closed.body;
  json a = json::parse(closed.body);
  EXPECT_EQ(a["status"]["state"], "CLOSED");
  EXPECT_EQ(a["status"]["comment"], "cleaned /var/log");
  EXPECT_EQ(a["status"]["history"].back()["action"], "closed");
  EXPECT_EQ(a["status"]["history"].front()["action"], "opened");
  auto again = c.Call("POST", close, json{{"comment", "again"}});
  EXPECT_EQ(again.status, 400);
  EXPECT_NE(again.body.find("was closed by"), std::string::npos) << again.body;
  // Still critical: the next issue opens a new alert; the closed one stays as it was.
  ASSERT_TRUE(WaitFor([&] { return AlertsOf(c, "system", "disk").size() == 2; }, 20s));
  json old = c.Get("/v1/namespaces/system/alerts/" + name);
  EXPECT_EQ(old["status"]["state"], "CLOSED");
  EXPECT_EQ(old["status"]["comment"], "cleaned /var/log");
}

TEST(OpsE2E, ChecksRunUnprivilegedAndFlappingBelowOccurrencesReportsNothing) {
  Cluster c;
  ASSERT_TRUE(c.StartAgent("ops2", "role=ops"));
  // A world-writable scratch dir for the flapping plugin, which runs as an unprivileged user
  // (/tmp may be closed to others: /var/tmp).
  std::string dir = "/var/tmp/photon-ops-flap-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  CreateCheck(c, "whoami", {{"command", "/usr/bin/id"}, {"args", {"-u"}}, {"intervalSeconds", 1}});
  // 0, 2, 0, 2, ...: never two equal results in a row.
  const std::string script = "echo run >> " + dir + "/runs; if [ -e " + dir + "/odd ]; then rm " +
                             dir + "/odd; exit 2; else touch " + dir + "/odd; exit 0; fi";
  CreateCheck(c, "flap",
              {{"command", "/bin/sh"},
               {"args", {"-c", script}},
               {"intervalSeconds", 1},
               {"occurrences", 2}});
  std::vector<json> events;
  ASSERT_TRUE(WaitFor([&] { return !(events = EventsOf(c, "system", "whoami")).empty(); }, 20s));
  const std::string uid = events[0]["spec"]["opsEvent"].value("output", "");
  EXPECT_NE(uid, "0");
  EXPECT_EQ(uid, "65534");  // nobody
  auto runs = [&] {
    std::ifstream in(dir + "/runs");
    int n = 0;
    std::string line;
    while (std::getline(in, line)) ++n;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return runs() >= 5; }, 20s));
  EXPECT_TRUE(EventsOf(c, "system", "flap").empty());
}

TEST(OpsE2E, FilterSilencedAggregate) {
  Cluster c;
  Receiver hook(0);
  CreateRule(c, "default", "drop-noise", {{"type", "FILTER"}, {"match", "check=noise"}});
  CreateRule(c, "default", "quiet", {{"type", "SILENCED"}, {"match", "check=quiet"}});
  CreateRule(
      c, "default", "fleet",
      {{"type", "AGGREGATE"},
       {"match", "check=fleet-disk,severity=CRITICAL"},
       {"groupBy", {"check"}},
       {"windowSeconds", 2},
       {"actions", {{{"type", "CREATE_ALERT"}}, {{"type", "API_HOOK"}, {"url", hook.url()}}}}});
  CreateRule(c, "default", "page",
             {{"type", "ACTION"},
              {"match", "severity=CRITICAL"},
              {"actions", {{{"type", "CREATE_ALERT"}}}}});
  const std::string post = "/v1/namespaces/default/events";
  // Filter: dropped before it is stored.
  auto r = c.Call("POST", post, Event("noise", "CRITICAL", "n1"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(json::parse(r.body)["filtered"].get<bool>());
  EXPECT_TRUE(EventsOf(c, "default", "noise").empty());
  // Silenced: stored, marked, no alert.
  r = c.Call("POST", post, Event("quiet", "CRITICAL", "q1"));
  ASSERT_EQ(r.status, 201) << r.body;
  auto quiet = EventsOf(c, "default", "quiet");
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_TRUE(quiet[0]["spec"]["opsEvent"].value("silenced", false));
  EXPECT_EQ(quiet[0]["spec"]["opsEvent"]["rule"], "default/quiet");
  EXPECT_TRUE(AlertsOf(c, "default", "quiet").empty());
  // An unmatched critical event: the action rule opens its alert at once.
  r = c.Call("POST", post, Event("other", "CRITICAL", "o1"));
  ASSERT_EQ(r.status, 201) << r.body;
  auto other = AlertsOf(c, "default", "other");
  ASSERT_EQ(other.size(), 1u);
  // Closed with the CLI, as an operator does.
  const std::string other_name = other[0]["metadata"]["name"];
  EXPECT_NE(RunCli(c, {"alert", "close", other_name, "-n", "default"}), 0);  // no comment
  EXPECT_EQ(RunCli(c, {"alert", "close", other_name, "--comment", "rebooted", "-n", "default"}), 0);
  json closed = c.Get("/v1/namespaces/default/alerts/" + other_name);
  EXPECT_EQ(closed["status"]["state"], "CLOSED");
  EXPECT_EQ(closed["status"]["comment"], "rebooted");
  // Aggregate: 20 nodes fail within the window; one alert names them all, one webhook.
  for (int i = 0; i < 20; ++i) {
    r = c.Call("POST", post,
               Event("fleet-disk", "CRITICAL", "fleet/node" + std::to_string(i),
                     {{"node", "node" + std::to_string(i)}}));
    ASSERT_EQ(r.status, 201) << r.body;
  }
  json alert;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& a : Items(c, "/v1/namespaces/default/alerts")) {
          if (a["spec"].value("rule", "") == "default/fleet") alert = a;
        }
        return alert.is_object();
      },
      15s));
  EXPECT_EQ(alert["spec"]["members"].size(), 20u);
  // Acted once the window (2 s) after the group's first event had passed, not before.
  auto fleet = EventsOf(c, "default", "fleet-disk");
  ASSERT_EQ(fleet.size(), 20u);
  int64_t first = INT64_MAX;
  for (const auto& e : fleet) {
    first = std::min(first, Millis(e["spec"]["opsEvent"].value("issuedAt", "")));
  }
  EXPECT_GE(Millis(alert["status"].value("firstRaised", "")) - first, 2000);
  EXPECT_NE(alert["spec"]["summary"].get<std::string>().find("20 events"), std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return hook.delivered() == 1; }, 10s));
  EXPECT_EQ(hook.bodies()[0]["members"].size(), 20u);
  int fleet_alerts = 0;
  for (const auto& a : Items(c, "/v1/namespaces/default/alerts")) {
    fleet_alerts += a["spec"].value("rule", "") == "default/fleet";
  }
  EXPECT_EQ(fleet_alerts, 1);
  EXPECT_TRUE(AlertsOf(c, "default", "fleet-disk").empty());  // not one per event
}

TEST(OpsE2E, CrashLoopingInstanceRaisesAnAlert) {
  Cluster c;
  ASSERT_TRUE(c.StartAgent("ops3", "role=ops"));
  CreateRule(c, "system", "loops",
             {{"type", "ACTION"},
              {"match", "check=instance-crashloop,severity=CRITICAL"},
              {"actions", {{{"type", "CREATE_ALERT"}, {"alertSeverity", "FATAL"}}}}});
  const std::string name = "crash-" + std::to_string(getpid());
  json inst = {{"metadata", {{"name", name}, {"agentId", "ops3"}}},
               {"spec",
                {{"process", {{"command", {"/bin/false"}}, {"restartPolicy", "always"}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(r.status, 202) << r.body;
  std::vector<json> alerts;
  // Restarts back off 1, 2, 4 s: the third comes within about 10 s.
  ASSERT_TRUE(WaitFor(
      [&] { return !(alerts = AlertsOf(c, "system", "instance-crashloop")).empty(); }, 40s));
  EXPECT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0]["spec"]["severity"], "FATAL");
  EXPECT_EQ(alerts[0]["spec"]["labels"]["instance"], "default/" + name);
  EXPECT_EQ(alerts[0]["spec"]["labels"]["node"], "ops3");
  EXPECT_NE(alerts[0]["spec"]["summary"].get<std::string>().find("restarted"), std::string::npos);
  EXPECT_EQ(c.Call("DELETE", "/v1/namespaces/default/computeinstances/" + name).status, 202);
  EXPECT_TRUE(WaitFor([&] { return c.Phase(name) == "GONE"; }, 20s));
}

TEST(OpsE2E, MaintenanceMarksEventsDrainsItsNodeAndGivesItBack) {
  Cluster c;
  ASSERT_TRUE(c.StartAgent("mnt1", "role=maint"));
  ASSERT_TRUE(c.StartAgent("mnt2", "role=maint"));
  CreateRule(c, "system", "page",
             {{"type", "ACTION"},
              {"match", "severity=CRITICAL"},
              {"actions", {{{"type", "CREATE_ALERT"}}}}});
  const std::string inst = "maint-" + std::to_string(getpid());
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances",
                  json{{"metadata", {{"name", inst}, {"agentId", "mnt1"}}},
                       {"spec",
                        {{"process", {{"command", {"/bin/sleep", "600"}}}},
                         {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}});
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(WaitFor([&] { return c.Phase(inst) == "RUNNING"; }, 30s)) << c.Instance(inst);
  // Still where it was put: only the maintenance below may move it.
  ASSERT_EQ(c.Instance(inst)["metadata"].value("agentId", ""), "mnt1") << c.Instance(inst);

  // Refused, naming the field: a drain outside "system", no end.
  r = c.Call("POST", "/v1/namespaces/default/maintenances",
             json{{"metadata", {{"name", "bad"}}},
                  {"spec",
                   {{"description", "x"},
                    {"nodes", {"mnt1"}},
                    {"endTime", "2099-01-01T00:00:00Z"},
                    {"drain", true}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("spec.drain"), std::string::npos) << r.body;
  r = c.Call(
      "POST", "/v1/namespaces/system/maintenances",
      json{{"metadata", {{"name", "bad"}}}, {"spec", {{"description", "x"}, {"nodes", {"mnt1"}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("spec.endTime"), std::string::npos) << r.body;

  ASSERT_EQ(RunCli(c, {"maintenance", "start", "disk-swap", "--description", "replace sdb",
                       "--node", "mnt1", "--duration", "1h", "--drain", "-n", "system"}),
            0);
  json m = c.Get("/v1/namespaces/system/maintenances/disk-swap");
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["metadata"]["createdBy"], "admin");
  // The record drains its node: cordoned, the instance moved to the other node.
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = c.Instance(inst);
        return i.is_object() && i["metadata"].value("agentId", "") == "mnt2" &&
               c.Phase(inst) == "RUNNING";
      },
      60s))
      << c.Instance(inst);
  json node = c.Get("/v1/namespaces/system/nodes/mnt1");
  EXPECT_TRUE(node["spec"].value("unschedulable", false));
  EXPECT_EQ(node["metadata"]["annotations"]["photon.io/maintenance"], "system/disk-swap");

  // Its events are stored, marked and take no action; the other node's do.
  auto report = [&](const std::string& n) {
    json ev = Event("disk", "CRITICAL", "maint/" + n);
    ev["spec"]["opsEvent"]["node"] = n;
    return c.Call("POST", "/v1/namespaces/system/events", ev);
  };
  r = report("mnt1");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body)["maintenance"], "system/disk-swap");
  EXPECT_EQ(json::parse(r.body)["alert"], "");
  r = report("mnt2");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(json::parse(r.body)["alert"], "");
  json marked;
  for (const auto& e : EventsOf(c, "system", "disk")) {
    if (e["spec"]["opsEvent"].value("node", "") == "mnt1") marked = e;
  }
  ASSERT_TRUE(marked.is_object());
  EXPECT_EQ(marked["spec"]["opsEvent"]["maintenance"], "system/disk-swap");
  EXPECT_TRUE(marked["spec"]["opsEvent"].value("silenced", false));
  EXPECT_EQ(AlertsOf(c, "system", "disk").size(), 1u);

  // The end gives the node back, and the next report of the same condition acts.
  ASSERT_EQ(RunCli(c, {"maintenance", "end", "disk-swap", "-n", "system"}), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        node = c.Get("/v1/namespaces/system/nodes/mnt1");
        return node.is_object() && !node["spec"].value("unschedulable", false) &&
               !node["metadata"]
                    .value("annotations", json::object())
                    .contains("photon.io/maintenance");
      },
      20s))
      << node;
  r = report("mnt1");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_TRUE(json::parse(r.body)["issued"].get<bool>());
  EXPECT_EQ(json::parse(r.body)["maintenance"], "");
  EXPECT_EQ(AlertsOf(c, "system", "disk").size(), 2u);
  EXPECT_EQ(c.Call("DELETE", "/v1/namespaces/default/computeinstances/" + inst).status, 202);
  EXPECT_TRUE(WaitFor([&] { return c.Phase(inst) == "GONE"; }, 20s));
}

// The value of a sample line "NAME VALUE" of a Prometheus text page (0 when absent).
double Sample(const std::string& page, const std::string& name) {
  size_t at = 0;
  while ((at = page.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || page[at - 1] == '\n') return std::stod(page.substr(at + name.size() + 1));
    at += name.size();
  }
  return 0;
}

json OpsEventJson(const std::string& check, const std::string& key, const std::string& severity) {
  return json{{"spec",
               {{"opsEvent",
                 {{"check", check},
                  {"severity", severity},
                  {"dedupKey", key},
                  {"output", check + " " + severity},
                  {"reissueDurationSeconds", "3600"}}}}}};
}

// POST .../events/batch: each event validated and answered on its own, in order; a key
// reported twice in one batch is decided on what the first report committed; the issues of a
// batch go to the store together (a few group commits, not one per event).
TEST(OpsE2E, BatchAnswersEachEventAndCommitsItsIssuesTogether) {
  Cluster c;
  CreateRule(c, "default", "page",
             {{"type", "ACTION"},
              {"match", "severity=CRITICAL,check=batch"},
              {"actions", {{{"type", "CREATE_ALERT"}}}}});
  CreateRule(c, "default", "drop", {{"type", "FILTER"}, {"match", "check=noise"}});
  ASSERT_TRUE(
      WaitFor([&] { return Items(c, "/v1/namespaces/default/eventrules").size() == 2; }, 10s));
  json bad = OpsEventJson("batch", "bad", "CRITICAL");
  bad["spec"]["opsEvent"]["severity"] = "LOUD";
  json with_kind = OpsEventJson("batch", "k3", "WARNING");
  with_kind["kind"] = "Event";
  json items = {OpsEventJson("batch", "k1", "CRITICAL"),
                OpsEventJson("batch", "k2", "CRITICAL"),
                bad,
                OpsEventJson("noise", "n1", "CRITICAL"),
                OpsEventJson("batch", "k1", "CRITICAL"),
                OpsEventJson("batch", "k1", "SUCCESS"),
                with_kind,
                42};
  auto r = c.Call("POST", "/v1/namespaces/default/events/batch", json{{"items", items}});
  ASSERT_EQ(r.status, 200) << r.body;
  json a = json::parse(r.body)["items"];
  ASSERT_EQ(a.size(), items.size()) << a;
  EXPECT_EQ(a[0]["status"], 201);
  EXPECT_EQ(a[0]["issued"], true);
  EXPECT_FALSE(a[0]["alert"].get<std::string>().empty()) << a[0];
  EXPECT_EQ(a[1]["status"], 201);
  EXPECT_EQ(a[1]["issued"], true);
  EXPECT_NE(a[1]["alert"], a[0]["alert"]);
  EXPECT_EQ(a[2]["status"], 400);
  EXPECT_NE(a[2]["error"]["message"].get<std::string>().find("severity"), std::string::npos)
      << a[2];
  EXPECT_EQ(a[3]["status"], 200);
  EXPECT_EQ(a[3]["filtered"], true);
  EXPECT_EQ(a[3]["rule"], "default/drop");
  EXPECT_EQ(a[4]["status"], 201);  // a repeat of the first: counted, not issued
  EXPECT_EQ(a[4]["issued"], false);
  EXPECT_EQ(a[4]["alert"], a[0]["alert"]);
  EXPECT_EQ(a[5]["status"], 201);  // the transition after it: issued
  EXPECT_EQ(a[5]["issued"], true);
  EXPECT_EQ(a[6]["status"], 201);
  EXPECT_EQ(a[7]["status"], 400);
  json k1 = c.Get("/v1/namespaces/default/events/" + a[0]["event"].get<std::string>());
  EXPECT_EQ(k1["spec"]["opsEvent"]["severity"], "SUCCESS") << k1;
  EXPECT_EQ(AlertsOf(c, "default", "batch").size(), 2u);
  EXPECT_TRUE(EventsOf(c, "default", "noise").empty());
  // Counted per namespace and node on /metrics: the five stored (issues and the repeat), not
  // the filtered or refused ones; then a node's two reports.
  json on_node = OpsEventJson("batch", "k9", "WARNING");
  on_node["spec"]["opsEvent"]["node"] = "node7";
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(c.Call("POST", "/v1/namespaces/default/events", on_node).status, 201);
  }
  const std::string page = c.Call("GET", "/metrics").body;
  EXPECT_EQ(Sample(page, "photon_ops_events_reported_total{namespace=\"default\",node=\"\"}"), 5)
      << page;
  EXPECT_EQ(Sample(page, "photon_ops_events_reported_total{namespace=\"default\",node=\"node7\"}"),
            2);

  // Refused whole: no items, too many, not a batch.
  EXPECT_EQ(
      c.Call("POST", "/v1/namespaces/default/events/batch", json{{"items", json::array()}}).status,
      400);
  json many = json::array();
  for (int i = 0; i < 1001; ++i) many.push_back(OpsEventJson("batch", "m", "CRITICAL"));
  auto too_many = c.Call("POST", "/v1/namespaces/default/events/batch", json{{"items", many}});
  EXPECT_EQ(too_many.status, 400);
  EXPECT_NE(too_many.body.find("1001"), std::string::npos) << too_many.body;
  EXPECT_EQ(c.Call("POST", "/v1/namespaces/default/events/batch", json{{"events", items}}).status,
            400);

  // 500 new keys in one request: 500 issues (each its event and alert), committed in a few of
  // the store's group commits.
  auto commits = [&] {
    auto m = c.Call("GET", "/metrics");
    return Sample(m.body, "photon_store_sqlite_commit_seconds_count");
  };
  json fresh = json::array();
  for (int i = 0; i < 500; ++i) {
    fresh.push_back(OpsEventJson("batch", "g" + std::to_string(i), "CRITICAL"));
  }
  const double before = commits();
  r = c.Call("POST", "/v1/namespaces/default/events/batch", json{{"items", fresh}});
  const double after = commits();
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 400);
  int issued = 0;
  const json answers = json::parse(r.body);
  for (const auto& item : answers["items"]) issued += item.value("issued", false);
  EXPECT_EQ(issued, 500);
  EXPECT_GT(before, 0);
  // Other writers (heartbeats, housekeeping) may commit meanwhile: far fewer than one a key.
  EXPECT_LT(after - before, 100) << "store commits for 500 issues: " << after - before;
  int alerts = 0;
  for (const auto& al : Items(c, "/v1/namespaces/default/alerts?limit=1000")) {
    alerts += al["spec"].value("labels", json::object()).value("check", "") == "batch";
  }
  EXPECT_EQ(alerts, 502);
}

// photon top: the agent samples each instance's cgroup (and the node) and serves them on its
// /metrics with namespace and instance labels; photon-server reads every agent for
// GET /v1/ops/top/...; the CLI prints them. A busy loop shows as CPU in use.
TEST(OpsE2E, TopShowsInstancesCpuAndMemoryFromTheirCgroups) {
  Cluster c;
  ASSERT_TRUE(c.StartAgent("ops5", "role=ops"));
  const std::string name = "busy-" + std::to_string(getpid());
  json inst = {{"metadata", {{"name", name}, {"agentId", "ops5"}}},
               {"spec",
                {{"process", {{"command", {"/bin/sh", "-c", "while :; do :; done"}}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_TRUE(WaitFor([&] { return c.Phase(name) == "RUNNING"; }, 30s)) << c.Phase(name);
  const std::string addr = c.Get("/v1/namespaces/system/nodes/ops5")["spec"].value("address", "");
  ASSERT_FALSE(addr.empty());
  // On the agent's /metrics: its CPU over the last interval (5 s), memory and limit.
  const std::string labels = "{namespace=\"default\",instance=\"" + name + "\",node=\"ops5\"";
  std::string page;
  auto value = [&](const std::string& family) {
    const size_t at = page.find(family + labels);
    if (at == std::string::npos) return -1.0;
    const size_t sp = page.find("} ", at);
    return std::stod(page.substr(sp + 2));
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        auto m = cli::HttpClient::Create("http://" + addr, "")->Do("GET", "/metrics");
        page = m.ok() ? m->body : "";
        return value("photon_instance_cpu_cores") >= 0.1;
      },
      40s))
      << page.substr(page.find("photon_node_cpus") == std::string::npos
                         ? 0
                         : page.find("photon_node_cpus"));
  EXPECT_GT(value("photon_instance_memory_bytes"), 0);
  EXPECT_EQ(value("photon_instance_memory_limit_bytes"), 64.0 * 1024 * 1024);
  EXPECT_GT(value("photon_instance_cpu_seconds_total"), 0);
  EXPECT_NE(page.find("photon_node_memory_total_bytes{node=\"ops5\"}"), std::string::npos);

  // Through photon-server, as `photon top` reads them.
  json top = c.Get("/v1/ops/top/instances?namespace=default");
  ASSERT_TRUE(top.is_object()) << top;
  json row;
  for (const auto& i : top["items"]) {
    if (i.value("name", "") == name) row = i;
  }
  ASSERT_TRUE(row.is_object()) << top;
  EXPECT_EQ(row["node"], "ops5");
  EXPECT_EQ(row["driver"], "process");
  EXPECT_GE(row.value("cpuCores", 0.0), 0.1) << row;
  EXPECT_GT(row.value("memoryBytes", 0.0), 0) << row;
  json nodes = c.Get("/v1/ops/top/nodes");
  ASSERT_TRUE(nodes.is_object()) << nodes;
  ASSERT_EQ(nodes["items"].size(), 1u) << nodes;
  EXPECT_EQ(nodes["items"][0]["node"], "ops5");
  EXPECT_GE(nodes["items"][0].value("cpus", 0.0), 1);
  EXPECT_GT(nodes["items"][0].value("memoryTotalBytes", 0.0), 0);
  EXPECT_EQ(nodes["items"][0].value("instances", 0), 1);
  EXPECT_EQ(c.Call("GET", "/v1/ops/top/racks").status, 404);
  EXPECT_EQ(RunCli(c, {"top", "instances", "-n", "default"}), 0);
  EXPECT_EQ(RunCli(c, {"top", "nodes", "-o", "json"}), 0);
  EXPECT_EQ(c.Call("DELETE", "/v1/namespaces/default/computeinstances/" + name).status, 202);
  EXPECT_TRUE(WaitFor([&] { return c.Phase(name) == "GONE"; }, 20s));
}

// Runs the photon CLI with `token`; its exit status, stdout in *out.
int RunCliAs(Cluster& c, const std::string& token, std::vector<std::string> args,
             std::string* out) {
  const std::string out_file = c.dir() + "/cli-" + std::to_string(getpid()) + ".out";
  std::vector<std::string> env_s = {"PHOTON_SERVER=" + c.base(), "PHOTON_TOKEN=" + token,
                                    "HOME=" + c.dir()};
  std::vector<char*> env;
  for (auto& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  args.insert(args.begin(), PHOTON_CLI_BIN);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (spawned != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  auto text = ReadFile(out_file);
  *out = text.ok() ? *text : "";
  unlink(out_file.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string UserToken(Cluster& c, const std::string& who, const std::string& ns,
                      const std::string& role) {
  auto r = c.Call("POST", "/v1/tokens",
                  {{"principal", who}, {"bindings", {{{"namespace", ns}, {"role", role}}}}});
  return json::parse(r.body, nullptr, false).value("token", "");
}

// Seed 003: a Fatal alert is visible to the affected namespace's users, and nothing more.
TEST(OpsE2E, FatalAlertIsShownToTheAffectedNamespaceOnly) {
  Cluster c({"--watch-bookmark-interval", "500"});  // the watch below checks its deadline
  ASSERT_TRUE(c.StartAgent("ops9", "role=ops"));
  // team-a runs an instance on ops9; team-b runs nothing there.
  json inst = {{"metadata", {{"name", "web"}, {"agentId", "ops9"}}},
               {"spec", {{"process", {{"command", {"/bin/sleep", "600"}}}}}}};
  auto r = c.Call("POST", "/v1/namespaces/team-a/computeinstances", inst);
  ASSERT_EQ(r.status, 202) << r.body;
  CreateRule(c, "system", "fatal",
             {{"type", "ACTION"},
              {"match", "check=fatal-probe"},
              {"actions", {{{"type", "CREATE_ALERT"}, {"alertSeverity", "FATAL"}}}}});
  CreateRule(c, "system", "critical",
             {{"type", "ACTION"},
              {"match", "check=critical-probe"},
              {"actions", {{{"type", "CREATE_ALERT"}}}}});
  // A Fatal alert about the node team-a's instance runs on, a Critical one about team-a's
  // instance, a Fatal one about an instance of team-c (by its "NS/NAME" label).
  json node_ev = Event("fatal-probe", "CRITICAL", "disk-gone");
  node_ev["spec"]["opsEvent"]["node"] = "ops9";
  r = c.Call("POST", "/v1/namespaces/system/events", node_ev);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string fatal = json::parse(r.body)["alert"];
  ASSERT_FALSE(fatal.empty()) << r.body;
  r = c.Call("POST", "/v1/namespaces/system/events",
             Event("critical-probe", "CRITICAL", "qmp-slow", {{"instance", "team-a/web"}}));
  ASSERT_EQ(r.status, 201) << r.body;
  ASSERT_FALSE(json::parse(r.body)["alert"].get<std::string>().empty()) << r.body;
  r = c.Call("POST", "/v1/namespaces/system/events",
             Event("fatal-probe", "CRITICAL", "db-lost", {{"instance", "team-c/db"}}));
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string fatal_c = json::parse(r.body)["alert"];

  const std::string a_editor = UserToken(c, "alice", "team-a", "editor");
  const std::string b_viewer = UserToken(c, "bob", "team-b", "viewer");
  ASSERT_FALSE(a_editor.empty());
  ASSERT_FALSE(b_viewer.empty());
  auto as = [&](const std::string& token, const std::string& method, const std::string& path,
                const std::string& body = "") {
    auto res = cli::HttpClient::Create(c.base(), token)->Do(method, path, body);
    return res.ok() ? *res : cli::HttpResult{0, res.status().ToString(), {}};
  };
  // team-a's editor lists exactly the Fatal alert, as a copy naming its original.
  json mine;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = as(a_editor, "GET", "/v1/namespaces/team-a/alerts");
        mine = json::parse(l.body, nullptr, false);
        return l.status == 200 && mine["items"].size() == 1;
      },
      10s))
      << mine;
  const json& copy = mine["items"][0];
  EXPECT_EQ(copy["metadata"]["name"], fatal);
  EXPECT_EQ(copy["spec"]["severity"], "FATAL");
  EXPECT_EQ(copy["spec"]["labels"]["node"], "ops9");
  EXPECT_EQ(copy["metadata"]["annotations"]["photon.io/mirror-of"], "system/" + fatal);
  // The CLI shows it too; the original and the rest of system stay out of reach.
  std::string out;
  EXPECT_EQ(RunCliAs(c, a_editor, {"alerts", "list", "-n", "team-a", "-o", "name"}, &out), 0);
  EXPECT_NE(out.find(fatal), std::string::npos) << out;
  EXPECT_EQ(as(a_editor, "GET", "/v1/namespaces/system/alerts").status, 403);
  EXPECT_EQ(as(a_editor, "GET", "/v1/namespaces/system/alerts/" + fatal).status, 403);
  // Neither closed, changed nor deleted by the namespace's editor.
  const std::string close = "/v1/namespaces/team-a/alerts/" + fatal + "/close";
  EXPECT_EQ(as(a_editor, "POST", close, R"({"comment":"not mine to close"})").status, 403);
  EXPECT_EQ(as(a_editor, "DELETE", "/v1/namespaces/team-a/alerts/" + fatal).status, 403);
  EXPECT_EQ(as(a_editor, "PUT", "/v1/namespaces/team-a/alerts/" + fatal, copy.dump()).status, 403);
  // team-b gets nothing: none of its resources is concerned.
  auto l = as(b_viewer, "GET", "/v1/namespaces/team-b/alerts");
  ASSERT_EQ(l.status, 200) << l.body;
  EXPECT_EQ(json::parse(l.body)["items"].size(), 0u) << l.body;
  EXPECT_EQ(RunCliAs(c, b_viewer, {"alerts", "list", "-n", "team-b", "-o", "name"}, &out), 0);
  EXPECT_EQ(out.find("al-"), std::string::npos) << out;
  EXPECT_EQ(as(b_viewer, "GET", "/v1/namespaces/team-a/alerts").status, 403);
  // The instance label's namespace gets its Fatal alert.
  json in_c = c.Get("/v1/namespaces/team-c/alerts/" + fatal_c);
  ASSERT_TRUE(in_c.is_object());
  EXPECT_EQ(in_c["metadata"]["annotations"]["photon.io/mirror-of"], "system/" + fatal_c);

  // team-a's watch shows the copy, then its close.
  std::atomic<bool> listed{false}, closed_seen{false};
  std::thread watch([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    auto w = cli::HttpClient::Create(c.base(), a_editor);
    // Ends when the close is seen or at the deadline (bookmarks come every 0.5 s).
    auto ended = w->Stream("/v1/namespaces/team-a/alerts?watch=true", [&](const std::string& line) {
      json ev = json::parse(line, nullptr, false);
      if (ev.is_object() && ev["object"]["metadata"].value("name", "") == fatal) {
        listed = true;
        closed_seen = closed_seen || ev["object"]["status"].value("state", "") == "CLOSED";
      }
      return !closed_seen && std::chrono::steady_clock::now() < deadline;
    });
    (void)ended;  // how it ended shows in closed_seen
  });
  struct Join {
    std::thread& t;
    ~Join() { t.join(); }
  } join{watch};
  EXPECT_TRUE(WaitFor([&] { return listed.load(); }, 10s));
  // An operator closes the copy: refused, the original is the one; closing it closes the copy.
  EXPECT_EQ(c.Call("POST", close, json{{"comment", "x"}}).status, 400);
  r = c.Call("POST", "/v1/namespaces/system/alerts/" + fatal + "/close",
             json{{"comment", "replaced the disk"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json closed = json::parse(as(a_editor, "GET", "/v1/namespaces/team-a/alerts/" + fatal).body,
                            nullptr, false);
  EXPECT_EQ(closed["status"]["state"], "CLOSED") << closed;
  EXPECT_EQ(closed["status"]["comment"], "replaced the disk") << closed;
  EXPECT_TRUE(WaitFor([&] { return closed_seen.load(); }, 10s));
}

// Seed 003 クラスタ間監視: a node of one cluster probes another cluster's API with a token of
// that cluster; a refused token (or a cluster that stopped answering) is a Critical event.
TEST(OpsE2E, ClusterCheckProbesAnotherClustersApi) {
  Cluster a;
  Cluster b;
  ASSERT_TRUE(a.StartAgent("cc1", "role=cc"));
  auto t = b.Call(
      "POST", "/v1/tokens",
      {{"principal", "peer-a"}, {"bindings", {{{"namespace", "system"}, {"role", "viewer"}}}}});
  const std::string peer_token = json::parse(t.body, nullptr, false).value("token", "");
  ASSERT_FALSE(peer_token.empty()) << t.body;
  const std::string token_file = a.dir() + "/peer-b.token";
  ASSERT_TRUE(WriteFileAtomic(token_file, peer_token + "\n", 0600).ok());
  const json spec = {{"command", "builtin:photon-cluster"},
                     {"args", {"--url", b.base(), "--token-file", token_file}},
                     {"intervalSeconds", 1},
                     {"nodeSelector", "role=cc"}};
  // Only admins: it runs inside the agents and sends a file of the node to a URL.
  const std::string editor = UserToken(a, "ed", "default", "editor");
  auto as_editor = cli::HttpClient::Create(a.base(), editor)
                       ->Do("POST", "/v1/namespaces/default/checks",
                            json{{"metadata", {{"name", "peer-b"}}}, {"spec", spec}}.dump());
  ASSERT_TRUE(as_editor.ok());
  EXPECT_EQ(as_editor->status, 403) << as_editor->body;
  auto bad = a.Call("POST", "/v1/namespaces/default/checks",
                    json{{"metadata", {{"name", "bad"}}},
                         {"spec",
                          {{"command", "builtin:photon-cluster"},
                           {"args", {"--url", "ftp://x", "--token-file", token_file}}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("spec.args[1]"), std::string::npos) << bad.body;
  CreateRule(a, "system", "peer",
             {{"type", "ACTION"},
              {"match", "check=peer-b,severity=CRITICAL"},
              {"actions", {{{"type", "CREATE_ALERT"}}}}});
  CreateCheck(a, "peer-b", spec);
  auto severity_of = [&](const std::string& want, std::string* output) {
    for (const auto& e : EventsOf(a, "system", "peer-b")) {
      const json& o = e["spec"]["opsEvent"];
      if (o.value("severity", "") == want) {
        *output = o.value("output", "");
        return true;
      }
    }
    return false;
  };
  std::string output;
  ASSERT_TRUE(WaitFor([&] { return severity_of("SUCCESS", &output); }, 20s))
      << EventsOf(a, "system", "peer-b");
  EXPECT_NE(output.find("0 of 0 nodes READY"), std::string::npos) << output;
  EXPECT_NE(output.find(b.base()), std::string::npos) << output;
  // The other cluster no longer takes the token: Critical, and the rule's alert.
  ASSERT_TRUE(WriteFileAtomic(token_file, "pct_x_revoked\n", 0600).ok());
  ASSERT_TRUE(WaitFor([&] { return severity_of("CRITICAL", &output); }, 20s))
      << EventsOf(a, "system", "peer-b");
  EXPECT_NE(output.find("refused the token (HTTP 401)"), std::string::npos) << output;
  EXPECT_TRUE(WaitFor([&] { return AlertsOf(a, "system", "peer-b").size() == 1; }, 10s));
}

TEST(OpsE2E, ValidationNamesTheField) {
  Cluster c;
  auto r = c.Call("POST", "/v1/namespaces/default/checks",
                  json{{"metadata", {{"name", "bad"}}}, {"spec", {{"command", "check_disk"}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("spec.command"), std::string::npos) << r.body;
  r = c.Call("POST", "/v1/namespaces/default/eventrules",
             json{{"metadata", {{"name", "bad"}}},
                  {"spec", {{"type", "AGGREGATE"}, {"actions", {{{"type", "CREATE_ALERT"}}}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("spec.windowSeconds"), std::string::npos) << r.body;
  r = c.Call("POST", "/v1/namespaces/default/eventrules",
             json{{"metadata", {{"name", "bad"}}},
                  {"spec",
                   {{"type", "ACTION"},
                    {"actions", {{{"type", "API_HOOK"}, {"url", "file:///etc/passwd"}}}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("spec.actions[0].url"), std::string::npos) << r.body;
  r = c.Call("POST", "/v1/namespaces/default/alerts",
             json{{"metadata", {{"name", "x"}}}, {"spec", {{"severity", "FATAL"}}}});
  EXPECT_EQ(r.status, 400) << r.body;
}

}  // namespace
}  // namespace photon::agent::testing
