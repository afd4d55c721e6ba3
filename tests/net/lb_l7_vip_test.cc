// Announced L7 VIPs (fiberlb listeners with `announce`, src/fiberlb/l7_vips.h) on the multi-host
// bed: a real fiberlb with its HAProxy in each of two LB nodes h1 and h2, each with `bgp`, real
// BIRD2 announcing the VIP to an ECMP router, members m1 and m2 on the underlay answering a
// client behind the router through HAProxy. Needs root (namespaces).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fiberlb/l7_vips.h"
#include "tests/net/lb_l4_fiberlb.h"

#ifndef FIBERLB_BIN
#error "FIBERLB_BIN: path of the fiberlb binary"
#endif

namespace photon::fiberlb {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using photon::net_testing::FiberlbNodes;
using photon::net_testing::LbHelloServer;
using photon::net_testing::LbMember;
using photon::net_testing::LbMemberIp;
using photon::net_testing::LbRouterPaths;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;

constexpr char kVip[] = "10.200.8.1";
constexpr char kVip2[] = "10.200.8.2";
constexpr char kUnusedL4Vip[] = "10.200.99.1";  // the bed's members are DSR-ready; not used here
constexpr int kListenPort = 8080;
constexpr int kMemberPort = 8081;  // members answer "m<i>\n" and close
constexpr int kLbNodes = 2;
constexpr int kMembers = 2;
constexpr int kApiPort = 18090;

std::string Hello(const std::string& client_ns, const std::string& vip) {
  return photon::net_testing::LbHelloFrom(client_ns, vip, kListenPort);
}

std::multiset<std::string> Hellos(const std::string& client_ns, const std::string& vip, int n) {
  std::multiset<std::string> who;
  for (int i = 0; i < n; ++i) who.insert(Hello(client_ns, vip));
  return who;
}

class L7VipTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = photon::net_testing::LbSceneUp(kLbNodes, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    for (int i = 1; i <= kMembers; ++i) {
      Status s = LbMember(*bed_, i, kUnusedL4Vip);
      ASSERT_TRUE(s.ok()) << s;
      StartMember(i);
    }
    nodes_ = new FiberlbNodes(bed_, "/tmp/fiberlb-l7vip-" + std::to_string(::getpid()), kLbNodes,
                              kApiPort);
    for (int i = 1; i <= kLbNodes; ++i) EXPECT_EQ(nodes_->Start(i, Config(), "/v1/vips"), "");
  }
  static void TearDownTestSuite() {
    delete nodes_;
    nodes_ = nullptr;
    for (auto*& m : members_) {
      delete m;
      m = nullptr;
    }
    delete bed_;
    bed_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ASSERT_NE(bed_, nullptr);
    for (int i = 1; i <= kLbNodes; ++i) ASSERT_GT(nodes_->pid(i), 0) << "fiberlb on h" << i;
  }

