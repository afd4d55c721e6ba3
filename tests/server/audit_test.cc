// The audit trail end to end: which calls leave which record (refusals before any verb, 401s
// folded into counted records, tokens, join, malformed bodies; not heartbeats), paging of
// GET /v1/auditevents, and retention by count and by age.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <tuple>

#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/service.grpc.pb.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// actor, action, target, success, code
using Rec = std::tuple<std::string, std::string, std::string, bool, int>;

Rec Of(const json& e) {
  return {e.value("actorId", ""), e.value("action", ""), e.value("resourceId", ""),
          e.value("success", false), e.value("code", 0)};
}

// Every record, oldest first, read in pages of `page` (each page walks further back).
std::vector<json> AuditAll(cli::HttpClient& c, int page = 100) {
  std::vector<std::vector<json>> pages;
  std::string cont;
  for (int i = 0; i < 1000; ++i) {
    auto r = c.Do("GET", "/v1/auditevents?limit=" + std::to_string(page) +
                             (cont.empty() ? "" : "&continue=" + cont));
    EXPECT_EQ(r->status, 200) << r->body;
    auto j = Json(*r);
    pages.emplace_back(j["items"].begin(), j["items"].end());
    cont = j["continue"];
    if (cont.empty()) break;
  }
  std::vector<json> all;
  for (auto it = pages.rbegin(); it != pages.rend(); ++it)
    all.insert(all.end(), it->begin(), it->end());
  return all;
}

std::vector<Rec> RecordsOf(const std::vector<json>& all) {
  std::vector<Rec> out;
  for (const auto& e : all) out.push_back(Of(e));
  return out;
}

std::string Token(cli::HttpClient& admin, const std::string& who, const std::string& ns,
                  const std::string& role) {
  json body = {{"principal", who},
               {"bindings", json::array({{{"namespace", ns}, {"role", role}}})}};
  auto r = admin.Do("POST", "/v1/tokens", body.dump());
  EXPECT_EQ(r->status, 201) << r->body;
  return Json(*r)["token"].get<std::string>();
}

TEST(AuditTrail, RolesLeaveExactlyTheirRecords) {
  TestServer s;
  auto admin = s.Admin();
  auto alice = s.Client(Token(admin, "alice", "team-a", "editor"));
  auto bob = s.Client(Token(admin, "bob", "team-b", "viewer"));
  ASSERT_EQ(
      alice.Do("POST", "/v1/namespaces/team-a/computeinstances", ProcessInstance("a1"))->status,
      202);
  ASSERT_EQ(
      admin.Do("POST", "/v1/namespaces/team-b/computeinstances", ProcessInstance("b1"))->status,
      202);
  EXPECT_EQ(alice.Do("GET", "/v1/namespaces/team-b/computeinstances/b1")->status, 403);  // a read
  EXPECT_EQ(
      alice.Do("POST", "/v1/namespaces/team-b/computeinstances", ProcessInstance("a2"))->status,
      403);
  auto obj = Json(*alice.Do("GET", "/v1/namespaces/team-a/computeinstances/a1"));
  obj["status"]["phase"] = "RUNNING";
  EXPECT_EQ(alice.Do("PUT", "/v1/namespaces/team-a/computeinstances/a1/status", obj.dump())->status,
            403);
  EXPECT_EQ(alice.Do("POST", "/v1/tokens", R"({"principal":"x"})")->status, 403);
  EXPECT_EQ(bob.Do("DELETE", "/v1/namespaces/team-b/computeinstances/b1")->status, 403);
  EXPECT_EQ(RecordsOf(AuditAll(admin)),
            (std::vector<Rec>{
                {"admin", "create-token", "tokens", true, 201},
                {"admin", "create-token", "tokens", true, 201},
                {"alice", "create", "computeinstances/team-a/a1", true, 202},
                {"admin", "create", "computeinstances/team-b/b1", true, 202},
                {"alice", "create", "computeinstances/team-b/a2", false, 403},
                {"alice", "update-status", "computeinstances/team-a/a1", false, 403},
                {"alice", "create-token", "tokens", false, 403},
                {"bob", "delete", "computeinstances/team-b/b1", false, 403},
            }));
}

