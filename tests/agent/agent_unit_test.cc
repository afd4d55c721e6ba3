// Unit tests of the agent's pure parts: labels and config parsing/validation, the
// de-duplicating work queue.
#include <gtest/gtest.h>

#include <thread>

#include "agent/config.h"
#include "agent/port_wiring.h"
#include "agent/work_queue.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "test_env.h"

namespace photon::agent {
namespace {

using namespace std::chrono_literals;

TEST(ConfigTest, ParseLabels) {
  std::map<std::string, std::string> labels;
  ASSERT_TRUE(ParseLabels("region=r1,zone=z1,,rack_az=k-2", &labels).ok());
  EXPECT_EQ(labels, (std::map<std::string, std::string>{
                        {"region", "r1"}, {"zone", "z1"}, {"rack_az", "k-2"}}));
  EXPECT_EQ(ParseLabels("novalue", &labels).message(), "labels: 'novalue' is not key=value");
  EXPECT_EQ(ParseLabels("=x", &labels).message(), "labels: '=x' is not key=value");
  EXPECT_EQ(ParseLabels("Bad Key=x", &labels).message(), "labels: bad key 'Bad Key'");
}

TEST(ConfigTest, LoadFileAndValidate) {
  std::string dir = testing::MakeTempDir("agent-config");
  std::string path = dir + "/agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(path,
                              "server: 127.0.0.1:1\ntokenFile: /t\ndataDir: /d\nname: n1\n"
                              "labels: {zone: z1}\ncapacity: {vcpu: 3, memoryMb: 512}\n"
                              "drivers:\n  container: {runtime: runc}\n")
                  .ok());
  AgentOptions o;
  ASSERT_TRUE(LoadConfigFile(path, &o).ok());
  EXPECT_EQ(o.name, "n1");
  EXPECT_EQ(o.vcpu, 3);
  EXPECT_EQ(o.memory_mb, 512);
  EXPECT_EQ(o.labels["zone"], "z1");
  EXPECT_EQ(o.drivers["container"]["runtime"], "runc");
  EXPECT_TRUE(ValidateOptions(o).ok());

  ASSERT_TRUE(WriteFileAtomic(path, "nmae: typo\n").ok());
  auto s = LoadConfigFile(path, &o);
  EXPECT_NE(s.message().find("nmae"), std::string::npos) << s;

  AgentOptions bad = o;
  bad.name = "Not_A_Label";
  EXPECT_NE(ValidateOptions(bad).message().find("name"), std::string::npos);
  bad = o;
  bad.memory_mb = -1;
  EXPECT_NE(ValidateOptions(bad).message().find("memory-mb"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(ConfigTest, NetworkModeAndPrefix) {
  std::string dir = testing::MakeTempDir("agent-config");
  std::string path = dir + "/agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(path,
                              "server: 127.0.0.1:1\ntokenFile: /t\ndataDir: /d\nname: n1\n"
                              "network: {mode: ports, netnsPrefix: bed-h1-p-}\n")
                  .ok());
  AgentOptions o;
  EXPECT_EQ(o.network_mode, "none");  // a node wires nothing unless told to
  ASSERT_TRUE(LoadConfigFile(path, &o).ok());
  EXPECT_EQ(o.network_mode, "ports");
  EXPECT_EQ(o.netns_prefix, "bed-h1-p-");
  EXPECT_TRUE(ValidateOptions(o).ok());
  AgentOptions bad = o;
  bad.network_mode = "overlay";
  EXPECT_NE(ValidateOptions(bad).message().find("network-mode: 'overlay'"), std::string::npos);
  bad = o;
  bad.netns_prefix = "a/b";
  EXPECT_NE(ValidateOptions(bad).message().find("netns-prefix"), std::string::npos);
  bad = o;
  bad.bird_config = "/run/bird.conf";
  bad.bird_socket = "/run/bird.ctl";
  bad.bird_router_id = "192.168.10.11";
  bad.bird_local_as = 65001;
  bad.bird_peers = "192.168.10.1:65000";
  EXPECT_TRUE(ValidateOptions(bad).ok());
  bad.bird_peers = "192.168.10.1";
  EXPECT_NE(ValidateOptions(bad).message().find("bird-peers: '192.168.10.1'"), std::string::npos);
  bad.bird_peers = "192.168.10.1:65000";
  bad.network_mode = "shared";
  EXPECT_NE(ValidateOptions(bad).message().find("only with network mode ports"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(path, "network: {mdoe: ports}\n").ok());
  EXPECT_NE(LoadConfigFile(path, &o).message().find("network.mdoe"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(WorkQueueTest, DeduplicatesAndRequeuesWhileProcessing) {
  WorkQueue q;
  q.Add("a");
  q.Add("a");
  q.Add("b");
  EXPECT_EQ(q.Len(), 2u);
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "a");
  q.Add("a");  // while processing: not handed to a second worker
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "b");
  EXPECT_EQ(q.Len(), 0u);
  q.Done("a");  // now it comes back
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "a");
  q.Done("a");
  q.Done("b");
}

TEST(WorkQueueTest, AddAfterAndShutDown) {
  WorkQueue q;
  auto t0 = std::chrono::steady_clock::now();
  q.AddAfter("later", 100ms);
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "later");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    q.ShutDown();
  });
  EXPECT_FALSE(q.Get(&k));
  t.join();
}

