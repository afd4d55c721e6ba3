// The scheduler, node lifecycle and RegionService controllers in an in-process photon-server.
// Nodes are simulated through the API with real agent credentials from /v1/join: a thread per
// node writes heartbeats (nodeStatus.lastHeartbeat + READY) and finishes the deletes of
// instances on its node, as an agent would. No agent runs workloads here.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "../server/test_util.h"
#include "common/util.h"

namespace photon::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

server::ServerOptions FastOptions() {
  server::ServerOptions o;
  o.node_suspect_after_ms = 1000;
  o.node_down_after_ms = 2500;
  return o;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// A node as the API sees it: registered and kept alive by a heartbeat thread.
class SimNode {
 public:
  SimNode(const TestServer& s, const std::string& name, json labels, int vcpu = 8,
          int memory_mb = 8192, const std::string& address = "")
      : s_(s), name_(name) {
    auto join = s.Client(Trim(*ReadFile(s.dir + "/join.token")));
    auto r = join.Do("POST", "/v1/join", json{{"node", name}}.dump());
    EXPECT_EQ(r->status, 201) << r->body;
    token_ = Json(*r)["token"];
    json node = {{"metadata", {{"name", name}, {"labels", labels}}},
                 {"spec",
                  {{"capacity", {{"vcpu", vcpu}, {"memoryMb", memory_mb}, {"diskGb", 100}}},
                   {"drivers", {"process", "container"}},
                   {"address", address}}}};
    auto c = s.Client(token_);
    auto cr = c.Do("POST", "/v1/namespaces/system/nodes", node.dump());
    EXPECT_EQ(cr->status, 202) << cr->body;
    Beat(c);
    thread_ = std::thread([this] {
      auto c = s_.Client(token_);
      while (!stop_) {
        if (beating_) Beat(c);
        FinishDeletes(c);
        std::this_thread::sleep_for(200ms);
      }
    });
  }
  ~SimNode() {
    stop_ = true;
    thread_.join();
  }
  void StopHeartbeats() { beating_ = false; }
  void ResumeHeartbeats() { beating_ = true; }
  const std::string& name() const { return name_; }

 private:
  void Beat(cli::HttpClient& c) {
    for (int i = 0; i < 5; ++i) {
      auto g = c.Do("GET", "/v1/namespaces/system/nodes/" + name_);
      if (!g.ok() || g->status != 200) return;
      auto n = Json(*g);
      n["nodeStatus"]["condition"] = "READY";
      n["nodeStatus"]["lastHeartbeat"] = NowRfc3339();
      auto w = c.Do("PUT", "/v1/namespaces/system/nodes/" + name_ + "/status", n.dump());
      if (w.ok() && w->status == 200) return;
      if (w.ok() && w->status != 409) {
        ADD_FAILURE() << name_ << " heartbeat: " << w->status << " " << w->body;
        return;
      }
    }
  }
  void FinishDeletes(cli::HttpClient& c) {
    // An agent lists only its own node's instances.
    auto l = c.Do("GET", "/v1/computeinstances?fieldSelector=metadata.agentId=" + name_);
    if (!l.ok() || l->status != 200) return;
    const json list = Json(*l);
    for (const auto& o : list["items"]) {
      if (o["metadata"]["agentId"] != name_ || o["metadata"]["deletionTimestamp"] == "") continue;
      (void)c.Do("DELETE", "/v1/namespaces/" + o["metadata"]["namespace"].get<std::string>() +
                               "/computeinstances/" + o["metadata"]["name"].get<std::string>());
    }
  }

  const TestServer& s_;
  std::string name_;
  std::string token_;
  std::atomic<bool> stop_{false}, beating_{true};
  std::thread thread_;
};

class SchedulerServerTest : public ::testing::Test {
 protected:
  SchedulerServerTest() : s_(FastOptions()), admin_(s_.Admin()) {}

  // Nodes in `racks` racks over 3 zones, `per_rack` nodes each.
  void AddNodes(int racks, int per_rack, int vcpu = 8) {
    for (int r = 0; r < racks; ++r) {
      for (int i = 0; i < per_rack; ++i) {
        const std::string name = "node-" + std::to_string(r) + "-" + std::to_string(i);
        nodes_.push_back(std::make_unique<SimNode>(
            s_, name,
            json{{"zone", "z" + std::to_string(r % 3)}, {"rack_az", "rack-" + std::to_string(r)}},
            vcpu));
      }
    }
    // Every node READY as the scheduler sees it.
    ASSERT_TRUE(WaitFor([&] {
      const json l = Json(*admin_.Do("GET", "/v1/namespaces/system/nodes"));
      int ready = 0;
      for (const auto& n : l["items"]) ready += n["nodeStatus"]["condition"] == "READY";
      return ready == static_cast<int>(nodes_.size());
    }));
  }
  json Get(const std::string& kind, const std::string& name, const std::string& ns = "default") {
    auto r = admin_.Do("GET", "/v1/namespaces/" + ns + "/" + kind + "/" + name);
    return r->status == 200 ? Json(*r) : json();
  }
  json Instance(const std::string& name) { return Get("computeinstances", name); }
  std::string AgentOf(const std::string& name) {
    auto j = Instance(name);
    return j.is_null() ? "" : j["metadata"]["agentId"].get<std::string>();
  }
  json List(const std::string& kind, const std::string& selector = "") {
    return Json(*admin_.Do("GET", "/v1/namespaces/default/" + kind +
                                      (selector.empty() ? "" : "?labelSelector=" + selector)));
  }
  void Create(const std::string& kind, const json& obj) {
    auto r = admin_.Do("POST", "/v1/namespaces/default/" + kind, obj.dump());
    ASSERT_EQ(r->status, 202) << r->body;
  }
  // Read-modify-write with retries on conflict.
  void Update(const std::string& path, const std::function<void(json&)>& change) {
    for (int i = 0; i < 20; ++i) {
      // PUT …/status takes the whole object as GET on the object returns it.
      const std::string suffix = "/status";
      const bool status = path.size() > suffix.size() &&
                          path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
      auto j = Json(*admin_.Do("GET", status ? path.substr(0, path.size() - suffix.size()) : path));
      change(j);
      auto r = admin_.Do("PUT", path, j.dump());
      if (r->status == 200) return;
      ASSERT_EQ(r->status, 409) << r->body;
    }
    FAIL() << "could not update " << path;
  }
  json RegionService(const std::string& name, int replicas, json schedule) {
    return {{"metadata", {{"name", name}}},
            {"spec",
             {{"replicas", replicas},
              {"schedule", schedule},
              {"template",
               {{"process", {{"command", {"/bin/sleep", "60"}}}},
                {"resources", {{"vcpu", 1}, {"memoryMb", 64}}}}}}}};
  }
  std::set<std::string> Members(const std::string& rs) {
    std::set<std::string> out;
    const json list = List("computeinstances", "photon.io/regionservice=" + rs);
    for (const auto& o : list["items"])
      if (o["metadata"]["deletionTimestamp"] == "")
        out.insert(o["metadata"]["name"].get<std::string>());
    return out;
  }

  TestServer s_;
  cli::HttpClient admin_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
};

std::string RackOf(const std::string& node) {
  // node-<rack>-<i>
  return node.substr(5, node.rfind('-') - 5);
}

TEST_F(SchedulerServerTest, SoftAntiAffinitySpreadsReplicasOverRacks) {
  AddNodes(3, 2);
  Create("regionservices",
         RegionService("web", 3, {{"antiAffinity", {{{"topologyKey", "rack_az"}}}}}));
  std::set<std::string> racks;
  ASSERT_TRUE(WaitFor([&] {
    racks.clear();
    for (int i = 0; i < 3; ++i) {
      auto a = AgentOf("web-" + std::to_string(i));
      if (a.empty()) return false;
      racks.insert(RackOf(a));
    }
    return true;
  }));
  EXPECT_EQ(racks.size(), 3u);
  auto ci = Instance("web-0");
  EXPECT_EQ(ci["metadata"]["labels"]["photon.io/regionservice"], "web");
  EXPECT_NE(ci["status"]["message"].get<std::string>().find("scheduled on"), std::string::npos);
  // The decision is recorded as an Event.
  EXPECT_TRUE(WaitFor([&] {
    const json events = Json(*admin_.Do("GET", "/v1/namespaces/default/events"));
    for (const auto& e : events["items"])
      if (e["spec"]["eventType"] == "Scheduled") return true;
    return false;
  })) << admin_.Do("GET", "/v1/namespaces/default/events")->body;
}

TEST_F(SchedulerServerTest, HardAntiAffinityWithTooFewRacksPlacesNothing) {
  AddNodes(2, 2);
  Create(
      "regionservices",
      RegionService("db", 3, {{"antiAffinity", {{{"topologyKey", "rack_az"}, {"hard", true}}}}}));
  const std::string want =
      "hard anti-affinity on rack_az: 3 replicas but only 2 rack_az domains among eligible nodes";
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < 3; ++i)
      if (Instance("db-" + std::to_string(i))["status"]["message"] != want) return false;
    return true;
  })) << Instance("db-0").dump();
  for (int i = 0; i < 3; ++i) {
    auto ci = Instance("db-" + std::to_string(i));
    EXPECT_EQ(ci["metadata"]["agentId"], "");
    EXPECT_EQ(ci["status"]["phase"], "ERROR");
  }
  // The service is in ERROR and says why (seed 003: no node for a hard constraint → Error).
  ASSERT_TRUE(WaitFor([&] { return Get("regionservices", "db")["status"]["phase"] == "ERROR"; }))
      << Get("regionservices", "db").dump();
  EXPECT_NE(Get("regionservices", "db")["status"]["message"].get<std::string>().find(want),
            std::string::npos)
      << Get("regionservices", "db").dump();
  // A third rack unblocks the whole group.
  nodes_.push_back(
      std::make_unique<SimNode>(s_, "node-9-0", json{{"zone", "z0"}, {"rack_az", "rack-9"}}));
  ASSERT_TRUE(WaitFor([&] {
    std::set<std::string> racks;
    for (int i = 0; i < 3; ++i) {
      auto a = AgentOf("db-" + std::to_string(i));
      if (a.empty()) return false;
      racks.insert(RackOf(a));
    }
    return racks.size() == 3;
  }));
}

