// Unit tests of the scheduler pipeline: each filter, each scorer, and whole decisions.
#include <gtest/gtest.h>

#include <limits>
#include <set>

#include "server/scheduler/filters.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/scorers.h"

namespace photon::scheduler {
namespace {

NodeState MakeNode(const std::string& name, const std::string& zone, const std::string& rack,
                   Resources cap = {8, 8192, 100}) {
  NodeState n;
  n.name = name;
  n.labels = {{"zone", zone}, {"rack_az", rack}, {"cluster", "c1"}};
  n.drivers = {"process", "container"};
  n.capacity = cap;
  n.ready = true;
  return n;
}

Request MakeRequest(const std::string& group = "g", int size = 1, Resources need = {1, 1024, 1}) {
  Request r;
  r.name = "default/" + group;
  r.group = group;
  r.group_size = size;
  r.need = need;
  r.driver = "process";
  r.policy = std::make_shared<compute::SchedulePolicy>();
  return r;
}

std::shared_ptr<compute::SchedulePolicy> Policy(Request& r) {
  auto p = std::make_shared<compute::SchedulePolicy>(*r.policy);
  r.policy = p;
  return p;
}

class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_.AddNode(MakeNode("a", "z1", "r1"));
    state_.AddNode(MakeNode("b", "z2", "r2"));
  }
  Context Ctx(const Request& r) { return MakeContext(r, &state_, "zone", false); }
  ClusterState state_;
};

TEST_F(FilterTest, ReadyAndCordon) {
  Request r = MakeRequest();
  state_.node(0).ready = false;
  auto c = Ctx(r);
  EXPECT_FALSE(ReadyFilter(c, 0));
  EXPECT_TRUE(ReadyFilter(c, 1));
  state_.node(1).unschedulable = true;
  EXPECT_FALSE(SchedulableFilter(c, 1));
  state_.node(1).unschedulable = false;
  r.exclude_node = "b";
  EXPECT_FALSE(SchedulableFilter(Ctx(r), 1));
}

TEST_F(FilterTest, DriverAndAttributes) {
  Request r = MakeRequest();
  r.driver = "vm";
  EXPECT_FALSE(DriverFilter(Ctx(r), 0));
  state_.node(0).drivers.push_back("vm");
  EXPECT_TRUE(DriverFilter(Ctx(r), 0));
  r.required_attributes["vm.accel"] = "kvm";
  EXPECT_FALSE(AttributeFilter(Ctx(r), 0));
  state_.node(0).attributes["vm.accel"] = "tcg";
  EXPECT_FALSE(AttributeFilter(Ctx(r), 0));
  state_.node(0).attributes["vm.accel"] = "kvm";
  EXPECT_TRUE(AttributeFilter(Ctx(r), 0));
}

TEST_F(FilterTest, CapacityWithoutOvercommit) {
  Request r = MakeRequest("g", 1, {4, 4096, 50});
  auto c = Ctx(r);
  EXPECT_TRUE(VcpuFilter(c, 0) && MemoryFilter(c, 0) && DiskFilter(c, 0));
  state_.node(0).allocated = {4, 4096, 50};  // exactly full after this one
  EXPECT_TRUE(VcpuFilter(c, 0) && MemoryFilter(c, 0) && DiskFilter(c, 0));
  state_.node(0).allocated = {5, 4097, 51};
  EXPECT_FALSE(VcpuFilter(c, 0));
  EXPECT_FALSE(MemoryFilter(c, 0));
  EXPECT_FALSE(DiskFilter(c, 0));
}

TEST_F(FilterTest, CapacitySumsThatOverflowInt64DoNotFit) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // allocated + need wraps to a negative number, which is "≤ capacity" unless checked.
  state_.node(0).capacity = {kMax, kMax, kMax};
  state_.node(0).allocated = {kMax - 1, kMax - 1, kMax - 1};
  Request r = MakeRequest("g", 1, {2, 2, 2});
  auto c = Ctx(r);
  EXPECT_FALSE(VcpuFilter(c, 0));
  EXPECT_FALSE(MemoryFilter(c, 0));
  EXPECT_FALSE(DiskFilter(c, 0));
  EXPECT_EQ(RunFilters(c, 0), Reject::kVcpu);
  // The same request with a huge need on a node with some use: refused, not wrapped.
  state_.node(1).allocated = {1, 1, 1};
  Request huge = MakeRequest("h", 1, {kMax, kMax, kMax});
  auto h = Ctx(huge);
  EXPECT_FALSE(VcpuFilter(h, 1));
  EXPECT_FALSE(MemoryFilter(h, 1));
  EXPECT_FALSE(DiskFilter(h, 1));
  // A negative need is no request: it never "frees" capacity to fit.
  Request neg = MakeRequest("n", 1, {-kMax, -kMax, -kMax});
  EXPECT_FALSE(VcpuFilter(Ctx(neg), 1));
}

