// A highly available control plane on this host for tests and benchmarks: a three-member etcd
// cluster (Debian etcd-server), several photon-server processes on it, and photon-hollow nodes.
// Every process dies with the one that started it (PR_SET_PDEATHSIG) and is killed, its
// directory removed, when its object goes. Ports are free loopback ports, directories unique.
//
// Thread-safety: not thread-safe; create, kill and destroy from one thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../free_port.h"
#include "common/file_util.h"
#include "common/http_client.h"
#include "store/etcd_store.h"

namespace photon::testing::ha {

inline constexpr char kEtcd[] = "/usr/bin/etcd";

using ::photon::testing::FreePort;

// A fresh directory under the temp dir (empty string on failure); the caller removes it.
inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("photon-" + tag + "-XXXXXX")).string();
  return mkdtemp(tmpl.data()) ? tmpl : "";
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

inline std::string ProcessInstance(const std::string& name) {
  return R"({"kind":"ComputeInstance","metadata":{"name":")" + name +
         R"("},"spec":{"process":{"command":["/bin/true"]},"resources":{"vcpu":1,"memoryMb":64}}})";
}

inline bool Poll(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                 std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

// One child process; argv[0] is the binary. Output goes to `log`.
class Proc {
 public:
  // env: more NAME=VALUE entries on top of this process's environment.
  Proc(std::vector<std::string> argv, std::string log, std::vector<std::string> env = {})
      : argv_(std::move(argv)), log_(log), env_(std::move(env)) {
    for (char** e = environ; *e != nullptr; ++e) env_.push_back(*e);
    Spawn();
  }
  ~Proc() { Kill(); }
  void Spawn() {
    std::vector<char*> args, envp;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env_) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ != 0) return;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  // kill -9 and reap.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0; }
  // True once the process has exited by itself (reaped; its exit code in *code).
  bool Exited(int* code) {
    if (pid_ <= 0) return false;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    pid_ = -1;
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return true;
  }

 private:
  std::vector<std::string> argv_;
  std::string log_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
};

// Three (or n) etcd members, one cluster. Timing: 100 ms heartbeats and a 700 ms election
// timeout, which puts etcd's minimum lease TTL at 1 s (3/2 election timeouts, rounded up).
class EtcdCluster {
 public:
  static std::unique_ptr<EtcdCluster> Start(const std::string& dir, int n = 3) {
    auto c = std::unique_ptr<EtcdCluster>(new EtcdCluster());
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::vector<int> client, peer;
    std::string initial;
    for (int i = 0; i < n; ++i) {
      client.push_back(FreePort());
      peer.push_back(FreePort());
      initial += (i ? "," : "") + std::string("m") + std::to_string(i) +
                 "=http://127.0.0.1:" + std::to_string(peer.back());
    }
    for (int i = 0; i < n; ++i) {
      const std::string name = "m" + std::to_string(i);
      const std::string curl = "http://127.0.0.1:" + std::to_string(client[i]);
      const std::string purl = "http://127.0.0.1:" + std::to_string(peer[i]);
      c->endpoints_.push_back("127.0.0.1:" + std::to_string(client[i]));
      c->members_.push_back(std::make_unique<Proc>(
          std::vector<std::string>{
              kEtcd, "--name=" + name, "--data-dir=" + dir + "/" + name,
              "--listen-client-urls=" + curl, "--advertise-client-urls=" + curl,
              "--listen-peer-urls=" + purl, "--initial-advertise-peer-urls=" + purl,
              "--initial-cluster=" + initial, "--initial-cluster-state=new",
              "--initial-cluster-token=photon-ha-" + std::to_string(getpid()),
              "--heartbeat-interval=100", "--election-timeout=700", "--log-level=warn"},
          dir + "/" + name + ".log"));
    }
    for (int i = 0; i < n; ++i) {
      if (!c->WaitMember(i)) return nullptr;
    }
    return c;
  }
  // "etcd://a,b,c"
  std::string spec() const {
    std::string s = "etcd://";
    for (size_t i = 0; i < endpoints_.size(); ++i) s += (i ? "," : "") + endpoints_[i];
    return s;
  }
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  void Kill(int i) { members_[i]->Kill(); }
  void Restart(int i) { members_[i]->Spawn(); }
  // The member answers a linearizable read (so the cluster has a quorum).
  bool WaitMember(int i, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    return Poll(
        [&] {
          auto s = store::EtcdStore::Open({endpoints_[i]});
          return s.ok() && (*s)->Range("/", {}).ok();
        },
        timeout, std::chrono::milliseconds(100));
  }

