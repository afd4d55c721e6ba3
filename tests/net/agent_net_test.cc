// photon-agent wiring instance networks on the multi-host bed: a real photon-server in the
// router namespace, one real photon-agent per host namespace (network mode "ports"), real
// port namespaces, nftables and BIRD2. Instances of one VPC on different hosts reach each
// other; another VPC only through a security group rule; an agent killed with -9 adopts its
// ports; a delete leaves nothing behind. Needs root.
#include "tests/net/bed_cluster.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using photon::net_testing::ConnectFrom;

// A client workload: connects to argv[1]:7000 (retrying up to 20 s), prints the answer.
const char kClient[] =
    "import socket,sys,time\n"
    "end=time.time()+20\n"
    "while True:\n"
    "  try:\n"
    "    c=socket.create_connection((sys.argv[1],7000),timeout=2); print(c.recv(200).decode());"
    " sys.exit(0)\n"
    "  except OSError as e:\n"
    "    if time.time()>end: print(e); sys.exit(3)\n"
    "    time.sleep(0.2)\n";

class AgentNetTest : public BedClusterTest<AgentNetTest> {
 public:
  // h1, h2: network mode ports; h3: mode none (and no BIRD).
  static BedOptions Options() {
    BedOptions o;
    o.hosts = 3;
    o.tag = "n";
    o.mode = [](int i) { return std::string(i == 3 ? "none" : "ports"); };
    o.extra_flags = [](int i) {
      return std::vector<std::string>{"--labels", "zone=z" + std::to_string(i)};
    };
    // Container images only from the node's images root; confined rootfs trees where every
    // directory above them is searchable.
    o.prepare = [](const std::string& dir) -> std::string {
      if (!MakeDirs(dir + "/images", 0755).ok() || ::chmod(dir.c_str(), 0711) != 0)
        return "cannot prepare " + dir;
      ctr_root_ = new std::string("/var/tmp/photon-agentnet-ctr-XXXXXX");
      if (mkdtemp(ctr_root_->data()) == nullptr || ::chmod(ctr_root_->c_str(), 0711) != 0)
        return "cannot make the containers' rootfs root";
      return "";
    };
    o.agent_yaml = [](const std::string& dir) {
      return "drivers:\n  container: {images_root: \"" + dir + "/images\", rootfs_root: \"" +
             *ctr_root_ + "\"}\n  vm: {enabled: \"false\"}\n";
    };
    return o;
  }
  static void TearDownTestSuite() {
    BedClusterTest::TearDownTestSuite();
    std::error_code ec;
    if (ctr_root_ != nullptr) std::filesystem::remove_all(*ctr_root_, ec);
    delete ctr_root_;
    ctr_root_ = nullptr;
  }

