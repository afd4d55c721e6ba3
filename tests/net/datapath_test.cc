// The node data path on the multi-host bed: port namespaces on three hosts, real nftables,
// real BIRD2 announcing to a router. Needs root (namespaces).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <regex>
#include <thread>

#include "agent/net/bird.h"
#include "agent/net/exec.h"
#include "agent/net/netns.h"
#include "agent/net/nft_netlink.h"
#include "agent/net/nft_ruleset.h"
#include "agent/net/port_manager.h"
#include "tests/net/netbed.h"

namespace photon::agent::net {
namespace {

using namespace std::chrono_literals;
using photon::net_testing::ConnectFrom;
using photon::net_testing::ListenIn;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;

constexpr char kVpcA[] = "10.10.0.0/16";
constexpr char kVpcB[] = "10.20.0.0/16";

PortSpec Spec(const std::string& id, const std::string& ip, const std::string& vpc) {
  PortSpec s;
  s.instance_id = id;
  s.ip = ip;
  s.mac = "02:00:0a:" + std::to_string(10 + id.size() % 80) +
          ":00:" + std::to_string(10 + ip.back() % 80);
  s.vpc_cidr = vpc;
  s.subnet_cidr = vpc.substr(0, vpc.find(".0.0/")) + ".0.0/24";
  s.rules.push_back({Direction::kEgress, -1, 0, 0, "0.0.0.0/0"});  // AWS's default egress
  return s;
}

class DataPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    std::string error;
    bed_ = NetBed::Up(3, &error).release();
    ASSERT_NE(bed_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete bed_;
    bed_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    ASSERT_NE(bed_, nullptr);
    for (int i = 1; i <= 3; ++i) {
      auto pm = PortManager::Open(Options(i));
      ASSERT_TRUE(pm.ok()) << pm.status();
      pm_[i] = std::move(*pm);
    }
  }
  void TearDown() override {
    for (auto& pm : pm_) {
      if (!pm) continue;
      for (const auto& p : pm->List()) EXPECT_TRUE(pm->Delete(p.instance_id).ok());
    }
    // The kernel removes a deleted port's veth with its namespace, just after Delete: the next
    // test's snapshots must not see it go.
    for (int i = 1; i <= 3; ++i) {
      EXPECT_TRUE(VethsGone(i)) << bed_->Run(bed_->Host(i),
                                             {"ip", "-d", "link", "show", "type", "veth"});
    }
  }
  bool VethsGone(int host) {
    return PollUntil(
               [&] {
                 return bed_->Run(bed_->Host(host), {"ip", "-d", "link", "show", "type", "veth"})
                            .find("photon-port:") == std::string::npos;
               },
               10s)
               .count() >= 0;
  }
  static PortManagerOptions Options(int host) {
    PortManagerOptions o;
    o.host_netns = bed_->NsPath(bed_->Host(host));
    o.netns_prefix = bed_->Ns(bed_->Host(host)) + "-p-";
    return o;
  }
  // 15 s: a BGP session that BFD took down on a loaded machine comes back within a few.
  ::testing::AssertionResult Create(int host, const PortSpec& spec) {
    Status s = pm_[host]->Apply(spec);
    if (!s.ok()) return ::testing::AssertionFailure() << s;
    if (PollUntil([&] { return bed_->RouterHas(spec.ip); }, 15s).count() < 0) {
      return ::testing::AssertionFailure()
             << spec.ip << " never reached the router: " << bed_->Bird("r", {"show", "protocols"});
    }
    return ::testing::AssertionSuccess();
  }
  std::string Ns(int host, const std::string& id) { return pm_[host]->NetnsPath(id); }
  bool Ping(int host, const std::string& id, const std::string& ip, const std::string& src = "") {
    std::vector<std::string> argv{"ping", "-c1", "-W1", "-n", "-q"};
    if (!src.empty()) argv.insert(argv.end(), {"-I", src});
    argv.push_back(ip);
    int rc = 0;
    bed_->Run(Ns(host, id), argv, &rc);
    return rc == 0;
  }
  bool Tcp(int host, const std::string& id, const std::string& ip, int port) {
    int fd = ConnectFrom(Ns(host, id), ip, port, 1500ms);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  }
  int64_t Counter(int host, const std::string& id, const std::string& name) {
    std::string out = bed_->Run(Ns(host, id), {"nft", "list", "counter", "inet", "photon", name});
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("packets (\\d+)"))) return -1;
    return std::stoll(m[1]);
  }

  static NetBed* bed_;
  std::unique_ptr<PortManager> pm_[4];
};
NetBed* DataPathTest::bed_ = nullptr;

