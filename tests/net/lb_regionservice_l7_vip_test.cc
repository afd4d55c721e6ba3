// L7 LoadBalancers with VIPs of their own (fiberlb provider `l7_announce`), on the multi-host
// bed: a real photon-server with the fiberlb provider (vip_pool 10.200.9.0/29), a real fiberlb
// with HAProxy and a `bgp` section on h1 (the bed's BIRD2 on h1 announcing each VIP to the
// router), a photon-agent in network mode `ports` on h2 running the replicas in port namespaces
// (VPC addresses, routed by BGP; a security group lets the LB node in), and a client behind
// the router. Needs root (namespaces).
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/net/bed_cluster.h"
#include "tests/net/lb_l4_fiberlb.h"

#ifndef FIBERLB_BIN
#error "FIBERLB_BIN: path of the fiberlb binary"
#endif

namespace photon::agent::testing {
namespace {

constexpr int kVipPort = 80;
constexpr char kSg[] = "lb-in";  // every LoadBalancer listens on the same port, each on its VIP

// A replica answering every connection on argv[1] with its name.
constexpr char kReplica[] =
    "import socket,os,sys\n"
    "n=(os.environ['PHOTON_INSTANCE']+'\\n').encode()\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\n"
    "s.bind(('0.0.0.0',int(sys.argv[1]))); s.listen(64)\n"
    "while True:\n"
    "  c,a=s.accept(); c.sendall(n); c.close()\n";

std::string LbDir() { return "/tmp/l7vip-rs-" + std::to_string(::getpid()) + "-h1"; }
std::string LbApi() { return "192.168.10.11:18090"; }

class LbRegionServiceL7VipTest : public BedClusterTest<LbRegionServiceL7VipTest> {
 public:
  static BedOptions Options() {
    BedOptions o;
    o.hosts = 2;
    o.tag = "l7v";
    o.bird_sessions = 2;  // the bed's BIRD on h1 (announces the VIPs), h2's agent's
    o.mode = [](int i) { return std::string(i == 1 ? "none" : "ports"); };
    o.server_yaml = "provider_resync_s: 2\nproviders:\n  - driver: fiberlb\n    endpoint: http://" +
                    LbApi() + "\n    token_file: " + LbDir() +
                    "/api.token\n    vip_pool: 10.200.9.0/29\n    l7_announce: \"true\"\n";
    o.prepare = [](const std::string&) { return StartLbNode(); };
    return o;
  }
  static void SetUpTestSuite() {
    BedClusterTest::SetUpTestSuite();
    if (bed_ == nullptr) return;
    Status s = net_testing::LbClient(*bed_);
    ASSERT_TRUE(s.ok()) << s;
    // The replicas' ports let the LB node (the underlay) reach the target ports.
    json in = {{"direction", "ingress"},
               {"protocol", "tcp"},
               {"portMin", 8081},
               {"portMax", 8090},
               {"cidr", "192.168.10.0/24"}};
    auto r = Call("POST", "/v1/namespaces/default/securitygroups",
                  {{"metadata", {{"name", kSg}}}, {"spec", {{"rules", json::array({in})}}}});
    ASSERT_EQ(r.status / 100, 2) << r.body;
  }
  static void TearDownTestSuite() {
    net_testing::StopFiberlbPid(lb_pid_, SIGTERM);
    lb_pid_ = 0;
    BedClusterTest::TearDownTestSuite();
    std::error_code ec;
    std::filesystem::remove_all(LbDir(), ec);
    std::filesystem::remove(LbDir() + ".yaml", ec);
    std::filesystem::remove(LbDir() + ".log", ec);
  }
  void TearDown() override {
    std::vector<std::string> paths;
    for (const auto& rs : services_) paths.push_back(RsPath(rs));
    DeleteAndAwaitGone(paths, 60s);
    BedClusterTest::TearDown();
  }

