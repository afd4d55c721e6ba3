// Floating IPs and node SNAT end to end on the multi-host bed: a real photon-server (with a
// floating_ip_pool) in the router namespace, real photon-agents (network mode ports) in two
// host namespaces, their BIRD2 peering with the router's. The router's namespace is "the
// outside": a client there reaches an instance through its floating IP; what a listener there
// sees as the peer address tells the egress NAT (floating IP, node address, or none). Needs root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/util.h"
#include "tests/agent/cluster.h"
#include "tests/net/netbed.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using photon::net_testing::ConnectFrom;
using photon::net_testing::ListenIn;
using photon::net_testing::NetBed;

constexpr int kHosts = 2;  // h1: SNAT to its node address; h2: no SNAT configured
constexpr char kRouterIp[] = "192.168.10.1";
constexpr char kOutside[] = "198.51.100.1";  // a host beyond the rack router
constexpr char kPool[] = "203.0.113.0/28";

// Answers every connection with "hello from NAME to PEER".
const char kServer[] =
    "import socket,os\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind(('0.0.0.0',7000)); s.listen(16)\n"
    "while True:\n"
    "  c,a=s.accept(); c.sendall(('hello from %s to %s\\n'%(os.environ['PHOTON_INSTANCE'],"
    "a[0])).encode()); c.close()\n";

std::string ReadLine(int fd) {
  std::string out;
  char buf[256];
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline && out.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The peer address of the next connection on `listener` (within 3 s), or "".
std::string AcceptPeer(int listener) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, 3000) != 1) return "";
  sockaddr_in a{};
  socklen_t len = sizeof a;
  int fd = ::accept(listener, reinterpret_cast<sockaddr*>(&a), &len);
  if (fd < 0) return "";
  ::close(fd);
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

class FloatingIpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = NetBed::Up(kHosts, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    bed_->Run("r", {"ip", "addr", "add", std::string(kOutside) + "/32", "dev", "lo"});
    // This thread lives in the router's namespace from now on (photon-server listens there).
    own_netns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int r = ::open(bed_->NsPath("r").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(::setns(r, CLONE_NEWNET), 0);
    ::close(r);
    dir_ = new std::string(MakeTempDir("fipnet"));
    ASSERT_TRUE(WriteFileAtomic(*dir_ + "/server.yaml",
                                "floating_ip_pool: " + std::string(kPool) + "\n", 0600)
                    .ok());
    int port = FreePortOn(kRouterIp);
    base_ = new std::string("https://" + std::string(kRouterIp) + ":" + std::to_string(port));
    server_ = new Daemon({PHOTON_SERVER_BIN, "--data-dir", *dir_ + "/server", "--listen",
                          std::string(kRouterIp) + ":" + std::to_string(port), "--grpc-listen",
                          "127.0.0.1:" + std::to_string(FreePortOn("127.0.0.1")), "--config",
                          *dir_ + "/server.yaml"},
                         *dir_ + "/server.log");
    ASSERT_TRUE(WaitFor(
        [&] {
          auto c = cli::HttpClient::Create(*base_, "", CaFile());
          if (!c.ok()) return false;
          auto h = c->Do("GET", "/healthz");
          return h.ok() && h->status == 200;
        },
        15s))
        << Slurp(*dir_ + "/server.log");
    auto tok = ReadFile(*dir_ + "/server/admin.token");
    ASSERT_TRUE(tok.ok());
    token_ = new std::string(*tok);
    while (!token_->empty() && token_->back() == '\n') token_->pop_back();
    ASSERT_TRUE(
        WriteFileAtomic(*dir_ + "/agent.yaml", "drivers:\n  vm: {enabled: \"false\"}\n", 0644)
            .ok());
    for (int i = 1; i <= kHosts; ++i) ASSERT_TRUE(StartAgent(i)) << AgentLog(i);
    ASSERT_TRUE(WaitFor(
        [&] {
          std::string p = bed_->Bird("r", {"show", "protocols"});
          return CountLines(p, "Established") == kHosts;
        },
        30s))
        << bed_->Bird("r", {"show", "protocols"});
    ASSERT_EQ(Call("POST", "/v1/namespaces/default/securitygroups",
                   {{"metadata", {{"name", "web"}}},
                    {"spec",
                     {{"rules", json::array({{{"direction", "egress"}, {"cidr", "0.0.0.0/0"}},
                                             {{"direction", "ingress"},
                                              {"protocol", "tcp"},
                                              {"portMin", 7000},
                                              {"cidr", "0.0.0.0/0"}}})}}}})
                      .status /
                  100,
              2);
  }
  static void TearDownTestSuite() {
    for (auto*& a : agents_) {
      delete a;
      a = nullptr;
    }
    delete server_;
    server_ = nullptr;
    if (bed_ != nullptr) {
      for (int i = 1; i <= kHosts; ++i) {
        SweepHost(Node(i), *dir_ + "/agent-" + Node(i));
        bed_->Run(bed_->Host(i), {"nft", "delete", "table", "ip", "photon_nat"});
      }
    }
    if (own_netns_ >= 0) {
      (void)::setns(own_netns_, CLONE_NEWNET);
      ::close(own_netns_);
      own_netns_ = -1;
    }
    delete bed_;
    bed_ = nullptr;
    std::error_code ec;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_, ec);
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, cgroups)";
    ASSERT_NE(bed_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    for (const auto& f : fips_) (void)Call("DELETE", FipPath(f));
    for (const auto& name : created_) (void)Call("DELETE", InstancePath(name));
    for (const auto& name : created_) {
      EXPECT_TRUE(WaitFor([&] { return Call("GET", InstancePath(name)).status == 404; }, 30s))
          << name;
    }
    created_.clear();
    fips_.clear();
  }

  static int FreePortOn(const std::string& ip) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = photon::net_testing::Addr(ip, 0);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }
  static std::string Node(int i) {
    return "f" + std::to_string(::getpid() % 100000) + "h" + std::to_string(i);
  }
  static std::string CaFile() { return *dir_ + "/server/tls/ca.crt"; }
  static std::string Prefix(int i) { return bed_->Ns(bed_->Host(i)) + "-p-"; }
  static std::string AgentLog(int i) { return Slurp(*dir_ + "/agent-" + Node(i) + ".log"); }
  static std::string NodeIp(int i) { return "192.168.10." + std::to_string(10 + i); }

  static bool StartAgent(int i) {
    delete agents_[i];
    const std::string run = "/run/photon-netbed/" + bed_->prefix() + "/" + bed_->Host(i);
    std::vector<std::string> argv = {"/usr/bin/nsenter",
                                     "--net=" + bed_->NsPath(bed_->Host(i)),
                                     PHOTON_AGENT_BIN,
                                     "--server",
                                     *base_,
                                     "--ca-file",
                                     CaFile(),
                                     "--token-file",
                                     *dir_ + "/server/join.token",
                                     "--data-dir",
                                     *dir_ + "/agent-" + Node(i),
                                     "--name",
                                     Node(i),
                                     "--heartbeat-seconds",
                                     "1",
                                     "--resync-seconds",
                                     "30",  // long: the NAT must follow the Port's events
                                     "--network-mode",
                                     "ports",
                                     "--netns-prefix",
                                     Prefix(i),
                                     "--config",
                                     *dir_ + "/agent.yaml",
                                     "--bird-config",
                                     run + ".conf",
                                     "--bird-socket",
                                     run + ".ctl",
                                     "--bird-router-id",
                                     NodeIp(i),
                                     "--bird-local-as",
                                     std::to_string(65000 + i),
                                     "--bird-peers",
                                     std::string(kRouterIp) + ":65000",
                                     "--bird-log",
                                     run + ".log",
                                     "--nat-cloud-cidrs",
                                     "10.0.0.0/8"};
    if (i == 1) argv.insert(argv.end(), {"--snat-interface", "ul0"});
    agents_[i] = new Daemon(argv, *dir_ + "/agent-" + Node(i) + ".log");
    return WaitFor([&] { return NodeReady(i); }, 30s);
  }
  static bool NodeReady(int i) {
    auto j = Get("/v1/namespaces/system/nodes/" + Node(i));
    return j.is_object() &&
           j.value("nodeStatus", json::object()).value("condition", "") == "READY" &&
           agents_[i] != nullptr && agents_[i]->Running();
  }
  static cli::HttpResult Call(const std::string& method, const std::string& path,
                              const json& body = nullptr) {
    auto c = cli::HttpClient::Create(*base_, *token_, CaFile());
    if (!c.ok()) return cli::HttpResult{0, c.status().ToString(), {}};
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? *r : cli::HttpResult{0, r.status().ToString(), {}};
  }
  static json Get(const std::string& path) {
    auto r = Call("GET", path);
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json(nullptr);
  }
  static std::string InstancePath(const std::string& name) {
    return "/v1/namespaces/default/computeinstances/" + name;
  }
  static std::string FipPath(const std::string& name) {
    return "/v1/namespaces/default/floatingips/" + name;
  }
  std::string Name(const std::string& base) {
    return base + "-" + std::to_string(::getpid() % 100000);
  }
  static int CountLines(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
  }

  // A server workload in group "web" on host i, RUNNING in its port; returns the instance.
  json RunServer(const std::string& name, int host) {
    json inst = {{"metadata", {{"name", name}}},
                 {"spec",
                  {{"process", {{"command", {"/usr/bin/python3", "-c", kServer}}}},
                   {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
                   {"network", {{"securityGroups", {"web"}}}},
                   {"schedule", {{"nodes", {Node(host)}}}}}}};
    auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
    EXPECT_EQ(r.status / 100, 2) << r.body;
    created_.push_back(name);
    json j;
    bool ok = WaitFor(
        [&] {
          j = Get(InstancePath(name));
          return j.is_object() && j["status"].value("phase", "") == "RUNNING" &&
                 j["status"].value("details", json::object()).contains("network.netns");
        },
        40s);
    EXPECT_TRUE(ok) << name << ": " << j.dump() << AgentLog(host);
    return ok ? j : json(nullptr);
  }
  std::string PortNs(int host, const json& inst) {
    return "/run/netns/" + Prefix(host) + inst["metadata"].value("id", "");
  }
  // What a listener at the outside sees as the source of a connection from `netns`.
  std::string SeenOutside(const std::string& netns) {
    const int port = FreePortOn(kOutside);
    int l = ListenIn(bed_->NsPath("r"), kOutside, port);
    if (l < 0) return "no listener";
    int c = ConnectFrom(netns, kOutside, port, 3000ms);
    std::string peer = c >= 0 ? AcceptPeer(l) : "no connection";
    if (c >= 0) ::close(c);
    ::close(l);
    return peer;
  }
  // The greeting of the instance behind ip:7000, asked from the outside ("" = unreachable).
  static std::string FromOutside(const std::string& ip) {
    int fd = ConnectFrom(bed_->NsPath("r"), ip, 7000, 1000ms);
    return fd < 0 ? "" : ReadLine(fd);
  }
  std::string CreateFip(const std::string& name, const std::string& instance) {
    auto r = Call("POST", "/v1/namespaces/default/floatingips",
                  {{"metadata", {{"name", name}}}, {"spec", {{"instance", instance}}}});
    EXPECT_EQ(r.status / 100, 2) << r.body;
    fips_.push_back(name);
    json f = Get(FipPath(name));
    return f.is_object() ? f["spec"].value("address", "") : "";
  }
  std::string NatTable(int i) {
    int rc = 0;
    std::string out = bed_->Run(bed_->Host(i), {"nft", "list", "table", "ip", "photon_nat"}, &rc);
    return rc == 0 ? out : "";
  }

  static NetBed* bed_;
  static int own_netns_;
  static std::string* dir_;
  static std::string* base_;
  static std::string* token_;
  static Daemon* server_;
  static Daemon* agents_[kHosts + 1];
  std::vector<std::string> created_;
  std::vector<std::string> fips_;
};