TEST_F(DataPathTest, SameVpcAcrossHostsPingsAndConnects) {
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  ASSERT_TRUE(Create(2, Spec("b", "10.10.0.6", kVpcA)));
  EXPECT_TRUE(Ping(1, "a", "10.10.0.6"));
  EXPECT_TRUE(Ping(2, "b", "10.10.0.5"));
  int l = ListenIn(Ns(2, "b"), "10.10.0.6", 8080);
  ASSERT_GE(l, 0);
  EXPECT_TRUE(Tcp(1, "a", "10.10.0.6", 8080));
  ::close(l);
  // The gateway and the node answer on the link (169.254.1.1 is on-link).
  EXPECT_TRUE(Ping(1, "a", "169.254.1.1"));
}

TEST_F(DataPathTest, OtherVpcRefusedUntilARuleAllowsItsCidr) {
  PortSpec b = Spec("b", "10.10.0.6", kVpcA);
  ASSERT_TRUE(Create(2, b));
  ASSERT_TRUE(Create(3, Spec("c", "10.20.0.7", kVpcB)));
  int l = ListenIn(Ns(2, "b"), "10.10.0.6", 8080);
  ASSERT_GE(l, 0);
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8080));
  EXPECT_FALSE(Ping(3, "c", "10.10.0.6"));
  EXPECT_GT(Counter(2, "b", "refused_in"), 0);

  b.rules.push_back({Direction::kIngress, 6, 8080, 8080, kVpcB});
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  int held = ConnectFrom(Ns(3, "c"), "10.10.0.6", 8080, 1500ms);
  ASSERT_GE(held, 0) << "the rule allowing " << kVpcB << " did not open tcp/8080";
  int accepted = ::accept(l, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  EXPECT_FALSE(Ping(3, "c", "10.10.0.6")) << "a tcp rule must not open icmp";

  b.rules.pop_back();
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8080)) << "new connections must be cut";
  // Stateful: the connection made while the rule stood still carries data.
  ASSERT_EQ(::write(held, "x", 1), 1);
  pollfd p{accepted, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char c = 0;
  EXPECT_EQ(::read(accepted, &c, 1), 1);
  ::close(held);
  ::close(accepted);
  ::close(l);
}

TEST_F(DataPathTest, OverlappingRulesAreMergedAndEnforced) {
  PortSpec b = Spec("b", "10.10.0.6", kVpcA);
  b.rules.push_back({Direction::kIngress, 6, 8000, 8100, "10.20.0.0/16"});
  b.rules.push_back({Direction::kIngress, 6, 8080, 9000, "10.20.0.0/24"});
  b.rules.push_back({Direction::kIngress, 6, 8080, 8080, "10.20.0.7/32"});
  b.rules.push_back({Direction::kIngress, 6, 8080, 8080, "10.20.0.7/32"});
  ASSERT_TRUE(Create(2, b));
  ASSERT_TRUE(Create(3, Spec("c", "10.20.0.7", kVpcB)));
  for (int port : {8000, 8500, 9000}) {
    int l = ListenIn(Ns(2, "b"), "10.10.0.6", port);
    ASSERT_GE(l, 0);
    EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", port)) << port;
    ::close(l);
  }
  int l = ListenIn(Ns(2, "b"), "10.10.0.6", 9001);
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 9001));
  ::close(l);
}

TEST_F(DataPathTest, SpoofedSourceIsDropped) {
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  ASSERT_TRUE(Create(2, Spec("b", "10.10.0.6", kVpcA)));
  // Root inside the namespace (which a workload is not) adds a second address and uses it.
  int rc = 0;
  bed_->Run(Ns(1, "a"), {"ip", "addr", "add", "10.10.0.66/32", "dev", "eth0"}, &rc);
  ASSERT_EQ(rc, 0);
  int64_t before = Counter(1, "a", "spoofed");
  EXPECT_FALSE(Ping(1, "a", "10.10.0.6", "10.10.0.66"));
  EXPECT_GT(Counter(1, "a", "spoofed"), before);
  EXPECT_TRUE(Ping(1, "a", "10.10.0.6", "10.10.0.5"));
}

