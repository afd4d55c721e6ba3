// Agent mTLS from the built-in CA (docs/security.md "Agent certificates") with the real
// binaries: photon-server forced to TLS on loopback with short-lived agent certificates,
// photon-agent processes joining with a pinned CA hash, curl and openssl as the other clients.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "common/tls.h"
#include "photon/service.grpc.pb.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using std::chrono::seconds;

// A child whose stdout and stderr go to `log`; killed (and reaped) on destruction.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // True once the child has exited (its code in *code).
  bool Exited(int* code) {
    if (exited_) {
      *code = code_;
      return true;
    }
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    exited_ = true;
    code_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    *code = code_;
    return true;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = 0;
};

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

// Runs a shell command (bounded); exit code and combined output.
std::pair<int, std::string> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(("timeout 20 " + cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

constexpr int kCertTtl = 6;  // seconds: agents renew every 4 s

class Mtls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = MakeTempDir("mtls");
    port_ = FreePort();
    grpc_port_ = FreePort();
    server_ = new Child({PHOTON_SERVER_BIN, "--data-dir", dir_ + "/server", "--listen",
                         "127.0.0.1:" + std::to_string(port_), "--grpc-listen",
                         "127.0.0.1:" + std::to_string(grpc_port_), "--tls", "on",
                         "--agent-cert-ttl", std::to_string(kCertTtl)},
                        dir_ + "/server.log");
    ca_ = dir_ + "/server/tls/ca.crt";
    base_ = "https://127.0.0.1:" + std::to_string(port_);
    ASSERT_TRUE(WaitFor(
        [] {
          auto c = cli::HttpClient::Create(base_, "", ca_);
          if (!c.ok()) return false;
          auto r = c->Do("GET", "/healthz");
          return r.ok() && r->status == 200;
        },
        seconds(20)))
        << "photon-server did not come up; log: " << dir_ << "/server.log";
    token_ = Trim(*ReadFile(dir_ + "/server/admin.token"));
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/agent.yaml",
                                "drivers:\n  process: {enabled: \"false\"}\n"
                                "  container: {enabled: \"false\"}\n  vm: {enabled: \"false\"}\n")
                    .ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(dir_);
  }

  // The CA hash the server serves (GET /v1/ca, trusting the CA file).
  static std::string ServedHash() {
    auto c = *cli::HttpClient::Create(base_, "", ca_);
    auto r = c.Do("GET", "/v1/ca");
    EXPECT_TRUE(r.ok() && r->status == 200);
    return r.ok() ? r->headers["photon-ca-hash"] : "";
  }

  static std::unique_ptr<Child> StartAgent(const std::string& name, const std::string& ca_hash,
                                           int metrics_port = 0) {
    return std::make_unique<Child>(
        std::vector<std::string>{PHOTON_AGENT_BIN,
                                 "--config",
                                 dir_ + "/agent.yaml",
                                 "--server",
                                 base_,
                                 "--ca-hash",
                                 ca_hash,
                                 "--token-file",
                                 dir_ + "/server/join.token",
                                 "--data-dir",
                                 dir_ + "/" + name,
                                 "--name",
                                 name,
                                 "--heartbeat-seconds",
                                 "1",
                                 "--resync-seconds",
                                 "1",
                                 "--vcpu",
                                 "2",
                                 "--memory-mb",
                                 "512",
                                 "--disk-gb",
                                 "5",
                                 "--listen",
                                 "127.0.0.1:" + std::to_string(metrics_port)},
        dir_ + "/" + name + ".log");
  }

  static std::string Heartbeat(const std::string& node) {
    auto c = *cli::HttpClient::Create(base_, token_, ca_);
    auto r = c.Do("GET", "/v1/namespaces/system/nodes/" + node);
    if (!r.ok() || r->status != 200) return "";
    auto j = Json(*r);
    if (!j.contains("nodeStatus")) return "";
    return j["nodeStatus"].value("lastHeartbeat", "");
  }

  // curl with a client certificate (or none): HTTP code and body.
  static std::pair<int, std::string> CurlAs(const std::string& cert, const std::string& key,
                                            const std::string& path,
                                            const std::string& extra = "") {
    std::string cmd = "curl -sS --cacert " + ca_ + " -w '\\n%{http_code}' " + extra;
    if (!cert.empty()) cmd += " --cert " + cert + " --key " + key;
    auto [code, out] = Shell(cmd + " '" + base_ + path + "'");
    if (code != 0) return {-code, out};
    const size_t nl = out.rfind('\n');
    return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
  }

  static std::string AgentLog(const std::string& name) {
    auto log = ReadFile(dir_ + "/" + name + ".log");
    return log.ok() ? *log : "(no log)";
  }

  static inline std::string dir_, ca_, base_, token_;
  static inline int port_ = 0;
  static inline int grpc_port_ = 0;
  static inline Child* server_ = nullptr;
};

