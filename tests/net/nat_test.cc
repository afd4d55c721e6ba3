// Egress SNAT and floating IPs (1:1 NAT) on a bed host: PortManager ports, NodeNat in the
// host's namespace, the host's BIRD announcing the floating IP to the router, and a client
// "outside the cloud" in the router's namespace. What the far side sees as the peer address
// is the assertion. Needs root (namespaces).
#include "agent/net/nat.h"

#include <gtest/gtest.h>
#include <poll.h>

#include "agent/net/port_manager.h"
#include "tests/net/netbed.h"

namespace photon::agent::net {
namespace {

using namespace std::chrono_literals;
using photon::net_testing::AcceptPeer;
using photon::net_testing::ConnectFrom;
using photon::net_testing::ListenIn;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;

constexpr char kVpc[] = "10.10.0.0/16";
constexpr char kOutside[] = "198.51.100.1";  // a host beyond the rack router
constexpr char kFip[] = "203.0.113.10";
constexpr char kNodeIp[] = "192.168.10.11";  // h1 on the underlay

PortSpec Port(const std::string& id, const std::string& ip) {
  PortSpec s;
  s.instance_id = id;
  s.ip = ip;
  s.mac = "02:00:0a:0a:00:0" + ip.substr(ip.rfind('.') + 1);  // last octets 5..7
  s.vpc_cidr = kVpc;
  s.subnet_cidr = "10.10.0.0/24";
  s.rules.push_back({Direction::kEgress, -1, 0, 0, "0.0.0.0/0"});
  s.rules.push_back({Direction::kIngress, 6, 8080, 8080, "0.0.0.0/0"});
  return s;
}

class NatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    std::string error;
    bed_ = NetBed::Up(1, &error);
    ASSERT_NE(bed_, nullptr) << error;
    PortManagerOptions o;
    o.host_netns = bed_->NsPath(bed_->Host(1));
    o.netns_prefix = bed_->Ns(bed_->Host(1)) + "-p-";
    auto pm = PortManager::Open(o);
    ASSERT_TRUE(pm.ok()) << pm.status();
    pm_ = std::move(*pm);
    for (const auto& s : {Port("a", "10.10.0.5"), Port("b", "10.10.0.6"), Port("f", "10.10.0.7")}) {
      Status st = pm_->Apply(s);
      ASSERT_TRUE(st.ok()) << st;
    }
    NatOptions no;
    no.host_netns = o.host_netns;
    nat_ = std::make_unique<NodeNat>(no);
    bed_->Run("r", {"ip", "addr", "add", std::string(kOutside) + "/32", "dev", "lo"});
  }
  void TearDown() override {
    if (nat_) {
      EXPECT_TRUE(nat_->Clear().ok());
    }
    if (pm_) {
      for (const auto& p : pm_->List()) EXPECT_TRUE(pm_->Delete(p.instance_id).ok());
    }
    bed_.reset();
  }
  std::string Ns(const std::string& id) { return pm_->NetnsPath(id); }
  // Who `server` (ns path) sees connecting from `client` to ip:port.
  std::string SeenFrom(const std::string& client, const std::string& server, const std::string& ip,
                       int port) {
    int l = ListenIn(server, ip, port);
    if (l < 0) return "no listener";
    int c = ConnectFrom(client, ip, port, 3000ms);
    std::string peer = c >= 0 ? AcceptPeer(l) : "no connection";
    if (c >= 0) ::close(c);
    ::close(l);
    return peer;
  }
  NatSpec Spec(bool with_fip) {
    NatSpec s;
    s.cloud_cidrs = {kVpc};
    if (with_fip) s.floating_ips.push_back({kFip, "10.10.0.7"});
    return s;
  }

  std::unique_ptr<NetBed> bed_;
  std::unique_ptr<PortManager> pm_;
  std::unique_ptr<NodeNat> nat_;
};