TEST_F(DataPathTest, WorkloadCannotChangeItsNetwork) {
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  // What a workload is: no capabilities in the user namespace owning the port namespace.
  std::vector<std::string> drop{"setpriv",        "--reuid=65534",   "--regid=65534",
                                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"};
  for (auto cmd : {std::vector<std::string>{"nft", "flush", "ruleset"},
                   std::vector<std::string>{"ip", "addr", "add", "10.10.0.77/32", "dev", "eth0"},
                   std::vector<std::string>{"unshare", "-Ur", "nft", "flush", "ruleset"}}) {
    std::vector<std::string> argv = drop;
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    int rc = 0;
    std::string out = bed_->Run(Ns(1, "a"), argv, &rc);
    EXPECT_NE(rc, 0) << cmd[0] << " succeeded: " << out;
  }
  EXPECT_NE(bed_->Run(Ns(1, "a"), {"nft", "list", "table", "inet", "photon"}).find("egress"),
            std::string::npos);
}

// The state a port leaves in the kernel, to compare before and after an adoption.
std::string Snapshot(NetBed* bed, const std::string& host, const std::string& ns) {
  return bed->Run(host, {"ip", "-d", "link", "show", "type", "veth"}) +
         bed->Run(host, {"ip", "route", "show", "proto", "200"}) +
         bed->Run(host, {"ip", "addr", "show", "dev", "lo"}) +
         bed->Run(ns, {"ip", "-d", "addr", "show"}) + bed->Run(ns, {"ip", "route"}) +
         bed->Run(ns, {"nft", "-a", "list", "ruleset"});
}

// A rule naming a remote group's set admits its members only; a member change refills the
// set in place (same table handle, counters kept) and a restarted PortManager adopts it.
TEST_F(DataPathTest, RemoteSetMembersChangeWithoutReplacingTheRuleset) {
  PortSpec b = Spec("b", "10.10.0.6", kVpcA);
  SgRule from_group{Direction::kIngress, 6, 8080, 8080, ""};
  from_group.remote_set = "rg_app";
  b.rules.push_back(from_group);
  b.remote_sets["rg_app"] = {"10.20.0.7"};
  ASSERT_TRUE(Create(2, b));
  ASSERT_TRUE(Create(3, Spec("c", "10.20.0.7", kVpcB)));
  ASSERT_TRUE(Create(3, Spec("d", "10.20.0.8", kVpcB)));
  int l = ListenIn(Ns(2, "b"), "10.10.0.6", 8080);
  ASSERT_GE(l, 0);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8080)) << "a member";
  EXPECT_FALSE(Tcp(3, "d", "10.10.0.6", 8080)) << "not a member";
  const int64_t refused = Counter(2, "b", "refused_in");
  ASSERT_GT(refused, 0);
  auto head = [&] {
    std::string t = bed_->Run(Ns(2, "b"), {"nft", "-a", "list", "table", "inet", "photon"});
    return t.substr(0, t.find('\n'));
  };
  const std::string handle = head();

  b.remote_sets["rg_app"] = {"10.20.0.8"};  // d joins, c leaves
  const int64_t changes = pm_[2]->changes();
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  EXPECT_EQ(pm_[2]->changes(), changes + 1);
  EXPECT_EQ(pm_[2]->set_updates(), 1);
  EXPECT_TRUE(Tcp(3, "d", "10.10.0.6", 8080));
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8080));
  EXPECT_EQ(head(), handle) << "the table was replaced";
  EXPECT_GT(Counter(2, "b", "refused_in"), refused) << "counters survive a set update";

  auto again = PortManager::Open(Options(2));
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->Apply(b).ok());
  EXPECT_EQ((*again)->changes(), 0) << "the members marker is read back";
  b.remote_sets["rg_app"].clear();
  ASSERT_TRUE((*again)->Apply(b).ok());
  EXPECT_EQ((*again)->set_updates(), 1);
  EXPECT_FALSE(Tcp(3, "d", "10.10.0.6", 8080)) << "an empty group admits nobody";
  ::close(l);
}