  static std::string Config() {
    std::string members;
    for (int i = 1; i <= kMembers; ++i) {
      members += "      - {address: '" + LbMemberIp(i) + ":" + std::to_string(kMemberPort) + "'}\n";
    }
    return "api: 127.0.0.1:" + std::to_string(kApiPort) +
           "\naccess_log: \"off\"\n"
           "bgp: {route_protocol: 200}\n"
           "listeners:\n"
           "  - {name: web, protocol: tcp, address: '" +
           std::string(kVip) + ":" + std::to_string(kListenPort) +
           "', pool: web, announce: true}\n"
           "pools:\n"
           "  - name: web\n"
           "    health_check: {type: tcp, interval_ms: 200, rise: 1, fall: 2}\n"
           "    members:\n" +
           members;
  }
  static void StartMember(int i) {
    delete members_[i];
    members_[i] = new LbHelloServer(bed_->NsPath("m" + std::to_string(i)), "m" + std::to_string(i),
                                    kMemberPort);
    ASSERT_TRUE(members_[i]->ok());
  }
  static void StartFiberlb(int i) { EXPECT_EQ(nodes_->Start(i, "", "/v1/vips"), ""); }
  static void StopFiberlb(int i, int sig) { nodes_->Stop(i, sig); }
  static std::pair<int, std::string> Rest(int i, const std::string& method, const std::string& path,
                                          const std::string& body = "") {
    return nodes_->Call(i, method, path, body);
  }
  static json Vips(int i) {
    auto [code, body] = Rest(i, "GET", "/v1/vips");
    return code == 200 ? json::parse(body, nullptr, false) : json();
  }
  static bool WaitPaths(const std::string& vip, int n) {
    auto t = PollUntil([&] { return LbRouterPaths(*bed_, vip) == n; }, 20s);
    printf("router: %d path(s) to %s after %.0f ms\n", n, vip.c_str(), t.count() / 1000.0);
    return t.count() >= 0;
  }
  // The VIPs on h<i>'s loopback with fiberlb's label.
  static std::string LoVips(int i) {
    return bed_->Run(bed_->Host(i), {"ip", "-4", "-o", "addr", "show", "label", kL7VipLabel});
  }

  static NetBed* bed_;
  static FiberlbNodes* nodes_;
  static LbHelloServer* members_[kMembers + 1];
};
NetBed* L7VipTest::bed_ = nullptr;
FiberlbNodes* L7VipTest::nodes_ = nullptr;
LbHelloServer* L7VipTest::members_[kMembers + 1] = {};

TEST_F(L7VipTest, AnnouncedByEveryNodeAndServedThroughHaproxy) {
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes)) << bed_->Run("r", {"ip", "route"}) << Vips(1).dump();
  auto who = Hellos(bed_->NsPath("c"), kVip, 30);
  EXPECT_EQ(who.count(""), 0u) << "failed connections through the VIP";
  for (int i = 1; i <= kMembers; ++i) EXPECT_GT(who.count("m" + std::to_string(i)), 0u);
  for (int i = 1; i <= kLbNodes; ++i) {
    json v = Vips(i);
    EXPECT_EQ(v["announced"], json::array({kVip})) << v.dump();
    EXPECT_EQ(v["held"], json::array({kVip})) << v.dump();
    EXPECT_NE(LoVips(i).find(std::string(kVip) + "/32"), std::string::npos) << LoVips(i);
  }
  auto [code, metrics] = Rest(1, "GET", "/metrics");
  EXPECT_NE(metrics.find("fiberlb_l7_vip_announced{listener=\"web\",vip=\"" + std::string(kVip) +
                         "\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(L7VipTest, NoServingMemberOrDrainingWithdrawsTheVip) {
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
  for (int i = 1; i <= kMembers; ++i) members_[i]->Stop();
  ASSERT_TRUE(WaitPaths(kVip, 0)) << Vips(1).dump();
  EXPECT_EQ(Vips(1)["announced"], json::array());
  EXPECT_NE(LoVips(1).find(kVip), std::string::npos) << "the VIP stays held while bound";
  for (int i = 1; i <= kMembers; ++i) StartMember(i);
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes)) << Vips(1).dump();

  auto [code, body] = Rest(2, "PUT", "/v1/vips", R"({"draining": true})");
  ASSERT_EQ(code, 200) << body;
  ASSERT_TRUE(WaitPaths(kVip, 1));
  EXPECT_EQ(Hellos(bed_->NsPath("c"), kVip, 20).count(""), 0u);
  EXPECT_EQ(Vips(2)["draining"], true);
  ASSERT_EQ(Rest(2, "PUT", "/v1/vips", R"({"draining": false})").first, 200);
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
}

