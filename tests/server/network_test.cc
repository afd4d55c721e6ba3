// prismnet's control plane against the real photon-server binary over REST: validation of
// Vpc/Subnet/SecurityGroup/instance networks (400 naming the field), the default VPC, IPAM
// (distinct addresses under concurrent creates, exhaustion, release, kill -9), hostNetwork,
// and the Port/status contract with the node agents (docs/networking.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "common/util.h"
#include "store/sqlite_store.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// photon-server as a child process on its own data dir (kept across restarts).
class ServerProc {
 public:
  // `config`: YAML for --config ("" = none).
  explicit ServerProc(const std::string& config = "")
      : dir_(MakeTempDir("net")), port_(FreePort()) {
    if (!config.empty()) {
      config_ = dir_ + "/config.yaml";
      EXPECT_TRUE(WriteFileAtomic(config_, config, 0600).ok());
    }
    Start();
  }
  ~ServerProc() {
    Stop(SIGTERM);
    std::filesystem::remove_all(dir_);
  }
  void Start() {
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
    const std::string grpc = "127.0.0.1:" + std::to_string(FreePort());
    pid_ = fork();
    if (pid_ == 0) {
      if (config_.empty()) {
        execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", dir_.c_str(), "--listen",
              listen.c_str(), "--grpc-listen", grpc.c_str(), "--log-level", "warn", nullptr);
      } else {
        execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", dir_.c_str(), "--listen",
              listen.c_str(), "--grpc-listen", grpc.c_str(), "--log-level", "warn", "--config",
              config_.c_str(), nullptr);
      }
      _exit(127);
    }
    auto c = *cli::HttpClient::Create(base(), "");
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = c.Do("GET", "/healthz");
      if (r.ok() && r->status == 200) {
        token_ = Trim(*ReadFile(dir_ + "/admin.token"));
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "photon-server did not become healthy";
  }
  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  cli::HttpClient Admin() const { return *cli::HttpClient::Create(base(), token_); }
  cli::HttpClient Client(const std::string& token) const {
    return *cli::HttpClient::Create(base(), token);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string config_;
  int port_;
  pid_t pid_ = 0;
  std::string token_;
};

std::string Path(const std::string& ns, const std::string& plural, const std::string& name = "") {
  return "/v1/namespaces/" + ns + "/" + plural + (name.empty() ? "" : "/" + name);
}

json Instance(const std::string& name, json network = nullptr) {
  json obj = json::parse(ProcessInstance(name));
  if (!network.is_null()) obj["spec"]["network"] = network;
  return obj;
}

void MustCreate(cli::HttpClient& c, const std::string& ns, const std::string& plural,
                const json& body) {
  auto r = c.Do("POST", Path(ns, plural), body.dump());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 202) << r->body;
}

void MakeNetwork(cli::HttpClient& c, const std::string& ns, const std::string& vpc_cidr,
                 const std::string& subnet_cidr) {
  MustCreate(c, ns, "vpcs", {{"metadata", {{"name", "v"}}}, {"spec", {{"cidrBlock", vpc_cidr}}}});
  MustCreate(
      c, ns, "subnets",
      {{"metadata", {{"name", "s"}}}, {"spec", {{"vpcId", "v"}, {"cidrBlock", subnet_cidr}}}});
}

// 400 (or `code`) whose message names `field` (and `also`, when given).
void ExpectRefused(cli::HttpClient& c, const std::string& path, const json& body,
                   const std::string& field, const std::string& also = "", int code = 400) {
  auto r = c.Do("POST", path, body.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, code) << body.dump() << " → " << r->body;
  EXPECT_NE(r->body.find(field), std::string::npos) << "no '" << field << "' in " << r->body;
  if (!also.empty()) {
    EXPECT_NE(r->body.find(also), std::string::npos) << r->body;
  }
}