// A rule change that only moves set elements (ports, addresses) updates them in place: the
// table (its handle, counters, tracked flows) stays, and the sets end exactly as a port given
// the same rules from scratch has them, whichever elements overlap, split or merge.
TEST_F(DataPathTest, RuleChangesUpdateSetElementsInPlace) {
  PortSpec b = Spec("b", "10.10.0.6", kVpcA);
  b.rules.push_back({Direction::kIngress, 6, 8080, 8080, "10.20.0.0/24"});
  b.rules.push_back({Direction::kIngress, -1, 0, 0, "10.30.0.0/16"});
  ASSERT_TRUE(Create(2, b));
  ASSERT_TRUE(Create(3, Spec("c", "10.20.0.7", kVpcB)));
  int l80 = ListenIn(Ns(2, "b"), "10.10.0.6", 8080), l81 = ListenIn(Ns(2, "b"), "10.10.0.6", 8081);
  ASSERT_GE(l80, 0);
  ASSERT_GE(l81, 0);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8080));
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8081));
  const int64_t refused = Counter(2, "b", "refused_in");
  ASSERT_GT(refused, 0);
  auto head = [&] {
    std::string t = bed_->Run(Ns(2, "b"), {"nft", "-a", "list", "table", "inet", "photon"});
    return t.substr(0, t.find('\n'));
  };
  const std::string handle = head();
  auto sets = [&](const std::string& id) {
    std::string out;
    for (const char* set : {"in_any", "in_l4", "in_ports", "out_any", "out_l4", "out_ports"}) {
      out += bed_->Run(Ns(2, id), {"nft", "list", "set", "inet", "photon", set});
    }
    return out;
  };

  b.rules[1].port_from = b.rules[1].port_to = 8081;  // the port moves
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  EXPECT_EQ(pm_[2]->rule_updates(), 1);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8081));
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8080)) << "the old port must be closed";
  EXPECT_EQ(head(), handle) << "the table was replaced";
  EXPECT_GT(Counter(2, "b", "refused_in"), refused) << "counters survive a rule change";

  // Overlapping ranges that split and merge differently, the whole-space egress element
  // replaced by two ranges, an address-only rule moved: every set as a fresh port has it.
  b.rules[0] = {Direction::kEgress, -1, 0, 0, "10.0.0.0/8"};
  b.rules.push_back({Direction::kEgress, 17, 53, 53, "0.0.0.0/0"});
  b.rules.push_back({Direction::kIngress, 6, 8000, 8100, "10.20.0.0/16"});
  b.rules.push_back({Direction::kIngress, 6, 8090, 9000, "10.20.0.0/25"});
  b.rules[2].remote_cidr = "10.31.0.0/16";
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  EXPECT_EQ(pm_[2]->rule_updates(), 2);
  EXPECT_EQ(head(), handle);
  PortSpec fresh = b;
  fresh.instance_id = "e";
  fresh.ip = "10.10.0.9";
  ASSERT_TRUE(pm_[2]->Apply(fresh).ok());
  EXPECT_EQ(sets("b"), sets("e"));
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8080)) << "8000-8100 from 10.20.0.0/16";
  b.rules.resize(2);  // back to one ported rule: the split elements merge again
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  fresh.rules = b.rules;
  ASSERT_TRUE(pm_[2]->Apply(fresh).ok());
  EXPECT_EQ(pm_[2]->rule_updates(), 4);
  EXPECT_EQ(sets("b"), sets("e"));
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8080));
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8081));

  EXPECT_EQ(pm_[2]->fallbacks(), 0);

  // The table changed behind PortManager's back (its marker gone): the kernel refuses the
  // in-place batch as a whole, and the table is replaced (logged, counted).
  int rc = 0;
  bed_->Run(Ns(2, "b"),
            {"nft", "delete", "chain", "inet", "photon",
             std::string(kRevisionChain) + RulesRevision(RenderPortRules(b))},
            &rc);
  ASSERT_EQ(rc, 0);
  b.rules[1].port_from = b.rules[1].port_to = 8080;
  ASSERT_TRUE(pm_[2]->Apply(b).ok());
  EXPECT_EQ(pm_[2]->fallbacks(), 1);
  EXPECT_EQ(pm_[2]->rule_updates(), 4);
  EXPECT_NE(head(), handle);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8080));
  EXPECT_FALSE(Tcp(3, "c", "10.10.0.6", 8081));

  // A restarted PortManager does not know what the table holds: it replaces it.
  auto again = PortManager::Open(Options(2));
  ASSERT_TRUE(again.ok()) << again.status();
  b.rules[1].port_from = b.rules[1].port_to = 8081;
  ASSERT_TRUE((*again)->Apply(b).ok());
  EXPECT_EQ((*again)->rule_updates(), 0);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8081));
  // ... and changes it in place from then on, through a socket of its own.
  b.rules[1].port_from = b.rules[1].port_to = 8080;
  ASSERT_TRUE((*again)->Apply(b).ok());
  EXPECT_EQ((*again)->rule_updates(), 1);
  EXPECT_EQ((*again)->fallbacks(), 0);
  EXPECT_TRUE(Tcp(3, "c", "10.10.0.6", 8080));
  ::close(l80);
  ::close(l81);
}