// The same spec reached by scaling up ends as it does when created: the member that cannot be
// placed and the service are in ERROR with the same reason; the placed members stay.
TEST_F(SchedulerServerTest, HardAntiAffinityScaleUpBeyondTheRacksIsAnErrorLikeCreate) {
  AddNodes(2, 2);
  Create(
      "regionservices",
      RegionService("kv", 2, {{"antiAffinity", {{{"topologyKey", "rack_az"}, {"hard", true}}}}}));
  ASSERT_TRUE(WaitFor([&] { return !AgentOf("kv-0").empty() && !AgentOf("kv-1").empty(); }));
  const std::string path = "/v1/namespaces/default/regionservices/kv";
  Update(path, [](json& j) { j["spec"]["replicas"] = 3; });
  const std::string want =
      "hard anti-affinity on rack_az: 3 replicas but only 2 rack_az domains among eligible nodes";
  ASSERT_TRUE(WaitFor([&] {
    auto ci = Instance("kv-2");
    return !ci.is_null() && ci["status"]["phase"] == "ERROR" && ci["status"]["message"] == want;
  })) << Instance("kv-2").dump();
  EXPECT_EQ(AgentOf("kv-2"), "");
  ASSERT_TRUE(WaitFor([&] { return Get("regionservices", "kv")["status"]["phase"] == "ERROR"; }))
      << Get("regionservices", "kv").dump();
  EXPECT_NE(
      Get("regionservices", "kv")["status"]["message"].get<std::string>().find("kv-2: " + want),
      std::string::npos)
      << Get("regionservices", "kv").dump();
  EXPECT_FALSE(AgentOf("kv-0").empty());
  EXPECT_FALSE(AgentOf("kv-1").empty());
  // A third rack places it.
  nodes_.push_back(
      std::make_unique<SimNode>(s_, "node-9-0", json{{"zone", "z0"}, {"rack_az", "rack-9"}}));
  ASSERT_TRUE(WaitFor([&] {
    auto a = AgentOf("kv-2");
    return !a.empty() && RackOf(a) == "9";
  })) << Instance("kv-2").dump();
}