 protected:
  // Creates a process instance on host i; the name is deleted at TearDown.
  void CreateProcess(const std::string& name, int host, std::vector<std::string> command,
                     const json& network = nullptr, const std::string& restart = "always") {
    json inst = {{"metadata", {{"name", name}, {"agentId", Node(host)}}},
                 {"spec",
                  {{"process", {{"command", command}, {"restartPolicy", restart}}},
                   {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
                   {"schedule", {{"nodes", {Node(host)}}}}}}};
    if (!network.is_null()) inst["spec"]["network"] = network;
    auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
    ASSERT_TRUE(r.status == 201 || r.status == 202) << r.status << " " << r.body;
    created_.push_back(name);
  }
  void CreateServer(const std::string& name, int host, const json& network = nullptr) {
    CreateProcess(name, host, {"/usr/bin/python3", "-c", kGreetingServer}, network);
  }
  std::string Phase(const std::string& name) {
    auto j = Get(InstancePath(name));
    if (!j.is_object()) return "GONE";
    return j.value("status", json::object()).value("phase", "PENDING");
  }
  // The workload's pid (the instance's process, found by its environment).
  pid_t WorkloadPid(const std::string& name) {
    pid_t pid = 0;
    WaitFor(
        [&] {
          auto pids = PidsWithEnv({"PHOTON_INSTANCE=" + name});
          for (pid_t p : pids) {
            if (Slurp("/proc/" + std::to_string(p) + "/comm").rfind("python3", 0) == 0 ||
                Slurp("/proc/" + std::to_string(p) + "/comm").rfind("busybox", 0) == 0 ||
                Slurp("/proc/" + std::to_string(p) + "/comm").rfind("httpd", 0) == 0) {
              pid = p;
            }
          }
          return pid > 0;
        },
        10s);
    return pid;
  }
  // What a TCP connection from namespace `from` to ip:7000 is greeted with ("" = no connection).
  static std::string Greeting(const std::string& from, const std::string& ip) {
    int fd = ConnectFrom(from, ip, 7000, 1500ms);
    return fd < 0 ? "" : ReadLine(fd);
  }
  static std::string GreetingWithin(const std::string& from, const std::string& ip,
                                    std::chrono::milliseconds timeout) {
    std::string g;
    WaitFor(
        [&] {
          g = Greeting(from, ip);
          return !g.empty();
        },
        timeout);
    return g;
  }

  inline static std::string* ctr_root_ = nullptr;
};

// Two process instances of the default VPC on different hosts: each workload runs in its own
// port namespace (without CAP_NET_ADMIN), they ping and open TCP to each other with their own
// source addresses, and a client workload reaches a server across hosts.
TEST_F(AgentNetTest, ProcessInstancesOfOneVpcTalkAcrossHosts) {
  const std::string a = Name("pa"), b = Name("pb"), c = Name("pc");
  const int64_t t0 = MonotonicNanos();
  CreateServer(a, 1);
  CreateServer(b, 2);
  json ia = WaitRunning(a), ib = WaitRunning(b);
  ASSERT_TRUE(ia.is_object() && ib.is_object());
  const std::string ip_a = Address(ia), ip_b = Address(ib);
  const std::string ns_a = PortNs(1, ia), ns_b = PortNs(2, ib);
  std::string g = GreetingWithin(ns_b, ip_a, 20s);
  std::printf("[ figure ] two creates -> first TCP across hosts: %.0f ms\n",
              static_cast<double>(MonotonicNanos() - t0) / 1e6);
  EXPECT_EQ(g, "hello from " + a + " to " + ip_b + "\n");
  EXPECT_EQ(GreetingWithin(ns_a, ip_b, 10s), "hello from " + b + " to " + ip_a + "\n");
  int rc = -1;
  std::string ping = bed_->Run(ns_a, {"ping", "-c", "1", "-W", "3", ip_b}, &rc);
  EXPECT_EQ(rc, 0) << ping;
  EXPECT_EQ(ia["status"]["details"].value("network.wired", ""), "port");
  // The routes went through the BIRD config the agents rendered (its session is "rack0").
  EXPECT_TRUE(bed_->RouterHas(ip_a) && bed_->RouterHas(ip_b));
  std::string protocols = bed_->Bird(bed_->Host(1), {"show", "protocols"});
  EXPECT_TRUE(std::regex_search(protocols, std::regex("rack0 +BGP .*Established"))) << protocols;

  // The workloads run in their port namespaces, holding no capability at all.
  pid_t pa = WorkloadPid(a);
  ASSERT_GT(pa, 0);
  EXPECT_EQ(InodeOf("/proc/" + std::to_string(pa) + "/ns/net"), InodeOf(ns_a));
  std::string status = Slurp("/proc/" + std::to_string(pa) + "/status");
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos) << status;
  // The host's own network is not reachable as the workload's: nothing listens on the node.
  EXPECT_EQ(Greeting(bed_->NsPath(bed_->Host(1)), "192.168.10.11"), "");

