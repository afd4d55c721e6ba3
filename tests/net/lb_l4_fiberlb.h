// Real fiberlb daemons on the L4 scene of the bed (lb_l4_bed.h), shared by the daemon test
// (lb_l4_daemon_test.cc) and bench/lb's member-death benchmark: a member's "hello" server, a
// fiberlb started inside an LB node's namespace, and its REST API called from inside it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/net/lb_l4_bed.h"

#ifndef FIBERLB_BIN
#error "FIBERLB_BIN: path of the fiberlb binary"
#endif

namespace photon::net_testing {

// A member's server on 0.0.0.0:port in its namespace (the VIP is on its loopback: DSR, and the
// LB nodes' health checks reach it at its own address): answers "<id>\n" and closes.
class LbHelloServer {
 public:
  LbHelloServer(const std::string& netns, std::string id, int port) : id_(std::move(id)) {
    fd_ = ListenIn(netns, "0.0.0.0", port);
    if (fd_ >= 0) thread_ = std::thread([this] { Loop(); });
  }
  ~LbHelloServer() { Stop(); }
  // Closes the listening socket: new connections to the member are refused from then on.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return fd_ >= 0; }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string line = id_ + "\n";
      (void)::send(c, line.data(), line.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  std::string id_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// fiberlb inside `node`'s namespace (`ip netns exec` execs it: the pid is fiberlb's), output
// appended to `log`. 0 if it could not be started.
inline pid_t StartFiberlbIn(const NetBed& bed, const std::string& node, const std::string& binary,
                            const std::string& config, const std::string& data_dir,
                            const std::string& log) {
  const std::string ns = bed.Ns(node);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execlp("ip", "ip", "netns", "exec", ns.c_str(), binary.c_str(), "--config", config.c_str(),
             "--data-dir", data_dir.c_str(), nullptr);
    ::_exit(127);
  }
  return pid < 0 ? 0 : pid;
}

// Signals a fiberlb and reaps it (within 20 s).
inline void StopFiberlbPid(pid_t pid, int sig) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  int status = 0;
  PollUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(20));
}

// {HTTP status, body} of a call to the fiberlb API at 127.0.0.1:`port` inside `netns_path`, with
// the token in DATA_DIR/api.token ({0, why} when it does not answer within `timeout`). A socket
// from this process, not a curl run: the benchmark polls it every few milliseconds.
inline std::pair<int, std::string> FiberlbCall(
    const std::string& netns_path, const std::string& data_dir, int port, const std::string& method,
    const std::string& path, const std::string& body = "",
    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  std::ifstream t(data_dir + "/api.token");
  std::string token;
  std::getline(t, token);
  int fd = ConnectFrom(netns_path, "127.0.0.1", port, timeout);
  if (fd < 0) return {0, "connect failed"};
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                    token + "\r\nConnection: close\r\nContent-Type: application/json\r\n" +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[8192];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t sp = out.find(' '), end = out.find("\r\n\r\n");
  if (sp == std::string::npos || end == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + sp + 1), out.substr(end + 4)};
}

// fiberlb daemons on hosts h1..hN of a bed, each with its data directory DIR-h<i> (config
// DIR-h<i>.yaml, log DIR-h<i>.log) and its API on 127.0.0.1:`api_port` inside its namespace.
// The suites' shared set-up: start, call, stop, and remove every file at the end.
class FiberlbNodes {
 public:
  FiberlbNodes(const NetBed* bed, std::string dir, int n, int api_port)
      : bed_(bed), dir_(std::move(dir)), pids_(n + 1, 0), api_port_(api_port) {}
  ~FiberlbNodes() {
    for (size_t i = 1; i < pids_.size(); ++i) {
      Stop(static_cast<int>(i), SIGTERM);  // withdraws its VIPs, deletes its tables
      std::error_code ec;
      std::filesystem::remove_all(DataDir(static_cast<int>(i)), ec);
      std::filesystem::remove(DataDir(static_cast<int>(i)) + ".yaml", ec);
      std::filesystem::remove(DataDir(static_cast<int>(i)) + ".log", ec);
    }
  }
  std::string DataDir(int i) const { return dir_ + "-h" + std::to_string(i); }
  pid_t pid(int i) const { return pids_[i]; }
  // Writes h<i>'s configuration (`config`, when not empty) and starts fiberlb there: "" once
  // GET `ready_path` answers 200 (20 s), else why not, with its log.
  std::string Start(int i, const std::string& config, const std::string& ready_path) {
    const std::string dir = DataDir(i);
    std::filesystem::create_directories(dir);
    if (!config.empty()) std::ofstream(dir + ".yaml") << config;
    pids_[i] = StartFiberlbIn(*bed_, bed_->Host(i), FIBERLB_BIN, dir + ".yaml", dir, dir + ".log");
    auto up = PollUntil([&] { return Call(i, "GET", ready_path).first == 200; },
                        std::chrono::seconds(20));
    if (pids_[i] > 0 && up.count() >= 0) return "";
    std::ifstream in(dir + ".log");
    std::stringstream text;
    text << in.rdbuf();
    return "fiberlb on h" + std::to_string(i) + " did not answer: " + text.str();
  }
  void Stop(int i, int sig) {
    StopFiberlbPid(pids_[i], sig);
    pids_[i] = 0;
  }
  std::pair<int, std::string> Call(int i, const std::string& method, const std::string& path,
                                   const std::string& body = "") const {
    return FiberlbCall(bed_->NsPath(bed_->Host(i)), DataDir(i), api_port_, method, path, body);
  }

 private:
  const NetBed* bed_;
  const std::string dir_;
  std::vector<pid_t> pids_;
  const int api_port_;
};

}  // namespace photon::net_testing