TEST_F(SchedulerServerTest, EmptyClusterVerdictAtCreateThenPlacedWhenANodeJoins) {
  // With no Node at all, the create answer already carries the scheduler's reason (no status
  // write per create), and those instances are still placed once a node joins.
  std::this_thread::sleep_for(300ms);  // a first scheduler round has seen the empty cluster
  for (const char* n : {"e1", "e2", "e3"}) {
    auto r = admin_.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance(n));
    ASSERT_EQ(r->status, 202) << r->body;
    EXPECT_EQ(json::parse(r->body)["object"]["status"]["message"],
              "no nodes available: 0 of 0 nodes are Ready and schedulable")
        << r->body;
  }
  AddNodes(1, 1);
  for (const char* n : {"e1", "e2", "e3"}) {
    EXPECT_TRUE(WaitFor([&] { return AgentOf(n) == "node-0-0"; })) << Instance(n).dump();
  }
}

TEST_F(SchedulerServerTest, NoOvercommitAndDeleteReleasesCapacity) {
  AddNodes(1, 1, /*vcpu=*/2);
  for (const char* n : {"a", "b", "c"}) {
    auto r = admin_.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance(n));
    ASSERT_EQ(r->status, 202);
    // One at a time: which two fit must not depend on timing.
    if (std::string(n) != "c") {
      ASSERT_TRUE(WaitFor([&] { return !AgentOf(n).empty(); }));
    }
  }
  ASSERT_TRUE(WaitFor([&] {
    return Instance("c")["status"]["message"].get<std::string>().find("insufficient vcpu") !=
           std::string::npos;
  })) << Instance("c").dump();
  EXPECT_EQ(AgentOf("c"), "");
  EXPECT_EQ(Instance("c")["status"]["phase"], "PENDING");
  EXPECT_TRUE(WaitFor(
      [&] { return Get("nodes", "node-0-0", "system")["nodeStatus"]["allocated"]["vcpu"] == 2; }));
  // Deleting one (finished by the node) makes room for the waiting one.
  ASSERT_EQ(admin_.Do("DELETE", "/v1/namespaces/default/computeinstances/a")->status, 202);
  EXPECT_TRUE(WaitFor([&] { return AgentOf("c") == "node-0-0"; })) << Instance("c").dump();
}