  // A privileged (admin-granted) workload in a port: root, but without CAP_NET_ADMIN.
  const std::string r = Name("pr");
  json priv = {{"metadata", {{"name", r}, {"agentId", Node(1)}}},
               {"spec",
                {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
                 {"security", {{"privileged", true}}},
                 {"schedule", {{"nodes", {Node(1)}}}}}}};
  auto posted = Call("POST", "/v1/namespaces/default/computeinstances", priv);
  ASSERT_EQ(posted.status / 100, 2) << posted.body;
  created_.push_back(r);
  json ir = WaitRunning(r);
  ASSERT_TRUE(ir.is_object());
  pid_t pr = WorkloadPid(r);
  ASSERT_GT(pr, 0);
  EXPECT_EQ(InodeOf("/proc/" + std::to_string(pr) + "/ns/net"), InodeOf(PortNs(1, ir)));
  std::string caps = Slurp("/proc/" + std::to_string(pr) + "/status");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(caps, m, std::regex("CapEff:\\t([0-9a-f]+)"))) << caps;
  const uint64_t eff = std::stoull(m[1], nullptr, 16);
  EXPECT_NE(eff, 0u) << caps;                 // root's other capabilities stay
  EXPECT_EQ(eff & (1ULL << 12), 0u) << caps;  // CAP_NET_ADMIN is gone
  ASSERT_TRUE(std::regex_search(caps, m, std::regex("CapBnd:\\t([0-9a-f]+)"))) << caps;
  EXPECT_EQ(std::stoull(m[1], nullptr, 16) & (1ULL << 12), 0u) << caps;

  // A client workload on host 2 reaches the server on host 1 by itself.
  CreateProcess(c, 2, {"/usr/bin/python3", "-c", kClient, ip_a}, nullptr, "never");
  json ic;
  ASSERT_TRUE(WaitFor(
      [&] {
        ic = Get(InstancePath(c));
        return ic.is_object() && ic["status"].contains("exitCode") &&
               ic["status"].value("phase", "") != "RUNNING" &&
               ic["status"].value("phase", "") != "CREATING";
      },
      40s))
      << ic.dump();
  EXPECT_EQ(ic["status"].value("exitCode", -1), 0) << ic.dump();
}

// Another VPC is refused until a security group rule allows its CIDR; removing the rule cuts
// new connections again.
TEST_F(AgentNetTest, OtherVpcOnlyThroughSecurityGroupRule) {
  const std::string vpc = Name("v2"), subnet = Name("s2"), sg = Name("web");
  ASSERT_EQ(Call("POST", "/v1/namespaces/default/vpcs",
                 {{"metadata", {{"name", vpc}}}, {"spec", {{"cidrBlock", "10.250.0.0/16"}}}})
                    .status /
                100,
            2);
  ASSERT_EQ(Call("POST", "/v1/namespaces/default/subnets",
                 {{"metadata", {{"name", subnet}}},
                  {"spec", {{"vpcId", vpc}, {"cidrBlock", "10.250.1.0/24"}}}})
                    .status /
                100,
            2);
  json egress_only = {{"direction", "egress"}, {"protocol", "any"}, {"cidr", "0.0.0.0/0"}};
  ASSERT_EQ(Call("POST", "/v1/namespaces/default/securitygroups",
                 {{"metadata", {{"name", sg}}}, {"spec", {{"rules", json::array({egress_only})}}}})
                    .status /
                100,
            2);
  const std::string a = Name("va"), d = Name("vd");
  CreateServer(a, 1);  // default VPC
  CreateServer(d, 2, {{"subnet", subnet}, {"securityGroups", {sg}}});
  json ia = WaitRunning(a), id = WaitRunning(d);
  ASSERT_TRUE(ia.is_object() && id.is_object());
  const std::string ip_a = Address(ia), ip_d = Address(id);
  ASSERT_EQ(ip_d.rfind("10.250.1.", 0), 0u) << ip_d;
  const std::string ns_a = PortNs(1, ia);
  // The route is there (the router learned it), the rules refuse the other VPC.
  ASSERT_TRUE(WaitFor([&] { return bed_->RouterHas(ip_d); }, 15s));
  EXPECT_EQ(Greeting(ns_a, ip_d), "");

  auto set_rules = [&](const json& rules) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      json cur = Get("/v1/namespaces/default/securitygroups/" + sg);
      cur["spec"]["rules"] = rules;
      auto r = Call("PUT", "/v1/namespaces/default/securitygroups/" + sg, cur);
      if (r.status / 100 == 2) return true;
      ADD_FAILURE() << r.status << " " << r.body;
    }
    return false;
  };
  json allow = {
      {"direction", "ingress"}, {"protocol", "tcp"}, {"portMin", 7000}, {"cidr", "10.0.0.0/8"}};
  ASSERT_TRUE(set_rules(json::array({egress_only, allow})));
  const int64_t t0 = MonotonicNanos();
  EXPECT_EQ(GreetingWithin(ns_a, ip_d, 10s), "hello from " + d + " to " + ip_a + "\n");
  std::printf("[ figure ] SG rule added -> first connection: %.0f ms\n",
              static_cast<double>(MonotonicNanos() - t0) / 1e6);

  ASSERT_TRUE(set_rules(json::array({egress_only})));
  EXPECT_TRUE(WaitFor([&] { return Greeting(ns_a, ip_d).empty(); }, 10s));
}

