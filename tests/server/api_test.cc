// The REST API end to end against an in-process photon-server with the embedded store.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "photon/event.pb.h"
#include "store/store.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  TestServer s_;
};

TEST_F(ApiTest, HealthAndMetricsNeedNoToken) {
  auto c = s_.Client("");
  auto h = c.Do("GET", "/healthz");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->status, 200);
  auto m = c.Do("GET", "/metrics");
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("# TYPE"), std::string::npos);
}

TEST_F(ApiTest, RefusesMissingAndWrongTokens) {
  auto r = s_.Client("").Do("GET", "/v1/namespaces/default/computeinstances");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json(*r)["error"]["code"], "UNAUTHENTICATED");
  r = s_.Client("pct_0000000000000000_000000000000000000000000000000000000000000000000")
          .Do("GET", "/v1/namespaces/default/computeinstances");
  EXPECT_EQ(r->status, 401);
  r = s_.Client("garbage").Do("POST", "/v1/namespaces/default/computeinstances",
                              ProcessInstance("x"));
  EXPECT_EQ(r->status, 401);
}

TEST_F(ApiTest, CreateIsAsyncAndWaitsForNodes) {
  auto c = s_.Admin();
  auto r = c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("web"));
  ASSERT_EQ(r->status, 202) << r->body;
  auto j = Json(*r);
  std::string op_id = j["operation"]["metadata"]["id"];
  EXPECT_EQ(j["object"]["metadata"]["generation"], "1");
  EXPECT_EQ(j["object"]["status"]["phase"], "PENDING");
  EXPECT_FALSE(j["object"]["metadata"]["id"].get<std::string>().empty());
  // The placement hint explains why it waits; the operation follows it.
  std::string message, op_state;
  for (int i = 0; i < 100; ++i) {
    auto g = c.Do("GET", "/v1/namespaces/default/computeinstances/web");
    ASSERT_EQ(g->status, 200);
    message = Json(*g)["status"]["message"];
    auto op = c.Do("GET", "/v1/operations/" + op_id);
    ASSERT_EQ(op->status, 200) << op->body;
    op_state = Json(*op)["status"]["state"];
    if (message.find("no nodes") != std::string::npos && op_state == "RUNNING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(message.find("no nodes available"), std::string::npos) << message;
  EXPECT_EQ(op_state, "RUNNING");
  EXPECT_EQ(c.Do("GET", "/v1/operations/00000000-0000-0000-0000-000000000000")->status, 404);
}

TEST_F(ApiTest, BadInputIsRefusedWithTheFieldNamed) {
  auto c = s_.Admin();
  auto r = c.Do("POST", "/v1/namespaces/default/computeinstances", "{\"metadata\":");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(Json(*r)["error"]["message"].get<std::string>().find("JSON"), std::string::npos);
  r = c.Do("POST", "/v1/namespaces/default/computeinstances",
           R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},"bogus":1}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("bogus"), std::string::npos) << r->body;
  r = c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("Bad_Name"));
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("metadata.name"), std::string::npos);
  r = c.Do("POST", "/v1/namespaces/default/computeinstances",
           R"({"metadata":{"name":"x"},"spec":{}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("spec"), std::string::npos);
  r = c.Do(
      "POST", "/v1/namespaces/default/computeinstances",
      R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},"resources":{"memoryMb":-5}}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("spec.resources.memoryMb"), std::string::npos);
  r = c.Do("POST", "/v1/namespaces/default/widgets", "{}");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("widgets"), std::string::npos);
  r = c.Do("POST", "/v1/namespaces/default/computeinstances", std::string(2 << 20, 'x'));
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(c.Do("GET", "/v1/namespaces/default/computeinstances/nope")->status, 404);
  EXPECT_EQ(c.Do("GET", "/v1/namespaces/default/computeinstances?limit=abc")->status, 400);
  EXPECT_EQ(
      c.Do("GET", "/v1/namespaces/default/computeinstances?labelSelector=a%20in%20(b")->status,
      400);
  // Nothing of the above was stored.
  auto l = c.Do("GET", "/v1/namespaces/default/computeinstances");
  EXPECT_EQ(Json(*l)["items"].size(), 0u);
}