// An admin setting metadata.agentId by hand goes through the scheduler's filters: a move to a
// node with room is accepted, one over capacity or to an unknown node is refused naming why.
TEST_F(SchedulerServerTest, ManualPlacementPassesTheFilters) {
  AddNodes(2, 1, /*vcpu=*/8);
  auto instance = [](const std::string& name, int vcpu) {
    return json{{"metadata", {{"name", name}}},
                {"spec",
                 {{"process", {{"command", {"/bin/sleep", "60"}}}},
                  {"resources", {{"vcpu", vcpu}, {"memoryMb", 64}}}}}};
  };
  Create("computeinstances", instance("small", 1));
  ASSERT_TRUE(WaitFor([&] { return !AgentOf("small").empty(); }));
  const std::string from = AgentOf("small");
  const std::string to = from == "node-0-0" ? "node-1-0" : "node-0-0";
  const std::string path = "/v1/namespaces/default/computeinstances/small";
  auto put_agent = [&](const std::string& node) {
    json j = Instance("small");
    j["metadata"]["agentId"] = node;
    return *admin_.Do("PUT", path, j.dump());
  };
  auto moved = put_agent(to);
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(AgentOf("small"), to);
  // `from` is empty now: a full-node instance goes there; moving `small` back would overcommit.
  Create("computeinstances", instance("full", 8));
  ASSERT_TRUE(WaitFor([&] { return AgentOf("full") == from; })) << Instance("full").dump();
  auto over = put_agent(from);
  EXPECT_EQ(over.status, 400) << over.body;
  EXPECT_NE(over.body.find("metadata.agentId: node " + from +
                           " cannot take default/small: insufficient vcpu (needs 1, 0 of 8 free)"),
            std::string::npos)
      << over.body;
  auto unknown = put_agent("node-nope");
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_NE(unknown.body.find("there is no node 'node-nope'"), std::string::npos) << unknown.body;
  EXPECT_EQ(AgentOf("small"), to);
}