TEST_F(NatTest, EgressIsSnatedFloatingIpIsOneToOne) {
  const std::string router = bed_->NsPath("r");
  ASSERT_TRUE(nat_->Apply(Spec(true)).ok());
  // Without a floating IP: the node's address; with one: the floating IP.
  EXPECT_EQ(SeenFrom(Ns("a"), router, kOutside, 9000), kNodeIp);
  EXPECT_EQ(SeenFrom(Ns("f"), router, kOutside, 9001), kFip);
  // Within the cloud nothing is NATed.
  EXPECT_EQ(SeenFrom(Ns("a"), Ns("b"), "10.10.0.6", 8080), "10.10.0.5");
  EXPECT_EQ(SeenFrom(Ns("f"), Ns("b"), "10.10.0.6", 8080), "10.10.0.7");
  // Inbound: the router learned the floating IP from the host's BIRD; a connection to it
  // reaches the instance (its SG allows tcp/8080) and the handshake's replies come back from
  // the floating IP (else the client would never connect).
  ASSERT_GE(PollUntil([&] { return bed_->RouterHas(kFip); }, 15s).count(), 0)
      << bed_->Bird("r", {"show", "route"});
  int l = ListenIn(Ns("f"), "10.10.0.7", 8080);
  ASSERT_GE(l, 0);
  int c = ConnectFrom(router, kFip, 8080, 3000ms);
  EXPECT_GE(c, 0) << "no connection to the floating IP";
  EXPECT_EQ(AcceptPeer(l), "192.168.10.1");
  if (c >= 0) ::close(c);
  ::close(l);
  // Applying the same spec again changes nothing; the route is there once.
  ASSERT_TRUE(nat_->Apply(Spec(true)).ok());
  auto routed = nat_->RoutedFloatingIps();
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(*routed, std::vector<std::string>{kFip});
}

TEST_F(NatTest, RemovedFloatingIpIsWithdrawnAndEgressFallsBackToSnat) {
  const std::string router = bed_->NsPath("r");
  ASSERT_TRUE(nat_->Apply(Spec(true)).ok());
  ASSERT_GE(PollUntil([&] { return bed_->RouterHas(kFip); }, 15s).count(), 0);
  ASSERT_TRUE(nat_->Apply(Spec(false)).ok());
  EXPECT_GE(PollUntil([&] { return !bed_->RouterHas(kFip); }, 15s).count(), 0)
      << "the router still has " << kFip;
  EXPECT_EQ(SeenFrom(Ns("f"), router, kOutside, 9002), kNodeIp);
  ASSERT_TRUE(nat_->Clear().ok());
  int rc = 0;
  bed_->Run(bed_->Host(1), {"nft", "list", "table", "ip", "photon_nat"}, &rc);
  EXPECT_NE(rc, 0) << "the table outlived Clear";
  // Without the table, the instance's own address leaves the node (the router has its route).
  EXPECT_EQ(SeenFrom(Ns("a"), router, kOutside, 9003), "10.10.0.5");
}

TEST(NatSpecTest, RefusedNamingTheField) {
  NatSpec s;
  s.cloud_cidrs = {"10.10.0.0/16"};
  s.floating_ips = {{"10.10.9.9", "10.10.0.5"}};
  Status st = ValidateNatSpec(s);
  EXPECT_NE(st.message().find("floating_ips[0].address"), std::string::npos) << st;
  s.floating_ips = {{"203.0.113.1", "10.10.0.5"}, {"203.0.113.2", "10.10.0.5"}};
  st = ValidateNatSpec(s);
  EXPECT_NE(st.message().find("floating_ips[1].private_ip"), std::string::npos) << st;
  s.cloud_cidrs = {"10.10.0.1/16"};
  st = ValidateNatSpec(s);
  EXPECT_NE(st.message().find("cloud_cidrs[0]"), std::string::npos) << st;
}

}  // namespace
}  // namespace photon::agent::net