TEST_F(ApiTest, DuplicateCreateConflicts) {
  auto c = s_.Admin();
  EXPECT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("dup"))->status,
            202);
  auto r = c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("dup"));
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(Json(*r)["error"]["code"], "ALREADY_EXISTS");
}

TEST_F(ApiTest, OptimisticConcurrencyAndGeneration) {
  auto c = s_.Admin();
  auto created =
      Json(*c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("occ")));
  // Let the placement hint write its status first so only this test writes afterwards.
  json obj;
  for (int i = 0; i < 100; ++i) {
    obj = Json(*c.Do("GET", "/v1/namespaces/default/computeinstances/occ"));
    if (obj["status"]["message"].get<std::string>().find("no nodes") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Label change: generation stays.
  obj["metadata"]["labels"]["x"] = "y";
  auto r = c.Do("PUT", "/v1/namespaces/default/computeinstances/occ", obj.dump());
  ASSERT_EQ(r->status, 200) << r->body;
  auto after_labels = Json(*r);
  EXPECT_EQ(after_labels["metadata"]["generation"], "1");
  // The old resourceVersion is stale now.
  obj["spec"]["resources"]["vcpu"] = 2;
  r = c.Do("PUT", "/v1/namespaces/default/computeinstances/occ", obj.dump());
  EXPECT_EQ(r->status, 409);
  EXPECT_NE(r->body.find("conflict"), std::string::npos);
  // With the fresh one the spec change goes through and bumps generation.
  obj["metadata"]["resourceVersion"] = after_labels["metadata"]["resourceVersion"];
  r = c.Do("PUT", "/v1/namespaces/default/computeinstances/occ", obj.dump());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(*r)["metadata"]["generation"], "2");
  EXPECT_EQ(Json(*r)["spec"]["resources"]["vcpu"], 2);
  // Without a resourceVersion the update is refused.
  obj["metadata"].erase("resourceVersion");
  EXPECT_EQ(c.Do("PUT", "/v1/namespaces/default/computeinstances/occ", obj.dump())->status, 400);
  // Delete: 202, then gone.
  EXPECT_EQ(c.Do("DELETE", "/v1/namespaces/default/computeinstances/occ")->status, 202);
  EXPECT_EQ(c.Do("GET", "/v1/namespaces/default/computeinstances/occ")->status, 404);
  EXPECT_EQ(c.Do("DELETE", "/v1/namespaces/default/computeinstances/occ")->status, 404);
}