// metadata.agentId on a create is kept (the scheduler does not move it), checked by the same
// filters, and an admin's only: a tenant's is refused, never dropped.
TEST_F(SchedulerServerTest, ManualPlacementOnCreateIsKeptCheckedAndAdminOnly) {
  AddNodes(2, 1, /*vcpu=*/4);
  auto instance = [](const std::string& name, const std::string& node, int vcpu) {
    return json{{"metadata", {{"name", name}, {"agentId", node}}},
                {"spec",
                 {{"process", {{"command", {"/bin/sleep", "60"}}}},
                  {"resources", {{"vcpu", vcpu}, {"memoryMb", 64}}}}}};
  };
  // Both on node-1-0, where spreading would have put the second elsewhere.
  for (const char* name : {"pinned-a", "pinned-b"}) {
    auto r = admin_.Do("POST", "/v1/namespaces/default/computeinstances",
                       instance(name, "node-1-0", 1).dump());
    ASSERT_EQ(r->status, 202) << r->body;
    EXPECT_EQ(AgentOf(name), "node-1-0");
  }
  auto over = admin_.Do("POST", "/v1/namespaces/default/computeinstances",
                        instance("too-big", "node-1-0", 3).dump());
  EXPECT_EQ(over->status, 400) << over->body;
  EXPECT_NE(over->body.find("insufficient vcpu"), std::string::npos) << over->body;
  auto unknown = admin_.Do("POST", "/v1/namespaces/default/computeinstances",
                           instance("lost", "node-nope", 1).dump());
  EXPECT_EQ(unknown->status, 400) << unknown->body;
  EXPECT_NE(unknown->body.find("there is no node 'node-nope'"), std::string::npos) << unknown->body;

  json body = {{"principal", "alice"},
               {"bindings", json::array({{{"namespace", "default"}, {"role", "editor"}}})}};
  auto tok = admin_.Do("POST", "/v1/tokens", body.dump());
  ASSERT_EQ(tok->status, 201) << tok->body;
  auto alice = s_.Client(Json(*tok)["token"].get<std::string>());
  auto tenant = alice.Do("POST", "/v1/namespaces/default/computeinstances",
                         instance("hers", "node-0-0", 1).dump());
  EXPECT_EQ(tenant->status, 403) << tenant->body;
  EXPECT_NE(tenant->body.find("metadata.agentId"), std::string::npos) << tenant->body;
  EXPECT_TRUE(Instance("hers").is_null());

  // Several scheduling rounds later they are still where they were put.
  Create("computeinstances", instance("free", "", 1));
  ASSERT_TRUE(WaitFor([&] { return !AgentOf("free").empty(); }));
  EXPECT_EQ(AgentOf("pinned-a"), "node-1-0");
  EXPECT_EQ(AgentOf("pinned-b"), "node-1-0");
}

TEST_F(SchedulerServerTest, ImpossibleSpecIsErrorNamingTheField) {
  AddNodes(1, 1);
  Create("computeinstances", {{"metadata", {{"name", "huge"}}},
                              {"spec",
                               {{"process", {{"command", {"/bin/true"}}}},
                                {"resources", {{"vcpu", 1}, {"memoryMb", 1 << 20}}}}}});
  ASSERT_TRUE(WaitFor([&] { return Instance("huge")["status"]["phase"] == "ERROR"; }));
  EXPECT_NE(
      Instance("huge")["status"]["message"].get<std::string>().find("spec.resources.memoryMb"),
      std::string::npos);
}

TEST_F(SchedulerServerTest, BadSpecsAreRefusedWithTheFieldNamed) {
  auto r = admin_.Do("POST", "/v1/namespaces/default/computeinstances",
                     R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"],"gpus":2}}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("gpus"), std::string::npos) << r->body;
  r = admin_.Do("POST", "/v1/namespaces/default/computeinstances",
                R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},)"
                R"("resources":{"memoryMb":-5}}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("spec.resources.memoryMb"), std::string::npos) << r->body;
  r = admin_.Do("POST", "/v1/namespaces/default/regionservices",
                R"({"metadata":{"name":"x"},"spec":{"replicas":-1}})");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("spec.replicas"), std::string::npos) << r->body;
}

