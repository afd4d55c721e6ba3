// The highly available control plane, all real: three etcd members (Debian etcd-server), three
// photon-server processes on them, and a photon-hollow fleet of three simulated nodes (real
// join, heartbeats, RUNNING reports; no workloads run). A client creates instances in a loop
// through the comma-separated server list while the leader is killed with SIGKILL, and while
// etcd members are killed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/http_server.h"
#include "common/tls.h"
#include "ha_cluster.h"

namespace photon::testing::ha {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kEtcd, X_OK), 0) << kEtcd << " is not installed (Debian etcd-server)";
    dir_ = MakeTempDir("ha");
    etcd_ = EtcdCluster::Start(dir_);
    ASSERT_TRUE(etcd_) << "etcd cluster did not come up; logs in " << dir_;
    cp_ = std::make_unique<ControlPlane>(
        dir_, etcd_->spec(), 3,
        std::vector<std::string>{"--leader-lease-ttl", "1", "--node-suspect-after", "60000",
                                 "--node-down-after", "120000"});
    ASSERT_TRUE(cp_->WaitUp()) << "servers did not answer; logs in " << dir_;
    leader_ = cp_->WaitLeader(seconds(20));
    ASSERT_GE(leader_, 0) << "no single leader";
    token_ = cp_->server(0).AdminToken();
  }
  void TearDown() override {
    hollow_.reset();
    cp_.reset();
    etcd_.reset();
    if (HasFailure()) DumpLogs();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // The end of every log, for a failed test (the directory goes either way).
  void DumpLogs() {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_, ec)) {
      if (e.path().extension() != ".log") continue;
      auto text = ReadFile(e.path().string());
      if (!text.ok()) continue;
      const size_t from = text->size() > 4000 ? text->size() - 4000 : 0;
      std::cerr << "==> " << e.path().string() << " <==\n" << text->substr(from) << "\n";
    }
  }

  // Three hollow nodes joined through `server` (its join.token).
  void StartFleet(int server) {
    const auto& s = cp_->server(server);
    hollow_ = std::make_unique<Proc>(
        std::vector<std::string>{PHOTON_HOLLOW_BIN, "--server", s.url, "--join-token",
                                 s.dir + "/data/join.token", "--data-dir", dir_ + "/hollow",
                                 "--nodes", "3", "--name-prefix", "ha", "--heartbeat-seconds", "1",
                                 "--vcpu", "1024", "--memory-mb", "1048576", "--listen",
                                 "127.0.0.1:" + std::to_string(FreePort())},
        dir_ + "/hollow.log");
    ASSERT_TRUE(Poll(
        [&] {
          auto nodes = Get("/v1/namespaces/system/nodes");
          int ready = 0;
          for (auto& n : nodes["items"]) ready += n["nodeStatus"]["condition"] == "READY";
          return ready == 3;
        },
        seconds(30), milliseconds(100)))
        << "hollow nodes not READY";
  }

  HttpClient Client() const {
    auto c = *HttpClient::Create(cp_->urls(), token_);
    c.set_timeout(seconds(20));
    return c;
  }
  json Get(const std::string& path) {
    auto r = Client().Do("GET", path);
    if (!r.ok() || r->status != 200) return json::object();
    return json::parse(r->body, nullptr, false);
  }
  // name → agentId of every ha-* instance.
  std::map<std::string, std::string> Placements() {
    std::map<std::string, std::string> out;
    auto list = Get("/v1/namespaces/default/computeinstances");
    for (auto& i : list["items"]) {
      out[i["metadata"]["name"]] = i["metadata"].value("agentId", "");
    }
    return out;
  }
  // Instance name → number of Scheduled events (one per placement write that succeeded).
  std::map<std::string, int> ScheduledEvents() {
    std::map<std::string, int> out;
    auto list = Get("/v1/namespaces/default/events");
    for (auto& e : list["items"]) {
      if (e["spec"].value("eventType", "") != "Scheduled") continue;
      std::string obj = e["spec"]["resourceEvent"].value("name", "");
      out[obj.substr(obj.rfind('/') + 1)]++;
    }
    return out;
  }

  // Creates instances one after another until stopped; `acked` holds every 202.
  class Creator {
   public:
    Creator(HttpClient client, const std::string& prefix) : client_(std::move(client)) {
      thread_ = std::thread([this, prefix] {
        for (int i = 0; !stop_; ++i) {
          const std::string name = prefix + std::to_string(i);
          auto r =
              client_.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance(name));
          std::lock_guard lock(mu_);
          if (r.ok() && r->status == 202) {
            acked_.push_back(name);
          } else {
            last_error_ = r.ok() ? std::to_string(r->status) + " " + r->body
                                 : std::string(r.status().message());
            ++failed_;
          }
          // Paced: the point is a steady stream of creates across the failover, not load.
          std::this_thread::sleep_for(milliseconds(20));
        }
      });
    }
    ~Creator() { Stop(); }
    void Stop() {
      stop_ = true;
      if (thread_.joinable()) thread_.join();
    }
    std::vector<std::string> acked() {
      std::lock_guard lock(mu_);
      return acked_;
    }
    int failed() {
      std::lock_guard lock(mu_);
      return failed_;
    }
    std::string last_error() {
      std::lock_guard lock(mu_);
      return last_error_;
    }

   private:
    HttpClient client_;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::vector<std::string> acked_;
    int failed_ = 0;
    std::string last_error_;
    std::thread thread_;
  };

  // Every acknowledged create exists and is placed on a node, and was placed exactly once.
  void ExpectAllPlacedOnce(const std::vector<std::string>& acked) {
    std::map<std::string, std::string> placed;
    bool all = Poll(
        [&] {
          placed = Placements();
          for (const auto& n : acked) {
            if (placed[n].empty()) return false;
          }
          return true;
        },
        seconds(30), milliseconds(200));
    for (const auto& n : acked) {
      ASSERT_TRUE(placed.count(n)) << "acknowledged create " << n << " is gone";
      EXPECT_FALSE(placed[n].empty()) << n << " was never placed";
    }
    ASSERT_TRUE(all);
    auto events = ScheduledEvents();
    for (const auto& n : acked) EXPECT_EQ(events[n], 1) << n << " placed " << events[n] << " times";
  }

  std::string dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<ControlPlane> cp_;
  std::unique_ptr<Proc> hollow_;
  std::string token_;
  int leader_ = -1;
};