std::vector<json> Items(cli::HttpClient& c, const std::string& path) {
  auto r = c.Do("GET", path);
  EXPECT_EQ(r->status, 200) << r->body;
  const json list = Json(*r);  // kept: a range over a temporary's member would dangle
  std::vector<json> out;
  for (const auto& i : list["items"]) out.push_back(i);
  return out;
}

json Get(cli::HttpClient& c, const std::string& path) {
  auto r = c.Do("GET", path);
  EXPECT_TRUE(r.ok() && r->status == 200) << path;
  return Json(*r);
}

// Polls `pred` until it holds or the deadline passes.
template <typename F>
bool Eventually(F pred, std::chrono::milliseconds within = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

std::string Address(const json& ci) {
  const auto& a = ci["status"]["addresses"];
  return a.empty() ? "" : a[0].get<std::string>();
}

TEST(Network, BadInputIsRefusedNamingTheField) {
  ServerProc s;
  auto c = s.Admin();
  MakeNetwork(c, "a", "10.20.0.0/16", "10.20.1.0/24");
  // A VPC overlapping another namespace's VPC: one routing domain.
  ExpectRefused(c, Path("b", "vpcs"),
                {{"metadata", {{"name", "w"}}}, {"spec", {{"cidrBlock", "10.20.128.0/17"}}}},
                "spec.cidrBlock", "VPC 'a/v'");
  ExpectRefused(c, Path("b", "vpcs"),
                {{"metadata", {{"name", "w"}}}, {"spec", {{"cidrBlock", "10.30.0.1/16"}}}},
                "spec.cidrBlock", "host bits");
  ExpectRefused(c, Path("b", "vpcs"),
                {{"metadata", {{"name", "w"}}}, {"spec", {{"cidrBlock", "169.254.0.0/16"}}}},
                "spec.cidrBlock", "link-local");
  ExpectRefused(
      c, Path("a", "subnets"),
      {{"metadata", {{"name", "out"}}}, {"spec", {{"vpcId", "v"}, {"cidrBlock", "10.21.0.0/24"}}}},
      "spec.cidrBlock", "outside VPC 'v'");
  ExpectRefused(
      c, Path("a", "subnets"),
      {{"metadata", {{"name", "over"}}}, {"spec", {{"vpcId", "v"}, {"cidrBlock", "10.20.0.0/23"}}}},
      "spec.cidrBlock", "subnet 's'");
  ExpectRefused(
      c, Path("a", "subnets"),
      {{"metadata", {{"name", "x"}}}, {"spec", {{"vpcId", "nope"}, {"cidrBlock", "10.20.9.0/24"}}}},
      "spec.vpcId", "'nope'");
  ExpectRefused(c, Path("a", "securitygroups"),
                {{"metadata", {{"name", "g"}}},
                 {"spec",
                  {{"rules", json::array({{{"direction", "ingress"},
                                           {"protocol", "tcp"},
                                           {"portMin", 80},
                                           {"portMax", 70000}}})}}}},
                "spec.rules[0].portMax", "70000");
  ExpectRefused(
      c, Path("a", "securitygroups"),
      {{"metadata", {{"name", "g"}}},
       {"spec",
        {{"rules", json::array({{{"direction", "ingress"}, {"remoteSecurityGroup", "ghost"}}})}}}},
      "spec.rules[0].remoteSecurityGroup", "'ghost'");
  ExpectRefused(c, Path("a", "computeinstances"),
                Instance("i", {{"subnet", "s"}, {"fixedIp", "10.20.2.7"}}), "spec.network.fixedIp",
                "outside subnet 's'");
  ExpectRefused(c, Path("a", "computeinstances"),
                Instance("i", {{"subnet", "s"}, {"fixedIp", "10.20.1.255"}}),
                "spec.network.fixedIp", "reserved");
  ExpectRefused(c, Path("a", "computeinstances"),
                Instance("i", {{"subnet", "s"}, {"securityGroups", {"ghost"}}}),
                "spec.network.securityGroups[0]", "'ghost'");
  ExpectRefused(c, Path("a", "computeinstances"), Instance("i", {{"subnet", "nope"}}),
                "spec.network.subnet", "'nope'");
  ExpectRefused(c, Path("a", "computeinstances"), Instance("i", {{"vpc", "w"}, {"subnet", "s"}}),
                "spec.network.vpc");
  // A fixed address taken by another instance.
  MustCreate(c, "a", "computeinstances",
             Instance("one", {{"subnet", "s"}, {"fixedIp", "10.20.1.9"}}));
  EXPECT_EQ(Address(Get(c, Path("a", "computeinstances", "one"))), "10.20.1.9");
  ExpectRefused(c, Path("a", "computeinstances"),
                Instance("two", {{"subnet", "s"}, {"fixedIp", "10.20.1.9"}}),
                "spec.network.fixedIp", "taken");
  // Without a floating IP pool in the server's config there is no floating IP to give.
  ExpectRefused(c, Path("a", "floatingips"),
                {{"metadata", {{"name", "f"}}}, {"spec", {{"instance", "one"}}}}, "floatingips",
                "floating_ip_pool");
  // The network of an instance is fixed at creation.
  json one = Get(c, Path("a", "computeinstances", "one"));
  one["spec"]["network"]["fixedIp"] = "10.20.1.10";
  auto r = c.Do("PUT", Path("a", "computeinstances", "one"), one.dump());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("spec.network"), std::string::npos) << r->body;
  // A subnet in use is not deleted from under its instance.
  r = c.Do("DELETE", Path("a", "subnets", "s"));
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("computeinstances/a/one"), std::string::npos) << r->body;
}

