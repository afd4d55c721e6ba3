// Identity with the real photon-server binary: password logins (argon2id at rest, refusals
// audited and locked out), short-lived access tokens with rotating refresh tokens, groups,
// service accounts, custom roles enforced alike over REST and gRPC, and can-i.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "photon/service.grpc.pb.h"
#include "photon/storage.pb.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using nlohmann::json;

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// A photon-server process on free loopback ports with its own data dir; killed and removed
// on destruction.
class ServerProcess {
 public:
  ServerProcess() {
    dir_ = MakeTempDir("identity");
    port_ = FreePort();
    grpc_port_ = FreePort();
    Start();
  }
  // Stops the server (SIGTERM, waited for) and starts it again on the same data and ports.
  void Restart() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    Start();
  }
  void Start() {
    const std::string log = dir_ + "/server.log";
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      const std::string data = dir_ + "/data", http = "127.0.0.1:" + std::to_string(port_),
                        grpc = "127.0.0.1:" + std::to_string(grpc_port_);
      execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", data.c_str(), "--listen",
            http.c_str(), "--grpc-listen", grpc.c_str(), nullptr);
      _exit(127);
    }
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    up_ = WaitFor(
        [this] {
          auto r = cli::HttpClient::Create(base_, "")->Do("GET", "/healthz");
          return r.ok() && r->status == 200;
        },
        std::chrono::seconds(30));
    if (up_) admin_ = Trim(*ReadFile(dir_ + "/data/admin.token"));
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  bool up() const { return up_; }
  const std::string& dir() const { return dir_; }
  cli::HttpClient Client(const std::string& token) const {
    return *cli::HttpClient::Create(base_, token);
  }
  cli::HttpClient Admin() const { return Client(admin_); }
  std::unique_ptr<api::ResourceService::Stub> Grpc() const {
    return api::ResourceService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(grpc_port_), grpc::InsecureChannelCredentials()));
  }

 private:
  std::string dir_, base_, admin_;
  int port_ = 0, grpc_port_ = 0;
  pid_t pid_ = -1;
  bool up_ = false;
};

cli::HttpResult Do(cli::HttpClient c, const std::string& method, const std::string& path,
                   const std::string& body = "") {
  auto r = c.Do(method, path, body);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : cli::HttpResult{};
}

void CreateUser(const ServerProcess& s, const std::string& name, const std::string& password) {
  auto r = Do(s.Admin(), "POST", "/v1/users",
              json{{"metadata", {{"name", name}}}, {"spec", {{"password", password}}}}.dump());
  ASSERT_EQ(r.status, 201) << r.body;
}

void Bind(const ServerProcess& s, const std::string& name, const std::string& ns,
          const std::string& role, const std::vector<std::string>& subjects) {
  auto r = Do(s.Admin(), "POST", "/v1/rolebindings",
              json{{"metadata", {{"name", name}}},
                   {"spec", {{"namespace", ns}, {"role", role}, {"subjects", subjects}}}}
                  .dump());
  ASSERT_EQ(r.status, 201) << r.body;
}

json Login(const ServerProcess& s, const std::string& user, const std::string& password,
           int expect = 200, int ttl = 0) {
  json body = {{"user", user}, {"password", password}};
  if (ttl) body["ttlSeconds"] = ttl;
  auto r = Do(s.Client(""), "POST", "/v1/login", body.dump());
  EXPECT_EQ(r.status, expect) << r.body;
  return Json(r);
}

// Every byte the server keeps in its data dir (the store and its write-ahead log).
std::string DataDirBytes(const std::string& dir) {
  std::string all;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    all += ss.str();
  }
  return all;
}