// A rule naming a remote security group admits exactly that group's members, kept up to date
// as members come and go: photon-server keeps the members in the group's status, stamps the
// Ports whose groups name it, and their agents refill the nftables set of the group in place
// (the table, its handle and its counters stay).
TEST_F(AgentNetTest, RemoteSecurityGroupAdmitsItsMembersAsTheyComeAndGo) {
  const std::string vpc = Name("rv"), subnet = Name("rs");
  const std::string app = Name("app"), other = Name("oth"), db = Name("db");
  auto post = [&](const std::string& plural, const json& body) {
    auto r = Call("POST", "/v1/namespaces/default/" + plural, body);
    EXPECT_EQ(r.status / 100, 2) << r.body;
  };
  post("vpcs", {{"metadata", {{"name", vpc}}}, {"spec", {{"cidrBlock", "10.251.0.0/16"}}}});
  post("subnets", {{"metadata", {{"name", subnet}}},
                   {"spec", {{"vpcId", vpc}, {"cidrBlock", "10.251.1.0/24"}}}});
  const json egress = {{"direction", "egress"}, {"protocol", "any"}, {"cidr", "0.0.0.0/0"}};
  for (const auto& g : {app, other})
    post("securitygroups", {{"metadata", {{"name", g}}}, {"spec", {{"rules", {egress}}}}});
  const json from_app = {{"direction", "ingress"},
                         {"protocol", "tcp"},
                         {"portMin", 7000},
                         {"remoteSecurityGroup", app}};
  post("securitygroups",
       {{"metadata", {{"name", db}}}, {"spec", {{"rules", json::array({egress, from_app})}}}});
  // The server in the default VPC (host 2); clients in another VPC (host 1), where only the
  // rule can let them in.
  const std::string d = Name("rd"), c1 = Name("rc1"), c2 = Name("rc2"), c3 = Name("rc3");
  CreateServer(d, 2, {{"securityGroups", {db}}});
  CreateServer(c1, 1, {{"subnet", subnet}, {"securityGroups", {app}}});
  CreateServer(c2, 1, {{"subnet", subnet}, {"securityGroups", {other}}});
  json id = WaitRunning(d), i1 = WaitRunning(c1), i2 = WaitRunning(c2);
  ASSERT_TRUE(id.is_object() && i1.is_object() && i2.is_object()) << AgentLog(2);
  const std::string ip_d = Address(id), ip_1 = Address(i1);
  const std::string ns_d = PortNs(2, id), ns_1 = PortNs(1, i1), ns_2 = PortNs(1, i2);
  ASSERT_TRUE(WaitFor([&] { return bed_->RouterHas(ip_d); }, 15s));
  EXPECT_EQ(GreetingWithin(ns_1, ip_d, 10s), "hello from " + d + " to " + ip_1 + "\n")
      << AgentLog(2);
  EXPECT_EQ(Greeting(ns_2, ip_d), "") << "not a member of " << app;

  // The table as it is now: its handle and revision marker must survive membership changes.
  auto table = [&] { return bed_->Run(ns_d, {"nft", "-a", "list", "table", "inet", "photon"}); };
  auto handle = [&] {  // "table inet photon { # handle N": a replaced table gets a new one
    std::string t = table();
    return t.rfind("table inet photon", 0) == 0 ? t.substr(0, t.find('\n')) : std::string();
  };
  const std::string handle0 = handle();
  ASSERT_NE(handle0.find("# handle"), std::string::npos) << table();
  auto sets = [&] { return bed_->Run(ns_d, {"nft", "list", "sets", "inet"}); };
  EXPECT_NE(sets().find(ip_1), std::string::npos) << sets();

  // A new member is let in without a resync, by a set update.
  const int64_t t0 = MonotonicNanos();
  CreateServer(c3, 2, {{"subnet", subnet}, {"securityGroups", {app}}});  // host 1 is full
  json i3 = WaitRunning(c3);
  ASSERT_TRUE(i3.is_object());
  const std::string ip_3 = Address(i3);
  EXPECT_EQ(GreetingWithin(PortNs(2, i3), ip_d, 10s), "hello from " + d + " to " + ip_3 + "\n")
      << sets() << AgentLog(2);
  std::printf("[ figure ] remote security group: new member created -> admitted %.0f ms\n",
              static_cast<double>(MonotonicNanos() - t0) / 1e6);
  EXPECT_EQ(handle(), handle0) << "the ruleset was replaced instead of its set updated";

  // A member that goes leaves the set (its address could be reused by a non-member).
  ASSERT_EQ(Call("DELETE", InstancePath(c1)).status / 100, 2);
  EXPECT_TRUE(WaitFor(
      [&] {
        return sets().find(ip_1 + ",") == std::string::npos &&
               sets().find(ip_1 + " ") == std::string::npos;
      },
      20s))
      << sets();
  EXPECT_NE(sets().find(ip_3), std::string::npos) << sets();
  EXPECT_EQ(handle(), handle0);
  EXPECT_EQ(Greeting(ns_2, ip_d), "");
  const double updates = Metric(AgentMetrics(2), "photon_agent_port_set_updates");
  EXPECT_GE(updates, 2) << "joined and left: two set updates on host 2";
}

