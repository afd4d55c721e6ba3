// An agent whose watch connections die silently — a NAT or firewall that drops them without a
// FIN or RST — while its heartbeats, on new connections, keep its node READY. The watch read
// deadline (three of the server's bookmark intervals) must notice; the agent then relists and
// watches again, and work created meanwhile still runs. A real photon-server and photon-agent,
// with a TCP proxy between them that can freeze the connections it carries.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "cluster.h"
#include "test_env.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Forwards loopback TCP connections to `upstream_port`. FreezeOpenWatches makes every watch
// connection (a request with watch=true) open at that moment stop forwarding in both
// directions while staying open (no FIN, no RST: the peers see silence), as a NAT that timed
// out a long-lived flow would; other and later connections pass.
class SilentProxy {
 public:
  explicit SilentProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Loopback(0);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 64), 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~SilentProxy() {
    stop_ = true;
    acceptor_.join();
    std::lock_guard lock(mu_);
    for (auto& t : pumps_) t.join();
    for (auto& c : conns_) {
      close(c->client);
      close(c->upstream);
    }
    close(listen_fd_);
  }
  int port() const { return port_; }
  // Returns how many connections were frozen.
  size_t FreezeOpenWatches() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (auto& c : conns_) {
      if (!c->closed && c->watch) {
        c->frozen = true;
        ++n;
      }
    }
    return n;
  }

 private:
  struct Conn {
    int client = -1;
    int upstream = -1;
    std::atomic<bool> frozen{false};
    std::atomic<bool> closed{false};
    std::atomic<bool> watch{false};
  };
  static sockaddr_in Loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
  }
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      int up = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr = Loopback(upstream_port_);
      if (connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(client);
        close(up);
        continue;
      }
      auto c = std::make_shared<Conn>();
      c->client = client;
      c->upstream = up;
      std::lock_guard lock(mu_);
      conns_.push_back(c);
      pumps_.emplace_back([this, c] { Pump(*c); });
    }
  }
  // Copies bytes both ways until either side closes; a frozen connection is left alone.
  void Pump(Conn& c) {
    char buf[16384];
    while (!stop_ && !c.closed) {
      if (c.frozen) {
        std::this_thread::sleep_for(50ms);  // not a synchronisation: the pump idles
        continue;
      }
      pollfd p[2] = {{c.client, POLLIN, 0}, {c.upstream, POLLIN, 0}};
      if (poll(p, 2, 100) <= 0) continue;
      for (int i = 0; i < 2 && !c.frozen; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        int from = i == 0 ? c.client : c.upstream;
        int to = i == 0 ? c.upstream : c.client;
        ssize_t n = read(from, buf, sizeof buf);
        if (n > 0 && i == 0 && std::string_view(buf, n).find("watch=true") != std::string::npos) {
          c.watch = true;
        }
        if (n <= 0) {
          shutdown(to, SHUT_WR);
          c.closed = true;
          break;
        }
        for (ssize_t off = 0; off < n;) {
          ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) {
            c.closed = true;
            break;
          }
          off += w;
        }
      }
    }
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<std::thread> pumps_;
};

TEST(AgentWatchDeadline, SilentlyDroppedWatchIsNoticedAndWorkStillRuns) {
  if (geteuid() != 0) GTEST_SKIP() << "the agent needs root for cgroups";
  // Bookmarks every 300 ms: the agent's read deadline is 900 ms.
  Cluster cluster({"--watch-bookmark-interval", "300"});
  SilentProxy proxy(cluster.port());
  cluster.SetAgentServerAddress("127.0.0.1:" + std::to_string(proxy.port()));
  const std::string suffix = std::to_string(getpid() % 100000);
  const std::string node = "wd" + suffix;
  const std::string config = cluster.dir() + "/wd.yaml";
  ASSERT_TRUE(WriteFileAtomic(config,
                              "drivers:\n  container: {enabled: \"false\"}\n"
                              "  vm: {enabled: \"false\"}\n")
                  .ok());
  ASSERT_TRUE(cluster.StartAgent(node, "zone=z1", {"--config", config}));
  auto create = [&](const std::string& name) {
    json inst = {{"metadata", {{"name", name}}},
                 {"spec",
                  {{"process", {{"command", {"/bin/sleep", "600"}}}},
                   {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
                   {"schedule", {{"nodes", {node}}}}}}};
    return cluster.Call("POST", "/v1/namespaces/default/computeinstances", inst).status;
  };
  auto running = [&](const std::string& name) {
    return WaitFor([&] { return cluster.Phase(name) == "RUNNING"; }, 20s);
  };
  const std::string before = "before-" + suffix, during = "during-" + suffix;
  ASSERT_EQ(create(before), 202);
  ASSERT_TRUE(running(before)) << Slurp(cluster.dir() + "/agent-" + node + ".log");

  // The agent's two watches (instances, operations) go silent; nothing closes them.
  ASSERT_GE(proxy.FreezeOpenWatches(), 2u);
  ASSERT_EQ(create(during), 202);
  EXPECT_TRUE(running(during)) << Slurp(cluster.dir() + "/agent-" + node + ".log");
  const std::string log = Slurp(cluster.dir() + "/agent-" + node + ".log");
  EXPECT_NE(log.find("nothing arrived within 900 ms"), std::string::npos) << log;
  // Its heartbeats never stopped: the node stayed READY throughout.
  auto n = cluster.Get("/v1/namespaces/system/nodes/" + node);
  EXPECT_EQ(n["nodeStatus"].value("condition", ""), "READY") << n.dump();

  for (const auto& name : {before, during}) {
    EXPECT_EQ(cluster.Call("DELETE", "/v1/namespaces/default/computeinstances/" + name).status,
              202);
  }
  EXPECT_TRUE(WaitFor(
      [&] { return cluster.Phase(before) == "GONE" && cluster.Phase(during) == "GONE"; }, 20s))
      << cluster.Phase(before) << " " << cluster.Phase(during) << "\n"
      << Slurp(cluster.dir() + "/agent-" + node + ".log");
}

}  // namespace
}  // namespace photon::agent::testing