TEST(Identity, PasswordLoginAndRefusalsAuditedAndLockedOut) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  CreateUser(s, "alice", "correct horse battery");
  // First thing from this address: the refusal is recorded at once.
  json bad = Login(s, "alice", "wrong password", 401);
  EXPECT_EQ(bad["error"].value("message", ""), "invalid user or password");
  Login(s, "nobody", "whatever12", 401);  // an unknown user gets the same answer
  json ok = Login(s, "alice", "correct horse battery");
  ASSERT_TRUE(ok.contains("accessToken")) << ok;
  EXPECT_EQ(ok["principal"], "user:alice");
  EXPECT_FALSE(ok.value("expiresAt", "").empty());
  auto who = Do(s.Client(ok["accessToken"]), "GET", "/v1/auth/whoami");
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_EQ(Json(who)["principal"], "user:alice");

  auto audit = Json(Do(s.Admin(), "GET", "/v1/auditevents"));
  bool refused = false, login = false;
  for (const auto& e : audit["items"]) {
    if (e.value("action", "") == "authenticate" &&
        e.value("resourceId", "") == "POST /v1/login user=alice" && e.value("code", 0) == 401) {
      refused = true;
    }
    if (e.value("action", "") == "login" && e.value("actorId", "") == "user:alice") login = true;
  }
  EXPECT_TRUE(refused) << audit.dump();
  EXPECT_TRUE(login) << audit.dump();

  // Five failures lock the user's logins: even the right password is refused for a while.
  for (int i = 0; i < 5; ++i) Login(s, "alice", "guess " + std::to_string(i), 401);
  json locked = Login(s, "alice", "correct horse battery", 429);
  EXPECT_NE(locked["error"].value("message", "").find("too many failed logins"), std::string::npos)
      << locked;
}

TEST(Identity, StoredPasswordIsAnArgon2idHashNeverTheText) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  const std::string password = "Tr0ub4dor&3-unique-text";
  CreateUser(s, "bob", password);
  auto got = Do(s.Admin(), "GET", "/v1/users/bob");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body.find("password"), std::string::npos) << got.body;  // write-only
  Login(s, "bob", password);
  const std::string bytes = DataDirBytes(s.dir() + "/data");
  EXPECT_EQ(bytes.find(password), std::string::npos) << "the password is stored in clear";
  EXPECT_NE(bytes.find("$argon2id$v=19$m=65536,t=2,p=1$"), std::string::npos);
  // Too short a password is refused, not stored.
  auto r = Do(s.Admin(), "POST", "/v1/users",
              R"({"metadata":{"name":"carol"},"spec":{"password":"short"}})");
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST(Identity, AccessTokenExpiresRefreshRotatesAndIsRevocable) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  CreateUser(s, "dave", "dave's password");
  Bind(s, "dave-view", "default", "viewer", {"user:dave"});
  json session = Login(s, "dave", "dave's password", 200, 1);
  const std::string access = session["accessToken"], refresh = session["refreshToken"];
  EXPECT_EQ(Do(s.Client(access), "GET", "/v1/namespaces/default/vpcs").status, 200);
  // A refresh token is not a bearer token.
  EXPECT_EQ(Do(s.Client(refresh), "GET", "/v1/namespaces/default/vpcs").status, 401);
  cli::HttpResult last;
  ASSERT_TRUE(WaitFor(
      [&] {
        last = Do(s.Client(access), "GET", "/v1/namespaces/default/vpcs");
        return last.status == 401;
      },
      std::chrono::seconds(10)));
  EXPECT_NE(last.body.find("expired"), std::string::npos) << last.body;

  auto r = Do(s.Client(""), "POST", "/v1/auth/refresh", json{{"refreshToken", refresh}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json next = Json(r);
  EXPECT_EQ(Do(s.Client(next["accessToken"]), "GET", "/v1/namespaces/default/vpcs").status, 200);
  // Used once: the old refresh token is spent.
  EXPECT_EQ(
      Do(s.Client(""), "POST", "/v1/auth/refresh", json{{"refreshToken", refresh}}.dump()).status,
      401);
  // An admin revokes the new one: refused from then on.
  EXPECT_EQ(
      Do(s.Admin(), "DELETE", "/v1/tokens/" + next["refreshTokenId"].get<std::string>()).status,
      200);
  r = Do(s.Client(""), "POST", "/v1/auth/refresh",
         json{{"refreshToken", next["refreshToken"]}}.dump());
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("revoked"), std::string::npos) << r.body;

  // Deleting the user ends its sessions.
  json third = Login(s, "dave", "dave's password");
  EXPECT_EQ(Do(s.Admin(), "DELETE", "/v1/users/dave").status, 200);
  EXPECT_EQ(Do(s.Client(third["accessToken"]), "GET", "/v1/namespaces/default/vpcs").status, 401);
}