TEST(ResourcesTest, SumsSaturateAndBoundedClamps) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Resources a{kMax - 1, kMax - 1, kMax - 1};
  a += Resources{5, 5, 5};
  EXPECT_EQ(a.vcpu, kMax);
  EXPECT_EQ(a.memory_mb, kMax);
  EXPECT_EQ(a.disk_gb, kMax);
  Resources b{std::numeric_limits<int64_t>::min() + 1, 0, 0};
  b -= Resources{5, 0, 0};
  EXPECT_EQ(b.vcpu, std::numeric_limits<int64_t>::min());
  const Resources clamped = Resources{kMax, -3, kMaxDiskGb}.Bounded();
  EXPECT_EQ(clamped.vcpu, kMaxVcpu);
  EXPECT_EQ(clamped.memory_mb, 0);
  EXPECT_EQ(clamped.disk_gb, kMaxDiskGb);
}

TEST_F(FilterTest, ClusterAndNodeFilters) {
  state_.node(1).labels["cluster"] = "c2";
  state_.node(1).labels["gpu"] = "yes";
  Request r = MakeRequest();
  auto p = Policy(r);
  p->add_clusters("c2");
  EXPECT_FALSE(ClusterFilter(Ctx(r), 0));
  EXPECT_TRUE(ClusterFilter(Ctx(r), 1));
  p->clear_clusters();
  auto* f = p->add_cluster_label_filters();
  f->set_key("gpu");
  f->set_op("Exists");
  EXPECT_FALSE(ClusterFilter(Ctx(r), 0));
  EXPECT_TRUE(ClusterFilter(Ctx(r), 1));
  p->clear_cluster_label_filters();
  p->add_nodes("a");
  EXPECT_TRUE(NodeFilter(Ctx(r), 0));
  EXPECT_FALSE(NodeFilter(Ctx(r), 1));
  p->clear_nodes();
  f = p->add_node_label_filters();
  f->set_key("zone");
  f->set_op("NotIn");
  f->add_values("z1");
  EXPECT_FALSE(NodeFilter(Ctx(r), 0));
  EXPECT_TRUE(NodeFilter(Ctx(r), 1));
}

TEST_F(FilterTest, GroupNeverSpansClusters) {
  state_.node(1).labels["cluster"] = "c2";
  ClusterState s2;
  s2.AddNode(state_.nodes()[0]);
  s2.AddNode(state_.nodes()[1]);
  Request r = MakeRequest();
  s2.Commit("g", {}, r.need, 0);
  auto c = MakeContext(r, &s2, "zone", false);
  EXPECT_TRUE(ClusterFilter(c, 0));
  EXPECT_FALSE(ClusterFilter(c, 1));
}

TEST_F(FilterTest, HardAntiAffinityAndAffinity) {
  Request r = MakeRequest("g", 2);
  auto p = Policy(r);
  auto* t = p->add_anti_affinity();
  t->set_topology_key("zone");
  t->set_hard(true);
  EXPECT_TRUE(HardAntiAffinityFilter(Ctx(r), 0));
  state_.Commit("g", {}, r.need, 0);
  EXPECT_FALSE(HardAntiAffinityFilter(Ctx(r), 0));
  EXPECT_TRUE(HardAntiAffinityFilter(Ctx(r), 1));
  state_.node(1).labels.erase("zone");
  ClusterState s2;  // a node lacking the label cannot prove it is apart
  s2.AddNode(state_.nodes()[1]);
  EXPECT_FALSE(HardAntiAffinityFilter(MakeContext(r, &s2, "", false), 0));

  Request a = MakeRequest("g", 2);
  auto pa = Policy(a);
  auto* at = pa->add_affinity();
  at->set_topology_key("rack_az");
  at->set_hard(true);
  EXPECT_TRUE(HardAffinityFilter(Ctx(a), 0));
  EXPECT_FALSE(HardAffinityFilter(Ctx(a), 1));  // the first member anchored rack r1
}

