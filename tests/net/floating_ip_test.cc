// Floating IPs and node SNAT end to end on the multi-host bed: a real photon-server (with a
// floating_ip_pool) in the router namespace, real photon-agents (network mode ports) in two
// host namespaces, their BIRD2 peering with the router's. The router's namespace is "the
// outside": a client there reaches an instance through its floating IP; what a listener there
// sees as the peer address tells the egress NAT (floating IP, node address, or none). Needs root.
#include "tests/net/bed_cluster.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using photon::net_testing::AcceptPeer;
using photon::net_testing::ConnectFrom;
using photon::net_testing::ListenIn;

constexpr char kOutside[] = "198.51.100.1";  // a host beyond the rack router
constexpr char kPool[] = "203.0.113.0/28";

class FloatingIpTest : public BedClusterTest<FloatingIpTest> {
 public:
  // h1: SNAT to its node address; h2: no SNAT configured. A long resync: the NAT must follow
  // the Port's events.
  static BedOptions Options() {
    BedOptions o;
    o.hosts = 2;
    o.tag = "f";
    o.server_yaml = "floating_ip_pool: " + std::string(kPool) + "\n";
    o.resync_seconds = 30;
    o.extra_flags = [](int i) {
      std::vector<std::string> f = {"--nat-cloud-cidrs", "10.0.0.0/8"};
      if (i == 1) f.insert(f.end(), {"--snat-interface", "ul0"});
      return f;
    };
    return o;
  }
  static void SetUpTestSuite() {
    BedClusterTest::SetUpTestSuite();
    if (::geteuid() != 0 || ::testing::Test::HasFatalFailure()) return;
    bed_->Run("r", {"ip", "addr", "add", std::string(kOutside) + "/32", "dev", "lo"});
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

 protected:
  void TearDown() override {
    for (const auto& f : fips_) (void)Call("DELETE", FipPath(f));
    fips_.clear();
    BedClusterTest::TearDown();
  }
  static std::string FipPath(const std::string& name) {
    return "/v1/namespaces/default/floatingips/" + name;
  }
  // A server workload in group "web" on host i, RUNNING in its port; returns the instance.
  json RunServer(const std::string& name, int host) {
    Create(name, host,
           {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
            {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
            {"network", {{"securityGroups", {"web"}}}}});
    json j = WaitRunning(name);
    EXPECT_TRUE(j.is_object()) << AgentLog(host);
    return j;
  }
  // What a listener at the outside sees as the source of a connection from `netns`.
  std::string SeenOutside(const std::string& netns) {
    const int port = ::photon::testing::FreePort(kOutside);
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
    return fd < 0 ? "" : ReadLine(fd, 3s);
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

  std::vector<std::string> fips_;
};

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
  EXPECT_EQ(ReadLine(ConnectFrom(ns_n, ip_s, 7000, 2000ms), 3s),
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
  // The instance's final delete dissociated its FloatingIp (the address stays allocated).
  EXPECT_EQ(Get(FipPath("g1"))["spec"].value("instance", "x"), "") << Get(FipPath("g1")).dump();
  EXPECT_TRUE(WaitFor([&] { return !bed_->RouterHas(fip); }, 15s))
      << bed_->Bird("r", {"show", "route"});
  EXPECT_TRUE(WaitFor([&] { return NatTable(2).empty(); }, 5s)) << NatTable(2);
}

// A SecurityGroup rule added or removed while its instance runs is applied on the node at once:
// these agents resync only every 30 s, so what carries the change is the Port event the server
// makes for every Port naming the group (the agents never list or watch groups themselves).
TEST_F(FloatingIpTest, SecurityGroupChangesReachRunningPortsWithoutResync) {
  const std::string group = Name("sgw");
  const std::string path = "/v1/namespaces/default/securitygroups/" + group;
  ASSERT_EQ(Call("POST", "/v1/namespaces/default/securitygroups",
                 {{"metadata", {{"name", group}}},
                  {"spec", {{"rules", json::array({{{"direction", "egress"}}})}}}})
                    .status /
                100,
            2);
  const std::string s = Name("hs");
  Create(s, 1,
         {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
          {"network", {{"securityGroups", {group}}}}});
  json is = WaitRunning(s);
  ASSERT_TRUE(is.is_object()) << AgentLog(1);
  const std::string ip = Address(is);
  auto reachable = [&] {
    int fd = ConnectFrom(bed_->NsPath("r"), ip, 7000, 200ms);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return bed_->RouterHas(ip); }, 15s));
  EXPECT_FALSE(reachable()) << "the outside is not in the VPC and no rule lets it in";

  // Each change is a PUT of the group; the time until the outside sees it is measured.
  const json ingress = {
      {"direction", "ingress"}, {"protocol", "tcp"}, {"portMin", 7000}, {"cidr", "0.0.0.0/0"}};
  auto change = [&](const json& rules, bool want_reachable) {
    json sg = Get(path);
    sg["spec"]["rules"] = rules;
    const int64_t t0 = MonotonicNanos();
    auto put = Call("PUT", path, sg);
    EXPECT_EQ(put.status, 200) << put.body;
    EXPECT_TRUE(WaitFor([&] { return reachable() == want_reachable; }, 5s)) << AgentLog(1);
    const double ms = static_cast<double>(MonotonicNanos() - t0) / 1e6;
    EXPECT_LT(ms, 1500) << "a rule change must not wait for the agents' 30 s resync";
    return ms;
  };
  const json egress_only = json::array({{{"direction", "egress"}}});
  const double added_ms = change(json::array({egress_only[0], ingress}), true);
  const double removed_ms = change(egress_only, false);
  const double again_ms = change(json::array({egress_only[0], ingress}), true);
  std::printf(
      "[ figure ] security group rule added -> new connections pass: %.0f ms (again: %.0f ms); "
      "removed -> refused: %.0f ms (agent resync 30 s)\n",
      added_ms, again_ms, removed_ms);
  // The group goes with the instance (TearDown deletes the instance first).
  (void)Call("DELETE", InstancePath(s));
  EXPECT_TRUE(WaitFor([&] { return Call("GET", InstancePath(s)).status == 404; }, 30s));
  EXPECT_EQ(Call("DELETE", path).status / 100, 2);
}

}  // namespace
}  // namespace photon::agent::testing