TEST(AuditTrail, GatewayRefusalsTokensAndJoinLeaveRecords) {
  server::ServerOptions opts;
  opts.audit_refusal_window_ms = 60000;
  TestServer s(opts);
  auto admin = s.Admin();
  Token(admin, "carol", "default", "viewer");
  auto join = s.Client(Trim(*ReadFile(s.dir + "/join.token")));
  ASSERT_EQ(join.Do("POST", "/v1/join", R"({"node":"node-7"})")->status, 201);
  EXPECT_EQ(join.Do("POST", "/v1/join", "not json")->status, 400);
  EXPECT_EQ(admin.Do("POST", "/v1/namespaces/default/computeinstances", "{\"metadata\":")->status,
            400);
  EXPECT_EQ(admin
                .Do("POST", "/v1/namespaces/default/computeinstances",
                    R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},"bogus":1}})")
                ->status,
            400);
  EXPECT_EQ(admin.Do("POST", "/v1/namespaces/default/widgets", "{}")->status, 404);
  EXPECT_EQ(s.Client("garbage")
                .Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("x"))
                ->status,
            401);
  auto all = AuditAll(admin);
  EXPECT_EQ(
      RecordsOf(all),
      (std::vector<Rec>{
          {"admin", "create-token", "tokens", true, 201},
          {"agent-join", "join", "join", true, 201},
          {"agent-join", "join", "join", false, 400},
          {"admin", "create", "computeinstances/default", false, 400},
          {"admin", "create", "computeinstances/default", false, 400},
          {"admin", "create", "widgets/default", false, 404},
          {"anonymous", "authenticate", "POST /v1/namespaces/default/computeinstances", false, 401},
      }));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back()["metadata"].value("source", ""), "127.0.0.1");
  EXPECT_EQ(all.back()["metadata"].value("count", ""), "1");
}