TEST_F(Mtls, ServerServesTheCaHashOpensslComputes) {
  const std::string hash = ServedHash();
  // kubeadm's recipe: SHA-256 of the DER SubjectPublicKeyInfo of the CA's key.
  auto [code, out] = Shell("openssl x509 -in " + ca_ +
                           " -pubkey -noout | openssl pkey -pubin -outform der | "
                           "openssl dgst -sha256 -r");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(hash, "sha256:" + out.substr(0, 64));
  auto log = ReadFile(dir_ + "/server.log");
  EXPECT_NE(log->find("--ca-hash " + hash), std::string::npos) << "the server logs the hash";
}

// Joins with the pinned CA, works on its certificate alone, and rotates it every 4 s while
// heartbeating every second: no heartbeat fails, none goes missing.
TEST_F(Mtls, AgentJoinsWithItsCertificateAndRotatesWithoutDroppingAnything) {
  const int metrics_port = FreePort();
  auto agent = StartAgent("rot-node", ServedHash(), metrics_port);
  const std::string adir = dir_ + "/rot-node";
  ASSERT_TRUE(WaitFor([] { return !Heartbeat("rot-node").empty(); }, seconds(30)))
      << AgentLog("rot-node");
  struct stat st {};
  ASSERT_EQ(stat((adir + "/node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_FALSE(std::filesystem::exists(adir + "/credential")) << "a certificate, no token";
  auto info = InspectCertificate(*ReadFile(adir + "/node.crt"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "node:rot-node");
  EXPECT_LE(info->not_after_unix, time(nullptr) + kCertTtl);
  // The key never left the node: the server's data dir holds no copy of it.
  const std::string key = *ReadFile(adir + "/node.key");
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ + "/server")) {
    if (!e.is_regular_file() || e.file_size() > (1 << 20)) continue;
    auto text = ReadFile(e.path().string());
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(text->find(key.substr(30, 60)), std::string::npos) << e.path();
  }

  // Rotation under the heartbeats: three certificates at least within 14 s (TTL 6 s).
  std::set<std::string> serials = {info->serial_hex};
  std::string last_beat = Heartbeat("rot-node");
  auto last_advance = std::chrono::steady_clock::now();
  std::chrono::milliseconds worst_gap{0};
  const auto end = std::chrono::steady_clock::now() + seconds(14);
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (auto c = ReadFile(adir + "/node.crt"); c.ok()) {
      if (auto i = InspectCertificate(*c); i.ok()) serials.insert(i->serial_hex);
    }
    const std::string beat = Heartbeat("rot-node");
    const auto now = std::chrono::steady_clock::now();
    if (!beat.empty() && beat != last_beat) {
      worst_gap = std::max(
          worst_gap, std::chrono::duration_cast<std::chrono::milliseconds>(now - last_advance));
      last_beat = beat;
      last_advance = now;
    }
  }
  EXPECT_GE(serials.size(), 3u) << "the certificate did not rotate; " << AgentLog("rot-node");
  EXPECT_LT(worst_gap.count(), 3000) << "heartbeats stalled across a rotation";
  auto m = cli::HttpClient::Create("http://127.0.0.1:" + std::to_string(metrics_port), "");
  auto metrics = m->Do("GET", "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->body.find("photon_agent_heartbeat_failures_total 0"), std::string::npos)
      << metrics->body.substr(0, 2000) << AgentLog("rot-node");
  EXPECT_EQ(AgentLog("rot-node").find("certificate renewal:"), std::string::npos)
      << AgentLog("rot-node");

  // The agent's current certificate works for curl too; with no certificate and no token, or
  // with the agent's certificate and a token, the same request is refused.
  const std::string mine = "/v1/computeinstances?fieldSelector=metadata.agentId%3Drot-node";
  // Copies: the agent may replace its files between the two curl arguments.
  std::string crt = dir_ + "/rot.crt", k = dir_ + "/rot.key";
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(WriteFileAtomic(crt, *ReadFile(adir + "/node.crt"), 0600).ok());
    ASSERT_TRUE(WriteFileAtomic(k, *ReadFile(adir + "/node.key"), 0600).ok());
    if (KeyMatchesCertificate(*ReadFile(crt), *ReadFile(k))) break;
  }
  auto [code, body] = CurlAs(crt, k, mine);
  EXPECT_EQ(code, 200) << body;
  std::tie(code, body) = CurlAs("", "", mine);
  EXPECT_EQ(code, 401) << body;
  EXPECT_NE(body.find("missing Authorization"), std::string::npos) << body;
  std::tie(code, body) = CurlAs(crt, k, mine, "-H 'Authorization: Bearer " + token_ + "'");
  EXPECT_EQ(code, 400) << body;
}

// A certificate the server did not sign, or one it signed that has expired, is refused; one
// it signed that is valid (the control) is taken.
TEST_F(Mtls, CertificatesFromAnotherCaOrExpiredAreRefused) {
  const std::string other = MakeTempDir("mtls-other");
  auto other_ca = EnsureSelfSignedTls(other, {"127.0.0.1"});
  ASSERT_TRUE(other_ca.ok()) << other_ca.status();
  auto ours = GeneratedTlsFiles(dir_ + "/server");
  auto issue = [&](const TlsFiles& ca, long ttl, const std::string& tag) {
    auto kc = NewKeyAndCsr("node:x");
    EXPECT_TRUE(kc.ok());
    auto cert = SignClientCertificate(ca, kc->csr_pem, "node:forged-node", ttl);
    EXPECT_TRUE(cert.ok()) << cert.status();
    EXPECT_TRUE(WriteFileAtomic(other + "/" + tag + ".crt", *cert, 0600).ok());
    EXPECT_TRUE(WriteFileAtomic(other + "/" + tag + ".key", kc->key_pem, 0600).ok());
    return std::make_pair(other + "/" + tag + ".crt", other + "/" + tag + ".key");
  };
  const std::string path = "/v1/computeinstances?fieldSelector=metadata.agentId%3Dforged-node";
  auto [c1, k1] = issue(ours, 60, "valid");
  auto [code, body] = CurlAs(c1, k1, path);
  EXPECT_EQ(code, 200) << "control: a valid certificate of our CA is taken: " << body;

  auto [c2, k2] = issue(*other_ca, 60, "foreign");
  std::tie(code, body) = CurlAs(c2, k2, path);
  EXPECT_EQ(code, 401) << body;
  EXPECT_NE(body.find("client certificate refused: certificate verify failed"), std::string::npos)
      << body;

  auto [c3, k3] = issue(ours, -60, "expired");
  std::tie(code, body) = CurlAs(c3, k3, path);
  EXPECT_EQ(code, 401) << body;
  EXPECT_NE(body.find("expired"), std::string::npos) << body;
  std::filesystem::remove_all(other);
}

// photon node revoke: the agent's very next request is refused, its renewals and joins too.
TEST_F(Mtls, RevokedNodeIsRefusedAtOnce) {
  auto agent = StartAgent("rev-node", ServedHash());
  const std::string adir = dir_ + "/rev-node";
  ASSERT_TRUE(WaitFor([] { return !Heartbeat("rev-node").empty(); }, seconds(30)))
      << AgentLog("rev-node");
  const std::string crt = dir_ + "/rev.crt", key = dir_ + "/rev.key";
  ASSERT_TRUE(WaitFor(
      [&] {
        return WriteFileAtomic(crt, *ReadFile(adir + "/node.crt"), 0600).ok() &&
               WriteFileAtomic(key, *ReadFile(adir + "/node.key"), 0600).ok() &&
               KeyMatchesCertificate(*ReadFile(crt), *ReadFile(key));
      },
      seconds(5)));
  const std::string path = "/v1/namespaces/system/nodes/rev-node";
  auto [code, body] = CurlAs(crt, key, path);
  ASSERT_EQ(code, 200) << body;

  const std::string env = "env -i HOME=" + dir_ + " PHOTON_SERVER=" + base_ +
                          " PHOTON_TOKEN=" + token_ + " PHOTON_CA_FILE=" + ca_ + " ";
  auto [rc, out] = Shell(env + PHOTON_CLI_BIN " node revoke rev-node");
  ASSERT_EQ(rc, 0) << out;
  std::tie(code, body) = CurlAs(crt, key, path);
  EXPECT_EQ(code, 401) << body;
  EXPECT_NE(body.find("node 'rev-node' was revoked"), std::string::npos) << body;

  // The agent's heartbeats stop; a join for the node is refused while revoked.
  const std::string before = Heartbeat("rev-node");
  std::this_thread::sleep_for(seconds(3));  // three heartbeat intervals: none may land
  EXPECT_EQ(Heartbeat("rev-node"), before);
  auto kc = *NewKeyAndCsr("node:rev-node");
  const std::string join_token = Trim(*ReadFile(dir_ + "/server/join.token"));
  auto c = *cli::HttpClient::Create(base_, join_token, ca_);
  nlohmann::json req = {{"node", "rev-node"}, {"csr", kc.csr_pem}};
  auto r = c.Do("POST", "/v1/join", req.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("revoked"), std::string::npos) << r->body;

  // Lifted: the node's certificate is taken again.
  std::tie(rc, out) = Shell(env + PHOTON_CLI_BIN " node unrevoke rev-node");
  ASSERT_EQ(rc, 0) << out;
  std::tie(code, body) = CurlAs(crt, key, path);
  EXPECT_EQ(code, 200) << body;
}

// A certificate of our CA for `node` (a key of its own), written to DIR/TAG.{crt,key}.
std::pair<std::string, std::string> IssueOurs(const std::string& server_dir,
                                              const std::string& out_dir, const std::string& node,
                                              const std::string& tag) {
  auto kc = NewKeyAndCsr("node:" + node);
  EXPECT_TRUE(kc.ok());
  auto cert =
      SignClientCertificate(GeneratedTlsFiles(server_dir), kc->csr_pem, "node:" + node, 600);
  EXPECT_TRUE(cert.ok()) << cert.status();
  EXPECT_TRUE(WriteFileAtomic(out_dir + "/" + tag + ".crt", *cert, 0600).ok());
  EXPECT_TRUE(WriteFileAtomic(out_dir + "/" + tag + ".key", kc->key_pem, 0600).ok());
  return {out_dir + "/" + tag + ".crt", out_dir + "/" + tag + ".key"};
}

// An open watch (curl -N) whose response head has arrived; `curl_args` pick the credential.
std::unique_ptr<Child> OpenWatch(const std::string& dir, const std::string& tag,
                                 const std::string& url, std::vector<std::string> curl_args) {
  std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "-N", "-D", dir + "/" + tag + ".head"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  argv.push_back(url);
  auto child = std::make_unique<Child>(argv, dir + "/" + tag + ".out");
  EXPECT_TRUE(WaitFor(
      [&] {
        auto head = ReadFile(dir + "/" + tag + ".head");
        return head.ok() && head->find("HTTP/1.1 200") != std::string::npos;
      },
      seconds(10)))
      << "the watch did not start: " << ReadFile(dir + "/" + tag + ".out").value_or("");
  return child;
}

// How long `child` takes to exit after now, bounded by `limit` (limit + 1 ms if it did not).
std::chrono::milliseconds TimeToExit(Child* child, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  int code = 0;
  while (!child->Exited(&code) && std::chrono::steady_clock::now() - t0 < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!child->Exited(&code)) return limit + std::chrono::milliseconds(1);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

// Revoking a node or a token ends that client's open watches within a second (REST and gRPC),
// naming why; its next request is refused. Another client's watch stays open.
TEST_F(Mtls, RevocationEndsOpenWatchesAtOnce) {
  const std::string work = MakeTempDir("mtls-cut");
  const std::string watch_url =
      base_ + "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dcut-node";
  auto [crt, key] = IssueOurs(dir_ + "/server", work, "cut-node", "cut");
  auto [other_crt, other_key] = IssueOurs(dir_ + "/server", work, "keep-node", "keep");
  auto agent_watch =
      OpenWatch(work, "agent", watch_url, {"--cacert", ca_, "--cert", crt, "--key", key});
  auto kept_watch = OpenWatch(
      work, "kept",
      base_ + "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dkeep-node",
      {"--cacert", ca_, "--cert", other_crt, "--key", other_key});

  const std::string env = "env -i HOME=" + work + " PHOTON_SERVER=" + base_ +
                          " PHOTON_TOKEN=" + token_ + " PHOTON_CA_FILE=" + ca_ + " ";
  auto [rc, out] = Shell(env + PHOTON_CLI_BIN " node revoke cut-node");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_LE(TimeToExit(agent_watch.get(), seconds(1)).count(), 1000)
      << "the revoked node's watch stayed open";
  EXPECT_NE(ReadFile(work + "/agent.out")->find("node 'cut-node' was revoked"), std::string::npos)
      << *ReadFile(work + "/agent.out");
  auto [code, body] =
      CurlAs(crt, key, "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dcut-node");
  EXPECT_EQ(code, 401) << body;
  int exit_code = 0;
  EXPECT_FALSE(kept_watch->Exited(&exit_code)) << "another node's watch was cut too";

  // A user token: its REST and gRPC watches end when it is revoked.
  auto admin = *cli::HttpClient::Create(base_, token_, ca_);
  auto made = admin.Do("POST", "/v1/tokens",
                       R"({"principal":"watcher","bindings":[{"namespace":"*","role":"viewer"}]})");
  ASSERT_TRUE(made.ok() && made->status == 201) << (made.ok() ? made->body : "");
  const std::string user_token = Json(*made)["token"].get<std::string>();
  const std::string token_id = Json(*made)["id"].get<std::string>();
  auto user_watch = OpenWatch(work, "user", base_ + "/v1/computeinstances?watch=true",
                              {"--cacert", ca_, "-H", "Authorization: Bearer " + user_token});
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ReadFile(ca_);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto stub = api::ResourceService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(grpc_port_), grpc::SslCredentials(ssl), args));
  // Watched from just before an instance's creation: its ADDED event proves the watch is
  // registered, not only connected.
  auto ci = admin.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("cut-ci"));
  ASSERT_TRUE(ci.ok() && ci->status / 100 == 2) << (ci.ok() ? ci->body : "");
  const long rv = std::stol(Json(*ci)["object"]["metadata"]["resourceVersion"].get<std::string>());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
  ctx.AddMetadata("authorization", "Bearer " + user_token);
  api::WatchRequest wreq;
  wreq.set_kind("computeinstances");
  wreq.set_resource_version(std::to_string(rv - 1));
  auto reader = stub->Watch(&ctx, wreq);
  api::WatchEvent ev;
  ASSERT_TRUE(reader->Read(&ev)) << "no event on the gRPC watch: "
                                 << reader->Finish().error_message();

  auto revoked = admin.Do("DELETE", "/v1/tokens/" + token_id);
  ASSERT_TRUE(revoked.ok() && revoked->status == 200);
  const auto t0 = std::chrono::steady_clock::now();
  while (reader->Read(&ev)) {
  }
  grpc::Status st = reader->Finish();
  EXPECT_LE(std::chrono::steady_clock::now() - t0, seconds(1)) << "the gRPC watch stayed open";
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("was revoked"), std::string::npos) << st.error_message();
  EXPECT_LE(TimeToExit(user_watch.get(), seconds(1)).count(), 1000)
      << "the revoked token's REST watch stayed open";
  auto again = cli::HttpClient::Create(base_, user_token, ca_)->Do("GET", "/v1/computeinstances");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 401) << again->body;
  (void)admin.Do("DELETE", "/v1/noderevocations/cut-node");
  (void)admin.Do("DELETE", "/v1/namespaces/default/computeinstances/cut-ci");
  std::filesystem::remove_all(work);
}