TEST_F(FilterTest, MatchLabelsCountAcrossGroups) {
  Request other = MakeRequest("db");
  state_.Commit("db", {{"app", "db"}}, other.need, 0);
  Request r = MakeRequest("web");
  auto p = Policy(r);
  auto* t = p->add_anti_affinity();
  t->set_topology_key("rack_az");
  t->set_hard(true);
  (*t->mutable_match_labels())["app"] = "db";
  EXPECT_FALSE(HardAntiAffinityFilter(Ctx(r), 0));
  EXPECT_TRUE(HardAntiAffinityFilter(Ctx(r), 1));
}

TEST_F(FilterTest, LabelFilterOps) {
  Labels l{{"a", "1"}};
  compute::LabelFilter f;
  f.set_key("a");
  f.set_op("In");
  f.add_values("1");
  EXPECT_TRUE(MatchLabelFilter(l, f));
  f.set_op("NotIn");
  EXPECT_FALSE(MatchLabelFilter(l, f));
  f.set_op("DoesNotExist");
  EXPECT_FALSE(MatchLabelFilter(l, f));
  f.set_key("b");
  EXPECT_TRUE(MatchLabelFilter(l, f));
}

TEST_F(FilterTest, Scorers) {
  Request r = MakeRequest("g", 3);
  state_.node(0).allocated = {6, 6144, 0};
  auto c = Ctx(r);
  EXPECT_GT(ResourceScore(c, 1), ResourceScore(c, 0));  // least-allocated prefers b
  auto cb = MakeContext(r, &state_, "zone", true);
  EXPECT_GT(ResourceScore(cb, 0), ResourceScore(cb, 1));  // bin-pack prefers a
  // Soft anti-affinity and spread push away from the member's rack and zone.
  auto p = Policy(r);
  auto* t = p->add_anti_affinity();
  t->set_topology_key("rack_az");
  state_.Commit("g", {}, r.need, 1);
  c = Ctx(r);
  EXPECT_LE(SoftAntiAffinityScore(c, 1), -0.25);
  EXPECT_EQ(SoftAntiAffinityScore(c, 0), 0);
  EXPECT_LT(SpreadScore(c, 1), SpreadScore(c, 0));
  // Soft affinity attracts.
  Request a = MakeRequest("g", 3);
  auto pa = Policy(a);
  pa->add_affinity()->set_topology_key("rack_az");
  auto ca = Ctx(a);
  EXPECT_GT(SoftAffinityScore(ca, 1), SoftAffinityScore(ca, 0));
  // Cluster weights.
  state_.node(0).labels["cluster"] = "gold";
  ClusterState s2;
  s2.AddNode(state_.nodes()[0]);
  s2.AddNode(state_.nodes()[1]);
  Request w = MakeRequest("w");
  auto pw = Policy(w);
  (*pw->mutable_cluster_weights())["gold"] = 10;
  (*pw->mutable_cluster_weights())["c1"] = 5;
  auto cw = MakeContext(w, &s2, "zone", false);
  EXPECT_DOUBLE_EQ(ClusterWeightScore(cw, 0), 1.0);
  EXPECT_DOUBLE_EQ(ClusterWeightScore(cw, 1), 0.5);
}

TEST(PipelineTest, SoftAntiAffinitySpreadsAcrossRacks) {
  ClusterState state;
  for (int i = 0; i < 12; ++i)
    state.AddNode(MakeNode("n" + std::to_string(i), "z" + std::to_string(i % 3),
                           "r" + std::to_string(i % 6)));
  Scheduler s(&state, {});
  Request r = MakeRequest("svc", 6);
  auto p = Policy(r);
  p->add_anti_affinity()->set_topology_key("rack_az");
  std::set<std::string> racks;
  for (int i = 0; i < 6; ++i) {
    auto d = s.Place(r);
    ASSERT_EQ(d.kind, Decision::Kind::kPlaced) << d.reason;
    racks.insert(state.nodes()[d.node].labels.at("rack_az"));
  }
  EXPECT_EQ(racks.size(), 6u);
}

TEST(PipelineTest, NoOvercommitThenPendingWithReason) {
  ClusterState state;
  state.AddNode(MakeNode("a", "z1", "r1", {4, 4096, 10}));
  state.AddNode(MakeNode("b", "z2", "r2", {4, 4096, 10}));
  Scheduler s(&state, {});
  for (int i = 0; i < 4; ++i) {
    Request r = MakeRequest("i" + std::to_string(i), 1, {2, 2048, 1});
    ASSERT_EQ(s.Place(r).kind, Decision::Kind::kPlaced);
  }
  Request r = MakeRequest("i4", 1, {2, 2048, 1});
  auto d = s.Place(r);
  EXPECT_EQ(d.kind, Decision::Kind::kPending);
  EXPECT_NE(d.reason.find("insufficient vcpu"), std::string::npos) << d.reason;
  for (const auto& n : state.nodes()) EXPECT_LE(n.allocated.vcpu, n.capacity.vcpu);
}

