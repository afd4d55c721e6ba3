// Which watch events start a scheduling round (WakesScheduler): heartbeats, the round's own
// allocation display and agents' status reports of placed instances do not; everything that
// can change a decision does.
#include <gtest/gtest.h>

#include "server/scheduler/scheduler_controller.h"
#include "server/watch_cache.h"

namespace photon::server {
namespace {

node::Node ReadyNode() {
  node::Node n;
  n.mutable_metadata()->set_name("n1");
  n.mutable_metadata()->set_namespace_("system");
  n.mutable_spec()->mutable_capacity()->set_vcpu(8);
  n.mutable_node_status()->set_condition(node::NodeStatus::READY);
  n.mutable_node_status()->set_last_heartbeat("2026-12-05T00:00:00Z");
  n.mutable_node_status()->set_message("0 instances");
  return n;
}

compute::ComputeInstance PlacedInstance() {
  compute::ComputeInstance ci;
  ci.mutable_metadata()->set_name("web");
  ci.mutable_metadata()->set_namespace_("default");
  ci.mutable_metadata()->set_agent_id("n1");
  ci.mutable_spec()->mutable_resources()->set_vcpu(1);
  ci.mutable_status()->set_phase(resource::ResourceStatus::PENDING);
  return ci;
}

// A MODIFIED event from `before` to `after` (revisions 1 and 2, updatedAt moving as the server
// sets it on every write).
template <typename T>
CacheEvent Modified(const std::string& plural, T before, T after) {
  const std::string key =
      RegistryKey(plural, before.metadata().namespace_(), before.metadata().name());
  before.mutable_metadata()->set_updated_at("2026-12-05T00:00:00Z");
  after.mutable_metadata()->set_updated_at("2026-12-05T00:00:05Z");
  CacheEvent e{.type = CacheEvent::Type::kModified, .revision = 2};
  e.previous = std::make_shared<CachedObject>(key, before.SerializeAsString(), 1);
  e.object = std::make_shared<CachedObject>(key, after.SerializeAsString(), 2);
  return e;
}

TEST(WakesScheduler, HeartbeatAndAllocationOfANodeDoNot) {
  node::Node a = ReadyNode(), b = ReadyNode();
  b.mutable_node_status()->set_last_heartbeat("2026-12-05T00:00:05Z");
  b.mutable_node_status()->set_message("3 instances");
  EXPECT_FALSE(WakesScheduler(Modified("nodes", a, b)));
  b.mutable_node_status()->mutable_allocated()->set_vcpu(3);
  EXPECT_FALSE(WakesScheduler(Modified("nodes", a, b)));
}

TEST(WakesScheduler, EveryOtherNodeChangeDoes) {
  node::Node a = ReadyNode();
  node::Node cordoned = a;
  cordoned.mutable_spec()->set_unschedulable(true);
  EXPECT_TRUE(WakesScheduler(Modified("nodes", a, cordoned)));
  node::Node suspect = a;
  suspect.mutable_node_status()->set_condition(node::NodeStatus::SUSPECT);
  EXPECT_TRUE(WakesScheduler(Modified("nodes", a, suspect)));
  node::Node relabelled = a;
  (*relabelled.mutable_metadata()->mutable_labels())["zone"] = "z2";
  EXPECT_TRUE(WakesScheduler(Modified("nodes", a, relabelled)));
  node::Node drained = a;
  (*drained.mutable_metadata()->mutable_annotations())[kDrainAnnotation] = "requested";
  EXPECT_TRUE(WakesScheduler(Modified("nodes", a, drained)));
  CacheEvent added = Modified("nodes", a, a);
  added.type = CacheEvent::Type::kAdded;
  added.previous.reset();
  EXPECT_TRUE(WakesScheduler(added));
  CacheEvent deleted = added;
  deleted.type = CacheEvent::Type::kDeleted;
  EXPECT_TRUE(WakesScheduler(deleted));
}

TEST(WakesScheduler, AgentStatusOfAPlacedInstanceDoesNot) {
  compute::ComputeInstance a = PlacedInstance(), b = PlacedInstance();
  b.mutable_status()->set_phase(resource::ResourceStatus::RUNNING);
  (*b.mutable_status()->mutable_details())["node"] = "n1";
  EXPECT_FALSE(WakesScheduler(Modified("computeinstances", a, b)));
}

TEST(WakesScheduler, AnnotationsOfAPlacedInstanceDoNot) {
  // Annotations of placed instances changing 1,000 times a second (the fan-out bench stamps
  // each change in one) kept the scheduler in back-to-back rounds.
  compute::ComputeInstance a = PlacedInstance(), b = PlacedInstance();
  (*b.mutable_metadata()->mutable_annotations())["note"] = "x";
  EXPECT_FALSE(WakesScheduler(Modified("computeinstances", a, b)));
  // Not an unplaced one: every change of those starts a round.
  a.mutable_metadata()->clear_agent_id();
  b.mutable_metadata()->clear_agent_id();
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", a, b)));
}

TEST(WakesScheduler, WhatPlacementReadsDoes) {
  compute::ComputeInstance a = PlacedInstance();
  compute::ComputeInstance running = a;
  running.mutable_status()->set_phase(resource::ResourceStatus::RUNNING);
  // A RegionService member's phase is counted by its service.
  compute::ComputeInstance member = a;
  (*member.mutable_metadata()->mutable_labels())[kRegionServiceLabel] = "web";
  compute::ComputeInstance member_running = member;
  member_running.mutable_status()->set_phase(resource::ResourceStatus::RUNNING);
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", member, member_running)));
  // Unplaced: its status is the scheduler's verdict (and the network's readiness).
  compute::ComputeInstance unplaced = a;
  unplaced.mutable_metadata()->clear_agent_id();
  compute::ComputeInstance unplaced_error = unplaced;
  unplaced_error.mutable_status()->set_phase(resource::ResourceStatus::ERROR);
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", unplaced, unplaced_error)));
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", unplaced, a)));  // placed
  compute::ComputeInstance moved = a;
  moved.mutable_metadata()->set_agent_id("n2");
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", a, moved)));
  compute::ComputeInstance deleting = running;
  deleting.mutable_metadata()->set_deletion_timestamp("2026-12-05T00:00:09Z");
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", running, deleting)));
  compute::ComputeInstance bigger = a;
  bigger.mutable_spec()->mutable_resources()->set_vcpu(2);
  bigger.mutable_metadata()->set_generation(2);
  EXPECT_TRUE(WakesScheduler(Modified("computeinstances", a, bigger)));
  compute::RegionService rs;
  rs.mutable_metadata()->set_name("web");
  rs.mutable_metadata()->set_namespace_("default");
  compute::RegionService rs_status = rs;
  rs_status.mutable_status()->set_phase(resource::ResourceStatus::RUNNING);
  EXPECT_TRUE(WakesScheduler(Modified("regionservices", rs, rs_status)));
}

TEST(WakesScheduler, OtherKindsDoNot) {
  compute::ComputeInstance a = PlacedInstance();
  CacheEvent e = Modified("computeinstances", a, a);
  e.object = std::make_shared<CachedObject>("/registry/events/default/x", "", 2);
  e.previous.reset();
  e.type = CacheEvent::Type::kAdded;
  EXPECT_FALSE(WakesScheduler(e));
}

}  // namespace
}  // namespace photon::server