TEST_F(SchedulerServerTest, QuantitiesBeyondTheBoundsAreRefused) {
  // Each would let used + requested wrap int64 in the scheduler's sums.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"computeinstances", R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},)"
                           R"("resources":{"memoryMb":9223372036854775807}}})"},
      {"computeinstances", R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},)"
                           R"("resources":{"diskGb":"9223372036854775807"}}})"},
      {"computeinstances", R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},)"
                           R"("resources":{"vcpu":2147483647}}})"},
      {"regionservices", R"({"metadata":{"name":"x"},"spec":{"replicas":1,"template":)"
                         R"({"process":{"command":["a"]},"resources":{"memoryMb":67108865}}}})"},
      {"regionservices", R"({"metadata":{"name":"x"},"spec":{"replicas":10001}})"},
      {"flavors", R"({"metadata":{"name":"x"},"spec":{"vcpu":1,"memoryMb":1,)"
                  R"("diskGb":9223372036854775807}})"},
      {"volumes", R"({"metadata":{"name":"x"},"spec":{"sizeGb":9223372036854775807}})"},
  };
  for (const auto& [kind, body] : bad) {
    auto r = admin_.Do("POST", "/v1/namespaces/default/" + kind, body);
    EXPECT_EQ(r->status, 400) << body << ": " << r->body;
    EXPECT_NE(r->body.find("must be ≤"), std::string::npos) << r->body;
  }
  // A node cannot report a capacity beyond the bounds either.
  auto join = s_.Client(Trim(*ReadFile(s_.dir + "/join.token")));
  auto j = join.Do("POST", "/v1/join", json{{"node", "liar"}}.dump());
  ASSERT_EQ(j->status, 201) << j->body;
  auto agent = s_.Client(Json(*j)["token"]);
  auto r = agent.Do("POST", "/v1/namespaces/system/nodes",
                    R"({"metadata":{"name":"liar"},"spec":{"capacity":)"
                    R"({"vcpu":8,"memoryMb":"9223372036854775807","diskGb":100}}})");
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("spec.capacity.memoryMb"), std::string::npos) << r->body;
}

TEST_F(SchedulerServerTest, CordonedNodeGetsNothing) {
  AddNodes(2, 1);
  Update("/v1/namespaces/system/nodes/node-0-0",
         [](json& n) { n["spec"]["unschedulable"] = true; });
  for (int i = 0; i < 4; ++i)
    Create("computeinstances", json::parse(ProcessInstance("p" + std::to_string(i))));
  for (int i = 0; i < 4; ++i) {
    const std::string n = "p" + std::to_string(i);
    ASSERT_TRUE(WaitFor([&] { return !AgentOf(n).empty(); }));
    EXPECT_EQ(AgentOf(n), "node-1-0");
  }
}

TEST_F(SchedulerServerTest, DrainMovesEverythingThenSaysDone) {
  AddNodes(2, 1);
  Update("/v1/namespaces/system/nodes/node-1-0",
         [](json& n) { n["spec"]["unschedulable"] = true; });
  for (int i = 0; i < 3; ++i)
    Create("computeinstances", json::parse(ProcessInstance("d" + std::to_string(i))));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(WaitFor([&] { return AgentOf("d" + std::to_string(i)) == "node-0-0"; }));
  Update("/v1/namespaces/system/nodes/node-1-0",
         [](json& n) { n["spec"]["unschedulable"] = false; });
  // What `photon node drain` does.
  Update("/v1/namespaces/system/nodes/node-0-0", [](json& n) {
    n["spec"]["unschedulable"] = true;
    n["metadata"]["annotations"]["photon.io/drain"] = "requested";
  });
  ASSERT_TRUE(WaitFor([&] {
    return Get("nodes", "node-0-0", "system")["metadata"]["annotations"]["photon.io/drain"] ==
           "done";
  }));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(AgentOf("d" + std::to_string(i)), "node-1-0");
  EXPECT_NE(
      Instance("d0")["status"]["message"].get<std::string>().find("rescheduled from node-0-0"),
      std::string::npos);
}