NetBed* FloatingIpTest::bed_ = nullptr;
int FloatingIpTest::own_netns_ = -1;
std::string* FloatingIpTest::dir_ = nullptr;
std::string* FloatingIpTest::base_ = nullptr;
std::string* FloatingIpTest::token_ = nullptr;
Daemon* FloatingIpTest::server_ = nullptr;
Daemon* FloatingIpTest::agents_[kHosts + 1] = {};

// The outside reaches an instance through its floating IP (announced by its node's BIRD), the
// instance's egress leaves with the floating IP as source, its neighbour's with the node's
// address (SNAT); a delete withdraws the route and the mapping, and egress falls back to SNAT.
TEST_F(FloatingIpTest, OutsideReachesTheInstanceAndItsEgressIsTheFloatingIp) {
  const std::string s = Name("fs"), n = Name("fn");
  json is = RunServer(s, 1), in = RunServer(n, 1);
  ASSERT_TRUE(is.is_object() && in.is_object());
  const std::string ns_s = PortNs(1, is), ns_n = PortNs(1, in);
  const std::string ip_s = is["status"]["addresses"][0];

  const int64_t t0 = MonotonicNanos();
  const std::string fip = CreateFip("f1", s);
  ASSERT_EQ(fip, "203.0.113.1");
  std::string g;
  ASSERT_TRUE(WaitFor(
      [&] {
        g = FromOutside(fip);
        return !g.empty();
      },
      20s))
      << bed_->Bird("r", {"show", "route"}) << NatTable(1) << AgentLog(1);
  std::printf("[ figure ] floating IP create -> reachable from the outside: %.0f ms\n",
              static_cast<double>(MonotonicNanos() - t0) / 1e6);
  EXPECT_EQ(g, "hello from " + s + " to " + kRouterIp + "\n");
  json f = Get(FipPath("f1"));
  EXPECT_EQ(f["status"]["details"].value("node", ""), Node(1)) << f.dump();
  EXPECT_EQ(f["status"]["details"].value("privateIp", ""), ip_s) << f.dump();
  EXPECT_EQ(f["status"].value("phase", ""), "RUNNING") << f.dump();

  EXPECT_EQ(SeenOutside(ns_s), fip) << NatTable(1);
  EXPECT_EQ(SeenOutside(ns_n), NodeIp(1)) << "SNAT to the node's address\n" << NatTable(1);
  // Within the cloud nothing is NATed.
  EXPECT_EQ(ReadLine(ConnectFrom(ns_n, ip_s, 7000, 2000ms)),
            "hello from " + s + " to " + in["status"]["addresses"][0].get<std::string>() + "\n");

  // Delete: the route leaves the router, the mapping the node; egress is SNAT again.
  const int64_t t1 = MonotonicNanos();
  ASSERT_EQ(Call("DELETE", FipPath("f1")).status / 100, 2);
  EXPECT_TRUE(WaitFor([&] { return !bed_->RouterHas(fip); }, 15s))
      << bed_->Bird("r", {"show", "route"});
  std::printf("[ figure ] floating IP delete -> route withdrawn at the router: %.0f ms\n",
              static_cast<double>(MonotonicNanos() - t1) / 1e6);
  EXPECT_TRUE(WaitFor([&] { return NatTable(1).find(fip) == std::string::npos; }, 5s))
      << NatTable(1);
  EXPECT_EQ(bed_->Run(bed_->Host(1), {"ip", "route", "show", "type", "blackhole"}).find(fip),
            std::string::npos);
  EXPECT_EQ(FromOutside(fip), "");
  EXPECT_EQ(SeenOutside(ns_s), NodeIp(1)) << NatTable(1);
}