 private:
  std::vector<std::string> endpoints_;
  std::vector<std::unique_ptr<Proc>> members_;
};

// One photon-server process on the cluster.
struct ServerProc {
  std::string dir;
  std::string url;  // http://127.0.0.1:PORT
  std::unique_ptr<Proc> proc;
  std::vector<std::string> argv;

  std::vector<std::string> env;

  // join_token: an admin token of the control plane to --join (empty: the first server).
  ServerProc(const std::string& parent, int index, const std::string& store,
             const std::vector<std::string>& extra, const std::string& join_token = "") {
    dir = parent + "/server" + std::to_string(index);
    std::filesystem::create_directories(dir);
    const int port = FreePort();
    url = "http://127.0.0.1:" + std::to_string(port);
    argv = {PHOTON_SERVER_BIN,
            "--store",
            store,
            "--data-dir",
            dir + "/data",
            "--listen",
            "127.0.0.1:" + std::to_string(port),
            "--grpc-listen",
            "127.0.0.1:" + std::to_string(FreePort()),
            "--log-level",
            "info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!join_token.empty()) {
      argv.push_back("--join");
      env.push_back("PHOTON_TOKEN=" + join_token);
    }
    Start();
  }
  void Start() { proc = std::make_unique<Proc>(argv, dir + "/server.log", env); }
  // /healthz answers; its lines as a map ("role", "leader"). Empty when down.
  std::map<std::string, std::string> Health() const {
    std::map<std::string, std::string> out;
    auto c = HttpClient::Create(url, "");
    if (!c.ok()) return out;
    c->set_timeout(std::chrono::milliseconds(1000));
    auto r = c->Do("GET", "/healthz");
    if (!r.ok() || r->status != 200) return out;
    size_t from = 0;
    while (from < r->body.size()) {
      size_t nl = r->body.find('\n', from);
      if (nl == std::string::npos) nl = r->body.size();
      std::string line = r->body.substr(from, nl - from);
      auto colon = line.find(": ");
      if (colon != std::string::npos)
        out[line.substr(0, colon)] = line.substr(colon + 2);
      else
        out[line] = "";
      from = nl + 1;
    }
    return out;
  }
  bool IsLeader() const {
    auto h = Health();
    return h.count("role") && h["role"] == "leader";
  }
  std::string AdminToken() const { return Trim(*ReadFile(dir + "/data/admin.token")); }
};

// n photon-servers on one etcd cluster.
class ControlPlane {
 public:
  ControlPlane(const std::string& dir, const std::string& store, int n,
               std::vector<std::string> extra = {}) {
    // The first one makes the admin token; the others join with it (docs/ha.md).
    servers_.push_back(std::make_unique<ServerProc>(dir, 0, store, extra));
    if (n > 1) {
      Poll([&] { return !servers_[0]->Health().empty(); }, std::chrono::seconds(60));
      const std::string token = servers_[0]->AdminToken();
      for (int i = 1; i < n; ++i) {
        servers_.push_back(std::make_unique<ServerProc>(dir, i, store, extra, token));
      }
    }
  }
  bool WaitUp(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    for (auto& s : servers_) {
      if (!Poll([&] { return !s->Health().empty(); }, timeout, std::chrono::milliseconds(50)))
        return false;
    }
    return true;
  }
  // Index of the one server that says it leads, when exactly one of the running ones does.
  int Leader() const {
    int found = -1;
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (!servers_[i]->proc->running() || !servers_[i]->IsLeader()) continue;
      if (found >= 0) return -1;
      found = static_cast<int>(i);
    }
    return found;
  }
  int WaitLeader(std::chrono::milliseconds timeout) const {
    int leader = -1;
    Poll([&] { return (leader = Leader()) >= 0; }, timeout);
    return leader;
  }
  // "http://a,http://b,http://c": the list clients fail over on.
  std::string urls() const {
    std::string s;
    for (size_t i = 0; i < servers_.size(); ++i) s += (i ? "," : "") + servers_[i]->url;
    return s;
  }
  ServerProc& server(int i) { return *servers_[i]; }
  size_t size() const { return servers_.size(); }

 private:
  std::vector<std::unique_ptr<ServerProc>> servers_;
};

}  // namespace photon::testing::ha
