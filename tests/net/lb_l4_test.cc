// fiberlb's stateless L4 path on the multi-host bed: three LB nodes (h1-h3, real BIRD2, real
// nftables netdev) announce a VIP to the router, which spreads it with ECMP; members m1-m4 on
// the underlay hold the VIP on their loopback and answer a client (behind the router) directly.
// Needs root (namespaces).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <map>
#include <sstream>

#include "fiberlb/l4/l4_balancer.h"
#include "tests/net/lb_l4_bed.h"

namespace photon::fiberlb::l4 {
namespace {

using namespace std::chrono_literals;
using photon::net_testing::Addr;
using photon::net_testing::ConnectFrom;
using photon::net_testing::LbClient;
using photon::net_testing::LbEcmpRouter;
using photon::net_testing::LbMember;
using photon::net_testing::LbMemberIp;
using photon::net_testing::LbRoutedMember;
using photon::net_testing::LbRouterPaths;
using photon::net_testing::ListenIn;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;
using photon::net_testing::SocketIn;

constexpr char kVip[] = "10.200.0.10";
constexpr int kStreamPort = 8080;  // member reads to EOF, answers "m<i> <bytes>"
constexpr int kHelloPort = 8081;   // member answers "m<i>" at once
constexpr int kLbNodes = 3;
constexpr uint8_t kDscp = 10;  // marks kVip towards members behind a router (L3DSR)

// A member's servers: one thread polling both listeners and every accepted connection.
class MemberServer {
 public:
  MemberServer(const std::string& netns, int id) : id_("m" + std::to_string(id)) {
    stream_ = ListenIn(netns, kVip, kStreamPort);
    hello_ = ListenIn(netns, kVip, kHelloPort);
    thread_ = std::thread([this] { Loop(); });
  }
  ~MemberServer() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, c] : conns_) ::close(fd);
    if (stream_ >= 0) ::close(stream_);
    if (hello_ >= 0) ::close(hello_);
  }
  bool ok() const { return stream_ >= 0 && hello_ >= 0; }

 private:
  struct Conn {
    uint64_t bytes = 0;
  };
  void Accept(int lfd) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (lfd == hello_) {
      std::string line = id_ + "\n";
      (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    }
    conns_[fd] = Conn{};
  }
  void Read(int fd) {
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      conns_[fd].bytes += n;
      return;
    }
    if (n < 0 && errno == EAGAIN) return;
    if (n == 0) {
      std::string line = id_ + " " + std::to_string(conns_[fd].bytes) + "\n";
      (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    }
    ::close(fd);
    conns_.erase(fd);
  }
  void Loop() {
    while (!stop_) {
      std::vector<pollfd> fds{{stream_, POLLIN, 0}, {hello_, POLLIN, 0}};
      for (auto& [fd, c] : conns_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        if (i < 2) {
          Accept(fds[i].fd);
        } else {
          Read(fds[i].fd);
        }
      }
    }
  }
  std::string id_;
  int stream_ = -1, hello_ = -1;
  std::map<int, Conn> conns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class L4Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = NetBed::Up(kLbNodes, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    Status s = LbEcmpRouter(*bed_);
    ASSERT_TRUE(s.ok()) << s;
    s = LbClient(*bed_);
    ASSERT_TRUE(s.ok()) << s;
    s = LbRoutedMember(*bed_, 5, kVip, kDscp);
    ASSERT_TRUE(s.ok()) << s;
    servers_[5] = new MemberServer(bed_->NsPath("m5"), 5);
    ASSERT_TRUE(servers_[5]->ok());
    for (int i = 1; i <= 4; ++i) {
      s = LbMember(*bed_, i, kVip);
      ASSERT_TRUE(s.ok()) << s;
      servers_[i] = new MemberServer(bed_->NsPath("m" + std::to_string(i)), i);
      ASSERT_TRUE(servers_[i]->ok());
    }
    for (int i = 1; i <= kLbNodes; ++i) {
      L4BalancerOptions o;
      o.netns = bed_->NsPath(bed_->Host(i));
      o.device = "ul0";
      auto lb = L4Balancer::Open(o);
      ASSERT_TRUE(lb.ok()) << lb.status();
      lb_[i] = lb->release();
    }
  }
  static void TearDownTestSuite() {
    for (auto*& s : servers_) {
      delete s;
      s = nullptr;
    }
    for (auto*& lb : lb_) {
      delete lb;
      lb = nullptr;
    }
    delete bed_;  // removes every namespace of the bed, members and client included
    bed_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ASSERT_NE(bed_, nullptr);
    ASSERT_NE(lb_[kLbNodes], nullptr);
  }

  static std::vector<L4Member> Members(int n) {
    std::vector<L4Member> m;
    for (int i = 1; i <= n; ++i) m.push_back({LbMemberIp(i), "", 1, true});
    return m;
  }
  // Both listeners with `members` on every LB node still running.
  static void ApplyAll(const std::vector<L4Member>& members, int from_node = 1) {
    for (int i = from_node; i <= kLbNodes; ++i) {
      for (int port : {kStreamPort, kHelloPort}) {
        Status s = lb_[i]->Apply({kVip, static_cast<uint16_t>(port), L4Protocol::kTcp, members});
        ASSERT_TRUE(s.ok()) << "h" << i << ": " << s;
      }
    }
  }
  static bool WaitPaths(int n) {
    return PollUntil([&] { return LbRouterPaths(*bed_, kVip) == n; }, 15s).count() >= 0;
  }

  static NetBed* bed_;
  static L4Balancer* lb_[kLbNodes + 1];
  static MemberServer* servers_[6];
};
NetBed* L4Test::bed_ = nullptr;
L4Balancer* L4Test::lb_[kLbNodes + 1] = {};
MemberServer* L4Test::servers_[6] = {};