TEST_F(DataPathTest, RestartAdoptsWithoutChangingOrDuplicating) {
  PortSpec a = Spec("a", "10.10.0.5", kVpcA);
  a.rules.push_back({Direction::kIngress, 6, 22, 22, "0.0.0.0/0"});
  ASSERT_TRUE(Create(1, a));
  ASSERT_TRUE(Create(1, Spec("a2", "10.10.0.9", kVpcA)));
  std::string before = Snapshot(bed_, bed_->Host(1), Ns(1, "a"));
  struct stat st_before {};
  ASSERT_EQ(::stat(Ns(1, "a").c_str(), &st_before), 0);

  auto again = PortManager::Open(Options(1));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->List().size(), 2u);
  ASSERT_TRUE((*again)->Apply(a).ok());
  ASSERT_TRUE((*again)->Apply(Spec("a2", "10.10.0.9", kVpcA)).ok());
  EXPECT_EQ((*again)->changes(), 0);
  EXPECT_EQ(Snapshot(bed_, bed_->Host(1), Ns(1, "a")), before);
  struct stat st_after {};
  ASSERT_EQ(::stat(Ns(1, "a").c_str(), &st_after), 0);
  EXPECT_EQ(st_before.st_ino, st_after.st_ino);

  // Damage one piece: only that piece is fixed, nothing doubles.
  int rc = 0;
  bed_->Run(bed_->Host(1), {"ip", "route", "del", "10.10.0.5/32"}, &rc);
  ASSERT_EQ(rc, 0);
  auto third = PortManager::Open(Options(1));
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE((*third)->Apply(a).ok());
  EXPECT_EQ((*third)->changes(), 1);
  EXPECT_EQ(Snapshot(bed_, bed_->Host(1), Ns(1, "a")), before);
  EXPECT_TRUE(PollUntil([&] { return bed_->RouterHas("10.10.0.5"); }, 5s).count() >= 0);
}

TEST_F(DataPathTest, DeleteLeavesNothingAndWithdrawsTheRoute) {
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  ASSERT_TRUE(pm_[1]->Delete("a").ok());
  // On return the namespace and the route are gone; the veth goes with the namespace.
  struct stat st {};
  EXPECT_NE(::stat(Ns(1, "a").c_str(), &st), 0) << "namespace left behind";
  EXPECT_EQ(bed_->Run(bed_->Host(1), {"ip", "route", "show", "proto", "200"}), "");
  auto withdrawn = PollUntil([&] { return !bed_->RouterHas("10.10.0.5"); }, 5s);
  EXPECT_GE(withdrawn.count(), 0) << "route still at the router";
  std::cout << "delete → withdrawn at router: " << withdrawn.count() / 1000.0 << " ms\n";
  EXPECT_TRUE(VethsGone(1)) << "veth left behind";
  // A PortManager opened meanwhile takes a going veth for no port, and does not reuse its
  // name while it exists (a new veth of that name would be refused).
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  ASSERT_TRUE(pm_[1]->Delete("a").ok());
  auto again = PortManager::Open(Options(1));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->List().empty());
  EXPECT_TRUE((*again)->Apply(Spec("b", "10.10.0.6", kVpcA)).ok());
  EXPECT_TRUE((*again)->Delete("b").ok());
  EXPECT_NE(
      bed_->Bird(bed_->Host(1), {"show", "route", "for", "10.10.0.5/32"}).find("Network not found"),
      std::string::npos);
  EXPECT_TRUE(pm_[1]->List().empty());
  // Deleting again, or deleting what never was, is fine.
  EXPECT_TRUE(pm_[1]->Delete("a").ok());
}