// A node without SNAT configured has no NAT table until a floating IP is mapped there, and its
// instances leave with their own addresses; deleting the instance takes its mapping along.
TEST_F(FloatingIpTest, NoSnatUnlessConfiguredAndInstanceDeleteRemovesTheMapping) {
  const std::string s = Name("gs");
  json is = RunServer(s, 2);
  ASSERT_TRUE(is.is_object());
  const std::string ip_s = is["status"]["addresses"][0];
  EXPECT_EQ(NatTable(2), "") << "no SNAT configured on h2";
  EXPECT_EQ(SeenOutside(PortNs(2, is)), ip_s);

  const std::string fip = CreateFip("g1", s);
  ASSERT_FALSE(fip.empty());
  EXPECT_TRUE(WaitFor([&] { return !FromOutside(fip).empty(); }, 20s))
      << bed_->Bird("r", {"show", "route"}) << NatTable(2) << AgentLog(2);
  EXPECT_EQ(SeenOutside(PortNs(2, is)), fip);
  EXPECT_EQ(Get(FipPath("g1"))["status"]["details"].value("node", ""), Node(2));

  ASSERT_EQ(Call("DELETE", InstancePath(s)).status / 100, 2);
  EXPECT_TRUE(WaitFor([&] { return Call("GET", InstancePath(s)).status == 404; }, 30s));
  EXPECT_TRUE(WaitFor([&] { return !bed_->RouterHas(fip); }, 15s))
      << bed_->Bird("r", {"show", "route"});
  EXPECT_TRUE(WaitFor([&] { return NatTable(2).empty(); }, 5s)) << NatTable(2);
}

}  // namespace
}  // namespace photon::agent::testing