// The member that answers a new connection from source port `sport` ("" on failure, within
// 3 s: a SYN answered by the wrong host is retried by the kernel for minutes).
std::string Hello(const std::string& client_ns, int sport) {
  int fd = SocketIn(client_ns, SOCK_STREAM | SOCK_NONBLOCK);
  if (fd < 0) return "";
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in src = Addr("172.16.0.2", sport), dst = Addr(kVip, kHelloPort);
  std::string id;
  auto deadline = std::chrono::steady_clock::now() + 3s;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0 &&
      (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 || errno == EINPROGRESS)) {
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      char c;
      ssize_t n = ::recv(fd, &c, 1, 0);
      if (n != 1) break;
      if (c == '\n') break;
      id += c;
    }
  }
  // Abort (RST) rather than close: no TIME_WAIT, so the same 4-tuple can be probed again.
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
  return id;
}

// Which member answers flows from source ports first_port.. (a few failures end the probe:
// the rest count as failed too).
std::map<int, std::string> Probe(const std::string& client_ns, int first_port, int n) {
  std::map<int, std::string> who;
  int failures = 0;
  for (int p = first_port; p < first_port + n; ++p) {
    who[p] = failures < 3 ? Hello(client_ns, p) : "";
    failures += who[p].empty();
  }
  return who;
}

// Streams on `fds`: `chunk` bytes to each every 10 ms for `duration`, calling `at_mid` once
// half-way; then half-closes and reads each member's "m<i> <bytes>" answer. Returns per
// connection "" when complete and right, or what went wrong.
std::vector<std::string> Stream(const std::vector<int>& fds, std::chrono::milliseconds duration,
                                const std::function<void()>& at_mid) {
  std::vector<uint64_t> sent(fds.size(), 0);
  std::vector<std::string> error(fds.size());
  std::string chunk(1024, 'x');
  auto start = std::chrono::steady_clock::now();
  bool mid_done = false;
  while (std::chrono::steady_clock::now() - start < duration) {
    if (!mid_done && std::chrono::steady_clock::now() - start > duration / 3) {
      at_mid();
      mid_done = true;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!error[i].empty()) continue;
      ssize_t n = ::send(fds[i], chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent[i] += n;
      if (n < 0 && errno != EAGAIN) error[i] = std::string("send: ") + strerror(errno);
    }
    std::this_thread::sleep_for(10ms);  // the pace of the stream, not a synchronisation
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (error[i].empty()) ::shutdown(fds[i], SHUT_WR);
  }
  auto deadline = std::chrono::steady_clock::now() + 30s;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!error[i].empty()) continue;
    std::string reply;
    char buf[128];
    while (reply.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[i], POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      ssize_t n = ::recv(fds[i], buf, sizeof buf, 0);
      if (n <= 0) {
        error[i] = n == 0 ? "EOF before the answer" : std::string("recv: ") + strerror(errno);
        break;
      }
      reply.append(buf, n);
    }
    if (!error[i].empty()) continue;
    std::string want = " " + std::to_string(sent[i]) + "\n";
    if (reply.size() < want.size() || reply.substr(reply.size() - want.size()) != want) {
      error[i] = "answer '" + reply + "' but sent " + std::to_string(sent[i]);
    }
  }
  return error;
}