// A port is ready only when both ends of its veth pair transmit: a workload's first packet
// (its gateway's ARP) must not be lost, which a pair end whose queue the kernel had not
// attached yet did (then the ARP retry came 1 s later). That attach is the kernel's link-watch
// work, under the RTNL lock: other namespaces made and dropped meanwhile (as on a busy node)
// delay it, so 30 fresh ports are made while another thread does so.
TEST_F(DataPathTest, FreshPortsLoseNoFirstPacketWhileTheNodeIsBusy) {
  ASSERT_TRUE(pm_[1]->Apply(Spec("srv", "10.10.0.200", kVpcA)).ok());
  int l = ListenIn(Ns(1, "srv"), "10.10.0.200", 8080);
  ASSERT_GE(l, 0);
  // Makes and drops a namespace with a veth pair until destroyed (also when an assertion
  // returns early).
  struct Churn {
    explicit Churn(const std::string& ns)
        : thread([this, ns] {
            while (!stop) {
              bed_->Run("", {"ip", "netns", "add", ns});
              bed_->Run("", {"ip", "-n", ns, "link", "add", "name", "a", "type", "veth", "peer",
                             "name", "b"});
              bed_->Run("", {"ip", "netns", "del", ns});
            }
          }) {}
    ~Churn() {
      stop = true;
      thread.join();
    }
    std::atomic<bool> stop{false};
    std::thread thread;
  };
  {
    Churn churn(bed_->Ns("churn"));
    for (int i = 0; i < 30; ++i) {
      std::string id = "f" + std::to_string(i), ip = "10.10.0." + std::to_string(100 + i);
      ASSERT_TRUE(pm_[1]->Apply(Spec(id, ip, kVpcA)).ok());
      int fd = ConnectFrom(Ns(1, id), "10.10.0.200", 8080, 3000ms);
      EXPECT_GE(fd, 0) << id;
      if (fd >= 0) {
        ::close(fd);
        EXPECT_EQ(photon::net_testing::AcceptPeer(l), ip);
      }
      std::string stats = bed_->Run(Ns(1, id), {"ip", "-s", "-j", "link", "show", "eth0"});
      std::smatch m;
      ASSERT_TRUE(std::regex_search(stats, m, std::regex(R"("tx":\{[^}]*"dropped":(\d+))")))
          << stats;
      EXPECT_EQ(m[1], "0") << id << ": eth0 dropped what it sent first: " << stats;
      ASSERT_TRUE(pm_[1]->Delete(id).ok());
    }
  }
  ::close(l);
}

TEST_F(DataPathTest, BadSpecsAreRefusedNamingTheField) {
  PortSpec s = Spec("x", "10.10.0.5", kVpcA);
  s.rules.push_back({Direction::kIngress, 6, 1, 70000, "0.0.0.0/0"});
  EXPECT_NE(pm_[1]->Apply(s).message().find("rules[1].port_to"), std::string::npos);
  s = Spec("x", "10.11.0.5", kVpcA);
  EXPECT_NE(pm_[1]->Apply(s).message().find("ip"), std::string::npos);
  s = Spec("x", "10.10.0.5", kVpcA);
  s.rules.push_back({Direction::kIngress, 6, 0, 0, "10.0.0.1/8"});
  EXPECT_NE(pm_[1]->Apply(s).message().find("rules[1].remote_cidr"), std::string::npos);
  s = Spec("x/../y", "10.10.0.5", kVpcA);
  EXPECT_NE(pm_[1]->Apply(s).message().find("instance_id"), std::string::npos);
  EXPECT_TRUE(pm_[1]->List().empty());
}

