// A real control plane for end-to-end agent tests: the photon-server binary and several
// photon-agent processes on loopback ports with their own temp dirs, plus a REST client.
// Everything is killed and swept from the host on destruction, also after a failed test.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../free_port.h"
#include "cli/http_client.h"
#include "common/file_util.h"
#include "test_env.h"

extern char** environ;

namespace photon::agent::testing {

using ::photon::testing::FreePort;

// A child process whose output goes to a file.
class Daemon {
 public:
  Daemon(std::vector<std::string> argv, const std::string& log) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Daemon() { Kill(SIGKILL); }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = 0;
  }
  bool Running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
};

struct AgentProc {
  std::string name;
  std::string dir;
  std::vector<std::string> extra;
  std::unique_ptr<Daemon> daemon;
};

class Cluster {
 public:
  // server_extra: more photon-server flags.
  explicit Cluster(std::vector<std::string> server_extra = {}) {
    dir_ = MakeTempDir("e2e");
    port_ = FreePort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    std::vector<std::string> argv = {PHOTON_SERVER_BIN,
                                     "--data-dir",
                                     dir_ + "/server",
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--grpc-listen",
                                     "127.0.0.1:" + std::to_string(FreePort())};
    argv.insert(argv.end(), server_extra.begin(), server_extra.end());
    server_ = std::make_unique<Daemon>(argv, dir_ + "/server.log");
    WaitFor(
        [&] {
          auto c = cli::HttpClient::Create(base_, "");
          auto r = c->Do("GET", "/healthz");
          return r.ok() && r->status == 200;
        },
        std::chrono::seconds(10));
    auto tok = ReadFile(dir_ + "/server/admin.token");
    admin_token_ = tok.ok() ? *tok : "";
    while (!admin_token_.empty() && admin_token_.back() == '\n') admin_token_.pop_back();
  }
  ~Cluster() {
    for (auto& [name, a] : agents_) a.daemon.reset();
    server_.reset();
    for (auto& [name, a] : agents_) SweepHost(a.name, a.dir);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts (or restarts) an agent; returns once its node reports READY.
  bool StartAgent(const std::string& name, const std::string& labels,
                  std::vector<std::string> extra = {}) {
    auto& a = agents_[name];
    if (a.name.empty()) {
      a.name = name;
      a.dir = dir_ + "/agent-" + name;
      a.extra = std::move(extra);
    }
    std::vector<std::string> argv = {
        PHOTON_AGENT_BIN, "--server",
        agent_server_.empty() ? "127.0.0.1:" + std::to_string(port_) : agent_server_,
        "--token-file", dir_ + "/server/join.token", "--data-dir", a.dir, "--name", name,
        "--labels", labels, "--heartbeat-seconds", "1", "--resync-seconds", "1", "--vcpu", "4",
        "--memory-mb", "2048", "--disk-gb", "20",
        // Many agents on one host network: no port namespaces (tests/net covers those).
        "--network-mode", "shared"};
    // A flag in `extra` replaces the default above (the agent refuses a flag given twice).
    for (size_t i = 0; i < a.extra.size(); ++i) {
      if (a.extra[i].rfind("--", 0) != 0) continue;
      auto it = std::find(argv.begin() + 1, argv.end(), a.extra[i]);
      if (it != argv.end() && it + 1 != argv.end()) argv.erase(it, it + 2);
    }
    argv.insert(argv.end(), a.extra.begin(), a.extra.end());
    a.daemon = std::make_unique<Daemon>(argv, dir_ + "/agent-" + name + ".log");
    std::string started = std::to_string(a.daemon->pid());
    return WaitFor(
        [&] {
          auto healthz = NodeHealth(name);
          return healthz == 200;
        },
        std::chrono::seconds(15));
  }
  void KillAgent(const std::string& name, int sig) { agents_[name].daemon->Kill(sig); }
  const AgentProc& agent(const std::string& name) { return agents_[name]; }

  // The agent's /healthz status via the address its Node advertises (0 when unreachable).
  int NodeHealth(const std::string& name) {
    auto node = Get("/v1/namespaces/system/nodes/" + name);
    if (!node.is_object() || !node.contains("spec")) return 0;
    std::string addr = node["spec"].value("address", "");
    if (addr.empty()) return 0;
    auto c = cli::HttpClient::Create("http://" + addr, "");
    auto r = c->Do("GET", "/healthz");
    return r.ok() ? r->status : 0;
  }

  cli::HttpResult Call(const std::string& method, const std::string& path,
                       const nlohmann::json& body = nullptr) {
    auto c = cli::HttpClient::Create(base_, admin_token_);
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? *r : cli::HttpResult{0, r.status().ToString(), {}};
  }
  nlohmann::json Get(const std::string& path) {
    auto r = Call("GET", path);
    if (r.status != 200) return nullptr;
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  nlohmann::json Instance(const std::string& name) {
    return Get("/v1/namespaces/default/computeinstances/" + name);
  }
  std::string Phase(const std::string& name) {
    auto j = Instance(name);
    if (!j.is_object()) return "GONE";
    if (!j.contains("status") || !j["status"].contains("phase")) return "PENDING";
    return j["status"]["phase"].get<std::string>();
  }
  // Runs an action and waits for its operation; returns the final operation.
  nlohmann::json Action(const std::string& name, const std::string& action,
                        const nlohmann::json& params = nullptr) {
    nlohmann::json body =
        params.is_null() ? nlohmann::json(nullptr) : nlohmann::json{{"params", params}};
    auto r = Call("POST", "/v1/namespaces/default/computeinstances/" + name + "/actions/" + action,
                  body);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 202 || !j.contains("operation")) return j;
    std::string id = j["operation"]["metadata"]["id"];
    nlohmann::json op;
    WaitFor(
        [&] {
          op = Get("/v1/operations/" + id);
          if (!op.is_object() || !op.contains("status")) return false;
          std::string st = op["status"].value("state", "PENDING");
          return st == "DONE" || st == "FAILED";
        },
        std::chrono::seconds(20));
    return op;
  }

  // Agents started from now on reach the server at this address (a proxy) instead.
  void SetAgentServerAddress(const std::string& address) { agent_server_ = address; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const std::string& base() const { return base_; }  // http://127.0.0.1:PORT

 private:
  std::string dir_;
  int port_ = 0;
  std::string base_;
  std::string admin_token_;
  std::string agent_server_;
  std::unique_ptr<Daemon> server_;
  std::map<std::string, AgentProc> agents_;
};

}  // namespace photon::agent::testing