TEST(PipelineTest, ImpossibleIsError) {
  ClusterState state;
  state.AddNode(MakeNode("a", "z1", "r1", {4, 4096, 10}));
  Scheduler s(&state, {});
  auto d = s.Place(MakeRequest("big", 1, {1, 1 << 20, 1}));
  EXPECT_EQ(d.kind, Decision::Kind::kError);
  EXPECT_NE(d.reason.find("spec.resources.memoryMb"), std::string::npos) << d.reason;
  Request bad = MakeRequest("bad");
  auto p = Policy(bad);
  p->add_node_label_filters()->set_key("x");  // op missing
  d = s.Place(bad);
  EXPECT_EQ(d.kind, Decision::Kind::kError);
  EXPECT_NE(d.reason.find("nodeLabelFilters[0].op"), std::string::npos) << d.reason;
}

TEST(PipelineTest, NoNodesMessage) {
  ClusterState state;
  Scheduler s(&state, {});
  auto d = s.Place(MakeRequest());
  EXPECT_EQ(d.kind, Decision::Kind::kPending);
  EXPECT_EQ(d.reason, "no nodes available: 0 of 0 nodes are Ready and schedulable");
}

TEST(PipelineTest, HardAntiAffinityTooFewRacksFailsTheGroup) {
  ClusterState state;
  for (int i = 0; i < 4; ++i)
    state.AddNode(MakeNode("n" + std::to_string(i), "z1", "r" + std::to_string(i % 2)));
  Scheduler s(&state, {});
  Request r = MakeRequest("svc", 3);
  auto p = Policy(r);
  auto* t = p->add_anti_affinity();
  t->set_topology_key("rack_az");
  t->set_hard(true);
  EXPECT_EQ(s.CheckGroup(r),
            "hard anti-affinity on rack_az: 3 replicas but only 2 rack_az domains among "
            "eligible nodes");
  // Placed one by one regardless (a scale-up), the third is an ERROR with the same reason.
  ASSERT_EQ(s.Place(r).kind, Decision::Kind::kPlaced);
  ASSERT_EQ(s.Place(r).kind, Decision::Kind::kPlaced);
  auto d = s.Place(r);
  EXPECT_EQ(d.kind, Decision::Kind::kError);
  EXPECT_NE(d.reason.find("hard anti-affinity on rack_az: 3 replicas but only 2"),
            std::string::npos)
      << d.reason;
}

TEST(PipelineTest, OverflowingRequestsStayPending) {
  // A node that reports int64-max capacity, holding nearly all of it: a request whose sum with
  // the allocation would wrap must not be placed there.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  ClusterState state;
  state.AddNode(MakeNode("a", "z1", "r1", {kMax, kMax, kMax}));
  state.AddPlaced({"old", {}, {kMax - 10, kMax - 10, kMax - 10}, "a"});
  Scheduler s(&state, {});
  Request r = MakeRequest("g", 1, {kMax / 2, 1, 1});
  auto d = s.Place(r);
  EXPECT_EQ(d.kind, Decision::Kind::kPending) << d.reason;
  EXPECT_NE(d.reason.find("insufficient vcpu"), std::string::npos) << d.reason;
  EXPECT_EQ(state.nodes()[0].allocated.vcpu, kMax - 10);
}

TEST(PipelineTest, ReleaseFreesCapacity) {
  ClusterState state;
  state.AddNode(MakeNode("a", "z1", "r1", {2, 2048, 10}));
  Scheduler s(&state, {});
  Request r = MakeRequest("x", 1, {2, 2048, 1});
  auto d = s.Place(r);
  ASSERT_EQ(d.kind, Decision::Kind::kPlaced);
  EXPECT_EQ(s.Place(MakeRequest("y", 1, {2, 2048, 1})).kind, Decision::Kind::kPending);
  state.Release(r.group, r.labels, r.need, d.node);
  EXPECT_EQ(s.Place(MakeRequest("y", 1, {2, 2048, 1})).kind, Decision::Kind::kPlaced);
}

}  // namespace
}  // namespace photon::scheduler