// A node back from DOWN (its agent writes READY with the heartbeat) is recorded as a
// NodeReady event, as the node events are documented.
TEST_F(SchedulerServerTest, NodeBackFromDownRecordsNodeReady) {
  AddNodes(1, 1);
  nodes_[0]->StopHeartbeats();
  ASSERT_TRUE(WaitFor(
      [&] { return Get("nodes", "node-0-0", "system")["nodeStatus"]["condition"] == "DOWN"; }, 8s));
  nodes_[0]->ResumeHeartbeats();
  auto node_events = [&](const std::string& type) {
    int n = 0;
    const json events = Json(*admin_.Do("GET", "/v1/namespaces/system/events"));
    for (const auto& e : events["items"])
      n += e["spec"]["eventType"] == type &&
           e["spec"]["resourceEvent"]["name"] == "nodes/system/node-0-0";
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return node_events("NodeReady") == 1; }))
      << admin_.Do("GET", "/v1/namespaces/system/events")->body;
  EXPECT_EQ(Get("nodes", "node-0-0", "system")["nodeStatus"]["condition"], "READY");
  EXPECT_EQ(node_events("NodeDown"), 1);
}

TEST_F(SchedulerServerTest, SilentNodeGoesSuspectThenDownAndItsComputesMove) {
  AddNodes(2, 1);
  Update("/v1/namespaces/system/nodes/node-1-0",
         [](json& n) { n["spec"]["unschedulable"] = true; });
  Create("computeinstances", json::parse(ProcessInstance("v")));
  ASSERT_TRUE(WaitFor([&] { return AgentOf("v") == "node-0-0"; }));
  Update("/v1/namespaces/system/nodes/node-1-0",
         [](json& n) { n["spec"]["unschedulable"] = false; });
  nodes_[0]->StopHeartbeats();
  bool saw_suspect = false;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto c = Get("nodes", "node-0-0", "system")["nodeStatus"]["condition"];
        saw_suspect |= c == "SUSPECT";
        return c == "DOWN";
      },
      8s));
  EXPECT_TRUE(saw_suspect);
  ASSERT_TRUE(WaitFor([&] { return AgentOf("v") == "node-1-0"; })) << Instance("v").dump();
  EXPECT_NE(Instance("v")["status"]["message"].get<std::string>().find("DOWN"), std::string::npos);
  // The other node kept beating and stays READY.
  EXPECT_EQ(Get("nodes", "node-1-0", "system")["nodeStatus"]["condition"], "READY");
}

TEST_F(SchedulerServerTest, SilentNodeWhoseHealthzAnswersStaysSuspect) {
  // The node's address is this server's own REST port: its /healthz answers.
  nodes_.push_back(
      std::make_unique<SimNode>(s_, "probed", json{{"zone", "z0"}, {"rack_az", "r0"}}, 8, 8192,
                                "127.0.0.1:" + std::to_string(s_.server->http_port())));
  ASSERT_TRUE(WaitFor(
      [&] { return Get("nodes", "probed", "system")["nodeStatus"]["condition"] == "READY"; }));
  nodes_[0]->StopHeartbeats();
  ASSERT_TRUE(WaitFor(
      [&] { return Get("nodes", "probed", "system")["nodeStatus"]["condition"] == "SUSPECT"; }));
  // Well past the down interval it is still SUSPECT, and says why.
  std::this_thread::sleep_for(3500ms);
  auto n = Get("nodes", "probed", "system");
  EXPECT_EQ(n["nodeStatus"]["condition"], "SUSPECT");
  EXPECT_NE(n["nodeStatus"]["message"].get<std::string>().find("/healthz answers"),
            std::string::npos)
      << n.dump();
}

TEST_F(SchedulerServerTest, RegionServiceWithInvalidTemplateIsError) {
  // Quantities out of bounds are refused by the API (400); the rest of the template is checked
  // when a member is created.
  json rs = RegionService("bad", 1, json::object());
  rs["spec"]["template"]["resources"]["memoryMb"] = -1;
  auto r = admin_.Do("POST", "/v1/namespaces/default/regionservices", rs.dump());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("spec.template.resources.memoryMb"), std::string::npos) << r->body;
  rs["spec"]["template"]["resources"]["memoryMb"] = 64;
  rs["spec"]["template"]["process"]["restartPolicy"] = "sometimes";
  Create("regionservices", rs);
  ASSERT_TRUE(WaitFor([&] { return Get("regionservices", "bad")["status"]["phase"] == "ERROR"; }));
  EXPECT_NE(Get("regionservices", "bad")["status"]["message"].get<std::string>().find(
                "spec.process.restartPolicy"),
            std::string::npos);
  EXPECT_TRUE(List("computeinstances")["items"].empty());
}

