// photon-hollow against a real photon-server: a fleet of simulated nodes registers and turns
// READY, runs the instances placed on it (RUNNING, reported by the node they were placed on),
// finishes their deletes, goes DOWN when its process is killed, and comes back with the
// credentials it stored.
#include <gtest/gtest.h>

#include <set>

#include "cluster.h"
#include "common/hex.h"

namespace photon::hollow {
namespace {
using agent::testing::Daemon;
using agent::testing::FreePort;
using agent::testing::MakeTempDir;
using agent::testing::WaitFor;
using json = nlohmann::json;
using std::chrono::seconds;

class HollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("hollow");
    ASSERT_FALSE(dir_.empty());
    port_ = FreePort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    // Short node timeouts so a killed fleet is declared DOWN within the test's bounds.
    server_ = std::make_unique<Daemon>(
        std::vector<std::string>{PHOTON_SERVER_BIN, "--data-dir", dir_ + "/server", "--listen",
                                 "127.0.0.1:" + std::to_string(port_), "--grpc-listen",
                                 "127.0.0.1:" + std::to_string(FreePort()), "--node-suspect-after",
                                 "2000", "--node-down-after", "4000"},
        dir_ + "/server.log");
    ASSERT_TRUE(WaitFor(
        [&] {
          auto c = cli::HttpClient::Create(base_, "");
          auto r = c->Do("GET", "/healthz");
          return r.ok() && r->status == 200;
        },
        seconds(15)));
    auto tok = ReadFile(dir_ + "/server/admin.token");
    ASSERT_TRUE(tok.ok());
    token_ = *tok;
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
  }
  void TearDown() override {
    hollow_.reset();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void StartFleet(int nodes) {
    hollow_port_ = FreePort();
    hollow_ = std::make_unique<Daemon>(
        std::vector<std::string>{PHOTON_HOLLOW_BIN,
                                 "--server",
                                 base_,
                                 "--join-token",
                                 dir_ + "/server/join.token",
                                 "--data-dir",
                                 dir_ + "/hollow",
                                 "--nodes",
                                 std::to_string(nodes),
                                 "--name-prefix",
                                 "hn",
                                 "--heartbeat-seconds",
                                 "1",
                                 "--vcpu",
                                 "4",
                                 "--memory-mb",
                                 "4096",
                                 "--listen",
                                 "127.0.0.1:" + std::to_string(hollow_port_),
                                 "--log-level",
                                 "info"},
        dir_ + "/hollow.log");
  }

  json Get(const std::string& path) {
    auto c = cli::HttpClient::Create(base_, token_);
    auto r = c->Do("GET", path);
    if (!r.ok() || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }
  int Call(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto c = cli::HttpClient::Create(base_, token_);
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? r->status : 0;
  }
  json Items(const std::string& path) {
    json all = json::array();
    std::string cont;
    do {
      json page =
          Get(path + "?limit=500" + (cont.empty() ? "" : "&continue=" + PercentEncode(cont)));
      if (!page.is_object()) return nullptr;
      for (auto& i : page["items"]) all.push_back(i);
      cont = page["continue"].is_string() ? page["continue"].get<std::string>() : "";
    } while (!cont.empty());
    return all;
  }
  // Nodes named hn-* by condition.
  std::map<std::string, int> Conditions() {
    std::map<std::string, int> out;
    json nodes = Items("/v1/namespaces/system/nodes");
    if (!nodes.is_array()) return out;
    for (auto& n : nodes) {
      if (n["metadata"]["name"].get<std::string>().rfind("hn-", 0) != 0) continue;
      std::string cond = n.contains("nodeStatus") ? n["nodeStatus"].value("condition", "") : "";
      out[cond]++;
    }
    return out;
  }
  json Stats() {
    auto c = cli::HttpClient::Create("http://127.0.0.1:" + std::to_string(hollow_port_), "");
    auto r = c->Do("GET", "/stats");
    if (!r.ok() || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }

  std::string dir_;
  int port_ = 0;
  int hollow_port_ = 0;
  std::string base_;
  std::string token_;
  std::unique_ptr<Daemon> server_;
  std::unique_ptr<Daemon> hollow_;
};

TEST_F(HollowTest, FleetRunsPlacedInstancesAndFinishesDeletes) {
  constexpr int kNodes = 50;
  constexpr int kInstances = 150;
  StartFleet(kNodes);
  ASSERT_TRUE(WaitFor([&] { return Conditions()["READY"] == kNodes; }, seconds(30)))
      << "READY: " << Conditions()["READY"];
  for (int i = 0; i < kInstances; ++i) {
    json body{{"metadata", {{"name", "w" + std::to_string(i)}}},
              {"spec",
               {{"process", {{"command", {"sleep", "1000"}}}},
                {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
    ASSERT_EQ(Call("POST", "/v1/namespaces/default/computeinstances", body), 202);
  }
  json items;
  ASSERT_TRUE(WaitFor(
      [&] {
        items = Items("/v1/namespaces/default/computeinstances");
        if (!items.is_array() || items.size() != kInstances) return false;
        for (auto& x : items) {
          if (!x.contains("status") || x["status"].value("phase", "") != "RUNNING") return false;
        }
        return true;
      },
      seconds(60)));
  std::set<std::string> used;
  for (auto& x : items) {
    std::string at = x["metadata"].value("agentId", "");
    // Reported RUNNING by the very node it was placed on, for the generation it has.
    EXPECT_EQ(x["status"]["details"].value("node", ""), at) << x.dump();
    EXPECT_EQ(x["status"].value("observedGeneration", ""), x["metadata"].value("generation", ""));
    used.insert(at);
  }
  EXPECT_GE(used.size(), static_cast<size_t>(kNodes / 2)) << "instances were not spread";
  json stats = Stats();
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats["running"], kInstances);
  EXPECT_EQ(stats["nodesReady"], kNodes);
  // Each node watches with fieldSelector=metadata.agentId=NODE: not one event about an
  // instance of another node reached any of them.
  EXPECT_GT(stats["watchEvents"].get<int64_t>(), 0);
  EXPECT_EQ(stats["foreignEvents"], 0);

  for (int i = 0; i < kInstances; ++i) {
    ASSERT_EQ(Call("DELETE", "/v1/namespaces/default/computeinstances/w" + std::to_string(i)), 202);
  }
  EXPECT_TRUE(WaitFor(
      [&] {
        items = Items("/v1/namespaces/default/computeinstances");
        return items.is_array() && items.empty();
      },
      seconds(60)))
      << items.size() << " left";
  EXPECT_TRUE(WaitFor([&] { return Stats()["running"] == 0; }, seconds(10)));
}

TEST_F(HollowTest, KilledFleetGoesDownAndComesBackWithItsCredentials) {
  constexpr int kNodes = 20;
  StartFleet(kNodes);
  ASSERT_TRUE(WaitFor([&] { return Conditions()["READY"] == kNodes; }, seconds(30)));
  hollow_->Kill(SIGKILL);
  // No heartbeat and no /healthz: DOWN after --node-down-after (4 s).
  EXPECT_TRUE(WaitFor([&] { return Conditions()["DOWN"] == kNodes; }, seconds(20)))
      << "DOWN: " << Conditions()["DOWN"];
  // Started again on the same data dir, every node uses the credential it stored (a fresh join
  // would revoke it) and turns READY again.
  StartFleet(kNodes);
  EXPECT_TRUE(WaitFor([&] { return Conditions()["READY"] == kNodes; }, seconds(30)));
  json stats = Stats();
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats["errors"], 0) << stats.dump();
}

}  // namespace
}  // namespace photon::hollow