TEST_F(DataPathTest, AgentRenderedBirdConfigAnnouncesPorts) {
  BirdOptions o;
  o.router_id = o.local_address = "192.168.10.11";
  o.local_as = 65001;
  o.peers = {{"192.168.10.1", 65000}};
  o.bfd_interface = "ul0";
  ASSERT_TRUE(ValidateBirdOptions(o).ok());
  std::string path = "/run/photon-netbed/" + bed_->prefix() + "/h1-agent.conf";
  Status s = ReconfigureBird(path, bed_->BirdSocket("h1"), RenderNodeBirdConfig(o));
  ASSERT_TRUE(s.ok()) << s;
  auto established = [&] {
    return bed_->Bird("h1", {"show", "protocols"}).find("Established") != std::string::npos;
  };
  ASSERT_GE(PollUntil(established, 15s).count(), 0) << bed_->Bird("h1", {"show", "protocols"});
  ASSERT_TRUE(Create(1, Spec("a", "10.10.0.5", kVpcA)));
  // A config BIRD refuses leaves the running one in place and says why.
  Status bad = ReconfigureBird(path, bed_->BirdSocket("h1"), "protocol nonsense {}\n");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("BIRD refuses"), std::string::npos) << bad;
  EXPECT_TRUE(bed_->RouterHas("10.10.0.5"));
  o.peers.clear();
  EXPECT_NE(ValidateBirdOptions(o).message().find("peers"), std::string::npos);
}

