// The fiberlb daemon's L4 listeners on the multi-host bed: a real fiberlb (with its HAProxy) in
// each of three LB nodes h1-h3, configured with an `l4` section and driven through its REST API;
// real BIRD2 announcing the VIP to an ECMP router, real nftables; DSR members m1-m3 on the
// underlay answering a client behind the router. Needs root (namespaces).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/net/lb_l4_fiberlb.h"

#ifndef FIBERLB_BIN
#error "FIBERLB_BIN: path of the fiberlb binary"
#endif

namespace photon::fiberlb {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using photon::net_testing::FiberlbNodes;
using photon::net_testing::LbMember;
using photon::net_testing::LbMemberIp;
using photon::net_testing::LbRouterPaths;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;

constexpr char kVip[] = "10.200.0.20";
constexpr int kPort = 8081;  // members answer "m<i>\n" and close
constexpr int kLbNodes = 3;
constexpr int kMembers = 3;

// Member i's server, answering "m<i>\n" on kPort (lb_l4_fiberlb.h).
class Server : public photon::net_testing::LbHelloServer {
 public:
  Server(const std::string& netns, int id)
      : LbHelloServer(netns, "m" + std::to_string(id), kPort) {}
};

// The member answering a new connection from the client through the VIP, "" on failure
// (within 3 s).
std::string Hello(const std::string& client_ns) {
  return photon::net_testing::LbHelloFrom(client_ns, kVip, kPort);
}

// Members answering n new connections (a failed one is "").
std::multiset<std::string> Hellos(const std::string& client_ns, int n) {
  std::multiset<std::string> who;
  for (int i = 0; i < n; ++i) who.insert(Hello(client_ns));
  return who;
}

class L4DaemonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = photon::net_testing::LbSceneUp(kLbNodes, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    for (int i = 1; i <= kMembers; ++i) {
      Status s = LbMember(*bed_, i, kVip);
      ASSERT_TRUE(s.ok()) << s;
      members_[i] = new Server(bed_->NsPath("m" + std::to_string(i)), i);
      ASSERT_TRUE(members_[i]->ok());
    }
    nodes_ =
        new FiberlbNodes(bed_, "/tmp/fiberlb-l4d-" + std::to_string(::getpid()), kLbNodes, 18090);
    for (int i = 1; i <= kLbNodes; ++i) {
      bed_->Run(bed_->Host(i), {"ip", "link", "set", "lo", "up"});
      EXPECT_EQ(nodes_->Start(i, Config(), "/v1/l4"), "");
    }
  }
  static void TearDownTestSuite() {
    delete nodes_;  // stops every fiberlb (SIGTERM) and removes their files
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

  static std::string DataDir(int i) { return nodes_->DataDir(i); }
  static std::string Config() {
    std::string members;
    for (int i = 1; i <= kMembers; ++i) {
      members += "          - {address: " + LbMemberIp(i) + "}\n";
    }
    return "api: 127.0.0.1:18090\n"
           "access_log: \"off\"\n"
           "l4:\n"
           "  device: ul0\n"
           "  listeners:\n"
           "    - name: hello\n"
           "      vip: " +
           std::string(kVip) + "\n      port: " + std::to_string(kPort) +
           "\n      protocol: tcp\n"
           "      health_check: {type: tcp, interval_ms: 200, timeout_ms: 200, rise: 2, fall: 2}\n"
           "      members:\n" +
           members + "bgp: {route_protocol: 200}\n";
  }
  static void StartFiberlb(int i) { EXPECT_EQ(nodes_->Start(i, "", "/v1/l4"), ""); }
  static void StopFiberlb(int i, int sig) { nodes_->Stop(i, sig); }
  static std::pair<int, std::string> Rest(int i, const std::string& method, const std::string& path,
                                          const std::string& body = "") {
    return nodes_->Call(i, method, path, body);
  }
  static json L4(int i) {
    auto [code, body] = Rest(i, "GET", "/v1/l4");
    return code == 200 ? json::parse(body, nullptr, false) : json();
  }
  // True when every running node sees member `address` with health `healthy`.
  static bool AllSee(const std::string& address, bool healthy) {
    for (int i = 1; i <= kLbNodes; ++i) {
      json s = L4(i);
      if (!s.is_object() || s["listeners"].empty()) return false;
      for (const auto& m : s["listeners"][0]["members"]) {
        if (m["address"] == address && m["healthy"] != healthy) return false;
      }
    }
    return true;
  }
  static bool WaitPaths(int n) {
    return PollUntil([&] { return LbRouterPaths(*bed_, kVip) == n; }, 20s).count() >= 0;
  }

  static NetBed* bed_;
  static FiberlbNodes* nodes_;
  static Server* members_[kMembers + 1];
};
NetBed* L4DaemonTest::bed_ = nullptr;
FiberlbNodes* L4DaemonTest::nodes_ = nullptr;
Server* L4DaemonTest::members_[kMembers + 1] = {};

TEST_F(L4DaemonTest, ConfiguredListenerIsAnnouncedByEveryNodeAndServed) {
  ASSERT_TRUE(WaitPaths(kLbNodes)) << bed_->Run("r", {"ip", "route"});
  auto who = Hellos(bed_->NsPath("c"), 30);
  EXPECT_EQ(who.count(""), 0u) << "failed connections through the VIP";
  for (int i = 1; i <= kMembers; ++i) EXPECT_GT(who.count("m" + std::to_string(i)), 0u);
  json s = L4(1);
  EXPECT_EQ(s["announced"], json::array({kVip})) << s.dump();
  EXPECT_GT(s["listeners"][0]["forwarded_packets"].get<uint64_t>() +
                L4(2)["listeners"][0]["forwarded_packets"].get<uint64_t>() +
                L4(3)["listeners"][0]["forwarded_packets"].get<uint64_t>(),
            0u);
  auto [code, metrics] = Rest(1, "GET", "/metrics");
  EXPECT_NE(metrics.find("fiberlb_l4_vip_announced{vip=\"" + std::string(kVip) + "\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(L4DaemonTest, DeadMemberLeavesEveryNodesTableAndComesBack) {
  ASSERT_TRUE(WaitPaths(kLbNodes));
  members_[2]->Stop();
  printf("member m2 stopped at %s", bed_->Run("", {"date", "+%T.%N"}).c_str());
  auto t = PollUntil([] { return AllSee(LbMemberIp(2), false); }, 10s);
  ASSERT_GE(t.count(), 0) << L4(1).dump();
  printf("member death -> out of every node's table: %.0f ms (checks every 200 ms, fall 2)\n",
         t.count() / 1000.0);
  auto who = Hellos(bed_->NsPath("c"), 30);
  EXPECT_EQ(who.count(""), 0u);
  EXPECT_EQ(who.count("m2"), 0u);
  delete members_[2];
  members_[2] = new Server(bed_->NsPath("m2"), 2);
  ASSERT_TRUE(PollUntil([] { return AllSee(LbMemberIp(2), true); }, 10s).count() >= 0);
  ASSERT_TRUE(
      PollUntil([&] { return Hellos(bed_->NsPath("c"), 30).count("m2") > 0; }, 10s).count() >= 0);
}

TEST_F(L4DaemonTest, NodeWithoutHealthyMembersOrDrainingWithdrawsTheVip) {
  ASSERT_TRUE(WaitPaths(kLbNodes));
  // h1 can no longer reach any member (its checks fail); h2 and h3 still can.
  for (int i = 1; i <= kMembers; ++i) {
    bed_->Run("h1", {"ip", "route", "add", "prohibit", LbMemberIp(i) + "/32"});
  }
  ASSERT_TRUE(WaitPaths(2)) << L4(1).dump();
  EXPECT_TRUE(L4(1)["announced"].empty());
  EXPECT_EQ(Hellos(bed_->NsPath("c"), 20).count(""), 0u);
  auto [code, body] = Rest(2, "PUT", "/v1/l4", R"({"draining": true})");
  ASSERT_EQ(code, 200) << body;
  ASSERT_TRUE(WaitPaths(1));
  EXPECT_EQ(Hellos(bed_->NsPath("c"), 20).count(""), 0u);
  ASSERT_EQ(Rest(2, "PUT", "/v1/l4", R"({"draining": false})").first, 200);
  for (int i = 1; i <= kMembers; ++i) {
    bed_->Run("h1", {"ip", "route", "del", "prohibit", LbMemberIp(i) + "/32"});
  }
  ASSERT_TRUE(WaitPaths(kLbNodes)) << L4(1).dump();
  EXPECT_EQ(Rest(2, "PUT", "/v1/l4", R"({"draining": 1})").first, 400);
}

TEST_F(L4DaemonTest, BadInputIsRefusedNamingTheField) {
  auto put = [](const std::string& name, const std::string& body) {
    return Rest(1, "PUT", "/v1/l4/listeners/" + name, body);
  };
  const std::string vip = "\"vip\": \"10.200.0.30\"";
  auto [c1, b1] =
      put("x", "{" + vip + ", \"port\": 80, \"members\": [{\"address\": \"1.2.3.4:80\"}]}");
  EXPECT_EQ(c1, 400);
  EXPECT_NE(b1.find("l4.listeners.x.members[0].address"), std::string::npos) << b1;
  auto [c2, b2] = put("x", "{" + vip + ", \"port\": 80, \"health_check\": {\"type\": \"http\"}}");
  EXPECT_EQ(c2, 400);
  EXPECT_NE(b2.find("l4.listeners.x.health_check.type"), std::string::npos) << b2;
  auto [c3, b3] =
      put("x", "{\"vip\": \"" + std::string(kVip) + "\", \"port\": " + std::to_string(kPort) + "}");
  EXPECT_EQ(c3, 400);  // the same VIP, port and protocol as "hello"
  EXPECT_NE(b3.find("l4.listeners.x.port"), std::string::npos) << b3;
  auto [c9, b9] =
      put("x", "{" + vip + ", \"port\": 80, \"protocol\": \"udp\", \"drain_timeout_ms\": 5}");
  EXPECT_EQ(c9, 400);  // no SYN tells a new UDP flow from an old one
  EXPECT_NE(b9.find("l4.listeners.x.drain_timeout_ms"), std::string::npos) << b9;
  auto [c4, b4] = put("x", "{" + vip + ", \"port\": 80, \"routes\": []}");
  EXPECT_EQ(c4, 400);
  EXPECT_NE(b4.find("l4.listeners.x.routes: unknown field"), std::string::npos) << b4;
  // An L7 listener on every address at port 9000 overlaps an L4 one there, both ways.
  ASSERT_EQ(Rest(1, "PUT", "/v1/pools/p", "{}").first, 200);
  auto [c5, b5] = Rest(1, "PUT", "/v1/listeners/l7",
                       R"({"protocol":"tcp","address":"0.0.0.0:9000","pool":"p"})");
  ASSERT_EQ(c5, 200) << b5;
  auto [c6, b6] = put("x", "{" + vip + ", \"port\": 9000}");
  EXPECT_EQ(c6, 400);
  EXPECT_NE(b6.find("l4.listeners.x.port: 10.200.0.30:9000 overlaps"), std::string::npos) << b6;
  ASSERT_EQ(Rest(1, "DELETE", "/v1/listeners/l7").first, 200);
  ASSERT_EQ(put("x", "{" + vip + ", \"port\": 9000}").first, 200);
  auto [c7, b7] = Rest(1, "PUT", "/v1/listeners/l7",
                       R"({"protocol":"tcp","address":"0.0.0.0:9000","pool":"p"})");
  EXPECT_EQ(c7, 400);
  EXPECT_NE(b7.find("listeners.l7.address: overlaps the L4 listener x"), std::string::npos) << b7;
  EXPECT_EQ(Rest(1, "DELETE", "/v1/l4/listeners/x").first, 200);
  EXPECT_EQ(Rest(1, "DELETE", "/v1/pools/p").first, 200);
  EXPECT_EQ(Rest(1, "GET", "/v1/l4/listeners/x").first, 404);
}

// A member's server that keeps its connections: answers "m<i>\n" to every line, until the
// client closes.
class EchoServer {
 public:
  EchoServer(const std::string& netns, int id, int port) : id_("m" + std::to_string(id) + "\n") {
    fd_ = photon::net_testing::ListenIn(netns, "0.0.0.0", port);
    if (fd_ >= 0) thread_ = std::thread([this] { Loop(); });
  }
  ~EchoServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (const auto& p : fds_) ::close(p.fd);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  void Loop() {
    fds_.push_back({fd_, POLLIN, 0});
    while (!stop_) {
      if (::poll(fds_.data(), fds_.size(), 20) <= 0) continue;
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (!(fds_[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (i == 0) {
          int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0) fds_.push_back({c, POLLIN, 0});
          continue;
        }
        char buf[256];
        ssize_t n = ::recv(fds_[i].fd, buf, sizeof buf, 0);
        if (n > 0) {
          (void)::send(fds_[i].fd, id_.data(), id_.size(), MSG_NOSIGNAL);
        } else {
          ::close(fds_[i].fd);
          fds_[i].fd = -1;
        }
      }
      fds_.erase(std::remove_if(fds_.begin(), fds_.end(), [](const pollfd& p) { return p.fd < 0; }),
                 fds_.end());
    }
  }
  std::string id_;
  int fd_ = -1;
  std::vector<pollfd> fds_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The member answering a line on an open connection ("" if it was reset or is silent for 5 s).
std::string Ask(int fd) {
  if (::send(fd, "x\n", 2, MSG_NOSIGNAL) != 2) return "";
  return photon::net_testing::LbReadLine(fd, 5s);
}

// Scale-down drain (issue 20): a member removed from an L4 listener keeps the flows it had for
// drain_timeout_ms (they were established before the change) while new flows go elsewhere;
// with 0, the same removal resets them (their slots moved to other members).
TEST_F(L4DaemonTest, RemovedMemberKeepsItsEstablishedFlowsForTheDrainTimeout) {
  constexpr int kEchoPort = 8082;
  std::vector<std::unique_ptr<EchoServer>> echo;
  for (int i = 1; i <= kMembers; ++i) {
    echo.push_back(
        std::make_unique<EchoServer>(bed_->NsPath("m" + std::to_string(i)), i, kEchoPort));
    ASSERT_TRUE(echo.back()->ok());
  }
  auto put = [&](int drain_ms, int members) {
    json ms = json::array();
    for (int i = 1; i <= members; ++i) ms.push_back({{"address", LbMemberIp(i)}});
    json body = {
        {"vip", kVip}, {"port", kEchoPort}, {"members", ms}, {"drain_timeout_ms", drain_ms}};
    for (int i = 1; i <= kLbNodes; ++i) {
      auto [code, out] = Rest(i, "PUT", "/v1/l4/listeners/echo", body.dump());
      ASSERT_EQ(code, 200) << out;
    }
  };
  // No drain in progress on any node (the drain table holds no member chain).
  auto settled = [&] {
    for (int i = 1; i <= kLbNodes; ++i) {
      // Chains only: a listing of the table (its maps) is longer than Run keeps.
      if (bed_->Run(bed_->Host(i), {"nft", "list", "chains", "netdev"}).find("chain o_") !=
          std::string::npos)
        return false;
    }
    return true;
  };
  const std::string client = bed_->NsPath("c");
  for (int drain_ms : {0, 12000}) {  // 12 s: the PUTs to three nodes take seconds under load
    SCOPED_TRACE("drain_timeout_ms " + std::to_string(drain_ms));
    ASSERT_NO_FATAL_FAILURE(put(drain_ms, kMembers));
    ASSERT_TRUE(PollUntil(settled, 30s).count() >= 0);
    std::vector<std::pair<int, std::string>> flows;  // fd, the member that answers it
    for (int k = 0; k < 30; ++k) {
      int fd = photon::net_testing::ConnectFrom(client, kVip, kEchoPort, 10s);
      ASSERT_GE(fd, 0);
      flows.push_back({fd, Ask(fd)});
      ASSERT_FALSE(flows.back().second.empty());
    }
    const auto m3 =
        std::count_if(flows.begin(), flows.end(), [](const auto& f) { return f.second == "m3"; });
    ASSERT_GT(m3, 0) << "no flow reached m3: its removal proves nothing";
    ASSERT_NO_FATAL_FAILURE(put(drain_ms, kMembers - 1));  // m3 leaves
    int kept = 0, lost = 0;
    for (const auto& [fd, member] : flows) {
      const std::string now = Ask(fd);
      if (now == member) {
        ++kept;
      } else {
        ++lost;
        if (drain_ms > 0) {
          ADD_FAILURE() << "a flow of " << member << " answered '" << now
                        << "'; h1: " << bed_->Run("h1", {"nft", "list", "chains", "netdev"});
        }
      }
    }
    std::printf("m3 removed with drain_timeout_ms %d: %d of 30 flows kept (%ld were m3's)\n",
                drain_ms, kept, static_cast<long>(m3));
    if (drain_ms == 0) {
      EXPECT_GT(lost, 0) << "without a drain, m3's flows should be reset";
    }
    // New flows never reach the leaving member.
    for (int k = 0; k < 20; ++k) {
      int fd = photon::net_testing::ConnectFrom(client, kVip, kEchoPort, 10s);
      ASSERT_GE(fd, 0);
      const std::string who = Ask(fd);
      EXPECT_TRUE(who == "m1" || who == "m2") << who;
      ::close(fd);
    }
    for (const auto& [fd, member] : flows) ::close(fd);
  }
  // The drain ends after its timeout: its member chains leave the drain table.
  EXPECT_TRUE(PollUntil(settled, 30s).count() >= 0)
      << bed_->Run("h1", {"nft", "list", "chains", "netdev"});
  for (int i = 1; i <= kLbNodes; ++i) {
    EXPECT_EQ(Rest(i, "DELETE", "/v1/l4/listeners/echo").first, 200);
  }
}

// Runs last (gtest keeps the order of definition): kill -9 and restart, then the clean stop.
TEST_F(L4DaemonTest, KillNineKeepsForwardingRestartReappliesStopLeavesNothing) {
  ASSERT_TRUE(WaitPaths(kLbNodes));
  // A change made through the API (m3 weight 0) must survive the restart, not the file's list.
  std::string members;
  for (int i = 1; i <= kMembers; ++i) {
    members += std::string(i > 1 ? "," : "") + "{\"address\":\"" + LbMemberIp(i) +
               "\",\"weight\":" + (i == 3 ? "0" : "1") + "}";
  }
  std::string body = "{\"vip\":\"" + std::string(kVip) + "\",\"port\":" + std::to_string(kPort) +
                     ",\"health_check\":{\"type\":\"tcp\",\"interval_ms\":200,\"timeout_ms\":200},"
                     "\"members\":[" +
                     members + "]}";
  for (int i = 1; i <= kLbNodes; ++i) {
    auto [code, out] = Rest(i, "PUT", "/v1/l4/listeners/hello", body);
    ASSERT_EQ(code, 200) << out;
  }
  StopFiberlb(3, SIGKILL);
  // The table and the route of the dead daemon keep serving.
  auto who = Hellos(bed_->NsPath("c"), 30);
  EXPECT_EQ(who.count(""), 0u);
  EXPECT_EQ(who.count("m3"), 0u);
  EXPECT_EQ(LbRouterPaths(*bed_, kVip), kLbNodes);
  StartFiberlb(3);
  json l = json::parse(Rest(3, "GET", "/v1/l4/listeners/hello").second, nullptr, false);
  ASSERT_TRUE(l.is_object());
  EXPECT_EQ(l["members"][2]["weight"], 0) << l.dump();
  ASSERT_TRUE(WaitPaths(kLbNodes));
  EXPECT_EQ(Hellos(bed_->NsPath("c"), 20).count(""), 0u);
  // A clean stop withdraws the VIP and deletes the table, and its HAProxy goes with it.
  for (int i = 1; i <= kLbNodes; ++i) StopFiberlb(i, SIGTERM);
  EXPECT_TRUE(WaitPaths(0));
  for (int i = 1; i <= kLbNodes; ++i) {
    int rc = 0;
    bed_->Run(bed_->Host(i), {"nft", "list", "table", "netdev", "fiberlb_l4"}, &rc);
    EXPECT_NE(rc, 0) << "table left on h" << i;
    bed_->Run(bed_->Host(i), {"nft", "list", "table", "netdev", "fiberlb_l4_stats"}, &rc);
    EXPECT_NE(rc, 0) << "counters' table left on h" << i;
    std::string routes = bed_->Run(bed_->Host(i), {"ip", "route", "show", "proto", "200"});
    EXPECT_EQ(routes.find(kVip), std::string::npos) << routes;
  }
  std::string ps = bed_->Run("", {"pgrep", "-af", "haproxy"});
  EXPECT_EQ(ps.find(DataDir(1)), std::string::npos) << ps;
}

}  // namespace
}  // namespace photon::fiberlb