TEST_F(SchedulerServerTest, RegionServiceScalesUpDownDeleteOneAndZero) {
  AddNodes(3, 1);
  Create("regionservices", RegionService("api", 2, json::object()));
  ASSERT_TRUE(WaitFor([&] { return Members("api") == std::set<std::string>{"api-0", "api-1"}; }));
  const std::string path = "/v1/namespaces/default/regionservices/api";
  Update(path, [](json& j) { j["spec"]["replicas"] = 4; });
  ASSERT_TRUE(WaitFor([&] { return Members("api").size() == 4; }));
  EXPECT_EQ(Members("api"), (std::set<std::string>{"api-0", "api-1", "api-2", "api-3"}));
  // Scale down deletes from the tail.
  Update(path, [](json& j) { j["spec"]["replicas"] = 3; });
  ASSERT_TRUE(WaitFor([&] { return Members("api").size() == 3; }));
  EXPECT_EQ(Members("api"), (std::set<std::string>{"api-0", "api-1", "api-2"}));
  // Deleting one member directly decrements replicas; nothing is recreated.
  ASSERT_EQ(admin_.Do("DELETE", "/v1/namespaces/default/computeinstances/api-1")->status, 202);
  ASSERT_TRUE(WaitFor([&] { return Get("regionservices", "api")["spec"]["replicas"] == 2; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Members("api"), (std::set<std::string>{"api-0", "api-2"}));
  // Deleting the last members removes the service.
  ASSERT_EQ(admin_.Do("DELETE", "/v1/namespaces/default/computeinstances/api-0")->status, 202);
  ASSERT_EQ(admin_.Do("DELETE", "/v1/namespaces/default/computeinstances/api-2")->status, 202);
  ASSERT_TRUE(WaitFor([&] { return Get("regionservices", "api").is_null(); }));
  EXPECT_TRUE(WaitFor([&] { return List("computeinstances")["items"].empty(); }));
}

TEST_F(SchedulerServerTest, RegionServiceStatusFollowsItsComputes) {
  AddNodes(2, 1);
  Create("regionservices", RegionService("st", 2, json::object()));
  ASSERT_TRUE(WaitFor([&] { return Members("st").size() == 2; }));
  EXPECT_TRUE(
      WaitFor([&] { return Get("regionservices", "st")["status"]["phase"] == "CREATING"; }));
  // The agents report RUNNING: the service becomes RUNNING (seed 003 Active).
  for (const auto& n : {"st-0", "st-1"}) {
    ASSERT_TRUE(WaitFor([&] { return !AgentOf(n).empty(); }));
    Update(std::string("/v1/namespaces/default/computeinstances/") + n + "/status",
           [](json& j) { j["status"]["phase"] = "RUNNING"; });
  }
  EXPECT_TRUE(WaitFor([&] { return Get("regionservices", "st")["status"]["phase"] == "RUNNING"; }))
      << Get("regionservices", "st").dump();
  EXPECT_EQ(Get("regionservices", "st")["status"]["message"], "2/2 replicas running");
}

TEST(SchedulerConfig, YamlKeysAndBadIntervals) {
  const std::string dir = MakeTempDir("schedcfg");
  const std::string path = dir + "/server.yaml";
  ASSERT_TRUE(WriteFileAtomic(path,
                              "node_suspect_after_ms: 1500\nnode_down_after_ms: 4000\n"
                              "scheduler_binpack: true\nscheduler: true\n",
                              0600)
                  .ok());
  server::ServerOptions o;
  ASSERT_TRUE(server::LoadServerConfig(path, &o).ok());
  EXPECT_EQ(o.node_suspect_after_ms, 1500);
  EXPECT_EQ(o.node_down_after_ms, 4000);
  EXPECT_TRUE(o.scheduler_binpack);
  ASSERT_TRUE(WriteFileAtomic(path, "node_suspect_after: 1\n", 0600).ok());
  auto st = server::LoadServerConfig(path, &o);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("node_suspect_after"), std::string::npos);
  // Down must come after suspect.
  o.data_dir = dir + "/data";
  o.listen = "127.0.0.1:0";
  o.grpc_listen = "127.0.0.1:0";
  o.node_suspect_after_ms = 5000;
  o.node_down_after_ms = 1000;
  auto s = server::Server::Start(o);
  EXPECT_FALSE(s.ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace photon::testing
