// The network-mode filter (src/server/scheduler/network_filter.h): instances that need a port
// stay off nodes whose agent cannot give them one, PENDING with the reason.
#include "server/scheduler/network_filter.h"

#include <gtest/gtest.h>

#include "server/scheduler/filters.h"
#include "server/scheduler/scheduler.h"

namespace photon::scheduler {
namespace {

NodeState Node(const std::string& name, const std::string& mode) {
  NodeState n;
  n.name = name;
  n.labels = {{"zone", "z1"}, {"cluster", "c1"}};
  n.drivers = {"process", "container", "vm"};
  n.capacity = {8, 8192, 100};
  n.ready = true;
  if (!mode.empty()) n.attributes[kNetworkModeAttribute] = mode;
  return n;
}

Request Req(const std::string& name, PortNeed port, const std::string& driver = "process") {
  Request r;
  r.name = "default/" + name;
  r.group = name;
  r.need = {1, 64, 1};
  r.driver = driver;
  r.port = port;
  r.policy = std::make_shared<compute::SchedulePolicy>();
  return r;
}

TEST(NetworkModeFilterTest, EachModeTakesWhatItsAgentCanWire) {
  ClusterState state;
  for (const char* mode : {"ports", "shared", "none", "", "bogus"}) state.AddNode(Node(mode, mode));
  auto takes = [&](PortNeed need) {
    Request r = Req("x", need);
    Context c = MakeContext(r, &state, "zone", false);
    std::string out;
    for (int i = 0; i < 5; ++i) out += NetworkModeFilter(c, i) ? "1" : "0";
    return out;  // ports, shared, none, (not published), bogus
  };
  EXPECT_EQ(takes(PortNeed::kNone), "11111");
  EXPECT_EQ(takes(PortNeed::kNodeNetworkWillDo), "11010");
  EXPECT_EQ(takes(PortNeed::kPort), "10010");
}

TEST(NetworkModeFilterTest, RequestSaysWhatTheInstanceNeeds) {
  compute::ComputeInstance ci;
  ci.mutable_spec()->mutable_process()->add_command("true");
  EXPECT_EQ(RequestFromInstance(ci, "", 1).port, PortNeed::kNodeNetworkWillDo);  // default VPC
  ci.mutable_spec()->mutable_network()->add_security_groups("web");
  EXPECT_EQ(RequestFromInstance(ci, "", 1).port, PortNeed::kPort);
  ci.mutable_spec()->mutable_network()->Clear();
  ci.mutable_spec()->mutable_network()->set_host_network(true);
  EXPECT_EQ(RequestFromInstance(ci, "", 1).port, PortNeed::kNone);
  compute::ComputeInstance vm;
  vm.mutable_spec()->mutable_vm();
  EXPECT_EQ(RequestFromInstance(vm, "", 1).port, PortNeed::kPort);
}

TEST(NetworkModeFilterTest, PendingWithTheReasonUntilAPortsNodeComes) {
  ClusterState state;
  state.AddNode(Node("dev", "shared"));
  state.AddNode(Node("off", "none"));
  Scheduler s(&state, {});
  Request vm = Req("vm1", PortNeed::kPort, "vm");
  auto d = s.Place(vm);
  EXPECT_EQ(d.kind, Decision::Kind::kPending);
  EXPECT_NE(d.reason.find("2 in a network mode that cannot give it a port"), std::string::npos)
      << d.reason;
  // A plain process is fine in mode shared (it runs in the node's network there).
  d = s.Place(Req("p1", PortNeed::kNodeNetworkWillDo));
  ASSERT_EQ(d.kind, Decision::Kind::kPlaced) << d.reason;
  EXPECT_EQ(d.node_name, "dev");
  state.AddNode(Node("wired", "ports"));
  d = s.Place(vm);
  ASSERT_EQ(d.kind, Decision::Kind::kPlaced) << d.reason;
  EXPECT_EQ(d.node_name, "wired");
}

}  // namespace
}  // namespace photon::scheduler