// What one verb on one kind answers over REST: 403 when refused, anything else when allowed.
int RestCall(cli::HttpClient c, const std::string& verb, const std::string& kind) {
  const std::string base = "/v1/namespaces/dev/" + kind;
  if (verb == "get") return Do(c, "GET", base + "/missing").status;
  if (verb == "list") return Do(c, "GET", base).status;
  if (verb == "delete") return Do(c, "DELETE", base + "/missing").status;
  if (verb == "update") return Do(c, "PUT", base + "/missing", R"({"metadata":{}})").status;
  if (verb == "create") {
    if (kind == "computeinstances") return Do(c, "POST", base, ProcessInstance("made")).status;
    return Do(c, "POST", base, R"({"metadata":{"name":"made"}})").status;
  }
  return -1;
}

google::protobuf::Any Packed(const std::string& kind) {
  google::protobuf::Any any;
  if (kind == "computeinstances") {
    compute::ComputeInstance ci;
    ci.mutable_metadata()->set_name("made-grpc");
    ci.mutable_spec()->mutable_process()->add_command("/bin/true");
    ci.mutable_spec()->mutable_resources()->set_vcpu(1);
    ci.mutable_spec()->mutable_resources()->set_memory_mb(64);
    any.PackFrom(ci);
  } else if (kind == "vpcs") {
    network::Vpc v;
    v.mutable_metadata()->set_name("made-grpc");
    any.PackFrom(v);
  } else {
    storage::Volume v;
    v.mutable_metadata()->set_name("made-grpc");
    any.PackFrom(v);
  }
  return any;
}

grpc::StatusCode GrpcCall(api::ResourceService::Stub* stub, const std::string& token,
                          const std::string& verb, const std::string& kind) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (verb == "get") {
    api::GetRequest q;
    q.set_kind(kind), q.set_namespace_("dev"), q.set_name("missing");
    api::GetResponse a;
    return stub->Get(&ctx, q, &a).error_code();
  }
  if (verb == "list") {
    api::ListRequest q;
    q.set_kind(kind), q.set_namespace_("dev");
    api::ListResponse a;
    return stub->List(&ctx, q, &a).error_code();
  }
  if (verb == "delete") {
    api::DeleteRequest q;
    q.set_kind(kind), q.set_namespace_("dev"), q.set_name("missing");
    api::DeleteResponse a;
    return stub->Delete(&ctx, q, &a).error_code();
  }
  if (verb == "update") {
    api::UpdateRequest q;
    q.set_kind(kind), q.set_namespace_("dev"), q.set_name("missing");
    *q.mutable_object() = Packed(kind);
    api::UpdateResponse a;
    return stub->Update(&ctx, q, &a).error_code();
  }
  api::CreateRequest q;
  q.set_kind(kind), q.set_namespace_("dev");
  *q.mutable_object() = Packed(kind);
  api::CreateResponse a;
  return stub->Create(&ctx, q, &a).error_code();
}