 protected:
  static std::string StartLbNode() {
    std::filesystem::create_directories(LbDir());
    std::ofstream(LbDir() + ".yaml")
        << "api: " << LbApi() << "\naccess_log: \"off\"\nbgp: {route_protocol: 200}\n";
    lb_pid_ = net_testing::StartFiberlbIn(*bed_, bed_->Host(1), FIBERLB_BIN, LbDir() + ".yaml",
                                          LbDir(), LbDir() + ".log");
    if (!WaitFor([&] { return std::filesystem::exists(LbDir() + "/api.token"); }, 20s) ||
        !WaitFor([&] { return Vips().is_object(); }, 20s))
      return "fiberlb on h1 did not answer: " + Slurp(LbDir() + ".log");
    return "";
  }
  static json Vips() {
    std::ifstream t(LbDir() + "/api.token");
    std::string token;
    std::getline(t, token);
    std::string out =
        bed_->Run(bed_->Host(1), {"curl", "-sf", "-m", "10", "-H", "Authorization: Bearer " + token,
                                  "http://" + LbApi() + "/v1/vips"});
    return json::parse(out, nullptr, false).is_object() ? json::parse(out) : json();
  }
  static std::string PoolOnH1(const std::string& rs) {
    std::ifstream t(LbDir() + "/api.token");
    std::string token;
    std::getline(t, token);
    return bed_->Run(bed_->Host(1),
                     {"curl", "-s", "-m", "10", "-H", "Authorization: Bearer " + token,
                      "http://" + LbApi() + "/v1/pools/photon.default." + rs + ".80"});
  }
  void CreateService(const std::string& name, int target_port) {
    json lb = {
        {"type", "L7"},
        {"listeners", {{{"port", kVipPort}, {"protocol", "TCP"}, {"targetPort", target_port}}}},
        {"healthCheck", {{"type", "tcp"}, {"intervalMs", 200}, {"rise", 1}, {"fall", 2}}}};
    json body = {
        {"metadata", {{"name", name}}},
        {"spec",
         {{"replicas", 1},
          {"schedule", {{"nodes", {Node(2)}}}},
          {"template",
           {{"process",
             {{"command", {"/usr/bin/python3", "-c", kReplica, std::to_string(target_port)}}}},
            {"network", {{"securityGroups", {kSg}}}}}},
          {"loadBalancer", lb}}}};
    auto r = Call("POST", "/v1/namespaces/default/regionservices", body);
    ASSERT_TRUE(r.status == 201 || r.status == 202) << r.status << " " << r.body;
    services_.push_back(name);
  }
  // The LoadBalancer's VIP once it is RUNNING and announced ("" on a timeout).
  std::string WaitAnnounced(const std::string& rs) {
    std::string vip;
    json last;
    bool ok = WaitFor(
        [&] {
          last = Get(LbPath(rs));
          if (!last.is_object()) return false;
          const json& st = last.value("status", json::object());
          const json& d = st.value("details", json::object());
          if (st.value("phase", "") != "RUNNING" || d.value("vipAnnounced", "") != "true")
            return false;
          int members = 0;  // and every member UP (a member added to HAProxy starts UP)
          for (const auto& [k, v] : d.items()) {
            if (k.rfind("member.", 0) != 0) continue;
            ++members;
            const std::string h = v.get<std::string>();
            if (h.size() < 3 || h.compare(h.size() - 3, 3, " UP") != 0) return false;
          }
          if (members == 0) return false;
          vip = d.value("vip", "");
          return true;
        },
        60s);
    EXPECT_TRUE(ok) << last.dump() << bed_->Run(bed_->Host(1), {"ip", "route"})
                    << bed_->Run("r", {"ip", "route"}) << bed_->Bird("r", {"show", "protocols"})
                    << bed_->Bird("r", {"show", "route"}) << AgentLog(2).substr(0, 3000);
    return ok ? vip : "";
  }
  // The replica answering a new connection from the client through vip:80, "" on failure.
  static std::string Hello(const std::string& vip) {
    int fd = net_testing::ConnectFrom(bed_->NsPath("c"), vip, kVipPort, 3s);
    if (fd < 0) return "";
    std::string line = ReadLine(fd, 3s);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    return line;
  }
  static int RouterPaths(const std::string& vip) { return net_testing::LbRouterPaths(*bed_, vip); }
  static bool HeldOnH1(const std::string& vip) {
    return bed_->Run(bed_->Host(1), {"ip", "-4", "addr", "show", "dev", "lo"})
               .find(" " + vip + "/32") != std::string::npos;
  }