TEST_F(HaTest, ExactlyOneLeaderAndItsStateInHealthzAndMetrics) {
  int followers = 0;
  for (size_t i = 0; i < cp_->size(); ++i) {
    // A follower learns the leader from the store a moment after the leader is elected.
    auto h = cp_->server(i).Health();
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         h["leader"] != cp_->server(leader_).url && std::chrono::steady_clock::now() < end;
         h = cp_->server(i).Health()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(h["leader"], cp_->server(leader_).url) << "server " << i;
    followers += h["role"] == "follower";
    auto c = *HttpClient::Create(cp_->server(i).url, "");
    auto m = c.Do("GET", "/metrics");
    ASSERT_TRUE(m.ok());
    const bool leads = static_cast<int>(i) == leader_;
    EXPECT_NE(m->body.find(std::string("photon_server_leader ") + (leads ? "1" : "0")),
              std::string::npos)
        << "server " << i;
  }
  EXPECT_EQ(followers, 2);
}

// A token minted on one server is accepted by another at once, and refused there at once when
// revoked on a third (agents join through any server and fail over to any other).
TEST_F(HaTest, TokensMintedOrRevokedOnOneServerHoldOnTheOthers) {
  auto on = [&](int i, const std::string& token) {
    auto c = *HttpClient::Create(cp_->server(i).url, token);
    return c;
  };
  json body = {{"principal", "ha-bot"},
               {"bindings", json::array({{{"namespace", "default"}, {"role", "viewer"}}})}};
  auto r = on(1, token_).Do("POST", "/v1/tokens", body.dump());
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  const auto made = json::parse(r->body);
  const std::string token = made["token"], id = made["id"];
  EXPECT_TRUE(Poll(
      [&] {
        auto g = on(2, token).Do("GET", "/v1/namespaces/default/computeinstances");
        return g.ok() && g->status == 200;
      },
      seconds(5)))
      << "a token minted on server 1 is not accepted by server 2";
  // A watch open on server 2 with the token ends within a second of its revocation on server 0.
  Proc watch({"/usr/bin/curl", "-sS", "-N", "-D", dir_ + "/tw.head", "-H",
              "Authorization: Bearer " + token,
              cp_->server(2).url + "/v1/namespaces/default/computeinstances?watch=true"},
             dir_ + "/tw.out");
  ASSERT_TRUE(Poll(
      [&] {
        auto h = ReadFile(dir_ + "/tw.head");
        return h.ok() && h->find(" 200") != std::string::npos;
      },
      seconds(10)));
  auto d = on(0, token_).Do("DELETE", "/v1/tokens/" + id);
  ASSERT_TRUE(d.ok() && d->status < 300) << (d.ok() ? d->body : d.status().ToString());
  int code = 0;
  EXPECT_TRUE(Poll([&] { return watch.Exited(&code); }, milliseconds(1000), milliseconds(10)))
      << "the revoked token's watch on server 2 stayed open";
  EXPECT_NE(ReadFile(dir_ + "/tw.out")->find("was revoked"), std::string::npos);
  EXPECT_TRUE(Poll(
      [&] {
        auto g = on(2, token).Do("GET", "/v1/namespaces/default/computeinstances");
        return g.ok() && g->status == 401;
      },
      seconds(5)))
      << "a token revoked on server 0 is still accepted by server 2";
}