TEST_F(ApiTest, RolesAndNamespaceIsolation) {
  auto admin = s_.Admin();
  auto mk = [&](const std::string& who, const std::string& ns, const std::string& role) {
    json body = {{"principal", who},
                 {"bindings", json::array({{{"namespace", ns}, {"role", role}}})}};
    auto r = admin.Do("POST", "/v1/tokens", body.dump());
    EXPECT_EQ(r->status, 201) << r->body;
    return Json(*r)["token"].get<std::string>();
  };
  auto alice = s_.Client(mk("alice", "team-a", "editor"));
  auto bob = s_.Client(mk("bob", "team-b", "viewer"));
  EXPECT_EQ(
      alice.Do("POST", "/v1/namespaces/team-a/computeinstances", ProcessInstance("a1"))->status,
      202);
  EXPECT_EQ(
      admin.Do("POST", "/v1/namespaces/team-b/computeinstances", ProcessInstance("b1"))->status,
      202);
  // An editor of A cannot read or write B.
  EXPECT_EQ(alice.Do("GET", "/v1/namespaces/team-b/computeinstances/b1")->status, 403);
  EXPECT_EQ(alice.Do("GET", "/v1/namespaces/team-b/computeinstances")->status, 403);
  EXPECT_EQ(
      alice.Do("POST", "/v1/namespaces/team-b/computeinstances", ProcessInstance("a2"))->status,
      403);
  // A viewer reads but does not write.
  EXPECT_EQ(bob.Do("GET", "/v1/namespaces/team-b/computeinstances/b1")->status, 200);
  EXPECT_EQ(bob.Do("DELETE", "/v1/namespaces/team-b/computeinstances/b1")->status, 403);
  // Cross-namespace list shows only what one may read.
  auto all = Json(*alice.Do("GET", "/v1/computeinstances"));
  ASSERT_EQ(all["items"].size(), 1u);
  EXPECT_EQ(all["items"][0]["metadata"]["namespace"], "team-a");
  // Editors do not write status (controllers and agents do) nor tokens nor read the audit log.
  auto obj = Json(*alice.Do("GET", "/v1/namespaces/team-a/computeinstances/a1"));
  obj["status"]["phase"] = "RUNNING";
  EXPECT_EQ(alice.Do("PUT", "/v1/namespaces/team-a/computeinstances/a1/status", obj.dump())->status,
            403);
  EXPECT_EQ(alice.Do("POST", "/v1/tokens", R"({"principal":"x"})")->status, 403);
  EXPECT_EQ(alice.Do("GET", "/v1/auditevents")->status, 403);
  // Every mutating call of alice's left exactly one audit record, refused ones included (her
  // reads none). tests/server/audit_test.cc checks the whole log.
  auto audit = Json(*admin.Do("GET", "/v1/auditevents"));
  std::vector<std::string> alices;
  for (auto& e : audit["items"]) {
    if (e["actorId"] != "alice") continue;
    alices.push_back(e["action"].get<std::string>() + " " + e["resourceId"].get<std::string>() +
                     " " + std::to_string(e["code"].get<int>()));
  }
  EXPECT_EQ(alices,
            (std::vector<std::string>{
                "create computeinstances/team-a/a1 202", "create computeinstances/team-b/a2 403",
                "update-status computeinstances/team-a/a1 403", "create-token tokens 403"}));
}

// Before the audit trail was an append-only log, records were keys under /audit/: a server
// started on such a data dir moves them into the log, oldest first, and drops the keys.
TEST(AuditLog, LegacyAuditKeysAreMovedIntoTheLog) {
  std::string dir = MakeTempDir("legacy-audit");
  {
    auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir});
    ASSERT_TRUE(store.ok()) << store.status();
    for (const char* who : {"old-first", "old-second"}) {
      event::Event ev;
      ev.mutable_spec()->set_timestamp("2026-01-01T00:00:00Z");
      auto* a = ev.mutable_spec()->mutable_audit_event();
      a->set_actor_id(who);
      a->set_action("create");
      a->set_success(true);
      a->set_code(202);
      ASSERT_TRUE((*store)
                      ->Put(std::string("/audit/2026-01-01T00:00:0") + (who[4] == 'f' ? "1" : "2") +
                                "Z-abcd",
                            ev.SerializeAsString())
                      .ok());
    }
  }
  server::ServerOptions opts;
  opts.data_dir = dir;
  opts.listen = "127.0.0.1:0";
  opts.grpc_listen = "127.0.0.1:0";
  auto s = server::Server::Start(opts);
  ASSERT_TRUE(s.ok()) << s.status();
  auto admin = *cli::HttpClient::Create("http://127.0.0.1:" + std::to_string((*s)->http_port()),
                                        Trim(*ReadFile(dir + "/admin.token")));
  ASSERT_EQ(
      admin.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("new"))->status,
      202);
  auto audit = Json(*admin.Do("GET", "/v1/auditevents"));
  std::vector<std::string> actors;
  for (auto& e : audit["items"]) actors.push_back(e["actorId"]);
  ASSERT_EQ(actors.size(), 3u) << audit.dump();
  EXPECT_EQ(actors[0], "old-first");
  EXPECT_EQ(actors[1], "old-second");
  EXPECT_EQ(actors[2], "admin");
  auto limited = Json(*admin.Do("GET", "/v1/auditevents?limit=1"));
  ASSERT_EQ(limited["items"].size(), 1u);
  EXPECT_EQ(limited["items"][0]["actorId"], "admin");
  (*s)->Stop();
  s->reset();
  // Moved, not copied: the keys are gone.
  auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir});
  ASSERT_TRUE(store.ok());
  auto left = (*store)->Range("/audit/", {.end = store::PrefixEnd("/audit/")});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->kvs.empty());
  store->reset();
  std::filesystem::remove_all(dir);
}

