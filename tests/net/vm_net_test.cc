// A VM gets its network on the multi-host bed: a real photon-server in the router namespace,
// real photon-agents in host namespaces (network mode "ports"), real BIRD2, and the project's
// test guest under QEMU (TCG). The VM's NIC is a tap in its port namespace; the guest takes
// its address from the config drive, pings and opens TCP to a process instance on another
// host, and that instance reaches it back; its spoofed packets are dropped; an agent killed
// with -9 adopts the port and the VM; a delete leaves no tap, namespace, route or QEMU. Needs
// root.
#include <signal.h>

#include "tests/net/bed_cluster.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;

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

class VmNetTest : public BedClusterTest<VmNetTest> {
 public:
  // h1 runs the VM, h2 the process instance.
  static BedOptions Options() {
    BedOptions o;
    o.hosts = 2;
    o.tag = "v";
    o.agent_yaml = [](const std::string& dir) {
      return "drivers:\n  vm: {ready_timeout_s: \"240\", images_root: \"" + dir +
             "/image\"}\n  container: {enabled: \"false\"}\n";
    };
    o.prepare = [](const std::string& dir) -> std::string {
      auto built = RunCommand(
          {"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-vm-image.sh", dir + "/image"},
          std::chrono::seconds(120));
      if (!built.ok()) return built.status().ToString();
      return built->exit_code == 0 ? "" : built->output;
    };
    o.ready_timeout = std::chrono::seconds(90);  // the vm driver probes the accelerator first
    o.delete_timeout = std::chrono::seconds(60);
    return o;
  }
  // The test guest's kernel and initramfs: built before the agents start, registered after.
  static void SetUpTestSuite() {
    BedClusterTest::SetUpTestSuite();
    if (::geteuid() != 0 || ::testing::Test::HasFatalFailure()) return;
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

 protected:
  // What the guest printed after echoing its user-data: the script's own text names every
  // marker it prints, so only the part after PHOTON-USERDATA-END tells what happened.
  std::string Console(const std::string& id) {
    std::string text =
        Slurp(*dir_ + "/agent-" + Node(1) + "/providers/vm/instances/" + id + "/console.log");
    std::erase(text, '\r');
    const std::string end = "PHOTON-USERDATA-END\n";
    size_t at = text.find(end);
    return at == std::string::npos ? "" : text.substr(at + end.size());
  }
};

TEST_F(VmNetTest, VmTalksToProcessAcrossHostsIsAdoptedAndLeavesNothing) {
  const std::string p = Name("vp"), v = Name("vm");
  Create(p, 2,
         {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
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
  const std::string id = Get(InstancePath(v))["metadata"].value("id", "");
  ASSERT_FALSE(id.empty());

  // The guest configured the address the config drive gave it, then reached the process on
  // host 2 (ping, then its TCP greeting, which names the guest's address as the peer). Its
  // console is watched from the create on, so the first ping is timed apart from RUNNING.
  std::string console;
  ASSERT_TRUE(WaitFor(
      [&] {
        console = Console(id);
        return console.find("PHOTON-TEST-PING-OK") != std::string::npos ||
               console.find("PHOTON-TEST-PING-FAIL") != std::string::npos;
      },
      300s))
      << console << AgentLog(1);
  const double ping_ms = static_cast<double>(MonotonicNanos() - t0) / 1e6;
  ASSERT_NE(console.find("PHOTON-TEST-PING-OK"), std::string::npos) << console;
  json iv = WaitRunning(v, 120s);
  ASSERT_TRUE(iv.is_object()) << AgentLog(1);
  const double running_ms = static_cast<double>(MonotonicNanos() - t0) / 1e6;
  const std::string ip_v = Address(iv);
  const std::string ns_v = PortNs(1, iv), h1 = bed_->Host(1);
  EXPECT_EQ(iv["status"]["details"].value("network.wired", ""), "port");
  ASSERT_TRUE(WaitFor(
      [&] {
        console = Console(id);
        return console.find("PHOTON-TEST-SPOOF-SENT") != std::string::npos;
      },
      60s))
      << console;
  EXPECT_NE(console.find("PHOTON-NET eth0 " + ip_v + "/32 via 169.254.1.1"), std::string::npos)
      << console;
  EXPECT_NE(console.find("PHOTON-TEST-TCP hello from " + p + " to " + ip_v), std::string::npos)
      << console;
  std::smatch up;
  std::regex_search(console, up, std::regex("PHOTON-TEST-PING-OK uptime ([0-9.]+)"));
  std::printf(
      "[ figure ] VM create -> first ping across hosts answered (TCG): %.0f ms (guest uptime "
      "%s s); -> RUNNING: %.0f ms\n",
      ping_ms, up.size() > 1 ? up[1].str().c_str() : "?", running_ms);

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