  std::vector<std::string> services_;
  inline static pid_t lb_pid_ = 0;
};

TEST_F(LbRegionServiceL7VipTest, EachLoadBalancerGetsItsOwnAnnouncedVipOnTheSamePort) {
  const std::string a = Name("a"), b = Name("b");
  CreateService(a, 8081);
  const std::string vip_a = WaitAnnounced(a);
  ASSERT_EQ(vip_a, "10.200.9.1");
  CreateService(b, 8082);
  const std::string vip_b = WaitAnnounced(b);
  ASSERT_EQ(vip_b, "10.200.9.2");
  ASSERT_TRUE(WaitFor([&] { return RouterPaths(vip_a) == 1 && RouterPaths(vip_b) == 1; }, 20s))
      << bed_->Run("r", {"ip", "route"});
  // Each VIP reaches its own service's replica only, on the same port.
  for (int k = 0; k < 10; ++k) {
    std::string from_a = Hello(vip_a), from_b = Hello(vip_b);
    ASSERT_EQ(from_a.rfind(a, 0), 0u)
        << "through " << vip_a << ": '" << from_a << "' " << Get(LbPath(a)).dump() << PoolOnH1(a);
    ASSERT_EQ(from_b.rfind(b, 0), 0u) << "through " << vip_b << ": '" << from_b << "'";
  }
  json lb = Get(LbPath(a));
  EXPECT_EQ(lb["status"]["addresses"][0], vip_a) << lb.dump();

  // Deleted: the listener, the announcement and the address go; the VIP is given back.
  const int deleted = Call("DELETE", RsPath(a)).status;
  ASSERT_TRUE(deleted == 200 || deleted == 202) << deleted;
  ASSERT_TRUE(WaitFor([&] { return Call("GET", LbPath(a)).status == 404; }, 60s));
  EXPECT_TRUE(WaitFor([&] { return RouterPaths(vip_a) == 0 && !HeldOnH1(vip_a); }, 20s))
      << Vips().dump();
  EXPECT_EQ(Hello(vip_a), "");
  EXPECT_EQ(Hello(vip_b).rfind(b, 0), 0u);
  const std::string c = Name("c");
  CreateService(c, 8083);
  EXPECT_EQ(WaitAnnounced(c), vip_a) << "the deleted LoadBalancer's VIP was given back";
}

TEST_F(LbRegionServiceL7VipTest, NoMemberUpWithdrawsTheVipAndTheStatusSaysSo) {
  const std::string d = Name("d");
  CreateService(d, 8084);
  const std::string vip = WaitAnnounced(d);
  ASSERT_FALSE(vip.empty());
  ASSERT_TRUE(WaitFor([&] { return RouterPaths(vip) == 1; }, 20s));
  // The replica stopped: no member UP, the VIP withdrawn, the status follows.
  json inst =
      Get("/v1/namespaces/default/computeinstances?labelSelector=photon.io/"
          "regionservice%3D" +
          d);
  ASSERT_EQ(inst["items"].size(), 1u) << inst.dump();
  const std::string replica = inst["items"][0]["metadata"]["name"];
  auto r = Call("POST", InstancePath(replica) + "/actions/stop", json::object());
  ASSERT_TRUE(r.status == 200 || r.status == 202) << r.status << " " << r.body;
  EXPECT_TRUE(WaitFor([&] { return RouterPaths(vip) == 0; }, 20s)) << Vips().dump();
  EXPECT_TRUE(WaitFor(
      [&] { return Get(LbPath(d))["status"]["details"].value("vipAnnounced", "") == "false"; },
      30s))
      << Get(LbPath(d)).dump();
  EXPECT_TRUE(HeldOnH1(vip)) << "the VIP stays on the loopback while its listener exists";
}

}  // namespace
}  // namespace photon::agent::testing