// Users, role bindings and quotas made through one server hold on the others at once, as
// tokens do: they were loaded at start only, so a binding removed through server 0 kept
// granting on server 2, and a quota set there bound nothing there, until a restart.
TEST_F(HaTest, IdentityAndQuotasSetOnOneServerHoldOnTheOthers) {
  auto on = [&](int i, const std::string& token) {
    return *HttpClient::Create(cp_->server(i).url, token);
  };
  auto ok = [](const auto& r, int status) { return r.ok() && r->status == status; };
  auto r = on(0, token_).Do(
      "POST", "/v1/users",
      json{{"metadata", {{"name", "ha-ann"}}}, {"spec", {{"password", "correct horse 1"}}}}.dump());
  ASSERT_TRUE(ok(r, 201)) << (r.ok() ? r->body : r.status().ToString());
  r = on(0, token_).Do(
      "POST", "/v1/rolebindings",
      json{{"metadata", {{"name", "ha-ann-edits"}}},
           {"spec", {{"namespace", "default"}, {"role", "editor"}, {"subjects", {"user:ha-ann"}}}}}
          .dump());
  ASSERT_TRUE(ok(r, 201)) << (r.ok() ? r->body : r.status().ToString());
  std::string ann;
  ASSERT_TRUE(Poll(
      [&] {
        auto l = on(2, "").Do("POST", "/v1/login",
                              json{{"user", "ha-ann"}, {"password", "correct horse 1"}}.dump());
        if (!ok(l, 200)) return false;
        ann = json::parse(l->body)["accessToken"];
        return ok(on(2, ann).Do("GET", "/v1/namespaces/default/computeinstances"), 200);
      },
      seconds(5)))
      << "a user made through server 0 cannot log in and read through server 2";
  r = on(1, token_).Do("DELETE", "/v1/rolebindings/ha-ann-edits");
  ASSERT_TRUE(r.ok() && r->status < 300) << (r.ok() ? r->body : r.status().ToString());
  EXPECT_TRUE(
      Poll([&] { return ok(on(2, ann).Do("GET", "/v1/namespaces/default/computeinstances"), 403); },
           seconds(5)))
      << "a binding removed through server 1 still grants on server 2";

  r = on(0, token_).Do(
      "POST", "/v1/namespaces/ha-q/quotas",
      json{{"metadata", {{"name", "one"}}}, {"spec", {{"limits", {{"instances", 1}}}}}}.dump());
  ASSERT_TRUE(ok(r, 201)) << (r.ok() ? r->body : r.status().ToString());
  ASSERT_TRUE(
      Poll([&] { return ok(on(2, token_).Do("GET", "/v1/namespaces/ha-q/quotas/one"), 200); },
           seconds(5)))
      << "a quota set through server 0 is unknown to server 2";
  r = on(2, token_).Do("POST", "/v1/namespaces/ha-q/computeinstances", ProcessInstance("q-1"));
  EXPECT_TRUE(ok(r, 202)) << (r.ok() ? r->body : r.status().ToString());
  r = on(2, token_).Do("POST", "/v1/namespaces/ha-q/computeinstances", ProcessInstance("q-2"));
  EXPECT_TRUE(ok(r, 403)) << (r.ok() ? r->body : r.status().ToString());
}