TEST_F(ApiTest, ListFiltersAndPages) {
  auto c = s_.Admin();
  for (int i = 0; i < 25; ++i) {
    std::string labels = i % 2 ? R"({"parity":"odd"})" : R"({"parity":"even"})";
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("vm-" + std::to_string(i), labels))
                  ->status,
              202);
  }
  auto odd =
      Json(*c.Do("GET", "/v1/namespaces/default/computeinstances?labelSelector=parity%3Dodd"));
  EXPECT_EQ(odd["items"].size(), 12u);
  std::set<std::string> seen;
  std::string cont;
  int pages = 0;
  do {
    auto page = Json(*c.Do("GET", "/v1/namespaces/default/computeinstances?limit=10" +
                                      (cont.empty() ? "" : "&continue=" + cont)));
    for (auto& it : page["items"]) seen.insert(it["metadata"]["name"]);
    cont = page["continue"];
    ++pages;
  } while (!cont.empty());
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(c.Do("GET", "/v1/namespaces/default/computeinstances?continue=zz")->status, 400);
}

TEST_F(ApiTest, WatchSeesChangesInOrderAndResumes) {
  auto c = s_.Admin();
  std::vector<std::string> lines;
  std::mutex mu;
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    auto wc = s_.Admin();
    (void)wc.Stream("/v1/namespaces/default/computeinstances?watch=true",
                    [&](const std::string& line) {
                      std::lock_guard lock(mu);
                      lines.push_back(line);
                      return json::parse(line)["type"] != "DELETED" && !done;
                    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto created =
      Json(*c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("w1")));
  std::string rv_created = created["object"]["metadata"]["resourceVersion"];
  auto obj = Json(*c.Do("GET", "/v1/namespaces/default/computeinstances/w1"));
  obj["metadata"]["labels"]["changed"] = "yes";
  // The placement hint may write status meanwhile; retry on conflict.
  for (int i = 0; i < 20; ++i) {
    auto r = c.Do("PUT", "/v1/namespaces/default/computeinstances/w1", obj.dump());
    if (r->status == 200) break;
    obj["metadata"]["resourceVersion"] = Json(
        *c.Do("GET", "/v1/namespaces/default/computeinstances/w1"))["metadata"]["resourceVersion"];
  }
  ASSERT_EQ(c.Do("DELETE", "/v1/namespaces/default/computeinstances/w1")->status, 202);
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      if (!lines.empty() && json::parse(lines.back())["type"] == "DELETED") break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  done = true;
  watcher.join();
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines.front())["type"], "ADDED");
  EXPECT_EQ(json::parse(lines.back())["type"], "DELETED");
  int64_t last = 0;
  for (auto& l : lines) {
    auto rv =
        std::stoll(json::parse(l)["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(rv, last);
    last = rv;
  }
  // Resuming from the create's version replays what came after it, in order.
  std::vector<std::string> replay;
  (void)s_.Admin().Stream(
      "/v1/namespaces/default/computeinstances?watch=true&resourceVersion=" + rv_created,
      [&](const std::string& line) {
        replay.push_back(line);
        return json::parse(line)["type"] != "DELETED";
      });
  ASSERT_FALSE(replay.empty());
  EXPECT_EQ(json::parse(replay.front())["type"], "MODIFIED");
  EXPECT_EQ(json::parse(replay.back())["type"], "DELETED");
}

TEST(ApiWatchHistory, TooOldResourceVersionGives410) {
  server::ServerOptions opts;
  opts.watch_history = 5;
  TestServer s(opts);
  auto c = s.Admin();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("h" + std::to_string(i)))
                  ->status,
              202);
  }
  auto r = c.Stream("/v1/namespaces/default/computeinstances?watch=true&resourceVersion=1",
                    [](const std::string&) { return false; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 410);
  EXPECT_NE(r->body.find("OUT_OF_RANGE"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace photon::testing

namespace photon::testing {
namespace {

TEST(Join, JoinTokenBuysOneAgentCredentialAndNothingElse) {
  TestServer s;
  std::string join = Trim(*ReadFile(s.dir + "/join.token"));
  auto j = s.Client(join);
  EXPECT_EQ(j.Do("GET", "/v1/namespaces/default/computeinstances")->status, 403);
  EXPECT_EQ(j.Do("POST", "/v1/join", R"({"node":"Bad Name"})")->status, 400);
  auto r = j.Do("POST", "/v1/join", R"({"node":"node-1"})");
  ASSERT_EQ(r->status, 201) << r->body;
  auto agent = s.Client(Json(*r)["token"].get<std::string>());
  // The agent registers its node and reads, but creates no workloads.
  auto node =
      R"({"metadata":{"name":"node-1"},"spec":{"capacity":{"vcpu":4,"memoryMb":4096},"drivers":["process"]}})";
  EXPECT_EQ(agent.Do("POST", "/v1/namespaces/system/nodes", node)->status, 202);
  EXPECT_EQ(agent
                .Do("GET",
                    "/v1/namespaces/default/computeinstances?fieldSelector=metadata.agentId=node-1")
                ->status,
            200);
  EXPECT_EQ(agent.Do("GET", "/v1/namespaces/default/computeinstances")->status, 403);
  EXPECT_EQ(
      agent.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("x"))->status,
      403);
  EXPECT_EQ(
      s.Admin().Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("y"))->status,
      202);
  EXPECT_EQ(agent.Do("DELETE", "/v1/namespaces/default/computeinstances/y")->status, 403);
  // Its status writes go through.
  auto n = Json(*agent.Do("GET", "/v1/namespaces/system/nodes/node-1"));
  n["nodeStatus"]["condition"] = "READY";
  auto w = agent.Do("PUT", "/v1/namespaces/system/nodes/node-1/status", n.dump());
  EXPECT_EQ(w->status, 200) << w->body;
  EXPECT_EQ(Json(*w)["nodeStatus"]["condition"], "READY");
}

}  // namespace
}  // namespace photon::testing

namespace photon::testing {
namespace {

TEST(Housekeeping, OldEventsAndFinishedOperationsGoAway) {
  server::ServerOptions opts;
  opts.housekeeping_interval_s = 1;
  opts.event_ttl_s = 0;
  TestServer s(opts);
  auto c = s.Admin();
  ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("hk"))->status,
            202);
  auto del = Json(*c.Do("DELETE", "/v1/namespaces/default/computeinstances/hk"));
  std::string op = del["operation"]["metadata"]["id"];
  EXPECT_EQ(c.Do("GET", "/v1/operations/" + op)->status, 200);
  // The finished delete operation is removed by the housekeeper within a few passes.
  int status = 200;
  for (int i = 0; i < 150 && status == 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = c.Do("GET", "/v1/operations/" + op)->status;
  }
  EXPECT_EQ(status, 404);
}

}  // namespace
}  // namespace photon::testing