// kill -9 of an agent and a restart: the port is adopted (no kernel change, nothing doubled),
// the workload keeps its connectivity; then a delete leaves no namespace, veth, route or table.
TEST_F(AgentNetTest, AgentKill9AdoptsPortsAndDeleteLeavesNothing) {
  const std::string a = Name("ka"), b = Name("kb");
  CreateServer(a, 1);
  CreateServer(b, 2);
  json ia = WaitRunning(a), ib = WaitRunning(b);
  ASSERT_TRUE(ia.is_object() && ib.is_object());
  const std::string ip_a = Address(ia), ns_a = PortNs(1, ia), ns_b = PortNs(2, ib);
  ASSERT_FALSE(GreetingWithin(ns_b, ip_a, 20s).empty());
  pid_t before = WorkloadPid(a);
  const std::string h1 = bed_->Host(1);

  agents_[1]->Kill(SIGKILL);
  ASSERT_TRUE(StartAgent(1)) << AgentLog(1);
  // Two resync passes of the restarted agent have reconciled the instance.
  ASSERT_TRUE(
      WaitFor([&] { return Metric(AgentMetrics(1), "photon_agent_port_applies_total") >= 2; }, 15s))
      << AgentMetrics(1);
  std::string metrics = AgentMetrics(1);
  EXPECT_EQ(Metric(metrics, "photon_agent_port_kernel_changes"), 0) << metrics;
  EXPECT_EQ(WorkloadPid(a), before);
  std::string id_a = ia["metadata"].value("id", "");
  EXPECT_EQ(CountLines(bed_->Run("", {"ip", "netns", "list"}), Prefix(1) + id_a), 1);
  EXPECT_EQ(CountLines(bed_->Run(h1, {"ip", "route", "show", ip_a + "/32"}), ip_a), 1);
  EXPECT_EQ(CountLines(bed_->Run(h1, {"ip", "-o", "link", "show"}), "photon-port:" + id_a), 1);
  EXPECT_EQ(CountLines(bed_->Run(ns_a, {"nft", "list", "tables"}), "table inet photon"), 1);
  EXPECT_FALSE(GreetingWithin(ns_b, ip_a, 10s).empty());

  // Delete: nothing of the port is left on host 1, nor its route at the router.
  ASSERT_EQ(Call("DELETE", InstancePath(a)).status / 100, 2);
  ASSERT_TRUE(WaitFor([&] { return Call("GET", InstancePath(a)).status == 404; }, 30s));
  EXPECT_FALSE(std::filesystem::exists(ns_a));
  EXPECT_EQ(bed_->Run(h1, {"ip", "route", "show", ip_a + "/32"}), "");
  // The veth goes with the namespace, which the kernel dismantles just after.
  EXPECT_TRUE(WaitFor(
      [&] {
        return CountLines(bed_->Run(h1, {"ip", "-o", "link", "show"}), "photon-port:" + id_a) == 0;
      },
      10s));
  EXPECT_TRUE(WaitFor([&] { return !bed_->RouterHas(ip_a); }, 10s));
  EXPECT_TRUE(PidsWithEnv({"PHOTON_INSTANCE=" + a}).empty());
}

