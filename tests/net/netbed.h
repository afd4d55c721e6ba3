// The multi-host network test bed (tests/net/netbed.sh) from C++ tests: an RAII handle that
// brings up hosts and a router as namespaces and always tears them down, plus helpers to run
// commands and open sockets inside a namespace.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/net/exec.h"

namespace photon::net_testing {

inline std::string BedScript() { return std::string(PHOTON_SOURCE_DIR) + "/tests/net/netbed.sh"; }

class NetBed {
 public:
  // Prefix "nt<pid><n>": unique per process and bed.
  static std::unique_ptr<NetBed> Up(int hosts, std::string* error) {
    static std::atomic<int> counter{0};
    std::unique_ptr<NetBed> bed(new NetBed);
    bed->prefix_ = "nt" + std::to_string(::getpid()) + "x" + std::to_string(counter++);
    bed->hosts_ = hosts;
    agent::net::ExecOptions o;
    o.timeout = std::chrono::seconds(60);
    auto r = agent::net::Exec({BedScript(), "up", bed->prefix_, std::to_string(hosts)}, o);
    if (!r.ok() || r->exit_code != 0) {
      *error = r.ok() ? r->output : std::string(r.status().message());
      return nullptr;
    }
    return bed;
  }
  ~NetBed() {
    agent::net::ExecOptions o;
    o.timeout = std::chrono::seconds(60);
    (void)agent::net::Exec({BedScript(), "down", prefix_}, o);
  }

  const std::string& prefix() const { return prefix_; }
  std::string Ns(const std::string& node) const { return prefix_ + "-" + node; }
  std::string NsPath(const std::string& node) const { return "/run/netns/" + Ns(node); }
  std::string Host(int i) const { return "h" + std::to_string(i); }
  std::string BirdSocket(const std::string& node) const {
    return "/run/photon-netbed/" + prefix_ + "/" + node + ".ctl";
  }

  // Output of argv run inside node's namespace; "" with exit code in *rc.
  std::string Run(const std::string& node, const std::vector<std::string>& argv,
                  int* rc = nullptr) const {
    agent::net::ExecOptions o;
    o.netns = node.empty() ? "" : (node[0] == '/' ? node : NsPath(node));
    auto r = agent::net::Exec(argv, o);
    if (rc != nullptr) *rc = r.ok() ? r->exit_code : -1;
    return r.ok() ? r->output : std::string(r.status().message());
  }
  std::string Bird(const std::string& node, const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"birdc", "-s", BirdSocket(node)};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run("", argv);
  }
  // True when the router's kernel has a route for ip/32.
  bool RouterHas(const std::string& ip) const {
    return Run("r", {"ip", "route", "show", ip + "/32"}).find(ip) != std::string::npos;
  }
  bool KillHost(int i) const {
    int rc = 0;
    Run("", {BedScript(), "kill-host", prefix_, std::to_string(i)}, &rc);
    return rc == 0;
  }
  bool ReviveHost(int i) const {
    int rc = 0;
    Run("", {BedScript(), "revive-host", prefix_, std::to_string(i)}, &rc);
    return rc == 0;
  }

 private:
  NetBed() = default;
  std::string prefix_;
  int hosts_ = 0;
};

// A socket made inside a network namespace (setns is per thread: a short-lived thread enters
// the namespace, makes the socket, and the socket keeps that namespace).
inline int SocketIn(const std::string& netns_path, int type) {
  int fd = -1;
  std::thread t([&] {
    int ns = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) return;
    if (::setns(ns, CLONE_NEWNET) == 0) fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    ::close(ns);
  });
  t.join();
  return fd;
}

inline sockaddr_in Addr(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A TCP listener on ip:port inside a namespace (-1 on failure).
inline int ListenIn(const std::string& netns_path, const std::string& ip, int port) {
  int fd = SocketIn(netns_path, SOCK_STREAM);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = Addr(ip, port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A connected TCP socket from a namespace to ip:port within `timeout`, or -1.
inline int ConnectFrom(const std::string& netns_path, const std::string& ip, int port,
                       std::chrono::milliseconds timeout) {
  int fd = SocketIn(netns_path, SOCK_STREAM | SOCK_NONBLOCK);
  if (fd < 0) return -1;
  sockaddr_in a = Addr(ip, port);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      rc = 0;
    }
  }
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The peer address of the next connection on `listener` (within 3 s), or "".
inline std::string AcceptPeer(int listener) {
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

// Polls `pred` every 2 ms until true or the deadline; the elapsed time, or -1 ms on timeout.
inline std::chrono::microseconds PollUntil(const std::function<bool()>& pred,
                                           std::chrono::milliseconds timeout) {
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < timeout) {
    if (pred()) {
      return std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - start);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::chrono::microseconds(-1);
}

}  // namespace photon::net_testing