// Events reported to every server open their alerts, and each webhook leaves once: the
// delivery loop runs on the leader only (three loops sent each delivery up to three times).
TEST_F(HaTest, WebhooksGoOutOnceWhicheverServerTookTheEvent) {
  std::mutex mu;
  std::map<std::string, int> deliveries;  // delivery id → times received
  std::set<std::string> warmed;           // dedup keys of the warm-up events delivered
  auto hook = HttpServer::Start({}, [&](HttpRequest& r) {
    std::lock_guard lock(mu);
    json body = json::parse(r.body, nullptr, false);
    std::string key;
    if (body.is_object() && body.contains("event")) {
      key = body["event"]["spec"]["opsEvent"].value("dedupKey", "");
    }
    if (key.rfind("ha/warm-", 0) == 0) {
      warmed.insert(key);
    } else {
      ++deliveries[r.Header("x-photon-delivery")];
    }
    return HttpResponse::Text(200, "ok\n");
  });
  ASSERT_TRUE(hook.ok()) << hook.status();
  const std::string url = "http://127.0.0.1:" + std::to_string((*hook)->port()) + "/hook";
  auto on = [&](size_t i) {
    auto c = *HttpClient::Create(cp_->server(i).url, token_);
    c.set_timeout(seconds(10));
    return c;
  };
  json rule = {{"metadata", {{"name", "page"}}},
               {"spec",
                {{"type", "ACTION"},
                 {"match", "severity=CRITICAL"},
                 {"actions", json::array({{{"type", "API_HOOK"}, {"url", url}}})}}}};
  auto r = on(0).Do("POST", "/v1/namespaces/system/eventrules", rule.dump());
  ASSERT_TRUE(r.ok() && r->status == 202) << (r.ok() ? r->body : r.status().ToString());
  // Every server must know the rule before the events come (their caches follow the store).
  ASSERT_TRUE(Poll(
      [&] {
        for (size_t i = 0; i < cp_->size(); ++i) {
          auto g = on(i).Do("GET", "/v1/namespaces/system/eventrules/page");
          if (!g.ok() || g->status != 200) return false;
        }
        return true;
      },
      seconds(10)));
  // A server's rule index follows its cache a moment after a GET already sees the rule: each
  // server gets warm-up events until one of them comes back as a webhook, so the counted
  // events below all meet the rule (their webhooks are told apart by their dedup keys).
  for (size_t i = 0; i < cp_->size(); ++i) {
    bool warm = false;
    for (int n = 0; n < 20 && !warm; ++n) {
      const std::string key = "ha/warm-" + std::to_string(i) + "-" + std::to_string(n);
      json ev = {
          {"spec",
           {{"opsEvent",
             {{"check", "ha"}, {"severity", "CRITICAL"}, {"dedupKey", key}, {"output", "warm"}}}}}};
      auto p = on(i).Do("POST", "/v1/namespaces/default/events", ev.dump());
      ASSERT_TRUE(p.ok() && p->status == 201) << (p.ok() ? p->body : p.status().ToString());
      warm = Poll(
          [&] {
            std::lock_guard lock(mu);
            return warmed.count(key) > 0;
          },
          seconds(1));
    }
    ASSERT_TRUE(warm) << "server " << i << " never applied the rule";
  }
  const int kEvents = 30;
  for (int k = 0; k <= kEvents; ++k) {
    json ev = {{"spec",
                {{"opsEvent",
                  {{"check", "ha"},
                   {"severity", "CRITICAL"},
                   {"dedupKey", "ha/k" + std::to_string(k)},
                   {"output", "down"}}}}}};
    auto p = on(k % cp_->size()).Do("POST", "/v1/namespaces/default/events", ev.dump());
    ASSERT_TRUE(p.ok() && p->status == 201) << (p.ok() ? p->body : p.status().ToString());
  }
  auto count = [&] {
    std::lock_guard lock(mu);
    return deliveries.size();
  };
  ASSERT_TRUE(Poll([&] { return count() == static_cast<size_t>(kEvents + 1); }, seconds(20)))
      << count() << " of " << kEvents + 1 << " webhooks delivered";
  // Followers' loops tick every 200 ms: a few of their ticks pass, then nothing came twice.
  const auto settle = Clock::now() + milliseconds(1500);
  Poll([&] { return Clock::now() > settle; }, seconds(3), milliseconds(100));
  std::lock_guard lock(mu);
  for (const auto& [id, times] : deliveries) EXPECT_EQ(times, 1) << "delivery " << id;
}