std::vector<int> Connect(const std::string& client_ns, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ConnectFrom(client_ns, kVip, kStreamPort, 5000ms);
    if (fd < 0) break;
    fds.push_back(fd);
  }
  return fds;
}

TEST_F(L4Test, RefusesWhatItCannotHonour) {
  L4Listener l{kVip, kStreamPort, L4Protocol::kTcp, {{"172.16.0.2", "", 1, true}}};
  // Behind a router, and the listener has no DSCP for L3DSR.
  EXPECT_EQ(lb_[1]->Apply(l).code(), absl::StatusCode::kFailedPrecondition);
  l.members = {{"192.168.10.99", "", 1, true}};  // nobody there
  EXPECT_EQ(lb_[1]->Apply(l).code(), absl::StatusCode::kUnavailable);
  l.vip = "10.200.0.300";
  EXPECT_EQ(lb_[1]->Apply(l).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(lb_[1]->AnnouncedVips().empty());
}

TEST_F(L4Test, WithdrawnWhenDrainingOrNoMemberHealthy) {
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
  ASSERT_TRUE(WaitPaths(kLbNodes)) << bed_->Run("r", {"ip", "route"});
  ASSERT_TRUE(lb_[2]->SetDraining(true).ok());
  EXPECT_TRUE(WaitPaths(kLbNodes - 1));
  EXPECT_EQ(bed_->Run("r", {"ip", "route", "show", kVip}).find("192.168.10.12"), std::string::npos);
  ASSERT_TRUE(lb_[2]->SetDraining(false).ok());
  EXPECT_TRUE(WaitPaths(kLbNodes));
  auto sick = Members(3);
  for (auto& m : sick) m.healthy = false;
  for (int port : {kStreamPort, kHelloPort}) {
    ASSERT_TRUE(lb_[3]->Apply({kVip, static_cast<uint16_t>(port), L4Protocol::kTcp, sick}).ok());
  }
  EXPECT_TRUE(WaitPaths(kLbNodes - 1));
  EXPECT_TRUE(lb_[3]->AnnouncedVips().empty());
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
  EXPECT_TRUE(WaitPaths(kLbNodes));
}

// Adding a member moves only the flows of the slots it takes (about 1/(N+1)), and all of them
// to the new member; removing it again restores exactly the old mapping.
TEST_F(L4Test, AddingAMemberMovesAboutOneNthOfNewFlows) {
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
  ASSERT_TRUE(WaitPaths(kLbNodes));
  std::string c = bed_->NsPath("c");
  constexpr int kFlows = 300;
  auto before = Probe(c, 41000, kFlows);
  std::map<std::string, int> spread;
  for (const auto& [p, who] : before) ++spread[who];
  ASSERT_EQ(spread.count(""), 0u) << spread[""] << " probes failed";
  EXPECT_EQ(spread.size(), 3u);  // every member takes new flows
  // Long-lived flows open across the change.
  auto fds = Connect(c, 60);
  ASSERT_EQ(fds.size(), 60u);
  auto errors = Stream(fds, 3000ms, [&] { ApplyAll(Members(4)); });
  int broken = 0;
  for (const auto& e : errors) broken += !e.empty();
  for (int fd : fds) ::close(fd);
  // The mapping is compared once every probe is answered: a node may still be resolving the
  // new member's address for a moment after the change (seen once in CI: a few of the moved
  // flows found no answer within the probe's 3 s). Convergence is not what this test measures.
  std::map<int, std::string> after;
  const bool answered = PollUntil(
                            [&] {
                              after = Probe(c, 41000, kFlows);
                              for (const auto& [p, who] : after) {
                                if (who.empty()) return false;
                              }
                              return true;
                            },
                            30s)
                            .count() >= 0;
  ASSERT_TRUE(answered) << "new flows still found no member 30 s after the change";
  int moved = 0;
  for (const auto& [p, who] : after) {
    if (who == before[p]) continue;
    ++moved;
    EXPECT_EQ(who, "m4") << "port " << p << " moved from " << before[p];
  }
  double frac = static_cast<double>(moved) / kFlows;
  std::printf(
      "add a 4th member: %d of %d new flows moved (%.1f%%, ideal 25%%); %d of 60 "
      "established flows reset (their slot moved to m4)\n",
      moved, kFlows, 100 * frac, broken);
  EXPECT_LE(frac, 1.0 / 3);
  EXPECT_GE(frac, 0.12);
  // Existing flows are kept by the table's stability alone: those whose slot moved are reset
  // by the new member (no state on the LB nodes, none shared between members).
  EXPECT_LE(broken, 60 * 2 / 5);  // 1/4 expected; 60 flows leave a binomial spread
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
  EXPECT_EQ(Probe(c, 41000, kFlows), before);
}

// A member behind the router (172.17.5.2) takes its share of flows through L3DSR next to an
// on-link one.
TEST_F(L4Test, L3DsrReachesAMemberBehindTheRouter) {
  std::vector<L4Member> mixed{{LbMemberIp(1), "", 1, true}, {"172.17.5.2", "", 1, true}};
  for (int i = 1; i <= kLbNodes; ++i) {
    L4Listener l{kVip, kHelloPort, L4Protocol::kTcp, mixed, kDscp};
    Status s = lb_[i]->Apply(l);
    ASSERT_TRUE(s.ok()) << s;
  }
  ASSERT_TRUE(WaitPaths(kLbNodes));
  auto who = Probe(bed_->NsPath("c"), 42000, 60);
  std::map<std::string, int> spread;
  for (const auto& [p, id] : who) ++spread[id];
  EXPECT_EQ(spread.count(""), 0u) << spread[""] << " of 60 flows got no answer";
  EXPECT_GT(spread["m5"], 10) << "L3DSR member";
  EXPECT_GT(spread["m1"], 10) << "L2 member";
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
}

// Last: it kills h1's data path and BIRD for good.
TEST_F(L4Test, LbNodeDeathResetsNoConnection) {
  ASSERT_NO_FATAL_FAILURE(ApplyAll(Members(3)));
  ASSERT_TRUE(WaitPaths(kLbNodes)) << bed_->Run("r", {"ip", "route"});
  std::string c = bed_->NsPath("c");
  auto fds = Connect(c, 100);
  ASSERT_EQ(fds.size(), 100u);
  uint64_t h1_before = 0;
  std::chrono::microseconds withdrawn{-1};
  auto errors = Stream(fds, 9000ms, [&] {
    auto p = lb_[1]->ForwardedPackets(kVip, kStreamPort, L4Protocol::kTcp);
    h1_before = p.ok() ? *p : 0;
    // kill -9 of h1's data path: its table goes, its BIRD dies, the router withdraws h1.
    bed_->Run("h1", {"nft", "delete", "table", "netdev", "fiberlb_l4"});
    std::ifstream pid("/run/photon-netbed/" + bed_->prefix() + "/h1.pid");
    std::string p1;
    pid >> p1;
    bed_->Run("", {"kill", "-9", p1});
    withdrawn = PollUntil([] { return LbRouterPaths(*bed_, kVip) == kLbNodes - 1; }, 10s);
  });
  for (int fd : fds) ::close(fd);
  EXPECT_GT(h1_before, 0u) << "h1 carried none of the flows: the kill proved nothing";
  EXPECT_GE(withdrawn.count(), 0) << "h1's route was not withdrawn";
  int failed = 0;
  for (size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i].empty()) {
      ++failed;
      ADD_FAILURE() << "connection " << i << ": " << errors[i];
    }
  }
  std::printf(
      "LB node h1 killed (%llu packets through it before): withdrawn at the router in "
      "%.0f ms; %d of 100 streams failed\n",
      static_cast<unsigned long long>(h1_before), withdrawn.count() / 1000.0, failed);
  EXPECT_EQ(failed, 0);
}

}  // namespace
}  // namespace photon::fiberlb::l4
