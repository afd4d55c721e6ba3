// A VM gets its network on the multi-host bed: a real photon-server in the router namespace,
// real photon-agents in host namespaces (network mode "ports"), real BIRD2, and the project's
// test guest under QEMU (TCG). The VM's NIC is a tap in its port namespace; the guest takes
// its address from the config drive, pings and opens TCP to a process instance on another
// host, and that instance reaches it back; its spoofed packets are dropped; an agent killed
// with -9 adopts the port and the VM; a delete leaves no tap, namespace, route or QEMU. Needs
// root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "common/util.h"
#include "tests/agent/cluster.h"
#include "tests/net/netbed.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using photon::net_testing::NetBed;

constexpr int kHosts = 2;  // h1 runs the VM, h2 the process instance
constexpr char kRouterIp[] = "192.168.10.1";

// A TCP server workload: answers every connection with "hello from NAME to PEER".
const char kServer[] =
    "import socket,os\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind(('0.0.0.0',7000)); s.listen(16)\n"
    "while True:\n"
    "  c,a=s.accept(); c.sendall(('hello from %s to %s\\n'%(os.environ['PHOTON_INSTANCE'],"
    "a[0])).encode()); c.close()\n";

// The guest's user-data script (the test guest runs a "#!" user-data once ready): pings the
// peer until it answers (polling for at most 60 s), reads its TCP greeting, then sends pings
// from an address that is not its own (anti-spoofing must drop them).
std::string GuestScript(const std::string& peer, const std::string& spoofed) {
  return "#!/bin/sh\n"
         "end=$(($(date +%s) + 60))\n"
         "until ping -c 1 -W 1 " +
         peer +
         " >/dev/null 2>&1; do\n"
         "  [ $(date +%s) -ge $end ] && echo PHOTON-TEST-PING-FAIL && exit 1\n"
         "  sleep 0.2\n"
         "done\n"
         "echo \"PHOTON-TEST-PING-OK uptime $(cut -d' ' -f1 /proc/uptime)\"\n"
         "echo \"PHOTON-TEST-TCP $(nc " +
         peer +
         " 7000 </dev/null)\"\n"
         "ip addr add " +
         spoofed +
         "/32 dev eth0\n"
         "ping -c 3 -w 5 -I " +
         spoofed + " " + peer +
         " >/dev/null 2>&1 && echo PHOTON-TEST-SPOOF-ANSWERED\n"
         "echo PHOTON-TEST-SPOOF-SENT\n";
}

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Processes whose command line mentions `needle` (QEMU of an instance: its id is in -name).
std::vector<pid_t> PidsMentioning(const std::string& needle) {
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

class VmNetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = NetBed::Up(kHosts, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
    // This thread lives in the router's namespace from now on: photon-server listens on
    // 192.168.10.1, which every host reaches, and the REST calls go from here.
    own_netns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int r = ::open(bed_->NsPath("r").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(::setns(r, CLONE_NEWNET), 0);
    ::close(r);
    dir_ = new std::string(MakeTempDir("vmnet"));
    auto built = RunCommand(
        {"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-vm-image.sh", *dir_ + "/image"},
        std::chrono::seconds(120));
    ASSERT_TRUE(built.ok() && built->exit_code == 0)
        << (built.ok() ? built->output : built.status().ToString());
    int port = FreePortOn(kRouterIp);
    base_ = new std::string("https://" + std::string(kRouterIp) + ":" + std::to_string(port));
    server_ = new Daemon({PHOTON_SERVER_BIN, "--data-dir", *dir_ + "/server", "--listen",
                          std::string(kRouterIp) + ":" + std::to_string(port), "--grpc-listen",
                          "127.0.0.1:" + std::to_string(FreePortOn("127.0.0.1"))},
                         *dir_ + "/server.log");
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
    ASSERT_TRUE(WriteFileAtomic(*dir_ + "/agent.yaml",
                                "drivers:\n  vm: {ready_timeout_s: \"240\", images_root: \"" +
                                    *dir_ + "/image\"}\n  container: {enabled: \"false\"}\n",
                                0644)
                    .ok());
    for (int i = 1; i <= kHosts; ++i) ASSERT_TRUE(StartAgent(i)) << AgentLog(i);
    ASSERT_TRUE(WaitFor(
        [&] {
          return CountLines(bed_->Bird("r", {"show", "protocols"}), "Established") == kHosts;
        },
        30s))
        << bed_->Bird("r", {"show", "protocols"});
    for (const char* f : {"vmlinuz", "initrd.img"}) {
      std::string sum = Slurp(*dir_ + "/image/" + f + ".sha256");
      while (!sum.empty() && sum.back() == '\n') sum.pop_back();
      const std::string name = std::string(f) == "vmlinuz" ? "kernel" : "initrd";
      auto posted = Call(
          "POST", "/v1/namespaces/default/images",
          {{"metadata", {{"name", name}}},
           {"spec", {{"sourcePath", *dir_ + "/image/" + f}, {"format", name}, {"sha256", sum}}}});
      ASSERT_EQ(posted.status / 100, 2) << posted.body;
    }
  }
  static void TearDownTestSuite() {
    for (auto*& a : agents_) {
      delete a;
      a = nullptr;
    }
    delete server_;
    server_ = nullptr;
    // QEMU is daemonized (it outlives agents): every process of this test's files goes.
    if (dir_ != nullptr) {
      for (pid_t p : PidsMentioning(*dir_)) ::kill(p, SIGKILL);
    }
    if (bed_ != nullptr) {
      for (int i = 1; i <= kHosts; ++i) SweepHost(Node(i), *dir_ + "/agent-" + Node(i));
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
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ASSERT_NE(bed_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    for (const auto& name : created_) (void)Call("DELETE", InstancePath(name));
    for (const auto& name : created_) {
      EXPECT_TRUE(WaitFor([&] { return Call("GET", InstancePath(name)).status == 404; }, 60s))
          << name;
    }
    created_.clear();
  }

  static int FreePortOn(const std::string& ip) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = photon::net_testing::Addr(ip, 0);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }
  static std::string Node(int i) {
    return "v" + std::to_string(::getpid() % 100000) + "h" + std::to_string(i);
  }
  static std::string CaFile() { return *dir_ + "/server/tls/ca.crt"; }
  static std::string Prefix(int i) { return bed_->Ns(bed_->Host(i)) + "-p-"; }
  static std::string AgentLog(int i) { return Slurp(*dir_ + "/agent-" + Node(i) + ".log"); }

  static bool StartAgent(int i) {
    delete agents_[i];
    const std::string run = "/run/photon-netbed/" + bed_->prefix() + "/" + bed_->Host(i);
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
                                     "1",
                                     "--network-mode",
                                     "ports",
                                     "--netns-prefix",
                                     Prefix(i),
                                     "--config",
                                     *dir_ + "/agent.yaml",
                                     "--bird-config",
                                     run + ".conf",
                                     "--bird-socket",
                                     run + ".ctl",
                                     "--bird-router-id",
                                     "192.168.10." + std::to_string(10 + i),
                                     "--bird-local-as",
                                     std::to_string(65000 + i),
                                     "--bird-peers",
                                     std::string(kRouterIp) + ":65000",
                                     "--bird-log",
                                     run + ".log"};
    agents_[i] = new Daemon(argv, *dir_ + "/agent-" + Node(i) + ".log");
    return WaitFor(
        [&] {
          auto j = Get("/v1/namespaces/system/nodes/" + Node(i));
          return j.is_object() &&
                 j.value("nodeStatus", json::object()).value("condition", "") == "READY" &&
                 agents_[i]->Running();
        },
        90s);  // the vm driver probes the accelerator first
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
  static std::string AgentMetrics(int i) {
    auto node = Get("/v1/namespaces/system/nodes/" + Node(i));
    std::string addr = node.is_object() ? node["spec"].value("address", "") : "";
    return bed_->Run(bed_->Host(i), {"curl", "-s", "http://" + addr + "/metrics"});
  }
  std::string Name(const std::string& base) {
    return base + "-" + std::to_string(::getpid() % 100000);
  }
  void Create(const std::string& name, int host, const json& spec) {
    json inst = {{"metadata", {{"name", name}}}, {"spec", spec}};
    inst["spec"]["schedule"] = {{"nodes", {Node(host)}}};
    auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
    ASSERT_TRUE(r.status == 201 || r.status == 202) << r.status << " " << r.body;
    created_.push_back(name);
  }
  json WaitRunning(const std::string& name, std::chrono::seconds timeout) {
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
  std::string Console(const std::string& id) {
    std::string text =
        Slurp(*dir_ + "/agent-" + Node(1) + "/providers/vm/instances/" + id + "/console.log");
    std::erase(text, '\r');
    return text;
  }

  static NetBed* bed_;
  static int own_netns_;
  static std::string* dir_;
  static std::string* base_;
  static std::string* token_;
  static Daemon* server_;
  static Daemon* agents_[kHosts + 1];
  std::vector<std::string> created_;
};

NetBed* VmNetTest::bed_ = nullptr;
int VmNetTest::own_netns_ = -1;
std::string* VmNetTest::dir_ = nullptr;
std::string* VmNetTest::base_ = nullptr;
std::string* VmNetTest::token_ = nullptr;
Daemon* VmNetTest::server_ = nullptr;
Daemon* VmNetTest::agents_[kHosts + 1] = {};

TEST_F(VmNetTest, VmTalksToProcessAcrossHostsIsAdoptedAndLeavesNothing) {
  const std::string p = Name("vp"), v = Name("vm");
  Create(p, 2,
         {{"process", {{"command", {"/usr/bin/python3", "-c", kServer}}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}});
  json ip_json = WaitRunning(p, 40s);
  ASSERT_TRUE(ip_json.is_object());
  const std::string ip_p = Address(ip_json), ns_p = PortNs(2, ip_json);
  const std::string spoofed = ip_p.substr(0, ip_p.rfind('.')) + ".250";

  const int64_t t0 = MonotonicNanos();
  Create(
      v, 1,
      {{"vm", {{"kernel", "kernel"}, {"initrd", "initrd"}, {"kernelArgs", "console=ttyS0 quiet"}}},
       {"resources", {{"vcpu", 1}, {"memoryMb", "256"}}},
       {"userData", GuestScript(ip_p, spoofed)}});
  json iv = WaitRunning(v, 300s);
  ASSERT_TRUE(iv.is_object()) << AgentLog(1);
  const double running_ms = static_cast<double>(MonotonicNanos() - t0) / 1e6;
  const std::string id = iv["metadata"].value("id", ""), ip_v = Address(iv);
  const std::string ns_v = PortNs(1, iv), h1 = bed_->Host(1);
  EXPECT_EQ(iv["status"]["details"].value("network.wired", ""), "port");

  // The guest configured the address the config drive gave it, then reached the process on
  // host 2 (ping, then its TCP greeting, which names the guest's address as the peer).
  std::string console;
  ASSERT_TRUE(WaitFor(
      [&] {
        console = Console(id);
        return console.find("PHOTON-TEST-SPOOF-SENT") != std::string::npos ||
               console.find("PHOTON-TEST-PING-FAIL") != std::string::npos;
      },
      120s))
      << console;
  const double ping_ms = static_cast<double>(MonotonicNanos() - t0) / 1e6;
  EXPECT_NE(console.find("PHOTON-NET eth0 " + ip_v + "/32 via 169.254.1.1"), std::string::npos)
      << console;
  ASSERT_NE(console.find("PHOTON-TEST-PING-OK"), std::string::npos) << console;
  EXPECT_NE(console.find("PHOTON-TEST-TCP hello from " + p + " to " + ip_v), std::string::npos)
      << console;
  std::smatch up;
  std::regex_search(console, up, std::regex("PHOTON-TEST-PING-OK uptime ([0-9.]+)"));
  std::printf(
      "[ figure ] VM create -> RUNNING (TCG): %.0f ms; -> guest's ping across hosts done: %.0f ms "
      "(guest uptime %s s)\n",
      running_ms, ping_ms, up.size() > 1 ? up[1].str().c_str() : "?");

  // Anti-spoofing: the guest's packets from another address never left its port namespace.
  EXPECT_EQ(console.find("PHOTON-TEST-SPOOF-ANSWERED"), std::string::npos) << console;
  std::string spoof = bed_->Run(ns_v, {"nft", "list", "counter", "inet", "photon", "spoofed"});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(spoof, m, std::regex("packets ([0-9]+)"))) << spoof;
  EXPECT_GE(std::stoi(m[1]), 3) << spoof;

  // The reverse direction: the process's namespace on host 2 pings the VM.
  int rc = -1;
  std::string ping;
  EXPECT_TRUE(WaitFor(
      [&] {
        ping = bed_->Run(ns_p, {"ping", "-c", "1", "-W", "2", ip_v}, &rc);
        return rc == 0;
      },
      20s))
      << ping;
  // QEMU runs in the node's namespace with the port's tap handed over; the tap is in the port.
  std::vector<pid_t> qemu = PidsMentioning("photon-" + id);
  ASSERT_EQ(qemu.size(), 1u);
  EXPECT_EQ(InodeOf("/proc/" + std::to_string(qemu[0]) + "/ns/net"), InodeOf(bed_->NsPath(h1)));
  EXPECT_NE(bed_->Run(ns_v, {"ip", "-o", "link", "show", "tap0"}).find("tap0"), std::string::npos);
  EXPECT_TRUE(bed_->RouterHas(ip_v));

  // kill -9 of the agent: the restarted one adopts the port (no kernel change) and the VM (the
  // same QEMU), and the VM stays reachable.
  agents_[1]->Kill(SIGKILL);
  ASSERT_TRUE(StartAgent(1)) << AgentLog(1);
  ASSERT_TRUE(
      WaitFor([&] { return Metric(AgentMetrics(1), "photon_agent_port_applies_total") >= 2; }, 20s))
      << AgentMetrics(1);
  EXPECT_EQ(Metric(AgentMetrics(1), "photon_agent_port_kernel_changes"), 0) << AgentMetrics(1);
  EXPECT_EQ(PidsMentioning("photon-" + id), qemu);
  EXPECT_EQ(Get(InstancePath(v))["status"].value("phase", ""), "RUNNING");
  ping = bed_->Run(ns_p, {"ping", "-c", "1", "-W", "3", ip_v}, &rc);
  EXPECT_EQ(rc, 0) << ping;

  // Delete: no QEMU, namespace (so tap), host veth, route at the node or at the router.
  ASSERT_EQ(Call("DELETE", InstancePath(v)).status / 100, 2);
  ASSERT_TRUE(WaitFor([&] { return Call("GET", InstancePath(v)).status == 404; }, 60s));
  EXPECT_TRUE(PidsMentioning("photon-" + id).empty());
  EXPECT_FALSE(std::filesystem::exists(ns_v));
  EXPECT_EQ(CountLines(bed_->Run(h1, {"ip", "-o", "link", "show"}), "photon-port:" + id), 0);
  EXPECT_EQ(bed_->Run(h1, {"ip", "route", "show", ip_v + "/32"}), "");
  EXPECT_TRUE(WaitFor([&] { return !bed_->RouterHas(ip_v); }, 10s));
}

}  // namespace
}  // namespace photon::agent::testing
