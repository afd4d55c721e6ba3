// The agent's built-in provider checks (docs/operations.md "Built-in checks"): a real QEMU
// (TCG) that stops answering QMP, a container runc cannot start, and a real BIRD whose BGP
// session goes down. The first two run through photon-server and photon-agent; the BIRD one
// runs the check against two real BIRDs peering on loopback.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>

#include "../agent/cluster.h"
#include "agent/checks/provider_checks.h"
#include "agent/host/run.h"
#include "agent/vm_usage.h"

namespace photon::agent::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json Items(Cluster& c, const std::string& path) {
  json j = c.Get(path);
  return j.is_object() && j.contains("items") ? j["items"] : json::array();
}

// The stored event of namespace system for `check` and `instance` with `severity`, or null.
json EventOf(Cluster& c, const std::string& check, const std::string& instance,
             const std::string& severity) {
  for (const auto& e : Items(c, "/v1/namespaces/system/events")) {
    const json ev = e["spec"].value("opsEvent", json::object());
    if (ev.value("check", "") == check && ev.value("severity", "") == severity &&
        ev.value("labels", json::object()).value("instance", "") == instance) {
      return e;
    }
  }
  return nullptr;
}

// A running VM's usage (docs/operations.md "Usage"): on its agent's /metrics, QEMU's CPU time
// and resident memory and its drives' traffic over QMP (the guest reads its config drive at
// boot), and in `photon top instances` as driver vm.
void ExpectVmUsage(Cluster& c, const std::string& node, const std::string& name) {
  const std::string addr =
      c.Get("/v1/namespaces/system/nodes/" + node)["spec"].value("address", "");
  ASSERT_FALSE(addr.empty());
  const std::string labels =
      "{namespace=\"default\",instance=\"" + name + "\",node=\"" + node + "\",driver=\"vm\"}";
  std::string page;
  auto value = [&](const std::string& family) {
    const size_t at = page.find(family + labels);
    return at == std::string::npos ? -1.0
                                   : std::stod(page.substr(at + family.size() + labels.size()));
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        auto m = cli::HttpClient::Create("http://" + addr, "")->Do("GET", "/metrics");
        page = m.ok() ? m->body : "";
        return value("photon_instance_block_read_bytes_total") > 0 &&
               value("photon_instance_block_read_ops_total") > 0;
      },
      240s))
      << page.substr(std::min(page.size(), page.find("photon_instance_")));
  EXPECT_GT(value("photon_instance_cpu_seconds_total"), 0);
  EXPECT_GT(value("photon_instance_memory_bytes"), 1 << 20);
  EXPECT_GE(value("photon_instance_block_write_bytes_total"), 0);
  // No port namespace (the node's network): no traffic figures rather than zeros.
  EXPECT_EQ(page.find("photon_instance_network_receive_bytes_total" + labels), std::string::npos);
  json top = c.Get("/v1/ops/top/instances?namespace=default");
  json row;
  for (const auto& i : top.value("items", json::array())) {
    if (i.value("name", "") == name) row = i;
  }
  ASSERT_TRUE(row.is_object()) << top;
  EXPECT_EQ(row["driver"], "vm");
  EXPECT_EQ(row["node"], node);
  EXPECT_GT(row.value("memoryBytes", 0.0), 0) << row;
  EXPECT_GT(row.value("blockReadBytes", 0.0), 0) << row;
}