// kill -9 of the leader: another server takes over and places within the bound; every
// acknowledged create is there, placed exactly once.
TEST_F(HaTest, LeaderKillFailoverPlacesEveryAcknowledgedCreateOnce) {
  StartFleet((leader_ + 1) % 3);
  Creator creator(Client(), "ha-");
  ASSERT_TRUE(Poll([&] { return creator.acked().size() >= 20; }, seconds(30)));
  const size_t before = creator.acked().size();
  const auto killed = Clock::now();
  cp_->server(leader_).proc->Kill();
  // The first placement of a create acknowledged after the kill.
  std::string first_after;
  ASSERT_TRUE(Poll(
      [&] {
        auto acked = creator.acked();
        if (acked.size() <= before) return false;
        auto placed = Placements();
        for (size_t i = before; i < acked.size(); ++i) {
          if (!placed[acked[i]].empty()) return !(first_after = acked[i]).empty();
        }
        return false;
      },
      seconds(20)))
      << "nothing placed after the leader was killed; last client error: " << creator.last_error();
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed);
  std::cerr << "first placement after the leader's kill: " << took.count() << " ms\n";
  const int next = cp_->WaitLeader(seconds(5));
  ASSERT_GE(next, 0);
  EXPECT_NE(next, leader_);
  // The target is 2 s (bench/ha measures it); the bound here leaves room for a loaded host.
  EXPECT_LT(took.count(), 8000) << first_after << " placed " << took.count() << " ms after kill";
  ASSERT_TRUE(Poll([&] { return creator.acked().size() >= before + 40; }, seconds(30)));
  creator.Stop();
  ExpectAllPlacedOnce(creator.acked());
  // The killed server comes back as a follower.
  cp_->server(leader_).Start();
  ASSERT_TRUE(
      Poll([&] { return cp_->server(leader_).Health()["role"] == "follower"; }, seconds(30)));
}

