// Credentials against an in-process photon-server: token expiry, listing and revocation,
// admin token rotation, the join token's TTL and liveness check, and an agent credential's
// scope — over REST and gRPC.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "common/util.h"
#include "photon/auth.pb.h"
#include "photon/compute.pb.h"
#include "photon/service.grpc.pb.h"
#include "store/store.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Makes a token as the admin; returns {id, token}.
std::pair<std::string, std::string> MakeToken(const TestServer& s, const std::string& principal,
                                              const std::string& role, const std::string& ns,
                                              int ttl_seconds = 0) {
  json body = {{"principal", principal},
               {"bindings", json::array({{{"namespace", ns}, {"role", role}}})}};
  if (ttl_seconds) body["ttlSeconds"] = ttl_seconds;
  auto r = s.Admin().Do("POST", "/v1/tokens", body.dump());
  EXPECT_EQ(r->status, 201) << r->body;
  auto j = Json(*r);
  return {j.value("id", ""), j.value("token", "")};
}

// Polls `path` with `token` until it answers `want` or 10 s pass; returns the last answer.
cli::HttpResult PollUntil(const TestServer& s, const std::string& token, const std::string& method,
                          const std::string& path, int want, const std::string& body = "") {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  cli::HttpResult last;
  while (Clock::now() < deadline) {
    last = *s.Client(token).Do(method, path, body);
    if (last.status == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

std::string Message(const cli::HttpResult& r) {
  auto j = Json(r);
  return j.is_object() && j.contains("error") ? j["error"].value("message", "") : r.body;
}

json ListTokens(const TestServer& s) {
  auto r = s.Admin().Do("GET", "/v1/tokens");
  EXPECT_EQ(r->status, 200) << r->body;
  return Json(*r)["items"];
}

json FindToken(const TestServer& s, const std::string& id) {
  for (auto& t : ListTokens(s)) {
    if (t["id"] == id) return t;
  }
  return json();
}

grpc::Status GrpcGet(const TestServer& s, const std::string& token, const std::string& kind,
                     const std::string& ns, const std::string& name) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(s.server->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = api::ResourceService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  api::GetRequest g;
  g.set_kind(kind);
  g.set_namespace_(ns);
  g.set_name(name);
  api::GetResponse resp;
  return stub->Get(&ctx, g, &resp);
}

constexpr char kListInstances[] = "/v1/namespaces/default/computeinstances";

TEST(Tokens, ExpireAfterTheirTtlOnRestAndGrpc) {
  TestServer s;
  auto [id, token] = MakeToken(s, "short", "viewer", "default", 1);
  auto info = FindToken(s, id);
  EXPECT_FALSE(info.value("expiresAt", "").empty()) << info;
  // A token made without a TTL gets the default one (30 days), never none.
  auto [id2, token2] = MakeToken(s, "long", "viewer", "default");
  EXPECT_FALSE(FindToken(s, id2).value("expiresAt", "").empty());
  auto gone = PollUntil(s, token, "GET", kListInstances, 401);
  ASSERT_EQ(gone.status, 401) << gone.body;
  EXPECT_NE(Message(gone).find("expired at"), std::string::npos) << gone.body;
  auto g = GrpcGet(s, token, "computeinstances", "default", "x");
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(g.error_message().find("expired at"), std::string::npos) << g.error_message();
  EXPECT_TRUE(FindToken(s, id).value("expired", false));
  // The long-lived one still works.
  EXPECT_EQ(s.Client(token2).Do("GET", kListInstances)->status, 200);
  // A negative TTL is refused, not taken as "never".
  json bad = {{"principal", "p"},
              {"bindings", json::array({{{"namespace", "default"}, {"role", "viewer"}}})},
              {"ttlSeconds", -5}};
  EXPECT_EQ(s.Admin().Do("POST", "/v1/tokens", bad.dump())->status, 400);
}

TEST(Tokens, ListShowsNoSecretsAndRevokedTokensAreRefused) {
  TestServer s;
  auto [id, token] = MakeToken(s, "carol", "editor", "default");
  EXPECT_EQ(s.Client(token).Do("GET", kListInstances)->status, 200);
  auto list = s.Admin().Do("GET", "/v1/tokens");
  ASSERT_EQ(list->status, 200);
  EXPECT_EQ(list->body.find(token.substr(21)), std::string::npos) << "secret in the listing";
  EXPECT_EQ(list->body.find("ecret"), std::string::npos) << list->body;  // nor its hash
  auto info = FindToken(s, id);
  EXPECT_EQ(info["principal"], "carol");
  EXPECT_EQ(info["purpose"], "user");
  // Admins only: an editor neither lists nor revokes.
  EXPECT_EQ(s.Client(token).Do("GET", "/v1/tokens")->status, 403);
  EXPECT_EQ(s.Client(token).Do("DELETE", "/v1/tokens/" + id)->status, 403);
  EXPECT_EQ(s.Admin().Do("DELETE", "/v1/tokens/0123456789abcdef")->status, 404);
  auto rv = s.Admin().Do("DELETE", "/v1/tokens/" + id);
  ASSERT_EQ(rv->status, 200) << rv->body;
  EXPECT_TRUE(Json(*rv).value("revoked", false));
  auto r = s.Client(token).Do("GET", kListInstances);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(Message(*r).find("revoked"), std::string::npos) << r->body;
  auto g = GrpcGet(s, token, "computeinstances", "default", "x");
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(g.error_message().find("revoked"), std::string::npos) << g.error_message();
  EXPECT_TRUE(FindToken(s, id).value("revoked", false));
}

TEST(Tokens, RotatingTheAdminTokenRetiresTheOldOne) {
  TestServer s;
  const std::string old_token = s.admin_token;
  auto r = s.Admin().Do("POST", "/v1/tokens/rotate-admin");
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string fresh = Json(*r)["token"].get<std::string>();
  EXPECT_NE(fresh, old_token);
  EXPECT_EQ(Trim(*ReadFile(s.dir + "/admin.token")), fresh);
  struct stat st {};
  ASSERT_EQ(stat((s.dir + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto old = s.Client(old_token).Do("GET", kListInstances);
  EXPECT_EQ(old->status, 401);
  EXPECT_NE(Message(*old).find("revoked"), std::string::npos) << old->body;
  EXPECT_EQ(GrpcGet(s, old_token, "computeinstances", "default", "x").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.Client(fresh).Do("GET", kListInstances)->status, 200);
  // Only admins rotate.
  s.admin_token = fresh;
  auto [id, viewer] = MakeToken(s, "v", "viewer", "*");
  EXPECT_EQ(s.Client(viewer).Do("POST", "/v1/tokens/rotate-admin")->status, 403);
  EXPECT_EQ(Trim(*ReadFile(s.dir + "/admin.token")), fresh);
}

// Stops `s`'s server and starts another on the same data dir (and store).
void Restart(TestServer& s, server::ServerOptions opts = {}) {
  s.server->Stop();
  s.server.reset();
  opts.data_dir = s.dir;
  opts.listen = "127.0.0.1:0";
  opts.grpc_listen = "127.0.0.1:0";
  auto started = server::Server::Start(opts);
  ASSERT_TRUE(started.ok()) << started.status();
  s.server = std::move(*started);
  s.admin_token = Trim(*ReadFile(s.dir + "/admin.token"));
  s.base = "http://127.0.0.1:" + std::to_string(s.server->http_port());
}

TEST(Tokens, RevocationAndExpirySurviveARestart) {
  server::ServerOptions opts;
  opts.join_token_ttl_s = 1;
  TestServer s(opts);
  auto [revoked_id, revoked] = MakeToken(s, "gone", "viewer", "default");
  auto [kept_id, kept] = MakeToken(s, "kept", "viewer", "default");
  ASSERT_EQ(s.Admin().Do("DELETE", "/v1/tokens/" + revoked_id)->status, 200);
  const std::string old_join = Trim(*ReadFile(s.dir + "/join.token"));
  ASSERT_EQ(PollUntil(s, old_join, "POST", "/v1/join", 401, R"({"node":"n"})").status, 401);
  // An admin token that got revoked (here: by its own holder) is replaced at the next start.
  const std::string old_admin = s.admin_token;
  auto self = FindToken(s, old_admin.substr(4, 16));
  ASSERT_EQ(self["purpose"], "admin");
  ASSERT_EQ(s.Admin().Do("DELETE", "/v1/tokens/" + old_admin.substr(4, 16))->status, 200);
  Restart(s);  // with the default join TTL: the fresh join token must not expire mid-test
  EXPECT_NE(s.admin_token, old_admin);
  EXPECT_EQ(s.Client(old_admin).Do("GET", kListInstances)->status, 401);
  EXPECT_EQ(s.Admin().Do("GET", kListInstances)->status, 200);
  auto r = s.Client(revoked).Do("GET", kListInstances);
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(Message(*r).find("revoked"), std::string::npos) << r->body;
  EXPECT_EQ(s.Client(kept).Do("GET", kListInstances)->status, 200);
  // The expired join token was replaced by a fresh one.
  const std::string new_join = Trim(*ReadFile(s.dir + "/join.token"));
  EXPECT_NE(new_join, old_join);
  EXPECT_EQ(s.Client(old_join).Do("POST", "/v1/join", R"({"node":"n"})")->status, 401);
  EXPECT_EQ(s.Client(new_join).Do("POST", "/v1/join", R"({"node":"n"})")->status, 201);
}

// Data dirs from before tokens expired: the admin token stays, the never-expiring join token
// is replaced by one with the join TTL and stops working.
TEST(Tokens, LegacyTokensAreAdopted) {
  std::string dir = MakeTempDir("legacy-tokens");
  auto legacy = [](const std::string& id, const std::string& principal, const std::string& role,
                   const std::string& secret) {
    auth::Token t;
    t.set_id(id);
    t.set_principal(principal);
    t.set_secret_sha256(Sha256Hex(secret));
    t.mutable_bindings()->Add()->set_namespace_("*");
    t.mutable_bindings(0)->set_role(role);
    t.set_created_at("2026-01-01T00:00:00.000Z");
    return t.SerializeAsString();
  };
  const std::string secret(48, 'a');
  const std::string admin = "pct_00000000000000aa_" + secret;
  const std::string join = "pct_00000000000000bb_" + secret;
  {
    auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)
                    ->Put("/auth/tokens/00000000000000aa",
                          legacy("00000000000000aa", "admin", "admin", secret))
                    .ok());
    ASSERT_TRUE((*store)
                    ->Put("/auth/tokens/00000000000000bb",
                          legacy("00000000000000bb", "agent-join", "join", secret))
                    .ok());
  }
  ASSERT_TRUE(WriteFileAtomic(dir + "/admin.token", admin + "\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/join.token", join + "\n", 0600).ok());
  server::ServerOptions opts;
  opts.data_dir = dir;
  opts.listen = "127.0.0.1:0";
  opts.grpc_listen = "127.0.0.1:0";
  auto started = server::Server::Start(opts);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string base = "http://127.0.0.1:" + std::to_string((*started)->http_port());
  EXPECT_EQ(Trim(*ReadFile(dir + "/admin.token")), admin);
  EXPECT_EQ(cli::HttpClient::Create(base, admin)->Do("GET", kListInstances)->status, 200);
  const std::string fresh = Trim(*ReadFile(dir + "/join.token"));
  EXPECT_NE(fresh, join);
  auto old = cli::HttpClient::Create(base, join)->Do("POST", "/v1/join", R"({"node":"n1"})");
  EXPECT_EQ(old->status, 401);
  EXPECT_NE(Message(*old).find("revoked"), std::string::npos) << old->body;
  EXPECT_EQ(
      cli::HttpClient::Create(base, fresh)->Do("POST", "/v1/join", R"({"node":"n1"})")->status,
      201);
  (*started)->Stop();
  std::filesystem::remove_all(dir);
}

TEST(Join, JoinTokenExpiresAfterItsTtl) {
  server::ServerOptions opts;
  opts.join_token_ttl_s = 1;
  TestServer s(opts);
  const std::string join = Trim(*ReadFile(s.dir + "/join.token"));
  auto r = PollUntil(s, join, "POST", "/v1/join", 401, R"({"node":"node-1"})");
  ASSERT_EQ(r.status, 401) << r.body;
  EXPECT_NE(Message(r).find("expired at"), std::string::npos) << r.body;
  // Nothing was minted for the node along the way but (perhaps) the one early join.
  int agents = 0;
  for (auto& t : ListTokens(s)) {
    agents += t["purpose"] == "agent" && !t.value("revoked", false);
  }
  EXPECT_LE(agents, 1);
  // An admin makes a new join token; it carries the join TTL and works.
  auto [id, fresh] = MakeToken(s, "join-2", "join", "*");
  EXPECT_FALSE(FindToken(s, id).value("expiresAt", "").empty());
  EXPECT_EQ(s.Client(fresh).Do("POST", "/v1/join", R"({"node":"node-2"})")->status, 201);
}

TEST(Join, DefaultJoinTtlIsADay) {
  TestServer s;
  std::string expires;
  for (auto& t : ListTokens(s)) {
    if (t["purpose"] == "join") expires = t.value("expiresAt", "");
  }
  ASSERT_FALSE(expires.empty());
  std::tm tm{};
  ASSERT_NE(strptime(expires.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr);
  const double hours = std::difftime(timegm(&tm), time(nullptr)) / 3600.0;
  EXPECT_GT(hours, 23.9);
  EXPECT_LE(hours, 24.0);
}

// The agent's own heartbeat, as photon-agent writes it.
int Heartbeat(cli::HttpClient& agent, const std::string& node, const std::string& when) {
  auto n = Json(*agent.Do("GET", "/v1/namespaces/system/nodes/" + node));
  n["nodeStatus"]["condition"] = "READY";
  n["nodeStatus"]["lastHeartbeat"] = when;
  return agent.Do("PUT", "/v1/namespaces/system/nodes/" + node + "/status", n.dump())->status;
}

std::string NodeJson(const std::string& name) {
  return R"({"metadata":{"name":")" + name +
         R"("},"spec":{"capacity":{"vcpu":4,"memoryMb":4096},"drivers":["process"]}})";
}

int LiveAgentTokens(const TestServer& s, const std::string& node) {
  int n = 0;
  for (auto& t : ListTokens(s)) {
    n += t["principal"] == "node:" + node && !t.value("revoked", false);
  }
  return n;
}

TEST(Join, ANodeHeldByALiveAgentCannotBeJoinedAgain) {
  server::ServerOptions opts;
  opts.scheduler = false;  // nothing marks the node DOWN behind the test's back
  TestServer s(opts);
  auto join = s.Client(Trim(*ReadFile(s.dir + "/join.token")));
  auto r = join.Do("POST", "/v1/join", R"({"node":"node-1"})");
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string first = Json(*r)["token"].get<std::string>();
  auto agent = s.Client(first);
  ASSERT_EQ(agent.Do("POST", "/v1/namespaces/system/nodes", NodeJson("node-1"))->status, 202);
  ASSERT_EQ(Heartbeat(agent, "node-1", NowRfc3339()), 200);
  // A second agent claiming node-1 while the first is alive: 409, no credential.
  auto dup = join.Do("POST", "/v1/join", R"({"node":"node-1"})");
  EXPECT_EQ(dup->status, 409) << dup->body;
  EXPECT_EQ(Json(*dup).value("token", ""), "");
  EXPECT_EQ(LiveAgentTokens(s, "node-1"), 1);
  EXPECT_EQ(agent.Do("GET", "/v1/namespaces/system/nodes/node-1")->status, 200);
  // Another node name is fine.
  EXPECT_EQ(join.Do("POST", "/v1/join", R"({"node":"node-2"})")->status, 201);
  // Once node-1's agent has been silent past the node-down interval, a re-join takes it over
  // and the earlier credential stops working.
  ASSERT_EQ(Heartbeat(agent, "node-1", "2020-01-01T00:00:00.000Z"), 200);
  auto again = join.Do("POST", "/v1/join", R"({"node":"node-1"})");
  ASSERT_EQ(again->status, 201) << again->body;
  EXPECT_EQ(LiveAgentTokens(s, "node-1"), 1);
  EXPECT_EQ(agent.Do("GET", "/v1/namespaces/system/nodes/node-1")->status, 401);
  auto second = s.Client(Json(*again)["token"].get<std::string>());
  EXPECT_EQ(second.Do("GET", "/v1/namespaces/system/nodes/node-1")->status, 200);
}

struct TwoAgents {
  std::string a_token;
  cli::HttpClient a;
  cli::HttpClient b;
};

TwoAgents JoinTwo(const TestServer& s) {
  auto join = s.Client(Trim(*ReadFile(s.dir + "/join.token")));
  auto ra = join.Do("POST", "/v1/join", R"({"node":"node-a"})");
  auto rb = join.Do("POST", "/v1/join", R"({"node":"node-b"})");
  EXPECT_EQ(ra->status, 201);
  EXPECT_EQ(rb->status, 201);
  const std::string a_token = Json(*ra)["token"].get<std::string>();
  TwoAgents t{a_token, s.Client(a_token), s.Client(Json(*rb)["token"].get<std::string>())};
  EXPECT_EQ(t.a.Do("POST", "/v1/namespaces/system/nodes", NodeJson("node-a"))->status, 202);
  EXPECT_EQ(t.b.Do("POST", "/v1/namespaces/system/nodes", NodeJson("node-b"))->status, 202);
  return t;
}

// An instance placed on `node` by the admin (as the scheduler would).
json Place(const TestServer& s, const std::string& name, const std::string& node) {
  auto admin = s.Admin();
  EXPECT_EQ(admin.Do("POST", kListInstances, ProcessInstance(name))->status, 202);
  auto obj = Json(*admin.Do("GET", std::string(kListInstances) + "/" + name));
  obj["metadata"]["agentId"] = node;
  auto r = admin.Do("PUT", std::string(kListInstances) + "/" + name, obj.dump());
  EXPECT_EQ(r->status, 200) << r->body;
  return Json(*r);
}

TEST(AgentScope, WritesOnlyItsNodeAndTheStatusOfItsInstances) {
  server::ServerOptions opts;
  opts.scheduler = false;  // placement by hand
  TestServer s(opts);
  auto [a_token, a, b] = JoinTwo(s);
  // Nodes: its own only.
  EXPECT_EQ(a.Do("POST", "/v1/namespaces/system/nodes", NodeJson("node-c"))->status, 403);
  auto nb = Json(*b.Do("GET", "/v1/namespaces/system/nodes/node-b"));
  EXPECT_EQ(a.Do("PUT", "/v1/namespaces/system/nodes/node-b/status", nb.dump())->status, 403);
  EXPECT_EQ(a.Do("PUT", "/v1/namespaces/system/nodes/node-b", nb.dump())->status, 403);
  EXPECT_EQ(a.Do("DELETE", "/v1/namespaces/system/nodes/node-b")->status, 403);
  EXPECT_EQ(Heartbeat(a, "node-a", NowRfc3339()), 200);
  auto na = Json(*a.Do("GET", "/v1/namespaces/system/nodes/node-a"));
  na["spec"]["attributes"]["k"] = "v";
  EXPECT_EQ(a.Do("PUT", "/v1/namespaces/system/nodes/node-a", na.dump())->status, 200);
  // Instances: the status of those placed on it, nothing else.
  json on_b = Place(s, "on-b", "node-b");
  on_b["status"]["phase"] = "RUNNING";
  const std::string path = std::string(kListInstances) + "/on-b";
  auto wrong = a.Do("PUT", path + "/status", on_b.dump());
  EXPECT_EQ(wrong->status, 403) << wrong->body;
  EXPECT_NE(Message(*wrong).find("not assigned"), std::string::npos) << wrong->body;
  EXPECT_EQ(a.Do("PUT", path, on_b.dump())->status, 403);  // spec
  EXPECT_EQ(a.Do("DELETE", path)->status, 403);
  EXPECT_EQ(a.Do("POST", kListInstances, ProcessInstance("mine"))->status, 403);
  EXPECT_EQ(a.Do("POST", path + "/actions/stop", "{}")->status, 403);
  auto right = b.Do("PUT", path + "/status", on_b.dump());
  EXPECT_EQ(right->status, 200) << right->body;
  // gRPC enforces the same scope.
  {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(s.server->grpc_port()),
                                       grpc::InsecureChannelCredentials());
    auto stub = api::ResourceService::NewStub(channel);
    compute::ComputeInstance ci;
    ci.mutable_metadata()->set_name("on-b");
    ci.mutable_metadata()->set_resource_version(
        Json(*right)["metadata"]["resourceVersion"].get<std::string>());
    ci.mutable_status()->set_message("from a");
    api::UpdateRequest u;
    u.set_namespace_("default");
    u.set_status_only(true);
    u.mutable_object()->PackFrom(ci);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + a_token);
    api::UpdateResponse resp;
    EXPECT_EQ(stub->Update(&ctx, u, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_EQ(GrpcGet(s, a_token, "nodes", "system", "node-b").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Operations: an action's status only from the node it runs on.
  auto act = s.Admin().Do("POST", path + "/actions/stop", "{}");
  ASSERT_EQ(act->status, 202) << act->body;
  const std::string op_id = Json(*act)["operation"]["metadata"]["id"].get<std::string>();
  const std::string op_path = "/v1/namespaces/default/operations/" + op_id;
  auto op = Json(*b.Do("GET", op_path));
  op["status"]["state"] = "DONE";
  EXPECT_EQ(a.Do("PUT", op_path + "/status", op.dump())->status, 403);
  EXPECT_EQ(b.Do("PUT", op_path + "/status", op.dump())->status, 200);
}

TEST(AgentScope, ReadsOnlyWhatItsNodeNeeds) {
  server::ServerOptions opts;
  opts.scheduler = false;
  TestServer s(opts);
  auto [a_token, a, b] = JoinTwo(s);
  (void)b;
  // What the agent's informers and providers read: its own node's selection only.
  EXPECT_EQ(a.Do("GET", "/v1/computeinstances?fieldSelector=metadata.agentId%3Dnode-a")->status,
            200);
  EXPECT_EQ(a.Do("GET", "/v1/operations?fieldSelector=metadata.agentId%3Dnode-a")->status, 200);
  EXPECT_EQ(a.Do("GET", "/v1/computeinstances")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/operations")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/system/nodes/node-a")->status, 200);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/images/none")->status, 404);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/volumes/none")->status, 404);
  // Nothing else.
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/system/nodes/node-b")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/nodes")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/nodes?watch=true")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/images")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/flavors")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/events")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/securitygroups")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/securitygroups")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/subnets")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/vpcs?watch=true")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/ports")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/ports?fieldSelector=metadata.agentId%3Dnode-b")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/ports?fieldSelector=metadata.agentId%3Dnode-a")->status, 200);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/subnets/none")->status, 404);
  EXPECT_EQ(a.Do("GET", "/v1/auditevents")->status, 403);
  EXPECT_EQ(a.Do("GET", "/v1/tokens")->status, 403);
  // Agents report check results as events, in namespace system only.
  const std::string event =
      R"({"spec":{"opsEvent":{"check":"disk","severity":"CRITICAL","output":"full"}}})";
  EXPECT_EQ(a.Do("POST", "/v1/namespaces/default/events", event)->status, 403);
  EXPECT_EQ(GrpcGet(s, a_token, "flavors", "default", "x").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // An agent credential is no join token either.
  EXPECT_EQ(a.Do("POST", "/v1/join", R"({"node":"node-z"})")->status, 403);
}

}  // namespace
}  // namespace photon::testing