TEST(Network, DefaultVpcIsCreatedOnceUnderConcurrentCreates) {
  ServerProc s;
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 12; ++t) {
    ts.emplace_back([&, t] {
      auto c = s.Admin();
      for (const std::string ns : {"p", "q"}) {
        auto r =
            c.Do("POST", Path(ns, "computeinstances"), Instance("i" + std::to_string(t)).dump());
        if (r.ok() && r->status == 202) ++ok;
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(ok, 24);
  auto c = s.Admin();
  std::set<std::string> cidrs;
  for (const std::string ns : {"p", "q"}) {
    auto vpcs = Items(c, Path(ns, "vpcs"));
    auto subnets = Items(c, Path(ns, "subnets"));
    ASSERT_EQ(vpcs.size(), 1u) << ns;
    ASSERT_EQ(subnets.size(), 1u) << ns;
    EXPECT_EQ(vpcs[0]["metadata"]["name"], "default");
    EXPECT_EQ(subnets[0]["spec"]["vpcId"], "default");
    cidrs.insert(vpcs[0]["spec"]["cidrBlock"].get<std::string>());
    std::set<std::string> addrs;
    for (const auto& ci : Items(c, Path(ns, "computeinstances"))) {
      addrs.insert(Address(ci));
      EXPECT_EQ(ci["status"]["details"]["network.vpc"], "default");
      EXPECT_EQ(ci["status"]["details"]["network.cidr"], subnets[0]["spec"]["cidrBlock"]);
    }
    EXPECT_EQ(addrs.size(), 12u) << ns;
  }
  EXPECT_EQ(cidrs.size(), 2u) << "each namespace has its own default VPC CIDR";
}

// The (subnet, address) pairs the store holds as allocated, read from its file.
std::set<std::string> StoredAllocations(const std::string& dir) {
  auto st = store::SqliteStore::Open(dir + "/state.db", {});
  EXPECT_TRUE(st.ok()) << st.status();
  std::set<std::string> out;
  if (!st.ok()) return out;
  auto r = (*st)->Range("/ipam/", {.end = store::PrefixEnd("/ipam/")});
  EXPECT_TRUE(r.ok());
  for (const auto& kv : r->kvs) out.insert(kv.key.substr(6));  // ns/subnet/address
  return out;
}

std::set<std::string> LiveAllocations(cli::HttpClient& c, const std::string& ns) {
  std::set<std::string> out;
  std::map<std::string, std::string> ports;
  for (const auto& p : Items(c, Path(ns, "ports")))
    ports[p["metadata"]["name"]] = p["spec"]["ipAddress"];
  size_t with_address = 0;
  for (const auto& ci : Items(c, Path(ns, "computeinstances"))) {
    const std::string a = Address(ci);
    if (a.empty()) continue;
    ++with_address;
    EXPECT_EQ(ports[ci["metadata"]["name"]], a) << "port of " << ci["metadata"]["name"];
    EXPECT_TRUE(out.insert(ns + "/s/" + a).second) << a << " is held twice";
  }
  EXPECT_EQ(ports.size(), with_address) << "a port without its instance";
  return out;
}

TEST(Network, TwoHundredConcurrentCreatesGetDistinctAddresses) {
  ServerProc s;
  auto admin = s.Admin();
  MakeNetwork(admin, "ipam", "10.40.0.0/16", "10.40.7.0/24");
  std::vector<std::thread> ts;
  std::atomic<int> next{0}, created{0};
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&] {
      auto c = s.Admin();
      for (int i; (i = next++) < 200;) {
        auto r = c.Do("POST", Path("ipam", "computeinstances"),
                      Instance("c" + std::to_string(i), {{"subnet", "s"}}).dump());
        if (r.ok() && r->status == 202) ++created;
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(created, 200);
  auto live = LiveAllocations(admin, "ipam");
  EXPECT_EQ(live.size(), 200u);
  for (const auto& a : live) {
    const std::string addr = a.substr(a.rfind('/') + 1);
    EXPECT_EQ(addr.rfind("10.40.7.", 0), 0u) << addr;
    EXPECT_NE(addr, "10.40.7.0");
    EXPECT_NE(addr, "10.40.7.1");
    EXPECT_NE(addr, "10.40.7.255");
  }
}

TEST(Network, ExhaustionWaitsNamingTheSubnetAndADeleteFreesTheAddress) {
  ServerProc s;
  auto c = s.Admin();
  // /29: 8 addresses less network, gateway (.1) and broadcast = 5.
  MakeNetwork(c, "full", "10.50.0.0/16", "10.50.0.0/29");
  for (int i = 0; i < 6; ++i) {
    MustCreate(c, "full", "computeinstances", Instance("f" + std::to_string(i), {{"subnet", "s"}}));
  }
  json waiting = Get(c, Path("full", "computeinstances", "f5"));
  EXPECT_EQ(Address(waiting), "");
  EXPECT_EQ(waiting["status"]["phase"], "PENDING");
  const std::string msg = waiting["status"]["message"];
  EXPECT_NE(msg.find("subnet 's' (10.50.0.0/29)"), std::string::npos) << msg;
  bool condition = false;
  for (const auto& cond : waiting["status"]["conditions"]) {
    if (cond["type"] == "NetworkReady") {
      condition = true;
      EXPECT_EQ(cond["status"], "False");
      EXPECT_EQ(cond["reason"], "SubnetExhausted");
    }
  }
  EXPECT_TRUE(condition) << waiting.dump();
  const std::string freed = Address(Get(c, Path("full", "computeinstances", "f2")));
  ASSERT_EQ(c.Do("DELETE", Path("full", "computeinstances", "f2"))->status, 202);
  EXPECT_TRUE(Eventually(
      [&] { return Address(Get(c, Path("full", "computeinstances", "f5"))) == freed; }, 10s))
      << "the waiting instance did not get " << freed;
  LiveAllocations(c, "full");
}

TEST(Network, NoLeakedOrDoubledAddressAfterKill9DuringChurn) {
  ServerProc s;
  {
    auto c = s.Admin();
    MakeNetwork(c, "churn", "10.60.0.0/16", "10.60.0.0/24");
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t) {
    ts.emplace_back([&, t] {
      auto c = s.Admin();
      for (int i = 0; !stop; ++i) {
        const std::string name = "k" + std::to_string(t) + "-" + std::to_string(i % 20);
        auto r = c.Do("POST", Path("churn", "computeinstances"),
                      Instance(name, {{"subnet", "s"}}).dump());
        if (!r.ok()) break;
        if (i % 3 == 0) {
          if (!c.Do("DELETE", Path("churn", "computeinstances", name)).ok()) break;
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  s.Stop(SIGKILL);
  stop = true;
  for (auto& t : ts) t.join();
  const std::set<std::string> stored = StoredAllocations(s.dir());
  s.Start();
  auto c = s.Admin();
  const std::set<std::string> live = LiveAllocations(c, "churn");
  ASSERT_GT(live.size(), 20u);
  EXPECT_EQ(stored, live) << "allocations in the store differ from the live instances' addresses";
  // Every address not held by a live instance can still be handed out: 253 usable in all.
  const int room = 253 - static_cast<int>(live.size());
  for (int i = 0; i < room; ++i) {
    MustCreate(c, "churn", "computeinstances",
               Instance("fill" + std::to_string(i), {{"subnet", "s"}}));
  }
  EXPECT_EQ(LiveAllocations(c, "churn").size(), 253u);
  MustCreate(c, "churn", "computeinstances", Instance("one-too-many", {{"subnet", "s"}}));
  EXPECT_EQ(Address(Get(c, Path("churn", "computeinstances", "one-too-many"))), "");
}

TEST(Network, HostNetworkIsForClusterAdminsOnly) {
  ServerProc s;
  auto admin = s.Admin();
  json body = {{"principal", "eve"},
               {"bindings", json::array({{{"namespace", "team"}, {"role", "editor"}}})}};
  auto t = admin.Do("POST", "/v1/tokens", body.dump());
  ASSERT_EQ(t->status, 201) << t->body;
  auto editor = s.Client(Json(*t)["token"]);
  ExpectRefused(editor, Path("team", "computeinstances"), Instance("h", {{"hostNetwork", true}}),
                "spec.network.hostNetwork", "admin", 403);
  MustCreate(admin, "team", "computeinstances", Instance("h", {{"hostNetwork", true}}));
  json h = Get(admin, Path("team", "computeinstances", "h"));
  EXPECT_EQ(h["status"]["details"]["network.mode"], "host");
  EXPECT_TRUE(Items(admin, Path("team", "ports")).empty());
  // Host network and a VPC at once is a contradiction.
  ExpectRefused(admin, Path("team", "computeinstances"),
                Instance("h2", {{"hostNetwork", true}, {"subnet", "x"}}),
                "spec.network.hostNetwork");
  // The editor's own instances get a VPC address.
  MustCreate(editor, "team", "computeinstances", Instance("plain"));
  EXPECT_NE(Address(Get(editor, Path("team", "computeinstances", "plain"))), "");
}

// A node registered through the join flow and marked READY once; returns its agent client.
cli::HttpClient JoinReadyNode(const ServerProc& s, const std::string& name) {
  auto join = s.Client(Trim(*ReadFile(s.dir() + "/join.token")));
  auto j = join.Do("POST", "/v1/join", json{{"node", name}}.dump());
  EXPECT_EQ(j->status, 201) << j->body;
  auto agent = s.Client(Json(*j)["token"]);
  json node = {{"metadata", {{"name", name}}},
               {"spec",
                {{"capacity", {{"vcpu", 8}, {"memoryMb", 8192}, {"diskGb", 100}}},
                 {"drivers", {"process"}}}}};
  EXPECT_EQ(agent.Do("POST", "/v1/namespaces/system/nodes", node.dump())->status, 202);
  json n = Get(agent, "/v1/namespaces/system/nodes/" + name);
  n["nodeStatus"]["condition"] = "READY";
  n["nodeStatus"]["lastHeartbeat"] = NowRfc3339();
  EXPECT_EQ(agent.Do("PUT", "/v1/namespaces/system/nodes/" + name + "/status", n.dump())->status,
            200);
  return agent;
}

TEST(Network, PortFollowsPlacementAndAgentStatusKeepsTheVpcAddress) {
  ServerProc s;
  auto admin = s.Admin();
  auto agent = JoinReadyNode(s, "n1");

  MustCreate(admin, "default", "computeinstances", Instance("w"));
  const std::string path = Path("default", "computeinstances", "w");
  ASSERT_TRUE(Eventually([&] { return Get(admin, path)["metadata"]["agentId"] == "n1"; }));
  json port = Get(admin, Path("default", "ports", "w"));
  EXPECT_EQ(port["metadata"]["agentId"], "n1") << "the Port follows its instance's placement";
  json ci = Get(admin, path);
  const std::string vpc = Address(ci);
  EXPECT_EQ(port["spec"]["ipAddress"], vpc);
  EXPECT_EQ(port["spec"]["instance"], ci["metadata"]["id"]);
  EXPECT_EQ(port["spec"]["subnet"], "default");
  const std::string mac = port["spec"]["macAddress"];
  EXPECT_EQ(mac.substr(0, 3), "02:") << "locally administered";
  // The agent reads its port and writes its status; then reports the instance with addresses
  // of its own, and the VPC address stays first.
  EXPECT_EQ(agent.Do("GET", Path("default", "ports", "w"))->status, 200);
  EXPECT_EQ(agent.Do("GET", Path("default", "subnets", "default"))->status, 200);
  port["status"]["phase"] = "RUNNING";
  auto pw = agent.Do("PUT", Path("default", "ports", "w") + "/status", port.dump());
  EXPECT_EQ(pw->status, 200) << pw->body;
  ci["status"]["phase"] = "RUNNING";
  ci["status"]["addresses"] = json::array({"127.0.0.1"});
  ci["status"]["details"] = json::object();
  ci["status"]["conditions"] = json::array();
  auto w = agent.Do("PUT", path + "/status", ci.dump());
  ASSERT_EQ(w->status, 200) << w->body;
  json after = Get(admin, path);
  ASSERT_EQ(after["status"]["addresses"].size(), 2u) << after["status"].dump();
  EXPECT_EQ(after["status"]["addresses"][0], vpc);
  EXPECT_EQ(after["status"]["addresses"][1], "127.0.0.1");
  EXPECT_EQ(after["status"]["details"]["network.subnet"], "default");
  // A delete waits for the agent; its finish frees the port.
  ASSERT_EQ(admin.Do("DELETE", path)->status, 202);
  EXPECT_EQ(admin.Do("GET", Path("default", "ports", "w"))->status, 200)
      << "until the agent is done";
  ASSERT_EQ(agent.Do("DELETE", path)->status, 202);
  EXPECT_EQ(admin.Do("GET", Path("default", "ports", "w"))->status, 404);
}

json Fip(const std::string& name, const std::string& instance, const std::string& address = "") {
  json spec = {{"instance", instance}};
  if (!address.empty()) spec["address"] = address;
  return {{"metadata", {{"name", name}}}, {"spec", spec}};
}

TEST(Network, FloatingIpsComeFromThePoolOnePerInstanceAndFollowPlacement) {
  ServerProc s("floating_ip_pool: 203.0.113.0/30\n");  // usable: .1 and .2
  auto c = s.Admin();
  auto agent = JoinReadyNode(s, "n1");
  ExpectRefused(c, Path("a", "vpcs"),
                {{"metadata", {{"name", "p"}}}, {"spec", {{"cidrBlock", "203.0.112.0/23"}}}},
                "spec.cidrBlock", "floating IP pool");
  MakeNetwork(c, "a", "10.40.0.0/16", "10.40.1.0/24");
  MustCreate(c, "a", "computeinstances", Instance("one", {{"subnet", "s"}}));
  MustCreate(c, "a", "computeinstances", Instance("two", {{"subnet", "s"}}));
  MustCreate(c, "a", "computeinstances", Instance("host", {{"hostNetwork", true}}));
  ASSERT_TRUE(Eventually(
      [&] { return Get(c, Path("a", "computeinstances", "one"))["metadata"]["agentId"] == "n1"; }));
  const std::string one_ip = Address(Get(c, Path("a", "computeinstances", "one")));

  ExpectRefused(c, Path("a", "floatingips"), Fip("f", "ghost"), "spec.instance", "'ghost'");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f", "host"), "spec.instance", "hostNetwork");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f", "one", "198.51.100.7"), "spec.address",
                "pool 203.0.113.0/30");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f", "one", "not-an-ip"), "spec.address");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f", "Bad_Name"), "spec.instance");

  // Allocated from the pool, mapped to the instance's VPC address on its node.
  MustCreate(c, "a", "floatingips", Fip("f1", "one"));
  json f1 = Get(c, Path("a", "floatingips", "f1"));
  EXPECT_EQ(f1["spec"]["address"], "203.0.113.1");
  EXPECT_EQ(f1["status"]["details"]["privateIp"], one_ip);
  EXPECT_EQ(f1["status"]["details"]["node"], "n1");
  EXPECT_EQ(f1["status"]["phase"], "RUNNING") << f1.dump();
  EXPECT_EQ(Get(c, Path("a", "ports", "one"))["spec"]["floatingIp"], "203.0.113.1");
  EXPECT_EQ(Get(agent, Path("a", "ports", "one"))["spec"]["floatingIp"], "203.0.113.1")
      << "the node's agent learns it from the Port it watches";
  // One per instance; an address once.
  ExpectRefused(c, Path("a", "floatingips"), Fip("f2", "one"), "spec.instance",
                "already has floating IP 203.0.113.1");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f2", "two", "203.0.113.1"), "spec.address",
                "taken by floatingips/a/f1");
  MustCreate(c, "a", "floatingips", Fip("f2", ""));
  EXPECT_EQ(Get(c, Path("a", "floatingips", "f2"))["spec"]["address"], "203.0.113.2");
  ExpectRefused(c, Path("a", "floatingips"), Fip("f3", ""), "floating IP pool 203.0.113.0/30",
                "exhausted", 429);

  // The address cannot change; the instance can (dissociate, associate elsewhere).
  f1 = Get(c, Path("a", "floatingips", "f1"));
  f1["spec"]["address"] = "203.0.113.2";
  auto r = c.Do("PUT", Path("a", "floatingips", "f1"), f1.dump());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("spec.address"), std::string::npos) << r->body;
  f1 = Get(c, Path("a", "floatingips", "f1"));
  f1["spec"]["instance"] = "two";
  r = c.Do("PUT", Path("a", "floatingips", "f1"), f1.dump());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Get(c, Path("a", "ports", "one"))["spec"].value("floatingIp", ""), "");
  EXPECT_EQ(Get(c, Path("a", "ports", "two"))["spec"]["floatingIp"], "203.0.113.1");
  EXPECT_EQ(Get(c, Path("a", "floatingips", "f1"))["status"]["details"]["instance"], "two");
  json f2 = Get(c, Path("a", "floatingips", "f2"));
  f2["spec"]["instance"] = "two";
  r = c.Do("PUT", Path("a", "floatingips", "f2"), f2.dump());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("spec.instance"), std::string::npos) << r->body;
  // A delete dissociates and frees the address.
  ASSERT_EQ(c.Do("DELETE", Path("a", "floatingips", "f1"))->status, 202);
  EXPECT_EQ(c.Do("GET", Path("a", "floatingips", "f1"))->status, 404);
  EXPECT_EQ(Get(c, Path("a", "ports", "two"))["spec"].value("floatingIp", ""), "");
  MustCreate(c, "a", "floatingips", Fip("f3", "one"));
  EXPECT_EQ(Get(c, Path("a", "floatingips", "f3"))["spec"]["address"], "203.0.113.1");
}

// As AWS disassociates an Elastic IP when its instance terminates: the instance's final
// delete clears the FloatingIp's instance in the same transaction; the address stays allocated.
TEST(Network, InstanceDeleteDissociatesItsFloatingIp) {
  ServerProc s("floating_ip_pool: 203.0.113.0/30\n");
  auto c = s.Admin();
  auto agent = JoinReadyNode(s, "n1");
  MakeNetwork(c, "a", "10.41.0.0/16", "10.41.1.0/24");
  MustCreate(c, "a", "computeinstances", Instance("one", {{"subnet", "s"}}));
  MustCreate(c, "a", "computeinstances", Instance("two", {{"subnet", "s"}}));
  const std::string one = Path("a", "computeinstances", "one");
  ASSERT_TRUE(Eventually([&] { return Get(c, one)["metadata"]["agentId"] == "n1"; }));
  MustCreate(c, "a", "floatingips", Fip("f1", "one"));
  ASSERT_EQ(Get(c, Path("a", "floatingips", "f1"))["status"]["details"]["instance"], "one");

  // The delete waits for the agent: until it finishes, the FloatingIp still maps the instance.
  ASSERT_EQ(c.Do("DELETE", one)->status, 202);
  EXPECT_EQ(Get(c, Path("a", "floatingips", "f1"))["spec"]["instance"], "one");
  auto fin = agent.Do("DELETE", one);
  ASSERT_EQ(fin->status, 202) << fin->body;
  EXPECT_EQ(c.Do("GET", one)->status, 404);
  json f1 = Get(c, Path("a", "floatingips", "f1"));
  EXPECT_EQ(f1["spec"].value("instance", ""), "") << f1.dump();
  EXPECT_EQ(f1["spec"]["address"], "203.0.113.1") << "the address stays allocated";
  EXPECT_FALSE(f1["status"]["details"].contains("instance")) << f1.dump();
  EXPECT_FALSE(f1["status"]["details"].contains("node")) << f1.dump();
  EXPECT_NE(f1["status"].value("message", "").find("'one' was deleted"), std::string::npos)
      << f1.dump();

  // A new instance of that name is not the old one's: nothing maps it; re-associating works.
  MustCreate(c, "a", "computeinstances", Instance("one", {{"subnet", "s"}}));
  ASSERT_TRUE(Eventually([&] { return Get(c, one)["metadata"]["agentId"] == "n1"; }));
  EXPECT_EQ(Get(c, Path("a", "ports", "one"))["spec"].value("floatingIp", ""), "");
  f1["spec"]["instance"] = "two";
  auto r = c.Do("PUT", Path("a", "floatingips", "f1"), f1.dump());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Get(c, Path("a", "ports", "two"))["spec"]["floatingIp"], "203.0.113.1");
}

TEST(Network, BadFloatingIpPoolIsRefusedAtStart) {
  const std::string dir = MakeTempDir("net");
  ASSERT_TRUE(WriteFileAtomic(dir + "/c.yaml", "floating_ip_pool: 10.1.0.0/24\n", 0600).ok());
  const std::string cmd = std::string(PHOTON_SERVER_BIN) + " --data-dir " + dir +
                          "/d --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --config " + dir +
                          "/c.yaml 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  std::filesystem::remove_all(dir);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("floating_ip_pool"), std::string::npos) << out;
  EXPECT_NE(out.find("default_vpc_pool"), std::string::npos) << out;
}

}  // namespace
}  // namespace photon::testing