TEST(Identity, CustomRoleAllowsExactlyItsVerbsTimesKindsOverRestAndGrpc) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  auto r = Do(s.Admin(), "POST", "/v1/roles", R"({"metadata":{"name":"builder"},"spec":{"rules":[
      {"verbs":["create","get"],"kinds":["computeinstances"]},
      {"verbs":["get","list"],"kinds":["vpcs"]}]}})");
  ASSERT_EQ(r.status, 201) << r.body;
  CreateUser(s, "erin", "erin's password");
  Bind(s, "erin-builds", "dev", "builder", {"user:erin"});
  const std::string token = Login(s, "erin", "erin's password")["accessToken"];
  auto user = s.Client(token);
  auto stub = s.Grpc();
  const std::set<std::pair<std::string, std::string>> allowed = {{"create", "computeinstances"},
                                                                 {"get", "computeinstances"},
                                                                 {"get", "vpcs"},
                                                                 {"list", "vpcs"}};
  for (const std::string verb : {"get", "list", "create", "update", "delete"}) {
    for (const std::string kind : {"computeinstances", "vpcs", "volumes"}) {
      const bool want = allowed.count({verb, kind}) > 0;
      SCOPED_TRACE(verb + " " + kind + (want ? " (allowed)" : " (refused)"));
      auto can =
          Json(Do(user, "GET", "/v1/auth/can-i?verb=" + verb + "&kind=" + kind + "&namespace=dev"));
      EXPECT_EQ(can.value("allowed", !want), want) << can;
      EXPECT_EQ(RestCall(user, verb, kind) != 403, want);
      EXPECT_EQ(GrpcCall(stub.get(), token, verb, kind) != grpc::StatusCode::PERMISSION_DENIED,
                want);
    }
  }
  // Only in the namespace it is bound in.
  auto other =
      Json(Do(user, "GET", "/v1/auth/can-i?verb=create&kind=computeinstances&namespace=prod"));
  EXPECT_FALSE(other.value("allowed", true)) << other;
  EXPECT_EQ(Do(user, "POST", "/v1/namespaces/prod/computeinstances", ProcessInstance("p")).status,
            403);
  // A role still bound cannot be deleted; an unknown verb or kind is refused, not ignored.
  auto del = Do(s.Admin(), "DELETE", "/v1/roles/builder");
  EXPECT_EQ(del.status, 400);
  EXPECT_NE(del.body.find("still bound by rolebindings: erin-builds"), std::string::npos)
      << del.body;
  EXPECT_EQ(
      Do(s.Admin(), "POST", "/v1/roles",
         R"({"metadata":{"name":"r2"},"spec":{"rules":[{"verbs":["fly"],"kinds":["vpcs"]}]}})")
          .status,
      400);
  EXPECT_EQ(
      Do(s.Admin(), "POST", "/v1/roles",
         R"({"metadata":{"name":"r3"},"spec":{"rules":[{"verbs":["get"],"kinds":["widgets"]}]}})")
          .status,
      400);
}

TEST(Identity, GroupsServiceAccountsAndNoEscalation) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  CreateUser(s, "frank", "frank's password");
  ASSERT_EQ(Do(s.Admin(), "POST", "/v1/groups",
               R"({"metadata":{"name":"ops"},"spec":{"members":["frank"]}})")
                .status,
            201);
  Bind(s, "ops-dev", "dev", "admin", {"group:ops"});
  const std::string frank = Login(s, "frank", "frank's password")["accessToken"];
  auto f = s.Client(frank);
  EXPECT_EQ(Do(f, "POST", "/v1/namespaces/dev/computeinstances", ProcessInstance("g1")).status,
            202);
  EXPECT_EQ(Json(Do(f, "GET", "/v1/auth/whoami"))["groups"], json::array({"ops"}));

  // A namespace admin makes a service account and a token for it, and binds it there.
  ASSERT_EQ(
      Do(f, "POST", "/v1/namespaces/dev/serviceaccounts", R"({"metadata":{"name":"ci"}})").status,
      201);
  auto t = Do(f, "POST", "/v1/namespaces/dev/serviceaccounts/ci/tokens", "{}");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string sa = Json(t)["token"];
  auto rb = Do(f, "POST", "/v1/rolebindings",
               R"({"metadata":{"name":"ci-view"},"spec":{"namespace":"dev","role":"viewer",
                   "subjects":["serviceaccount:dev/ci"]}})");
  ASSERT_EQ(rb.status, 201) << rb.body;
  EXPECT_EQ(Do(s.Client(sa), "GET", "/v1/namespaces/dev/computeinstances").status, 200);
  EXPECT_EQ(
      Do(s.Client(sa), "POST", "/v1/namespaces/dev/computeinstances", ProcessInstance("x")).status,
      403);
  // No more than it holds: not in another namespace, not cluster-wide, not quotas.
  EXPECT_EQ(Do(f, "POST", "/v1/rolebindings",
               R"({"metadata":{"name":"grab"},"spec":{"namespace":"*","role":"viewer",
                   "subjects":["user:frank"]}})")
                .status,
            403);
  EXPECT_EQ(Do(f, "POST", "/v1/rolebindings",
               R"({"metadata":{"name":"grab2"},"spec":{"namespace":"prod","role":"editor",
                   "subjects":["user:frank"]}})")
                .status,
            403);
  ASSERT_EQ(
      Do(s.Admin(), "POST", "/v1/roles",
         R"({"metadata":{"name":"quota-setter"},"spec":{"rules":[{"verbs":["*"],"kinds":["quotas"]}]}})")
          .status,
      201);
  EXPECT_EQ(Do(f, "POST", "/v1/rolebindings",
               R"({"metadata":{"name":"grab3"},"spec":{"namespace":"dev","role":"quota-setter",
                   "subjects":["user:frank"]}})")
                .status,
            403);
  EXPECT_EQ(Do(f, "GET", "/v1/users").status, 403);
  // Deleting the service account ends its tokens.
  EXPECT_EQ(Do(f, "DELETE", "/v1/namespaces/dev/serviceaccounts/ci").status, 200);
  EXPECT_EQ(Do(s.Client(sa), "GET", "/v1/namespaces/dev/computeinstances").status, 401);
}