// Host death on a bed of its own (it kills a host).
// The set elements our nfnetlink encoder writes are exactly what nft writes from the same
// text (compared as `nft list` prints them): single addresses, ranges, intervals running to
// the top of the space, concatenations with ranges in several fields, a plain set; then
// removals; and a refused batch changes nothing (one transaction) and names what was refused.
TEST(NftEncoderTest, EncodedElementsAreWhatNftLists) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  const std::string tag = "phnfte-" + std::to_string(::getpid());
  const std::string ours = tag + "-ours", theirs = tag + "-nft";
  ASSERT_TRUE(PrepareNetnsDir().ok());
  ASSERT_TRUE(CreateNetns(ours).ok());
  ASSERT_TRUE(CreateNetns(theirs).ok());
  auto nft = [](const std::string& ns, const std::string& script) {
    ExecOptions o;
    o.netns = "/run/netns/" + ns;
    o.stdin_data = script;
    return ExecOk({"nft", "-f", "-"}, o);
  };
  auto list = [&](const std::string& ns) { return *nft(ns, "list table inet photon\n"); };
  const std::string table =
      "table inet photon {\n"
      "  set in_any { type ipv4_addr; flags interval; }\n"
      "  set out_any { type ipv4_addr; flags interval; }\n"
      "  set in_l4 { type ipv4_addr . inet_proto; flags interval; }\n"
      "  set in_ports { type ipv4_addr . inet_proto . inet_service; flags interval; }\n"
      "  set rg_app { type ipv4_addr; }\n"
      "  chain rev_a {}\n"
      "}\n";
  ASSERT_TRUE(nft(ours, table).ok());
  ASSERT_TRUE(nft(theirs, table).ok());
  struct Change {
    const char* set;
    const char* type;
    bool interval;
    std::vector<std::string> elements;
  };
  const std::vector<Change> adds = {
      {"in_any",
       "ipv4_addr",
       true,
       {"0.0.0.0-0.255.255.255", "10.1.0.0-10.1.255.255", "10.9.9.9", "10.9.9.11",
        "200.0.0.0-255.255.255.255"}},
      {"out_any", "ipv4_addr", true, {"0.0.0.0-255.255.255.255"}},
      {"in_l4", "ipv4_addr . inet_proto", true, {"10.2.0.0-10.2.255.255 . 6", "10.3.3.3 . 17"}},
      {"in_ports",
       "ipv4_addr . inet_proto . inet_service",
       true,
       {"10.50.0.0-10.50.255.255 . 6 . 7000", "10.3.3.3 . 17 . 53-54",
        "0.0.0.0-255.255.255.255 . 6 . 1-65535", "10.3.3.4-10.3.3.9 . 1-17 . 0"}},
      {"rg_app", "ipv4_addr", false, {"1.2.3.4", "5.6.7.8"}},
  };
  const std::vector<Change> removes = {
      {"in_any", "ipv4_addr", true, {"10.9.9.9", "200.0.0.0-255.255.255.255"}},
      {"out_any", "ipv4_addr", true, {"0.0.0.0-255.255.255.255"}},
      {"in_ports", "ipv4_addr . inet_proto . inet_service", true, {"10.3.3.3 . 17 . 53-54"}},
      {"rg_app", "ipv4_addr", false, {"5.6.7.8"}},
  };
  auto script = [](const char* verb, const std::vector<Change>& changes) {
    std::string s;
    for (const Change& c : changes) {
      s += std::string(verb) + " element inet photon " + c.set + " { ";
      for (size_t i = 0; i < c.elements.size(); ++i) s += (i ? ", " : "") + c.elements[i];
      s += " }\n";
    }
    return s;
  };
  auto socket = NftSocket::Open("/run/netns/" + ours);
  ASSERT_TRUE(socket.ok()) << socket.status();
  for (bool add : {true, false}) {
    NftBatch batch("photon");
    for (const Change& c : add ? adds : removes) {
      Status s = add ? batch.AddElements(c.set, c.type, c.interval, c.elements)
                     : batch.DeleteElements(c.set, c.type, c.interval, c.elements);
      ASSERT_TRUE(s.ok()) << s;
    }
    ASSERT_TRUE((*socket)->Commit(batch).ok());
    ASSERT_TRUE(nft(theirs, script(add ? "add" : "delete", add ? adds : removes)).ok());
    EXPECT_EQ(list(ours), list(theirs)) << (add ? "after adding" : "after removing");
  }
  EXPECT_NE(list(ours).find("10.50.0.0/16 . tcp . 7000"), std::string::npos) << list(ours);

  // All or nothing: a batch that removes a missing element adds nothing and says why.
  const std::string before = list(ours);
  NftBatch bad("photon");
  ASSERT_TRUE(bad.AddElements("rg_app", "ipv4_addr", false, {"7.7.7.7"}).ok());
  ASSERT_TRUE(bad.DeleteElements("in_any", "ipv4_addr", true, {"10.99.0.0-10.99.0.255"}).ok());
  Status refused = (*socket)->Commit(bad);
  EXPECT_TRUE(absl::IsAborted(refused)) << refused;
  EXPECT_NE(refused.message().find("delete elements of set in_any"), std::string::npos) << refused;
  EXPECT_EQ(list(ours), before);
  // Encoding refuses what it cannot say.
  EXPECT_FALSE(bad.AddElements("rg_app", "ipv4_addr", false, {"1.1.1.1-1.1.1.2"}).ok());
  EXPECT_FALSE(bad.AddElements("x", "ether_addr", false, {"1"}).ok());
  socket->reset();
  EXPECT_TRUE(DeleteNetns(ours).ok());
  EXPECT_TRUE(DeleteNetns(theirs).ok());
}

TEST(HostDeathTest, RoutesOfADeadHostAreWithdrawn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  std::string error;
  auto bed = NetBed::Up(2, &error);
  ASSERT_NE(bed, nullptr) << error;
  PortManagerOptions o;
  o.host_netns = bed->NsPath("h2");
  o.netns_prefix = bed->Ns("h2") + "-p-";
  auto pm = PortManager::Open(o);
  ASSERT_TRUE(pm.ok());
  ASSERT_TRUE((*pm)->Apply(Spec("d", "10.10.0.8", kVpcA)).ok());
  ASSERT_GE(PollUntil([&] { return bed->RouterHas("10.10.0.8"); }, 5s).count(), 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(bed->KillHost(2));
  ASSERT_GE(PollUntil([&] { return !bed->RouterHas("10.10.0.8"); }, 10s).count(), 0);
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  std::cout << "host death → withdrawn at router: " << ms.count() << " ms\n";
  EXPECT_LT(ms.count(), 2000) << "BFD (250 ms) should have caught it";
}

}  // namespace
}  // namespace photon::agent::net