// A container instance: runc joins the port namespace, so the container's eth0 is the port's;
// a process instance on another host reaches it, and it reaches that process.
TEST_F(AgentNetTest, ContainerInstanceGetsItsPort) {
  if (InChroot()) GTEST_SKIP() << "SKIPPED LOUDLY: inside a chroot runc cannot start containers";
  const std::string rootfs = *dir_ + "/images/busybox";
  auto made =
      RunCommand({"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-rootfs.sh", rootfs});
  ASSERT_TRUE(made.ok() && made->exit_code == 0);
  const std::string image = Name("busybox");
  ASSERT_EQ(Call("POST", "/v1/namespaces/default/images",
                 {{"metadata", {{"name", image}}},
                  {"spec", {{"sourcePath", rootfs}, {"format", "rootfs-dir"}}}})
                    .status /
                100,
            2);
  const std::string c = Name("ca"), p = Name("cp");
  json inst = {
      {"metadata", {{"name", c}, {"agentId", Node(2)}}},
      {"spec",
       {{"container",
         {{"image", image},
          {"command",
           {"/bin/sh", "-c",
            "while true; do echo \"hello from $PHOTON_INSTANCE\" | nc -l -p 7000; done"}}}},
        {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}},
        {"schedule", {{"nodes", {Node(2)}}}}}}};
  auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(r.status / 100, 2) << r.body;
  created_.push_back(c);
  CreateServer(p, 1);
  json ic = WaitRunning(c), ip = WaitRunning(p);
  ASSERT_TRUE(ic.is_object() && ip.is_object());
  const std::string ip_c = Address(ic), ip_p = Address(ip);
  const std::string ns_c = PortNs(2, ic), ns_p = PortNs(1, ip);
  EXPECT_EQ(GreetingWithin(ns_p, ip_c, 20s), "hello from " + c + "\n");
  // The container's processes are in the port namespace; it reaches the process instance.
  pid_t pc = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto pids = PidsWithEnv({"PHOTON_INSTANCE=" + c});
        pc = pids.empty() ? 0 : pids[0];
        return pc > 0;
      },
      10s));
  EXPECT_EQ(InodeOf("/proc/" + std::to_string(pc) + "/ns/net"), InodeOf(ns_c));
  const std::string want = "hello from " + p + " to " + ip_c + "\n";
  std::string out;
  WaitFor(
      [&] {
        out = bed_->Run(ns_c, {"nsenter", "--target", std::to_string(pc), "--net", "--mount", "--",
                               "/bin/sh", "-c", "nc " + ip_p + " 7000 </dev/null"});
        return out == want;
      },
      10s);
  EXPECT_EQ(out, want);
}