// L4 LoadBalancer members in port namespaces (docs/fiberlb.md): a VM replica is refused naming
// spec.vm (its guest cannot hold the VIP), never accepted and left out; a process waits for
// the VIP's L3DSR DSCP. Wire reads the LoadBalancer from a stand-in control plane.
TEST(PortWiringTest, L4MemberInAPortNamespace) {
  std::string lb_json;
  auto server = HttpServer::Start({}, [&](HttpRequest& r) {
    if (r.path == "/v1/namespaces/default/loadbalancers/web")
      return HttpResponse::Json(200, lb_json);
    return HttpResponse::Json(404, "{}");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  ApiClient api("http://127.0.0.1:" + std::to_string((*server)->port()));
  MetricsRegistry metrics;
  WiringOptions o;
  o.mode = "ports";  // not opened: the refusals come before any port is made
  o.node_name = "n1";
  PortWiring wiring(o, &api, &metrics);
  compute::ComputeInstance inst;
  inst.mutable_metadata()->set_id("i-1");
  inst.mutable_metadata()->set_namespace_("default");
  (*inst.mutable_metadata()->mutable_labels())["photon.io/regionservice"] = "web";
  inst.mutable_spec()->mutable_vm();
  lb_json = R"({"spec":{"type":"L4"},"status":{"details":{"vip":"10.200.7.1","l3dsrDscp":"1"}}})";
  auto vm = wiring.Wire(inst, std::nullopt);
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(vm.status().message().find("spec.vm"), std::string::npos) << vm.status();
  EXPECT_NE(vm.status().message().find("10.200.7.1"), std::string::npos) << vm.status();
  inst.mutable_spec()->clear_vm();
  // A process: past the LoadBalancer, it waits for its Port (nothing refused).
  auto process = wiring.Wire(inst, std::nullopt);
  EXPECT_EQ(process.status().code(), absl::StatusCode::kUnavailable) << process.status();
  EXPECT_NE(process.status().message().find("Port"), std::string::npos) << process.status();
  // Without the DSCP (an older provider) it waits rather than run unreachable.
  lb_json = R"({"spec":{"type":"L4"},"status":{"details":{"vip":"10.200.7.1"}}})";
  auto no_dscp = wiring.Wire(inst, std::nullopt);
  EXPECT_EQ(no_dscp.status().code(), absl::StatusCode::kUnavailable) << no_dscp.status();
  EXPECT_NE(no_dscp.status().message().find("l3dsrDscp"), std::string::npos) << no_dscp.status();
}

}  // namespace
}  // namespace photon::agent