std::string Instance(const std::string& name, int vcpu) {
  return json{{"metadata", {{"name", name}}},
              {"spec",
               {{"process", {{"command", {"/bin/true"}}}},
                {"resources", {{"vcpu", vcpu}, {"memoryMb", 64}}}}}}
      .dump();
}

TEST(Quota, OverQuotaIsRefusedNamingTheQuotaAndTheNumbersAndDeleteFrees) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  auto admin = s.Admin();
  auto r = Do(admin, "POST", "/v1/namespaces/q1/quotas",
              R"({"metadata":{"name":"small"},"spec":{"limits":{"instances":2,"vcpu":3}}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Do(admin, "POST", "/v1/namespaces/q1/quotas",
               R"({"metadata":{"name":"bad"},"spec":{"limits":{"gpus":1}}})")
                .status,
            400);
  const std::string base = "/v1/namespaces/q1/computeinstances";
  ASSERT_EQ(Do(admin, "POST", base, Instance("i1", 1)).status, 202);
  ASSERT_EQ(Do(admin, "POST", base, Instance("i2", 1)).status, 202);
  r = Do(admin, "POST", base, Instance("i3", 1));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(Json(r)["error"].value("code", ""), "RESOURCE_EXHAUSTED");
  EXPECT_NE(r.body.find("quota 'small' of namespace 'q1' exceeded: instances used 2 + requested 1 "
                        "> limit 2"),
            std::string::npos)
      << r.body;
  // gRPC: RESOURCE_EXHAUSTED with the same reason.
  {
    auto stub = s.Grpc();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + Trim(*ReadFile(s.dir() + "/data/admin.token")));
    api::CreateRequest q;
    q.set_kind("computeinstances"), q.set_namespace_("q1");
    compute::ComputeInstance ci;
    ci.mutable_metadata()->set_name("g3");
    ci.mutable_spec()->mutable_process()->add_command("/bin/true");
    ci.mutable_spec()->mutable_resources()->set_vcpu(1);
    q.mutable_object()->PackFrom(ci);
    api::CreateResponse a;
    auto st = stub->Create(&ctx, q, &a);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    EXPECT_NE(st.error_message().find("instances used 2 + requested 1 > limit 2"),
              std::string::npos);
  }
  auto quota = Json(Do(admin, "GET", "/v1/namespaces/q1/quotas/small"));
  EXPECT_EQ(quota["status"]["used"], json({{"instances", 2}, {"vcpu", 2}})) << quota;
  // A delete frees its share at once.
  ASSERT_EQ(Do(admin, "DELETE", base + "/i2").status, 202);
  r = Do(admin, "POST", base, Instance("i4", 3));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("vcpu used 1 + requested 3 > limit 3"), std::string::npos) << r.body;
  EXPECT_EQ(Do(admin, "POST", base, Instance("i4", 2)).status, 202);
  // An update that would take more than the quota leaves is refused as well.
  auto i4 = Json(Do(admin, "GET", base + "/i4"));
  i4["spec"]["resources"]["vcpu"] = 3;
  r = Do(admin, "PUT", base + "/i4", i4.dump());
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("vcpu used 3 + requested 1 > limit 3"), std::string::npos) << r.body;
  // Other namespaces are not bound; a namespace's own admin cannot lift its quota.
  EXPECT_EQ(Do(admin, "POST", "/v1/namespaces/free/computeinstances", Instance("f1", 64)).status,
            202);
  CreateUser(s, "hank", "hank's password");
  Bind(s, "hank-q1", "q1", "admin", {"user:hank"});
  auto hank = s.Client(Login(s, "hank", "hank's password")["accessToken"]);
  quota["spec"]["limits"]["instances"] = 100;
  EXPECT_EQ(Do(hank, "PUT", "/v1/namespaces/q1/quotas/small", quota.dump()).status, 403);
  EXPECT_EQ(Do(hank, "GET", "/v1/namespaces/q1/quotas/small").status, 200);
}