// A node in network mode "none" refuses an instance that needs a port (never runs it in the
// node's network) and still runs a hostNetwork instance.
TEST_F(AgentNetTest, NodeWithoutNetworkingRefusesPortInstances) {
  const std::string p = Name("np"), h = Name("nh");
  // The scheduler keeps an instance that needs a port off the node: by hand it is refused...
  json inst = {{"metadata", {{"name", p}, {"agentId", Node(3)}}},
               {"spec",
                {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  auto r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("network mode that cannot give it a port"), std::string::npos) << r.body;
  // ... and asked for, it waits PENDING saying why, never reaching the node.
  inst["metadata"].erase("agentId");
  inst["spec"]["schedule"] = {{"nodes", {Node(3)}}};
  r = Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(r.status / 100, 2) << r.body;
  created_.push_back(p);
  json j;
  ASSERT_TRUE(WaitFor(
      [&] {
        j = Get(InstancePath(p));
        return j.is_object() &&
               j["status"].value("message", "").find("network mode that cannot give it a port") !=
                   std::string::npos;
      },
      20s))
      << j.dump();
  EXPECT_EQ(j["status"].value("phase", ""), "PENDING") << j.dump();
  EXPECT_EQ(j["metadata"].value("agentId", ""), "") << j.dump();
  EXPECT_TRUE(PidsWithEnv({"PHOTON_INSTANCE=" + p}).empty());
  CreateProcess(h, 3, {"/usr/bin/python3", "-c", kGreetingServer}, {{"hostNetwork", true}});
  ASSERT_TRUE(WaitFor([&] { return Phase(h) == "RUNNING"; }, 30s)) << Get(InstancePath(h)).dump();
  EXPECT_FALSE(GreetingWithin(bed_->NsPath(bed_->Host(3)), "192.168.10.13", 10s).empty());
}

// The agent serves the metadata service (ports mode) at 169.254.1.2: from each instance's
// port namespace, curl gets that instance's own data, identified by its address alone.
TEST_F(AgentNetTest, MetadataServiceAnswersEachInstanceItsOwnData) {
  const std::string a = Name("mda"), b = Name("mdb");
  CreateServer(a, 1);
  CreateServer(b, 1);
  for (const std::string& name : {a, b}) {
    json inst = WaitRunning(name);
    ASSERT_TRUE(inst.is_object());
    const std::string ns = PortNs(1, inst);
    auto md = json::parse(bed_->Run(ns, {"curl", "-s", "-m", "5",
                                         "http://169.254.1.2/openstack/latest/meta_data.json"}),
                          nullptr, false);
    ASSERT_TRUE(md.is_object()) << name;
    EXPECT_EQ(md.value("uuid", ""), inst["metadata"].value("id", ""));
    EXPECT_EQ(md.value("name", ""), name);
    auto nd = json::parse(bed_->Run(ns, {"curl", "-s", "-m", "5",
                                         "http://169.254.1.2/openstack/latest/network_data.json"}),
                          nullptr, false);
    ASSERT_TRUE(nd.is_object()) << name;
    EXPECT_EQ(nd["networks"][0].value("ip_address", ""), Address(inst));
  }
  // SSH keys: a's annotation photon.io/ssh-authorized-keys (one key a line), in both layouts;
  // b sees none of them.
  const std::string k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtestkeyone k1@test";
  const std::string k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtestkeytwo k2@test";
  json cur = Get(InstancePath(a));
  ASSERT_TRUE(cur.is_object());
  cur["metadata"]["annotations"]["photon.io/ssh-authorized-keys"] = k1 + "\n# a comment\n\n" + k2;
  auto put = Call("PUT", InstancePath(a), cur);
  ASSERT_EQ(put.status / 100, 2) << put.body;
  const std::string ns_a = PortNs(1, Get(InstancePath(a))), ns_b = PortNs(1, Get(InstancePath(b)));
  json md;
  ASSERT_TRUE(WaitFor(
      [&] {
        md = json::parse(bed_->Run(ns_a, {"curl", "-s", "-m", "5",
                                          "http://169.254.1.2/openstack/latest/meta_data.json"}),
                         nullptr, false);
        return md.is_object() && md.value("public_keys", json::object()).size() == 2;
      },
      10s))
      << md.dump();
  EXPECT_EQ(md["keys"][0].value("data", ""), k1) << md.dump();
  EXPECT_EQ(md["keys"][1].value("data", ""), k2) << md.dump();
  const std::string token = bed_->Run(
      ns_a, {"curl", "-s", "-m", "5", "-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
             "http://169.254.1.2/latest/api/token"});
  EXPECT_EQ(bed_->Run(ns_a, {"curl", "-s", "-m", "5", "-H", "X-aws-ec2-metadata-token: " + token,
                             "http://169.254.1.2/latest/meta-data/public-keys/1/openssh-key"}),
            k2);
  json md_b = json::parse(bed_->Run(ns_b, {"curl", "-s", "-m", "5",
                                           "http://169.254.1.2/openstack/latest/meta_data.json"}),
                          nullptr, false);
  ASSERT_TRUE(md_b.is_object());
  EXPECT_TRUE(md_b.value("public_keys", json::object()).empty()) << md_b.dump();
}

}  // namespace
}  // namespace photon::agent::testing