TEST(ProviderChecks, QemuNotAnsweringQmpIsCriticalAndRecovers) {
  Cluster c;
  const std::string img = c.dir() + "/image";
  auto built = RunCommand({PHOTON_SOURCE_DIR "/scripts/make-vm-image.sh", img}, 120s);
  ASSERT_TRUE(built.ok() && built->exit_code == 0) << (built.ok() ? built->output : "");
  const std::string config = c.dir() + "/vm.yaml";
  std::ofstream(config) << "drivers:\n  vm:\n    ready_timeout_s: \"240\"\n    images_root: \""
                        << img << "\"\n  container:\n    enabled: \"false\"\n";
  ASSERT_TRUE(c.StartAgent("qmp1", "role=vm", {"--config", config}));
  for (const std::string name : {"vmlinuz", "initrd.img"}) {
    json image = {{"metadata", {{"name", name == "vmlinuz" ? "kernel" : "initrd"}}},
                  {"spec",
                   {{"sourcePath", img + "/" + name},
                    {"format", name == "vmlinuz" ? "kernel" : "initrd"},
                    {"sha256", Slurp(img + "/" + name + ".sha256").substr(0, 64)}}}};
    ASSERT_EQ(c.Call("POST", "/v1/namespaces/default/images", image).status, 202);
  }
  const std::string name = "qmp-" + std::to_string(getpid());
  const std::string instance = "default/" + name;
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances",
                  json{{"metadata", {{"name", name}, {"agentId", "qmp1"}}},
                       {"spec",
                        {{"vm", {{"kernel", "kernel"}, {"initrd", "initrd"}}},
                         // A node in network mode shared gives a VM no port: the node's own.
                         {"network", {{"hostNetwork", true}}},
                         {"resources", {{"vcpu", 1}, {"memoryMb", "256"}}}}}});
  ASSERT_EQ(r.status, 202) << r.body;
  int pid = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        json i = c.Instance(name);
        pid = std::atoi(i.value("status", json::object())
                            .value("details", json::object())
                            .value("pid", "0")
                            .c_str());
        return pid > 0;
      },
      60s))
      << c.Instance(name);
  struct Resume {
    int pid;
    ~Resume() { kill(pid, SIGCONT); }
  } resume{pid};
  ExpectVmUsage(c, "qmp1", name);
  EXPECT_TRUE(EventOf(c, "vm-qmp", instance, "CRITICAL").is_null());
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  json ev;
  ASSERT_TRUE(
      WaitFor([&] { return !(ev = EventOf(c, "vm-qmp", instance, "CRITICAL")).is_null(); }, 60s));
  const json oe = ev["spec"]["opsEvent"];
  EXPECT_EQ(oe["node"], "qmp1");
  EXPECT_NE(oe["output"].get<std::string>().find("did not greet"), std::string::npos) << oe;
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  EXPECT_TRUE(WaitFor([&] { return !EventOf(c, "vm-qmp", instance, "SUCCESS").is_null(); }, 60s));
  EXPECT_EQ(c.Call("DELETE", "/v1/namespaces/default/computeinstances/" + name).status, 202);
  EXPECT_TRUE(WaitFor([&] { return c.Phase(name) == "GONE"; }, 60s));
}