TEST_F(L7VipTest, EachListenerItsOwnVipOnTheSamePortAndDeleteLeavesNothing) {
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
  const std::string second = json{
      {"protocol", "tcp"},
      {"address", std::string(kVip2) + ":" + std::to_string(kListenPort)},
      {"pool", "web"},
      {"announce", true}}.dump();
  for (int i = 1; i <= kLbNodes; ++i) {
    auto [code, body] = Rest(i, "PUT", "/v1/listeners/web2", second);
    ASSERT_EQ(code, 200) << body;
  }
  ASSERT_TRUE(WaitPaths(kVip2, kLbNodes)) << Vips(1).dump();
  EXPECT_EQ(Hellos(bed_->NsPath("c"), kVip2, 20).count(""), 0u);
  EXPECT_EQ(Hellos(bed_->NsPath("c"), kVip, 10).count(""), 0u);
  for (int i = 1; i <= kLbNodes; ++i) {
    auto [code, body] = Rest(i, "DELETE", "/v1/listeners/web2");
    ASSERT_EQ(code, 200) << body;
  }
  ASSERT_TRUE(WaitPaths(kVip2, 0));
  for (int i = 1; i <= kLbNodes; ++i) {
    EXPECT_EQ(LoVips(i).find(kVip2), std::string::npos) << LoVips(i);
    EXPECT_EQ(Vips(i)["held"], json::array({kVip})) << Vips(i).dump();
  }
  EXPECT_EQ(Hello(bed_->NsPath("c"), kVip2), "");
  EXPECT_EQ(LbRouterPaths(*bed_, kVip), kLbNodes);
}

TEST_F(L7VipTest, BadInputIsRefusedNamingTheField) {
  auto put = [](const json& listener) {
    return Rest(1, "PUT", "/v1/listeners/bad", listener.dump());
  };
  json wildcard = {
      {"protocol", "tcp"}, {"address", "0.0.0.0:9090"}, {"pool", "web"}, {"announce", true}};
  auto [code, body] = put(wildcard);
  EXPECT_EQ(code, 400);
  EXPECT_NE(body.find("listeners.bad.announce"), std::string::npos) << body;
  json not_bool = wildcard;
  not_bool["address"] = "10.200.8.3:9090";
  not_bool["announce"] = "yes";
  std::tie(code, body) = put(not_bool);
  EXPECT_EQ(code, 400);
  EXPECT_NE(body.find("listeners.bad.announce"), std::string::npos) << body;
  EXPECT_EQ(Rest(1, "PUT", "/v1/vips", R"({"draining": 1})").first, 400);
  EXPECT_EQ(Rest(1, "PUT", "/v1/vips", R"({"draining": true, "x": 1})").first, 400);
  EXPECT_EQ(LoVips(1).find("10.200.8.3"), std::string::npos) << "a refused listener holds nothing";
}

TEST_F(L7VipTest, KillNineRestartAdoptsCleanStopLeavesNothing) {
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
  StopFiberlb(2, SIGKILL);
  // HAProxy goes with fiberlb (PR_SET_PDEATHSIG); the address and route stay until its return.
  StartFiberlb(2);
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
  std::string lo = LoVips(2);
  EXPECT_EQ(lo.find(kVip), lo.rfind(kVip)) << "held once, not twice: " << lo;
  ASSERT_TRUE(
      PollUntil([] { return Hellos(bed_->NsPath("c"), kVip, 20).count("") == 0; }, 10s).count() >=
      0);
  StopFiberlb(2, SIGTERM);
  ASSERT_TRUE(WaitPaths(kVip, 1));
  EXPECT_EQ(LoVips(2).find(kVip), std::string::npos) << LoVips(2);
  EXPECT_EQ(bed_->Run(bed_->Host(2), {"ip", "route", "show", "proto", "200"}), "");
  EXPECT_EQ(Hellos(bed_->NsPath("c"), kVip, 20).count(""), 0u);
  StartFiberlb(2);
  ASSERT_TRUE(WaitPaths(kVip, kLbNodes));
}

}  // namespace
}  // namespace photon::fiberlb
