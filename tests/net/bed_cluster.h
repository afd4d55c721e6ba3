// The set-up the bed suites with a control plane share (net_agent_tests, net_fip_tests,
// net_vm_tests): a NetBed, a real photon-server in the router's namespace (192.168.10.1, which
// every host reaches; TLS with the CA it generates), one real photon-agent per host namespace
// (entered with nsenter --net) whose BIRD config it renders for the bed's BIRD, and the REST
// helpers the tests call. A suite derives BedClusterTest<Suite> and gives its BedOptions:
//
//   class FooTest : public BedClusterTest<FooTest> {
//    public:
//     static BedOptions Options() { BedOptions o; o.hosts = 2; o.tag = "f"; return o; }
//   };
//
// The suite's thread lives in the router's namespace between SetUpTestSuite and
// TearDownTestSuite. Everything (agents, server, ports, bed, files) goes at TearDownTestSuite,
// also after a failed set-up; each test's instances (created_) are deleted at its TearDown.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <regex>

#include "common/util.h"
#include "tests/agent/cluster.h"
#include "tests/net/netbed.h"

namespace photon::agent::testing {

using namespace std::chrono_literals;

inline constexpr char kRouterIp[] = "192.168.10.1";

// A TCP server workload: answers every connection on port 7000 with
// "hello from NAME to PEER".
inline constexpr char kGreetingServer[] =
    "import socket,os\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind(('0.0.0.0',7000)); s.listen(16)\n"
    "while True:\n"
    "  c,a=s.accept(); c.sendall(('hello from %s to %s\\n'%(os.environ['PHOTON_INSTANCE'],"
    "a[0])).encode()); c.close()\n";

// One line read from a connected socket (a greeting) within `timeout`; closes the socket.
inline std::string ReadLine(int fd, std::chrono::milliseconds timeout = 5s) {
  std::string out;
  char buf[256];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && out.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

inline uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

struct BedOptions {
  int hosts = 2;
  std::string tag = "n";    // node names: TAG<pid>hI (unique per run)
  std::string server_yaml;  // photon-server --config; none when empty
  // The agents' --config; gets the suite's directory (which it may fill, e.g. with images).
  std::function<std::string(const std::string& dir)> agent_yaml = [](const std::string&) {
    return std::string("drivers:\n  vm: {enabled: \"false\"}\n");
  };
  // Runs before the agents start, with the suite's directory: "" or what failed.
  std::function<std::string(const std::string& dir)> prepare = [](const std::string&) {
    return std::string();
  };
  int resync_seconds = 1;
  // Network mode of host i's agent; BIRD flags go only to hosts in mode ports.
  std::function<std::string(int)> mode = [](int) { return std::string("ports"); };
  std::function<std::vector<std::string>(int)> extra_flags = [](int) {
    return std::vector<std::string>{};
  };
  std::chrono::seconds ready_timeout{30};   // agent start -> its Node READY
  std::chrono::seconds delete_timeout{30};  // instance delete -> gone, at each TearDown
  // BGP sessions Established at the router before the tests start; -1: one per host in mode
  // ports (the agent restarts its host's session). A suite that keeps the bed's own BIRD on
  // other hosts (e.g. LB nodes) counts them too.
  int bird_sessions = -1;
};

template <typename Suite>
class BedClusterTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    opt_ = new BedOptions(Suite::Options());
    std::string error;
    bed_ = net_testing::NetBed::Up(opt_->hosts, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    own_netns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int r = ::open(bed_->NsPath("r").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(::setns(r, CLONE_NEWNET), 0);
    ::close(r);
    dir_ = new std::string(MakeTempDir("bed" + opt_->tag));
    std::vector<std::string> argv = {PHOTON_SERVER_BIN, "--data-dir", *dir_ + "/server"};
    if (!opt_->server_yaml.empty()) {
      ASSERT_TRUE(WriteFileAtomic(*dir_ + "/server.yaml", opt_->server_yaml, 0600).ok());
      argv.insert(argv.end(), {"--config", *dir_ + "/server.yaml"});
    }
    const int port = ::photon::testing::FreePort(kRouterIp);
    base_ = new std::string("https://" + std::string(kRouterIp) + ":" + std::to_string(port));
    argv.insert(argv.end(),
                {"--listen", std::string(kRouterIp) + ":" + std::to_string(port), "--grpc-listen",
                 "127.0.0.1:" + std::to_string(::photon::testing::FreePort())});
    server_ = new Daemon(argv, *dir_ + "/server.log");
    ASSERT_TRUE(WaitFor(
        [&] {
          auto c = cli::HttpClient::Create(*base_, "", CaFile());
          if (!c.ok()) return false;
          auto h = c->Do("GET", "/healthz");
          return h.ok() && h->status == 200;
        },
        15s))
        << Slurp(*dir_ + "/server.log");
    auto tok = ReadFile(*dir_ + "/server/admin.token");
    ASSERT_TRUE(tok.ok());
    token_ = new std::string(*tok);
    while (!token_->empty() && token_->back() == '\n') token_->pop_back();
    const std::string prepared = opt_->prepare(*dir_);
    ASSERT_EQ(prepared, "");
    ASSERT_TRUE(WriteFileAtomic(*dir_ + "/agent.yaml", opt_->agent_yaml(*dir_), 0644).ok());
    agents_.assign(opt_->hosts + 1, nullptr);
    int bird_hosts = 0;
    for (int i = 1; i <= opt_->hosts; ++i) {
      ASSERT_TRUE(StartAgent(i)) << AgentLog(i);
      if (opt_->mode(i) == "ports") ++bird_hosts;
    }
    // The agents' BIRD reconfiguration restarted their sessions: wait for all of them.
    ASSERT_TRUE(WaitFor(
        [&] {
          return CountLines(bed_->Bird("r", {"show", "protocols"}), "Established") ==
                 (opt_->bird_sessions >= 0 ? opt_->bird_sessions : bird_hosts);
        },
        30s))
        << bed_->Bird("r", {"show", "protocols"});
  }
  static void TearDownTestSuite() {
    for (auto*& a : agents_) {
      delete a;
      a = nullptr;
    }
    delete server_;
    server_ = nullptr;
    // A VM's QEMU is daemonized (it outlives its agent): every process of the suite's files goes.
    if (dir_ != nullptr) {
      for (pid_t p : PidsMentioning(*dir_)) ::kill(p, SIGKILL);
    }
    if (bed_ != nullptr && dir_ != nullptr) {
      for (int i = 1; i <= opt_->hosts; ++i) SweepHost(Node(i), *dir_ + "/agent-" + Node(i));
    }
    if (own_netns_ >= 0) {
      (void)::setns(own_netns_, CLONE_NEWNET);
      ::close(own_netns_);
      own_netns_ = -1;
    }
    delete bed_;  // removes every PFX-* namespace, port namespaces included
    bed_ = nullptr;
    std::error_code ec;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, cgroups)";
    ASSERT_NE(bed_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    std::vector<std::string> paths;
    for (const auto& name : created_) paths.push_back(InstancePath(name));
    DeleteAndAwaitGone(paths, opt_->delete_timeout);
    created_.clear();
  }

  // Deletes every path first (so their teardowns overlap), then expects each to answer 404
  // within `timeout`.
  static void DeleteAndAwaitGone(const std::vector<std::string>& paths,
                                 std::chrono::seconds timeout) {
    for (const auto& path : paths) (void)Call("DELETE", path);
    for (const auto& path : paths) {
      EXPECT_TRUE(WaitFor([&] { return Call("GET", path).status == 404; }, timeout)) << path;
    }
  }

  static std::string Node(int i) {
    return opt_->tag + std::to_string(::getpid() % 100000) + "h" + std::to_string(i);
  }
  static std::string NodeIp(int i) { return "192.168.10." + std::to_string(10 + i); }
  static std::string CaFile() { return *dir_ + "/server/tls/ca.crt"; }
  static std::string Prefix(int i) { return bed_->Ns(bed_->Host(i)) + "-p-"; }
  static std::string AgentLog(int i) { return Slurp(*dir_ + "/agent-" + Node(i) + ".log"); }

  // (Re)starts photon-agent inside host i's namespace; true once its Node is READY.
  static bool StartAgent(int i) {
    delete agents_[i];
    const std::string mode = opt_->mode(i);
    std::vector<std::string> argv = {"/usr/bin/nsenter",
                                     "--net=" + bed_->NsPath(bed_->Host(i)),
                                     PHOTON_AGENT_BIN,
                                     "--server",
                                     *base_,
                                     "--ca-file",
                                     CaFile(),
                                     "--token-file",
                                     *dir_ + "/server/join.token",
                                     "--data-dir",
                                     *dir_ + "/agent-" + Node(i),
                                     "--name",
                                     Node(i),
                                     "--heartbeat-seconds",
                                     "1",
                                     "--resync-seconds",
                                     std::to_string(opt_->resync_seconds),
                                     "--network-mode",
                                     mode,
                                     "--netns-prefix",
                                     Prefix(i),
                                     "--config",
                                     *dir_ + "/agent.yaml"};
    if (mode == "ports") {
      const std::string run = "/run/photon-netbed/" + bed_->prefix() + "/" + bed_->Host(i);
      argv.insert(argv.end(),
                  {"--bird-config", run + ".conf", "--bird-socket", run + ".ctl",
                   "--bird-router-id", NodeIp(i), "--bird-local-as", std::to_string(65000 + i),
                   "--bird-peers", std::string(kRouterIp) + ":65000", "--bird-log", run + ".log"});
    }
    auto extra = opt_->extra_flags(i);
    argv.insert(argv.end(), extra.begin(), extra.end());
    agents_[i] = new Daemon(argv, *dir_ + "/agent-" + Node(i) + ".log");
    return WaitFor([&] { return NodeReady(i); }, opt_->ready_timeout);
  }
  static bool NodeReady(int i) {
    auto j = Get("/v1/namespaces/system/nodes/" + Node(i));
    return j.is_object() &&
           j.value("nodeStatus", json::object()).value("condition", "") == "READY" &&
           agents_[i] != nullptr && agents_[i]->Running();
  }
  static cli::HttpResult Call(const std::string& method, const std::string& path,
                              const json& body = nullptr) {
    auto c = cli::HttpClient::Create(*base_, *token_, CaFile());
    if (!c.ok()) return cli::HttpResult{0, c.status().ToString(), {}};
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? *r : cli::HttpResult{0, r.status().ToString(), {}};
  }
  static json Get(const std::string& path) {
    auto r = Call("GET", path);
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json(nullptr);
  }
  static std::string InstancePath(const std::string& name) {
    return "/v1/namespaces/default/computeinstances/" + name;
  }
  static std::string RsPath(const std::string& rs) {
    return "/v1/namespaces/default/regionservices/" + rs;
  }
  // The LoadBalancer a RegionService's provider made (it carries the service's name).
  static std::string LbPath(const std::string& rs) {
    return "/v1/namespaces/default/loadbalancers/" + rs;
  }
  static int CountLines(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
  }
  static double Metric(const std::string& text, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9.e+]+)"))) return -1;
    return std::stod(m[1]);
  }
  // Agent i's /metrics, read inside its host namespace.
  static std::string AgentMetrics(int i) {
    auto node = Get("/v1/namespaces/system/nodes/" + Node(i));
    std::string addr = node.is_object() ? node["spec"].value("address", "") : "";
    return bed_->Run(bed_->Host(i), {"curl", "-s", "http://" + addr + "/metrics"});
  }
  // Processes whose command line mentions `needle` (a VM's QEMU: its id is in -name).
  static std::vector<pid_t> PidsMentioning(const std::string& needle) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmd = Slurp(e.path().string() + "/cmdline");
      std::replace(cmd.begin(), cmd.end(), '\0', ' ');
      if (cmd.find(needle) != std::string::npos) out.push_back(std::stoi(name));
    }
    return out;
  }

  std::string Name(const std::string& base) {
    return base + "-" + std::to_string(::getpid() % 100000);
  }
  // Posts an instance on host i (spec.schedule names its node); deleted at TearDown.
  void Create(const std::string& name, int host, json spec) {
    spec["schedule"] = {{"nodes", {Node(host)}}};
    json inst = {{"metadata", {{"name", name}}}, {"spec", spec}};
    auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
    ASSERT_TRUE(r.status == 201 || r.status == 202) << r.status << " " << r.body;
    created_.push_back(name);
  }
  // Waits for RUNNING in its port; returns the instance (null on timeout, with its status in
  // the failure).
  json WaitRunning(const std::string& name, std::chrono::seconds timeout = 40s) {
    json j;
    bool ok = WaitFor(
        [&] {
          j = Get(InstancePath(name));
          return j.is_object() && j["status"].value("phase", "") == "RUNNING" &&
                 j["status"].value("details", json::object()).contains("network.netns");
        },
        timeout);
    EXPECT_TRUE(ok) << name << ": " << j.dump();
    return ok ? j : json(nullptr);
  }
  static std::string Address(const json& inst) { return inst["status"]["addresses"][0]; }
  std::string PortNs(int host, const json& inst) {
    return "/run/netns/" + Prefix(host) + inst["metadata"].value("id", "");
  }

  inline static BedOptions* opt_ = nullptr;
  inline static net_testing::NetBed* bed_ = nullptr;
  inline static int own_netns_ = -1;
  inline static std::string* dir_ = nullptr;
  inline static std::string* base_ = nullptr;
  inline static std::string* token_ = nullptr;
  inline static Daemon* server_ = nullptr;
  inline static std::vector<Daemon*> agents_;
  std::vector<std::string> created_;
};

}  // namespace photon::agent::testing