// A watch resumes on another server from its resourceVersion: only what changed since, no
// relist (the revision is etcd's, the same on every server).
TEST_F(HaTest, WatchResumesOnAnotherServerFromItsResourceVersion) {
  auto c = Client();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("w-" + std::to_string(i)))
                  ->status,
              202);
  }
  const int watched = (leader_ + 1) % 3;
  auto list = Get("/v1/namespaces/default/computeinstances");
  const std::string rv = list.value("resourceVersion", "");
  ASSERT_FALSE(rv.empty()) << list.dump();
  cp_->server(watched).proc->Kill();
  ASSERT_EQ(
      c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("w-new"))->status,
      202);
  // The list puts the killed server first: the client must move on.
  std::string urls = cp_->server(watched).url;
  for (int i = 0; i < 3; ++i) {
    if (i != watched) urls += "," + cp_->server(i).url;
  }
  auto w = *HttpClient::Create(urls, token_);
  w.set_timeout(seconds(10));
  std::vector<json> events;
  auto r = w.Stream("/v1/namespaces/default/computeinstances?watch=true&resourceVersion=" + rv,
                    [&](const std::string& line) {
                      auto e = json::parse(line, nullptr, false);
                      if (e.is_discarded() || e.value("type", "") == "BOOKMARK") return true;
                      events.push_back(e);
                      return e["object"]["metadata"].value("name", "") != "w-new";
                    });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) {
    EXPECT_NE(e.value("type", ""), "ERROR") << e.dump();
    const std::string name = e["object"]["metadata"].value("name", "");
    EXPECT_TRUE(name == "w-new") << "relisted or replayed " << name << ": " << e.dump();
  }
}