TEST(AuditTrail, GrpcRefusalsLeaveRecordsToo) {
  TestServer s;
  auto stub = api::ResourceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(s.server->grpc_port()), grpc::InsecureChannelCredentials()));
  compute::ComputeInstance ci;
  ci.mutable_metadata()->set_name("g1");
  ci.mutable_spec()->mutable_process()->add_command("/bin/true");
  auto call = [&](const std::string& token, const std::string& kind) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    api::CreateRequest req;
    req.set_kind(kind);
    req.set_namespace_("default");
    req.mutable_object()->PackFrom(ci);
    api::CreateResponse resp;
    return stub->Create(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(call("", ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call(s.admin_token, "widgets"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call(s.admin_token, ""), grpc::StatusCode::OK);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    api::DeleteRequest req;
    req.set_kind("widgets");
    req.set_name("x");
    api::DeleteResponse resp;
    EXPECT_EQ(stub->Delete(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  auto admin = s.Admin();
  auto all = AuditAll(admin);
  EXPECT_EQ(RecordsOf(all), (std::vector<Rec>{
                                {"anonymous", "authenticate", "grpc Create", false, 401},
                                {"admin", "create", "widgets/default", false, 400},
                                {"admin", "create", "computeinstances/default/g1", true, 202},
                                {"admin", "delete", "widgets/default/x", false, 400},
                            }));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front()["metadata"].value("source", ""), "127.0.0.1");
}

TEST(AuditTrail, AFloodOf401sMakesAFewCountedRecords) {
  server::ServerOptions opts;
  opts.audit_refusal_window_ms = 5000;
  opts.housekeeping_interval_s = 1;
  TestServer s(opts);
  auto intruder = s.Client("pct_0000000000000000_000000000000000000000000000000000000000000000000");
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(intruder.Do("GET", "/v1/namespaces/default/computeinstances")->status, 401);
  }
  // The first is recorded at once; the other 99 once their window has ended (housekeeping).
  auto admin = s.Admin();
  std::vector<json> refusals;
  int64_t total = 0;
  for (auto deadline = Clock::now() + std::chrono::seconds(20);
       total < 100 && Clock::now() < deadline;) {
    refusals.clear();
    total = 0;
    for (const auto& e : AuditAll(admin)) {
      if (e.value("actorId", "") != "anonymous") continue;
      refusals.push_back(e);
      total += std::stoll(e["metadata"].value("count", "0"));
    }
    if (total < 100) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(total, 100);
  ASSERT_GE(refusals.size(), 2u);
  EXPECT_LE(refusals.size(), 4u);  // one or two windows: a few rows, not 100
  EXPECT_EQ(refusals[0]["metadata"].value("count", ""), "1");
  for (const auto& e : refusals) {
    EXPECT_EQ(Of(e), (Rec{"anonymous", "authenticate",
                          "GET /v1/namespaces/default/computeinstances", false, 401}));
    EXPECT_EQ(e["metadata"].value("source", ""), "127.0.0.1");
  }
}

TEST(AuditTrail, AFloodThatGoesOnMakesOneRecordPerWindow) {
  server::ServerOptions opts;
  opts.audit_refusal_window_ms = 300;
  opts.housekeeping_interval_s = 1;
  TestServer s(opts);
  auto intruder = s.Client("garbage");
  int64_t sent = 0;
  // Refused without a pause for 1.5 s: five windows or so, each with many refusals.
  for (auto until = Clock::now() + std::chrono::milliseconds(1500); Clock::now() < until; ++sent) {
    ASSERT_EQ(intruder.Do("DELETE", "/v1/namespaces/default/computeinstances/x")->status, 401);
  }
  auto admin = s.Admin();
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (auto deadline = Clock::now() + std::chrono::seconds(20);
       total < sent && Clock::now() < deadline;) {
    counts.clear();
    total = 0;
    for (const auto& e : AuditAll(admin)) {
      if (e.value("actorId", "") != "anonymous") continue;
      counts.push_back(std::stoll(e["metadata"].value("count", "0")));
      total += counts.back();
    }
    if (total < sent) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(total, sent);
  ASSERT_GE(counts.size(), 3u);
  EXPECT_EQ(counts[0], 1);
  // No window after the first starts with a record of its own (the last window may have
  // caught a single refusal).
  for (size_t i = 1; i + 1 < counts.size(); ++i) EXPECT_GT(counts[i], 1) << "record " << i;
  EXPECT_LE(counts.size(), 12u);
}

TEST(AuditTrail, HeartbeatsAreNotAuditEvents) {
  TestServer s;
  auto join = s.Client(Trim(*ReadFile(s.dir + "/join.token")));
  auto r = join.Do("POST", "/v1/join", R"({"node":"node-1"})");
  ASSERT_EQ(r->status, 201) << r->body;
  auto agent = s.Client(Json(*r)["token"].get<std::string>());
  auto node =
      R"({"metadata":{"name":"node-1"},"spec":{"capacity":{"vcpu":4,"memoryMb":4096},"drivers":["process"]}})";
  ASSERT_EQ(agent.Do("POST", "/v1/namespaces/system/nodes", node)->status, 202);
  json stale;
  for (int i = 0; i < 20; ++i) {
    auto n = Json(*agent.Do("GET", "/v1/namespaces/system/nodes/node-1"));
    if (i == 0) stale = n;
    n["nodeStatus"]["condition"] = "READY";
    n["nodeStatus"]["lastHeartbeat"] = NowRfc3339();
    auto w = agent.Do("PUT", "/v1/namespaces/system/nodes/node-1/status", n.dump());
    ASSERT_EQ(w->status, 200) << w->body;
  }
  // A refused status write is still recorded.
  EXPECT_EQ(agent.Do("PUT", "/v1/namespaces/system/nodes/node-1/status", stale.dump())->status,
            409);
  std::vector<Rec> mine;
  auto admin = s.Admin();
  for (const auto& rec : RecordsOf(AuditAll(admin))) {
    if (std::get<0>(rec) == "node:node-1") mine.push_back(rec);
  }
  EXPECT_EQ(mine, (std::vector<Rec>{
                      {"node:node-1", "create", "nodes/system/node-1", true, 202},
                      {"node:node-1", "update-status", "nodes/system/node-1", false, 409},
                  }));
}

TEST(AuditTrail, ListingIsPagedAndPagesCoverEverythingOnce) {
  TestServer s;
  auto c = s.Admin();
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("p" + std::to_string(i)))
                  ->status,
              202);
  }
  auto first = Json(*c.Do("GET", "/v1/auditevents?limit=5"));
  ASSERT_EQ(first["items"].size(), 5u);
  EXPECT_EQ(first["items"][0]["resourceId"], "computeinstances/default/p7");
  EXPECT_EQ(first["items"][4]["resourceId"], "computeinstances/default/p11");
  std::string cont = first["continue"];
  ASSERT_FALSE(cont.empty());
  // Written meanwhile: not in the older pages.
  ASSERT_EQ(
      c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("late"))->status,
      202);
  std::vector<std::string> seen;
  for (auto& e : first["items"]) seen.push_back(e["resourceId"]);
  while (!cont.empty()) {
    auto page = Json(*c.Do("GET", "/v1/auditevents?limit=5&continue=" + cont));
    std::vector<std::string> ids;
    for (auto& e : page["items"]) ids.push_back(e["resourceId"]);
    seen.insert(seen.begin(), ids.begin(), ids.end());
    cont = page["continue"];
  }
  std::vector<std::string> want;
  for (int i = 0; i < 12; ++i) want.push_back("computeinstances/default/p" + std::to_string(i));
  EXPECT_EQ(seen, want);
  // Without a limit: a page of at most 500, the newest.
  auto all = Json(*c.Do("GET", "/v1/auditevents"));
  EXPECT_EQ(all["items"].size(), 13u);
  EXPECT_EQ(all["continue"], "");
  EXPECT_EQ(c.Do("GET", "/v1/auditevents?limit=5001")->status, 400);
  EXPECT_EQ(c.Do("GET", "/v1/auditevents?limit=5&continue=x%2Fy")->status, 400);
}