// An instance's port namespace traffic (the figures /metrics reports for instances with a
// port): the interfaces of a namespace of the test's own, other than lo, as the kernel counts
// them (iproute2 reads the same). Pings go over a veth pair to a second namespace.
TEST(ProviderChecks, PortNamespaceTrafficIsCounted) {
  const std::string ns = "photon-t-usage-" + std::to_string(getpid()), peer = ns + "-peer";
  auto run = [&](std::vector<std::string> args) {
    auto r = RunCommand(args, 30s);
    return r.ok() && r->exit_code == 0 ? r->output : std::string("FAILED");
  };
  struct Del {
    std::vector<std::string> names;
    ~Del() {
      for (const auto& n : names) RunCommand({"ip", "netns", "del", n}, 20s).IgnoreError();
    }
  } del{{ns, peer}};
  for (const std::string& n : {ns, peer}) {
    ASSERT_NE(run({"ip", "netns", "add", n}), "FAILED") << n;
    // No IPv6 (its router and listener solicitations would add packets between two readings).
    ASSERT_NE(run({"ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                   "net.ipv6.conf.default.disable_ipv6=1"}),
              "FAILED");
  }
  ASSERT_NE(run({"ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns",
                 peer}),
            "FAILED");
  ASSERT_NE(run({"ip", "-n", ns, "addr", "add", "10.254.7.1/24", "dev", "v0"}), "FAILED");
  ASSERT_NE(run({"ip", "-n", peer, "addr", "add", "10.254.7.2/24", "dev", "v1"}), "FAILED");
  ASSERT_NE(run({"ip", "-n", ns, "link", "set", "v0", "up"}), "FAILED");
  ASSERT_NE(run({"ip", "-n", peer, "link", "set", "v1", "up"}), "FAILED");
  auto before = ReadNetns("/run/netns/" + ns);
  ASSERT_TRUE(before.has_value());
  ASSERT_NE(
      run({"ip", "netns", "exec", ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.254.7.2"}),
      "FAILED");
  auto after = ReadNetns("/run/netns/" + ns);
  ASSERT_TRUE(after.has_value());
  // Five echo requests out and five replies in (84 bytes of IP each), plus ARP.
  EXPECT_GE(after->tx_packets - before->tx_packets, 5);
  EXPECT_GE(after->rx_packets - before->rx_packets, 5);
  EXPECT_GE(after->tx_bytes - before->tx_bytes, 5 * 84);
  EXPECT_GE(after->rx_bytes - before->rx_bytes, 5 * 84);
  json links = json::parse(run({"ip", "-n", ns, "-s", "-j", "link", "show", "v0"}), nullptr, false);
  ASSERT_TRUE(links.is_array() && !links.empty()) << links;
  EXPECT_EQ(after->tx_packets, links[0]["stats64"]["tx"]["packets"].get<int64_t>());
  EXPECT_EQ(after->rx_bytes, links[0]["stats64"]["rx"]["bytes"].get<int64_t>());
  EXPECT_FALSE(ReadNetns("/run/netns/no-such-namespace").has_value());
}

TEST(ProviderChecks, RuncStartFailureIsCritical) {
  if (InChroot()) GTEST_FAIL() << "runc cannot run containers inside a chroot";
  Cluster c;
  const std::string rootfs = c.dir() + "/images/busybox";  // the node takes images from there
  const std::string config = c.dir() + "/ctr.yaml";
  std::ofstream(config) << "drivers:\n  container: {images_root: \"" << c.dir() << "/images\"}\n";
  ASSERT_TRUE(c.StartAgent("runc1", "role=ctr", {"--config", config}));
  auto made = RunCommand({"bash", PHOTON_SOURCE_DIR "/scripts/make-rootfs.sh", rootfs}, 120s);
  ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->output : "");
  ASSERT_EQ(c.Call("POST", "/v1/namespaces/default/images",
                   json{{"metadata", {{"name", "busybox"}}},
                        {"spec", {{"sourcePath", rootfs}, {"format", "rootfs-dir"}}}})
                .status,
            202);
  const std::string name = "runc-" + std::to_string(getpid());
  // runc cannot exec a command the image does not have: the start fails in runc.
  auto r = c.Call("POST", "/v1/namespaces/default/computeinstances",
                  json{{"metadata", {{"name", name}, {"agentId", "runc1"}}},
                       {"spec",
                        {{"container", {{"image", "busybox"}, {"command", {"/no/such/binary"}}}},
                         {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}});
  ASSERT_EQ(r.status, 202) << r.body;
  json ev;
  ASSERT_TRUE(WaitFor(
      [&] { return !(ev = EventOf(c, "container-runc", "default/" + name, "CRITICAL")).is_null(); },
      60s))
      << c.Instance(name);
  EXPECT_NE(ev["spec"]["opsEvent"]["output"].get<std::string>().find("runc"), std::string::npos)
      << ev;
  EXPECT_EQ(ev["spec"]["opsEvent"]["node"], "runc1");
  EXPECT_EQ(c.Call("DELETE", "/v1/namespaces/default/computeinstances/" + name).status, 202);
  EXPECT_TRUE(WaitFor([&] { return c.Phase(name) == "GONE"; }, 30s));
  // Gone while failing: the key is told it is over.
  EXPECT_TRUE(WaitFor(
      [&] { return !EventOf(c, "container-runc", "default/" + name, "SUCCESS").is_null(); }, 30s));
}

// A foreground BIRD on `config` with control socket `socket`; killed with the object.
class Bird {
 public:
  Bird(const std::string& config, const std::string& socket, const std::string& log) {
    std::vector<std::string> args = {"/usr/sbin/bird", "-f", "-c", config, "-s", socket};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Bird() { Kill(); }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  bool ok() const { return pid_ > 0; }

 private:
  pid_t pid_ = 0;
};

// BIRD `id` on 127.0.0.ID peering with 127.0.0.(3-ID): two loopback addresses, since BIRD
// takes a connection from its own address for a loop.
std::string BirdConfig(int id, int local_port, int local_as, int peer_port, int peer_as,
                       const std::string& log) {
  return "log \"" + log + "\" all;\nrouter id 10.0.0." + std::to_string(id) +
         ";\nprotocol device {}\nprotocol bgp peer {\n  local 127.0.0." + std::to_string(id) +
         " port " + std::to_string(local_port) + " as " + std::to_string(local_as) +
         ";\n  neighbor 127.0.0." + std::to_string(3 - id) + " port " + std::to_string(peer_port) +
         " as " + std::to_string(peer_as) +
         ";\n  multihop;\n  connect retry time 1;\n  ipv4 { import none; export none; };\n}\n";
}

struct Reported {
  std::string check, key, output;
  int severity;
};

TEST(ProviderChecks, BirdSessionDownIsCriticalAndBackIsSuccess) {
  const std::string dir = MakeTempDir("opsbird");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  const int pa = FreePort(), pb = FreePort();
  std::ofstream(dir + "/a.conf") << BirdConfig(1, pa, 65001, pb, 65002, dir + "/a.log");
  std::ofstream(dir + "/b.conf") << BirdConfig(2, pb, 65002, pa, 65001, dir + "/b.log");
  auto a = std::make_unique<Bird>(dir + "/a.conf", dir + "/a.ctl", dir + "/a.out");
  auto b = std::make_unique<Bird>(dir + "/b.conf", dir + "/b.ctl", dir + "/b.out");
  ASSERT_TRUE(a->ok() && b->ok());

  std::vector<Reported> reports;
  checks::ProviderCheckOptions o;
  o.bird_socket = dir + "/a.ctl";
  o.occurrences = 2;
  checks::ProviderChecks pc(
      o,
      [&](const std::string& check, const std::string& key, int severity, const std::string& out,
          const std::map<std::string, std::string>&) {
        reports.push_back({check, key, out, severity});
      },
      nullptr);
  auto session = [&] {
    auto r = pc.ProbeBird();
    return r.count("bird-session/peer") ? r["bird-session/peer"] : checks::ProbeResult{};
  };
  ASSERT_TRUE(
      WaitFor([&] { return session().output.find("Established") != std::string::npos; }, 60s))
      << session().output << Slurp(dir + "/a.log");
  EXPECT_EQ(session().severity, 0);
  pc.RunOnce();
  pc.RunOnce();
  EXPECT_TRUE(reports.empty()) << reports[0].output;  // healthy: nothing to tell

  b->Kill();  // the peer is gone: the session leaves Established
  ASSERT_TRUE(WaitFor(
      [&] {
        pc.RunOnce();
        return !reports.empty();
      },
      30s));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].check, "bird-session");
  EXPECT_EQ(reports[0].key, "bird-session/peer");
  EXPECT_EQ(reports[0].severity, 2) << reports[0].output;

  b = std::make_unique<Bird>(dir + "/b.conf", dir + "/b.ctl", dir + "/b.out");
  ASSERT_TRUE(WaitFor(
      [&] {
        pc.RunOnce();
        return reports.size() == 2;
      },
      60s))
      << session().output;
  EXPECT_EQ(reports[1].severity, 0) << reports[1].output;
  EXPECT_NE(reports[1].output.find("Established"), std::string::npos);

  a->Kill();  // the node's own BIRD stops answering
  ASSERT_TRUE(WaitFor(
      [&] {
        pc.RunOnce();
        return reports.size() >= 3;
      },
      30s));
  EXPECT_EQ(reports.back().key, "bird-session/daemon");
  EXPECT_EQ(reports.back().severity, 2) << reports.back().output;
}

}  // namespace
}  // namespace photon::agent::testing