// One etcd member down: the API keeps working. Two down: writes fail with a clear error.
// All back: everything acknowledged is there.
TEST_F(HaTest, EtcdMemberLossKeepsApiThenQuorumLossFailsClearly) {
  StartFleet((leader_ + 1) % 3);
  Creator creator(Client(), "q-");
  ASSERT_TRUE(Poll([&] { return creator.acked().size() >= 10; }, seconds(30)));
  etcd_->Kill(0);
  const size_t at_one = creator.acked().size();
  ASSERT_TRUE(Poll([&] { return creator.acked().size() >= at_one + 30; }, seconds(30)))
      << "creates stopped with one etcd member down: " << creator.last_error();
  creator.Stop();
  const auto acked = creator.acked();
  ExpectAllPlacedOnce(acked);

  etcd_->Kill(1);
  auto c = Client();
  auto r = c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("no-quorum"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 503) << r->body;
  // Each member's reason: the live one's own answer (no quorum: "etcdserver: request timed
  // out"), the dead ones' refused connections.
  EXPECT_NE(r->body.find("etcd: no member of 3 served the request"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("etcdserver: "), std::string::npos) << r->body;
  std::cerr << "without quorum: " << r->status << " " << r->body << "\n";

  etcd_->Restart(0);
  etcd_->Restart(1);
  ASSERT_TRUE(etcd_->WaitMember(0));
  auto placed = std::map<std::string, std::string>();
  ASSERT_TRUE(Poll(
      [&] {
        placed = Placements();
        return !placed.empty();
      },
      seconds(30), milliseconds(200)));
  for (const auto& n : acked) EXPECT_TRUE(placed.count(n)) << "acknowledged " << n << " lost";
}

// Three servers with the built-in CA (TLS on): the second and third join with the command the
// first logs, taking its CA pinned by hash. An agent that joined through the first then works
// with its certificate on the others, also once the first is gone; a revocation through one
// server ends the agent's watch on another.
class HaTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kEtcd, X_OK), 0) << kEtcd << " is not installed (Debian etcd-server)";
    dir_ = MakeTempDir("ha-tls");
    etcd_ = EtcdCluster::Start(dir_);
    ASSERT_TRUE(etcd_) << "etcd cluster did not come up; logs in " << dir_;
  }
  void TearDown() override {
    procs_.clear();
    etcd_.reset();
    if (HasFailure()) {
      std::error_code ec;
      for (const auto& e : std::filesystem::recursive_directory_iterator(dir_, ec)) {
        if (e.path().extension() != ".log") continue;
        auto text = ReadFile(e.path().string());
        if (!text.ok()) continue;
        const size_t from = text->size() > 3000 ? text->size() - 3000 : 0;
        std::cerr << "==> " << e.path().string() << " <==\n" << text->substr(from) << "\n";
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // photon-server number i with TLS on; `join`: more arguments (and PHOTON_TOKEN) to join.
  Proc* StartServer(int i, std::vector<std::string> join, const std::string& token = "") {
    ports_[i] = FreePort();
    std::vector<std::string> argv = {PHOTON_SERVER_BIN,
                                     "--store",
                                     etcd_->spec(),
                                     "--data-dir",
                                     Data(i),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(ports_[i]),
                                     "--grpc-listen",
                                     "127.0.0.1:" + std::to_string(FreePort()),
                                     "--tls",
                                     "on",
                                     "--leader-lease-ttl",
                                     "1"};
    argv.insert(argv.end(), join.begin(), join.end());
    std::vector<std::string> env;
    if (!token.empty()) env.push_back("PHOTON_TOKEN=" + token);
    procs_.push_back(std::make_unique<Proc>(
        argv, dir_ + "/server" + std::to_string(i) + "-" + std::to_string(procs_.size()) + ".log",
        env));
    return procs_.back().get();
  }
  std::string Data(int i) const { return dir_ + "/server" + std::to_string(i); }
  std::string Url(int i) const { return "https://127.0.0.1:" + std::to_string(ports_[i]); }
  // A client of server i trusting only the first server's CA file.
  HttpClient Client(int i, const std::string& token) const {
    auto c = *HttpClient::Create(Url(i), token, Data(0) + "/tls/ca.crt");
    c.set_timeout(seconds(10));
    return c;
  }
  bool Up(int i) const {
    auto r = Client(i, "").Do("GET", "/healthz");
    return r.ok() && r->status == 200;
  }

  std::string dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<Proc>> procs_;
  int ports_[4] = {};
};

TEST_F(HaTlsTest, JoiningServersTakeTheCaAndAcceptAnAgentOfAnother) {
  StartServer(0, {});
  ASSERT_TRUE(Poll([&] { return std::filesystem::exists(Data(0) + "/tls/ca.crt") && Up(0); },
                   seconds(60), milliseconds(100)));
  auto hash = PublicKeyHash(*ReadFile(Data(0) + "/tls/ca.crt"));
  ASSERT_TRUE(hash.ok()) << hash.status();
  const std::string token = Trim(*ReadFile(Data(0) + "/admin.token"));
  // The first server logs the whole join command, CA pin included.
  const std::string join_args = "--ca-from " + Url(0) + " --ca-hash " + *hash;
  ASSERT_TRUE(Poll(
      [&] {
        auto log = ReadFile(dir_ + "/server0-0.log");
        return log.ok() && log->find(join_args) != std::string::npos;
      },
      seconds(10)))
      << "the first server does not log '" << join_args << "'";

  // Refused: a join that would make a CA of its own, and one pinning another hash.
  int code = 0;
  Proc* bare = StartServer(3, {"--join"}, token);
  ASSERT_TRUE(Poll([&] { return bare->Exited(&code); }, seconds(30)));
  EXPECT_NE(code, 0);
  EXPECT_NE(ReadFile(dir_ + "/server3-1.log")->find("add --ca-from"), std::string::npos);
  const std::string wrong = "sha256:" + std::string(64, 'b');
  Proc* pinned_wrong = StartServer(3, {"--join", "--ca-from", Url(0), "--ca-hash", wrong}, token);
  ASSERT_TRUE(Poll([&] { return pinned_wrong->Exited(&code); }, seconds(30)));
  EXPECT_NE(code, 0);
  EXPECT_NE(ReadFile(dir_ + "/server3-2.log")->find("not the pinned " + wrong), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(Data(3) + "/tls/ca.key"));

  for (int i : {1, 2}) {
    StartServer(i, {"--join", "--ca-from", Url(0), "--ca-hash", *hash}, token);
  }
  // Up over TLS trusting the first server's CA: their server certificates are of that CA.
  for (int i : {1, 2}) ASSERT_TRUE(Poll([&] { return Up(i); }, seconds(60), milliseconds(100)));
  for (int i : {1, 2}) {
    struct stat st {};
    ASSERT_EQ(stat((Data(i) + "/tls/ca.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600);
    EXPECT_EQ(*ReadFile(Data(i) + "/tls/ca.key"), *ReadFile(Data(0) + "/tls/ca.key"));
  }

  // An agent joins through server 0 (the first of its list), pinning the CA.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml",
                              "drivers:\n  process: {enabled: \"false\"}\n"
                              "  container: {enabled: \"false\"}\n  vm: {enabled: \"false\"}\n")
                  .ok());
  procs_.push_back(
      std::make_unique<Proc>(std::vector<std::string>{PHOTON_AGENT_BIN,
                                                      "--config",
                                                      dir_ + "/agent.yaml",
                                                      "--server",
                                                      Url(0) + "," + Url(1) + "," + Url(2),
                                                      "--ca-hash",
                                                      *hash,
                                                      "--token-file",
                                                      Data(0) + "/join.token",
                                                      "--data-dir",
                                                      dir_ + "/agent",
                                                      "--name",
                                                      "tls-n1",
                                                      "--heartbeat-seconds",
                                                      "1",
                                                      "--vcpu",
                                                      "2",
                                                      "--memory-mb",
                                                      "512",
                                                      "--disk-gb",
                                                      "5",
                                                      "--listen",
                                                      "127.0.0.1:0"},
                             dir_ + "/agent.log"));
  auto heartbeat = [&](int via) {
    auto r = Client(via, token).Do("GET", "/v1/namespaces/system/nodes/tls-n1");
    if (!r.ok() || r->status != 200) return std::string();
    auto j = json::parse(r->body, nullptr, false);
    // The node's object exists before its first heartbeat, without nodeStatus.
    if (!j.is_object() || !j.contains("nodeStatus") || !j["nodeStatus"].is_object()) {
      return std::string();
    }
    return j["nodeStatus"].value("lastHeartbeat", "");
  };
  ASSERT_TRUE(Poll([&] { return !heartbeat(1).empty(); }, seconds(30), milliseconds(100)));
  const std::string crt = *ReadFile(dir_ + "/agent/node.crt");
  const std::string key = *ReadFile(dir_ + "/agent/node.key");
  for (int i : {1, 2}) {
    auto c = Client(i, "");
    ASSERT_TRUE(c.SetClientCertificate(crt, key).ok());
    auto r = c.Do("GET", "/v1/namespaces/system/nodes/tls-n1");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << "server " << i << ": " << r->body;
  }

  // Server 0 gone: the agent carries on with the others on the same certificate.
  procs_[0]->Kill();
  const std::string before = heartbeat(1);
  EXPECT_TRUE(Poll([&] { return heartbeat(1) > before; }, seconds(15), milliseconds(200)))
      << "no heartbeat after the server the agent joined through died";

  // Revoked through server 1: the agent's open watch on server 2 ends within a second.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/w.crt", crt, 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/w.key", key, 0600).ok());
  Proc watch({"/usr/bin/curl", "-sS", "-N", "-D", dir_ + "/w.head", "--cacert",
              Data(0) + "/tls/ca.crt", "--cert", dir_ + "/w.crt", "--key", dir_ + "/w.key",
              Url(2) + "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dtls-n1"},
             dir_ + "/w.out");
  ASSERT_TRUE(Poll(
      [&] {
        auto h = ReadFile(dir_ + "/w.head");
        return h.ok() && h->find(" 200") != std::string::npos;
      },
      seconds(10)));
  auto r = Client(1, token).Do("POST", "/v1/noderevocations/tls-n1");
  ASSERT_TRUE(r.ok() && r->status / 100 == 2) << (r.ok() ? r->body : r.status().ToString());
  const auto t0 = Clock::now();
  EXPECT_TRUE(Poll([&] { return watch.Exited(&code); }, milliseconds(1000), milliseconds(10)))
      << "the agent's watch on another server stayed open";
  EXPECT_LE(Clock::now() - t0, milliseconds(1100));
  auto c2 = Client(2, "");
  ASSERT_TRUE(c2.SetClientCertificate(crt, key).ok());
  auto refused = c2.Do("GET", "/v1/namespaces/system/nodes/tls-n1");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401) << refused->body;
}

}  // namespace
}  // namespace photon::testing::ha