// A gRPC channel to the server with the client certificate `crt`/`key` (none when empty).
std::unique_ptr<api::ResourceService::Stub> GrpcAs(int port, const std::string& ca,
                                                   const std::string& crt, const std::string& key) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ReadFile(ca);
  if (!crt.empty()) {
    ssl.pem_cert_chain = *ReadFile(crt);
    ssl.pem_private_key = *ReadFile(key);
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  return api::ResourceService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port), grpc::SslCredentials(ssl), args));
}

grpc::Status GrpcGetNode(api::ResourceService::Stub* stub, const std::string& node,
                         const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  api::GetRequest req;
  req.set_kind("nodes");
  req.set_namespace_("system");
  req.set_name(node);
  api::GetResponse resp;
  return stub->Get(&ctx, req, &resp);
}

// The gRPC listener takes agent certificates as REST does: the same scope, another CA's and
// a revoked node's refused with the reason, a certificate and a token together refused; a
// revocation ends the agent's open gRPC watch.
TEST_F(Mtls, GrpcTakesAgentCertificates) {
  const std::string work = MakeTempDir("mtls-grpc");
  auto [crt, key] = IssueOurs(dir_ + "/server", work, "grpc-node", "grpc");
  auto admin = *cli::HttpClient::Create(base_, token_, ca_);
  auto stub = GrpcAs(grpc_port_, ca_, crt, key);
  // Its own Node (not made yet: NOT_FOUND, past authentication and scope), not another's.
  grpc::Status st = GrpcGetNode(stub.get(), "grpc-node");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  st = GrpcGetNode(stub.get(), "some-other-node");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  st = GrpcGetNode(stub.get(), "grpc-node", token_);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();

  const std::string other = MakeTempDir("mtls-grpc-other");
  ASSERT_TRUE(EnsureSelfSignedTls(other, {"127.0.0.1"}).ok());
  auto [fcrt, fkey] = IssueOurs(other, work, "grpc-node", "foreign");
  st = GrpcGetNode(GrpcAs(grpc_port_, ca_, fcrt, fkey).get(), "grpc-node");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("certificate verify failed"), std::string::npos)
      << st.error_message();
  st = GrpcGetNode(GrpcAs(grpc_port_, ca_, "", "").get(), "grpc-node");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();

  // An open watch of the agent, then its node is revoked.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
  api::WatchRequest wreq;
  wreq.set_kind("computeinstances");
  wreq.set_field_selector("metadata.agentId=grpc-node");
  auto reader = stub->Watch(&ctx, wreq);
  // A revocation that reaches the server before the watch registered ends it as it registers.
  auto revoked = admin.Do("POST", "/v1/noderevocations/grpc-node");
  ASSERT_TRUE(revoked.ok() && revoked->status / 100 == 2) << (revoked.ok() ? revoked->body : "");
  const auto t0 = std::chrono::steady_clock::now();
  api::WatchEvent ev;
  while (reader->Read(&ev)) {
  }
  st = reader->Finish();
  EXPECT_LE(std::chrono::steady_clock::now() - t0, seconds(1)) << "the watch stayed open";
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("node 'grpc-node' was revoked"), std::string::npos)
      << st.error_message();
  st = GrpcGetNode(stub.get(), "grpc-node");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("was revoked"), std::string::npos) << st.error_message();
  (void)admin.Do("DELETE", "/v1/noderevocations/grpc-node");
  std::filesystem::remove_all(other);
  std::filesystem::remove_all(work);
}

TEST_F(Mtls, WrongCaHashRefusesTheJoin) {
  const std::string wrong = "sha256:" + std::string(64, 'a');
  auto agent = StartAgent("pin-node", wrong);
  int code = 0;
  ASSERT_TRUE(WaitFor([&] { return agent->Exited(&code); }, seconds(20)))
      << "the agent kept running with a wrong CA hash: " << AgentLog("pin-node");
  EXPECT_NE(code, 0);
  EXPECT_NE(AgentLog("pin-node").find("not the pinned " + wrong), std::string::npos)
      << AgentLog("pin-node");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/pin-node/node.key"));
  EXPECT_EQ(Heartbeat("pin-node"), "");
}

TEST_F(Mtls, JoinWithoutACsrIsRefused) {
  const std::string join_token = Trim(*ReadFile(dir_ + "/server/join.token"));
  auto c = *cli::HttpClient::Create(base_, join_token, ca_);
  auto r = c.Do("POST", "/v1/join", R"({"node":"tokenless"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("csr: required"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace photon::testing
