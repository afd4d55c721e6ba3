// How often an agent reconciles an instance it has started: once for its placement, once a
// second later (to catch an early exit), and then only when something changes or the periodic
// resync comes. The echo of the agent's own status write, and in network modes without port
// wiring the Port's placement event, used to cost an extra reconcile each (7.6 reconciles per
// instance in bench/agent, against 1 start and 1 status write). A real photon-server and
// photon-agent; the counts come from the agent's /metrics.
#include <gtest/gtest.h>

#include "cluster.h"
#include "test_env.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

double Metric(const std::string& page, const std::string& name) {
  size_t at = page.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + name.size() + 2));
}

std::string AgentMetrics(Cluster& cluster, const std::string& node) {
  auto n = cluster.Get("/v1/namespaces/system/nodes/" + node);
  if (!n.is_object()) return "";
  auto c = cli::HttpClient::Create("http://" + n["spec"].value("address", ""), "");
  auto r = c->Do("GET", "/metrics");
  return r.ok() && r->status == 200 ? r->body : "";
}

TEST(AgentReconciles, AreNotRepeatedForTheAgentsOwnWrites) {
  if (geteuid() != 0) GTEST_SKIP() << "the agent needs root for cgroups";
  constexpr int kInstances = 24;
  const std::string suffix = std::to_string(getpid() % 100000);
  const std::string node = "rc" + suffix;
  Cluster cluster;
  // No periodic resync during the test (flags given later win): what is counted is what the
  // instances' own events cause.
  ASSERT_TRUE(cluster.StartAgent(node, "zone=z1",
                                 {"--resync-seconds", "3600", "--vcpu", "64", "--workers", "4"}));
  for (int i = 0; i < kInstances; ++i) {
    json inst = {
        {"metadata", {{"name", "rc" + std::to_string(i) + "-" + suffix}, {"agentId", node}}},
        {"spec",
         {{"process", {{"command", {"sleep", "1000"}}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "16"}}}}}};
    auto r = cluster.Call("POST", "/v1/namespaces/default/computeinstances", inst);
    ASSERT_EQ(r.status, 202) << r.body;
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kInstances; ++i) {
          if (cluster.Phase("rc" + std::to_string(i) + "-" + suffix) != "RUNNING") return false;
        }
        return true;
      },
      60s));
  // The one-second check after each start has run once the count stops moving.
  double reconciles = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::this_thread::sleep_for(1500ms);
        double now = Metric(AgentMetrics(cluster, node), "photon_agent_reconciles_total");
        bool settled = now == reconciles;
        reconciles = now;
        return settled;
      },
      30s));
  const std::string page = AgentMetrics(cluster, node);
  const double noop = Metric(page, "photon_agent_noop_reconciles_total");
  const double echoes = Metric(page, "photon_agent_own_write_events_total");
  const double writes = Metric(page, "photon_agent_status_writes_total");
  std::printf(
      "%d instances: %.0f reconciles (%.0f changed nothing), %.0f own-write events "
      "skipped, %.0f status writes\n",
      kInstances, reconciles, noop, echoes, writes);
  EXPECT_EQ(writes, kInstances) << "one status write per start";
  // Per instance: the start, and the check a second later (which changes nothing). Echoes
  // that arrive before the write's answer are still reconciled: how many depends on the load
  // (2.2-2.35 per instance seen, the last under a CI run). Without the echo skip it is 3 per
  // instance (72 reconciles for 24), which these bounds refuse.
  EXPECT_LE(reconciles, kInstances * 2 + kInstances * 3 / 4);
  EXPECT_LE(noop, kInstances + kInstances * 3 / 4);
  EXPECT_GT(echoes, 0) << "no echo of a status write was recognised";
}

}  // namespace
}  // namespace photon::agent::testing