TEST(Quota, FiftyConcurrentCreatesAgainstTenPassExactlyTen) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  auto admin = s.Admin();
  ASSERT_EQ(Do(admin, "POST", "/v1/namespaces/race/quotas",
               R"({"metadata":{"name":"ten"},"spec":{"limits":{"instances":10}}})")
                .status,
            201);
  std::atomic<int> created{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      auto r = s.Admin().Do("POST", "/v1/namespaces/race/computeinstances",
                            Instance("c" + std::to_string(i), 1));
      if (r.ok() && r->status == 202) {
        ++created;
      } else if (r.ok() && r->status == 403) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 10);
  EXPECT_EQ(refused.load(), 40);
  EXPECT_EQ(other.load(), 0);
  auto list = Json(Do(admin, "GET", "/v1/namespaces/race/computeinstances"));
  ASSERT_EQ(list["items"].size(), 10u);
  // Deletes free exactly what they held.
  for (int i = 0; i < 3; ++i) {
    const std::string name = list["items"][i]["metadata"]["name"];
    ASSERT_EQ(Do(admin, "DELETE", "/v1/namespaces/race/computeinstances/" + name).status, 202);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Do(admin, "POST", "/v1/namespaces/race/computeinstances",
                 Instance("again" + std::to_string(i), 1))
                  .status,
              202);
  }
  EXPECT_EQ(
      Do(admin, "POST", "/v1/namespaces/race/computeinstances", Instance("one-too-many", 1)).status,
      403);
}

TEST(Identity, DirectoryAndQuotasSurviveARestart) {
  ServerProcess s;
  ASSERT_TRUE(s.up());
  CreateUser(s, "ivan", "ivan's password");
  ASSERT_EQ(
      Do(s.Admin(), "POST", "/v1/roles",
         R"({"metadata":{"name":"lister"},"spec":{"rules":[{"verbs":["list"],"kinds":["vpcs"]}]}})")
          .status,
      201);
  Bind(s, "ivan-lists", "dev", "lister", {"user:ivan"});
  ASSERT_EQ(Do(s.Admin(), "POST", "/v1/namespaces/dev/quotas",
               R"({"metadata":{"name":"one"},"spec":{"limits":{"instances":1}}})")
                .status,
            201);
  const std::string token = Login(s, "ivan", "ivan's password")["accessToken"];
  s.Restart();
  ASSERT_TRUE(s.up());
  // The session, its grants and the quota are read back from the store.
  EXPECT_EQ(Do(s.Client(token), "GET", "/v1/namespaces/dev/vpcs").status, 200);
  EXPECT_EQ(Do(s.Client(token), "GET", "/v1/namespaces/dev/subnets").status, 403);
  Login(s, "ivan", "ivan's password");
  auto admin = s.Admin();
  EXPECT_EQ(Do(admin, "POST", "/v1/namespaces/dev/computeinstances", Instance("a", 1)).status, 202);
  EXPECT_EQ(Do(admin, "POST", "/v1/namespaces/dev/computeinstances", Instance("b", 1)).status, 403);
}

}  // namespace
}  // namespace photon::testing