// Polls the audit log until it holds `want` records (or the deadline passes).
std::vector<json> WaitForAuditSize(cli::HttpClient& c, size_t want) {
  std::vector<json> all;
  for (auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
    all = AuditAll(c);
    if (all.size() == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return all;
}

TEST(AuditTrail, RetentionKeepsTheNewestCount) {
  server::ServerOptions opts;
  opts.housekeeping_interval_s = 1;
  opts.audit_retention_count = 5;
  TestServer s(opts);
  auto c = s.Admin();
  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("r" + std::to_string(i)))
                  ->status,
              202);
  }
  auto left = WaitForAuditSize(c, 5);
  ASSERT_EQ(left.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(left[i]["resourceId"], "computeinstances/default/r" + std::to_string(7 + i));
  }
}

TEST(AuditTrail, RetentionDropsRecordsOlderThanTheAge) {
  server::ServerOptions opts;
  opts.housekeeping_interval_s = 1;
  opts.audit_retention_age_s = 1;
  TestServer s(opts);
  auto c = s.Admin();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c.Do("POST", "/v1/namespaces/default/computeinstances",
                   ProcessInstance("a" + std::to_string(i)))
                  ->status,
              202);
  }
  EXPECT_EQ(AuditAll(c).size(), 3u);
  EXPECT_EQ(WaitForAuditSize(c, 0).size(), 0u);
}

TEST(AuditTrail, RetentionMustBePositive) {
  server::ServerOptions opts;
  opts.data_dir = MakeTempDir("bad-retention");
  opts.listen = "127.0.0.1:0";
  opts.grpc_listen = "127.0.0.1:0";
  opts.audit_retention_count = 0;
  auto s = server::Server::Start(opts);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("audit_retention"), std::string::npos) << s.status();
  std::filesystem::remove_all(opts.data_dir);
}

TEST(AuditTrail, RetentionComesFromTheConfigFileAndTheFlags) {
  std::string dir = MakeTempDir("retention-config");
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/c.yaml", "audit_retention_age_s: 3600\naudit_retention_count: 42\n")
          .ok());
  server::ServerOptions opts;
  ASSERT_TRUE(server::LoadServerConfig(dir + "/c.yaml", &opts).ok());
  EXPECT_EQ(opts.audit_retention_age_s, 3600);
  EXPECT_EQ(opts.audit_retention_count, 42);
  ASSERT_TRUE(WriteFileAtomic(dir + "/bad.yaml", "audit_retention_count: many\n").ok());
  EXPECT_FALSE(server::LoadServerConfig(dir + "/bad.yaml", &opts).ok());
  // The real binary refuses a retention of nothing at start, naming it.
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], 2);
    close(err[0]);
    std::string data = dir + "/data";
    execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", data.c_str(), "--listen", "127.0.0.1:0",
          "--grpc-listen", "127.0.0.1:0", "--audit-retention-count", "0", "--log-level", "warn",
          nullptr);
    _exit(127);
  }
  close(err[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(err[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(out.find("audit_retention"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace photon::testing
