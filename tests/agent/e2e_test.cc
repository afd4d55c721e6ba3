// End to end: a real photon-server and three real photon-agent processes with distinct names
// and labels. Instances are placed by writing metadata.agentId as admin (the placement
// contract); one test lets the server's scheduler place an instance.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sstream>

#include "agent/host/record_log.h"
#include "cluster.h"
#include "test_env.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the agent needs root for cgroups and runc";
    if (InChroot()) GTEST_SKIP() << "SKIPPED LOUDLY: inside a chroot runc cannot start containers";
    suffix_ = std::to_string(getpid() % 100000);
    a_ = "a" + suffix_;
    b_ = "b" + suffix_;
    c_ = "c" + suffix_;
    cluster_ = std::make_unique<Cluster>();
    // Images only from the node's images root; confined rootfs trees where every directory
    // above them is searchable (/tmp is 0700 on some hosts).
    images_root_ = MakeTempDir("e2e-images");
    ctr_root_ = "/var/tmp/photon-e2e-ctr-XXXXXX";
    ASSERT_NE(mkdtemp(ctr_root_.data()), nullptr);
    ASSERT_EQ(chmod(ctr_root_.c_str(), 0711), 0);
    std::string ab = cluster_->dir() + "/ab.yaml";
    ASSERT_TRUE(WriteFileAtomic(ab, "drivers:\n  container: {images_root: \"" + images_root_ +
                                        "\", rootfs_root: \"" + ctr_root_ + "\"}\n")
                    .ok());
    ASSERT_TRUE(
        cluster_->StartAgent(a_, "region=r1,zone=z1,rack_az=k1,tier=gold", {"--config", ab}));
    ASSERT_TRUE(cluster_->StartAgent(b_, "region=r1,zone=z2,rack_az=k2", {"--config", ab}));
    // The third node offers only the process driver (config file), to test refusal.
    std::string config = cluster_->dir() + "/c.yaml";
    ASSERT_TRUE(WriteFileAtomic(config,
                                "drivers:\n  container: {enabled: \"false\"}\n"
                                "  vm: {enabled: \"false\"}\nlabels:\n  power_az: p3\n")
                    .ok());
    ASSERT_TRUE(cluster_->StartAgent(c_, "region=r1,zone=z3", {"--config", config}));
  }
  void TearDown() override {
    cluster_.reset();
    std::error_code ec;
    if (!images_root_.empty()) std::filesystem::remove_all(images_root_, ec);
    if (!ctr_root_.empty()) std::filesystem::remove_all(ctr_root_, ec);
  }

  // A name unique on this host (process environments are matched by it).
  std::string Name(const std::string& base) { return base + "-" + suffix_; }

  cli::HttpResult CreateProcess(const std::string& name, const std::string& node,
                                std::vector<std::string> command, json extra = json::object()) {
    json inst = {
        {"metadata", {{"name", name}, {"agentId", node}}},
        {"spec",
         {{"process", {{"command", command}}}, {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
    inst["spec"].merge_patch(extra);
    return Create(inst);
  }
  void CreateImage() {
    rootfs_ = images_root_ + "/busybox";
    auto r =
        RunCommand({"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-rootfs.sh", rootfs_});
    ASSERT_TRUE(r.ok() && r->exit_code == 0);
    json img = {{"metadata", {{"name", "busybox"}}},
                {"spec", {{"sourcePath", rootfs_}, {"format", "rootfs-dir"}}}};
    ASSERT_EQ(cluster_->Call("POST", "/v1/namespaces/default/images", img).status, 202);
  }
  cli::HttpResult CreateContainer(const std::string& name, const std::string& node,
                                  const std::string& image, std::vector<std::string> command) {
    json inst = {{"metadata", {{"name", name}, {"agentId", node}}},
                 {"spec",
                  {{"container", {{"image", image}, {"command", command}}},
                   {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
    return Create(inst);
  }
  // Creates an instance and places it on metadata.agentId: asked of the scheduler
  // (spec.schedule.nodes) so that a spec no node can run is accepted and reported in its
  // status, and, when no scheduler placed it there, written as admin (the placement contract).
  // (agentId on the create itself is checked by the filters and refused outright.)
  cli::HttpResult Create(json inst) {
    std::string node = inst["metadata"]["agentId"];
    std::string name = inst["metadata"]["name"];
    inst["metadata"].erase("agentId");
    inst["spec"]["schedule"]["nodes"] = json::array({node});
    auto r = cluster_->Call("POST", "/v1/namespaces/default/computeinstances", inst);
    if (r.status != 202) return r;
    WaitFor([&] { return !cluster_->Instance(name)["metadata"].value("agentId", "").empty(); }, 1s);
    for (int i = 0; i < 20; ++i) {
      json cur = cluster_->Instance(name);
      if (cur["metadata"].value("agentId", "") == node) break;
      cur["metadata"]["agentId"] = node;
      if (cluster_->Call("PUT", "/v1/namespaces/default/computeinstances/" + name, cur).status ==
          200) {
        break;
      }
    }
    return r;
  }
  bool WaitPhase(const std::string& name, const std::string& phase,
                 std::chrono::milliseconds timeout = 15s) {
    return WaitFor([&] { return cluster_->Phase(name) == phase; }, timeout);
  }
  std::vector<pid_t> Pids(const std::string& name) {
    return PidsWithEnv({"PHOTON_INSTANCE=" + name});
  }
  // A counter from the agent's /metrics on its advertised address (-1 when unreadable).
  double AgentMetric(const std::string& node, const std::string& metric) {
    json n = cluster_->Get("/v1/namespaces/system/nodes/" + node);
    if (!n.is_object()) return -1;
    auto m = cli::HttpClient::Create("http://" + n["spec"].value("address", ""), "")
                 ->Do("GET", "/metrics");
    if (!m.ok()) return -1;
    std::istringstream lines(m->body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(metric + " ", 0) == 0) return std::stod(line.substr(metric.size() + 1));
    }
    return -1;
  }

  std::string suffix_, a_, b_, c_, rootfs_, images_root_, ctr_root_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(AgentE2eTest, NodesRegisterWithCapacityDriversLabelsAndHeartbeats) {
  json node = cluster_->Get("/v1/namespaces/system/nodes/" + a_);
  ASSERT_TRUE(node.is_object());
  EXPECT_EQ(node["metadata"]["labels"]["zone"], "z1");
  EXPECT_EQ(node["metadata"]["labels"]["tier"], "gold");
  EXPECT_EQ(node["spec"]["capacity"]["vcpu"], 4);
  EXPECT_EQ(node["spec"]["capacity"]["memoryMb"], "2048");
  auto drivers = node["spec"]["drivers"];
  EXPECT_NE(std::find(drivers.begin(), drivers.end(), "process"), drivers.end());
  EXPECT_NE(std::find(drivers.begin(), drivers.end(), "container"), drivers.end());
  EXPECT_EQ(node["spec"]["attributes"]["container.runtime"], "runc");
  EXPECT_EQ(node["nodeStatus"]["condition"], "READY");
  std::string beat = node["nodeStatus"]["lastHeartbeat"];
  EXPECT_TRUE(WaitFor(
      [&] {
        auto n = cluster_->Get("/v1/namespaces/system/nodes/" + a_);
        return n.is_object() && n["nodeStatus"]["lastHeartbeat"] != beat;
      },
      5s));
  // Config file: drivers switched off, labels merged with the flags'.
  json c = cluster_->Get("/v1/namespaces/system/nodes/" + c_);
  EXPECT_EQ(c["spec"]["drivers"], json::array({"process"}));
  EXPECT_EQ(c["metadata"]["labels"]["power_az"], "p3");
  EXPECT_EQ(c["metadata"]["labels"]["zone"], "z3");
  // Its own credential, private.
  struct stat st;
  ASSERT_EQ(stat((cluster_->agent(a_).dir + "/credential").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // /metrics on the advertised address.
  auto client = cli::HttpClient::Create("http://" + node["spec"]["address"].get<std::string>(), "");
  auto m = client->Do("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->body.find("photon_agent_reconciles_total"), std::string::npos);
}

TEST_F(AgentE2eTest, ProcessRunsAndLogsActionReturnsOutput) {
  std::string name = Name("web");
  ASSERT_EQ(
      CreateProcess(name, b_, {"/bin/sh", "-c", "echo hello from $PHOTON_INSTANCE; exec sleep 300"})
          .status,
      202);
  ASSERT_TRUE(WaitPhase(name, "RUNNING")) << cluster_->Instance(name).dump();
  json inst = cluster_->Instance(name);
  EXPECT_EQ(inst["status"]["observedGeneration"], inst["metadata"]["generation"]);
  EXPECT_EQ(inst["status"]["details"]["node"], b_);
  EXPECT_EQ(Pids(name).size(), 1u);
  json op = cluster_->Action(name, "logs");
  ASSERT_EQ(op["status"]["state"], "DONE") << op.dump();
  EXPECT_NE(op["status"]["message"].get<std::string>().find("hello from " + name),
            std::string::npos);
  // stop / start through operations.
  op = cluster_->Action(name, "stop", {{"timeout", "1"}});
  ASSERT_EQ(op["status"]["state"], "DONE") << op.dump();
  EXPECT_TRUE(WaitPhase(name, "SUSPENDED"));
  EXPECT_TRUE(Pids(name).empty());
  op = cluster_->Action(name, "start");
  ASSERT_EQ(op["status"]["state"], "DONE") << op.dump();
  EXPECT_TRUE(WaitPhase(name, "RUNNING"));
  EXPECT_EQ(Pids(name).size(), 1u);
}

// A process starts in a moment: its node reports it RUNNING in one status write, with no
// CREATING written before (two writes per start halved the rate of a 1,000-instance burst), and
// the resync passes after it write nothing.
TEST_F(AgentE2eTest, AProcessStartIsOneStatusWrite) {
  std::string name = Name("one-write");
  ASSERT_EQ(CreateProcess(name, c_, {"/bin/sh", "-c", "exec sleep 300"}).status, 202);
  ASSERT_TRUE(WaitPhase(name, "RUNNING")) << cluster_->Instance(name).dump();
  const double reconciles = AgentMetric(c_, "photon_agent_reconciles_total");
  ASSERT_GT(reconciles, 0);
  // Three more passes over it (the tests' agents resync every second).
  ASSERT_TRUE(WaitFor(
      [&] { return AgentMetric(c_, "photon_agent_reconciles_total") >= reconciles + 3; }, 10s));
  EXPECT_EQ(AgentMetric(c_, "photon_agent_status_writes_total"), 1);
  EXPECT_EQ(cluster_->Phase(name), "RUNNING");
  EXPECT_EQ(Pids(name).size(), 1u);
}

TEST_F(AgentE2eTest, ExitCodeReachesStatus) {
  std::string name = Name("quit");
  ASSERT_EQ(CreateProcess(name, a_, {"/bin/sh", "-c", "exit 9"}).status, 202);
  ASSERT_TRUE(WaitPhase(name, "ERROR"));
  json inst = cluster_->Instance(name);
  EXPECT_EQ(inst["status"]["exitCode"], 9);
  EXPECT_NE(inst["status"]["message"].get<std::string>().find("code 9"), std::string::npos);
}

TEST_F(AgentE2eTest, KillNineAndRestartAdoptsWithoutDuplicates) {
  CreateImage();
  std::string proc = Name("keep"), box = Name("box"), moved = Name("moved");
  ASSERT_EQ(CreateProcess(proc, a_, {"/bin/sh", "-c", "exec sleep 300"}).status, 202);
  ASSERT_EQ(CreateContainer(box, a_, "busybox", {"/bin/sh", "-c", "exec sleep 300"}).status, 202);
  ASSERT_EQ(CreateProcess(moved, a_, {"/bin/sh", "-c", "exec sleep 300"}).status, 202);
  ASSERT_TRUE(WaitPhase(proc, "RUNNING"));
  ASSERT_TRUE(WaitPhase(box, "RUNNING")) << cluster_->Instance(box).dump();
  ASSERT_TRUE(WaitPhase(moved, "RUNNING"));
  auto proc_pids = Pids(proc);
  auto box_pids = Pids(box);
  ASSERT_EQ(proc_pids.size(), 1u);
  ASSERT_EQ(box_pids.size(), 1u);

  cluster_->KillAgent(a_, SIGKILL);
  // The workloads outlive the agent.
  EXPECT_EQ(Pids(proc), proc_pids);
  EXPECT_EQ(Pids(box), box_pids);
  // While it is down, an admin moves one instance to another node.
  // (Read again on a conflict: the server may still be writing its status.)
  int put = 0;
  for (int attempt = 0; attempt < 20 && put != 200; ++attempt) {
    json m = cluster_->Instance(moved);
    m["metadata"]["agentId"] = b_;
    // A manual placement passes the scheduler's filters: its node filter moves along.
    m["spec"]["schedule"]["nodes"] = json::array({b_});
    put = cluster_->Call("PUT", "/v1/namespaces/default/computeinstances/" + moved, m).status;
    ASSERT_TRUE(put == 200 || put == 409) << put;
  }
  ASSERT_EQ(put, 200);

  ASSERT_TRUE(cluster_->StartAgent(a_, "region=r1,zone=z1,rack_az=k1,tier=gold"));
  // The moved copy runs once, on b; a destroyed its own.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto j = cluster_->Instance(moved);
        return Pids(moved).size() == 1 && j["status"]["details"]["node"] == b_ &&
               j["status"]["phase"] == "RUNNING";
      },
      15s))
      << cluster_->Instance(moved).dump();
  std::this_thread::sleep_for(2s);  // a few resync passes: nothing may be started twice
  EXPECT_EQ(Pids(proc), proc_pids);
  EXPECT_EQ(Pids(box), box_pids);
  EXPECT_EQ(Pids(moved).size(), 1u);
  EXPECT_EQ(cluster_->Phase(proc), "RUNNING");
  EXPECT_EQ(cluster_->Phase(box), "RUNNING");
  EXPECT_EQ(cluster_->Instance(proc)["status"]["details"]["pid"], std::to_string(proc_pids[0]));
  // Container logs through the action.
  json op = cluster_->Action(box, "logs");
  EXPECT_EQ(op["status"]["state"], "DONE") << op.dump();
}

TEST_F(AgentE2eTest, DeleteLeavesNothingBehind) {
  CreateImage();
  std::string proc = Name("del"), box = Name("delbox");
  ASSERT_EQ(CreateProcess(proc, b_, {"/bin/sh", "-c", "sleep 300 & exec sleep 300"}).status, 202);
  ASSERT_EQ(
      CreateContainer(box, b_, "busybox", {"/bin/sh", "-c", "sleep 300 & exec sleep 300"}).status,
      202);
  ASSERT_TRUE(WaitPhase(proc, "RUNNING"));
  ASSERT_TRUE(WaitPhase(box, "RUNNING"));
  ASSERT_FALSE(InstanceCgroupsOf(b_).empty());
  for (const auto& n : {proc, box}) {
    EXPECT_EQ(cluster_->Call("DELETE", "/v1/namespaces/default/computeinstances/" + n).status, 202);
  }
  EXPECT_TRUE(WaitPhase(proc, "GONE"));
  EXPECT_TRUE(WaitPhase(box, "GONE"));
  EXPECT_TRUE(Pids(proc).empty());
  EXPECT_TRUE(Pids(box).empty());
  EXPECT_TRUE(InstanceCgroupsOf(b_).empty());
  const std::string& dir = cluster_->agent(b_).dir;
  EXPECT_TRUE(MountsUnder(dir).empty());
  auto runc = RunCommand({"runc", "--root", dir + "/providers/container/runc", "list", "-q"});
  ASSERT_TRUE(runc.ok());
  EXPECT_EQ(runc->output, "");
  auto records = RecordLog::Read(dir + "/handles.log");
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_TRUE(records->empty()) << records->begin()->first;
}

TEST_F(AgentE2eTest, BadSpecsAreRefusedOrErrorWithTheReason) {
  auto expect_reason = [&](const cli::HttpResult& created, const std::string& name,
                           const std::string& reason) {
    if (created.status != 202) {
      EXPECT_NE(created.body.find(reason), std::string::npos) << created.body;
      return;
    }
    ASSERT_TRUE(WaitPhase(name, "ERROR")) << cluster_->Instance(name).dump();
    std::string msg = cluster_->Instance(name)["status"]["message"];
    EXPECT_NE(msg.find(reason), std::string::npos) << msg;
  };
  // No backend at all.
  std::string none = Name("none");
  json inst = {{"metadata", {{"name", none}, {"agentId", a_}}},
               {"spec", {{"resources", {{"vcpu", 1}}}}}};
  expect_reason(Create(inst), none, "spec");
  // Negative memory.
  std::string neg = Name("neg");
  expect_reason(CreateProcess(neg, a_, {"/bin/true"}, {{"resources", {{"memoryMb", "-5"}}}}), neg,
                "memoryMb");
  // An image that does not exist.
  std::string noimg = Name("noimg");
  expect_reason(CreateContainer(noimg, a_, "no-such-image", {"/bin/sh"}), noimg,
                "spec.container.image");
  // A driver the node does not offer.
  // A driver the node does not offer: neither the scheduler nor an admin places it there.
  std::string nodrv = Name("nodrv");
  ASSERT_EQ(CreateContainer(nodrv, c_, "no-such-image", {"/bin/sh"}).status, 202);
  EXPECT_TRUE(WaitFor(
      [&] {
        return cluster_->Instance(nodrv)["status"]
                   .value("message", "")
                   .find("without the driver") != std::string::npos;
      },
      10s))
      << cluster_->Instance(nodrv).dump();
  json pinned = cluster_->Instance(nodrv);
  EXPECT_EQ(pinned["metadata"]["agentId"], "");
  pinned["metadata"]["agentId"] = c_;
  auto manual = cluster_->Call("PUT", "/v1/namespaces/default/computeinstances/" + nodrv, pinned);
  EXPECT_EQ(manual.status, 400);
  EXPECT_NE(manual.body.find("cannot take default/" + nodrv + ": without the driver"),
            std::string::npos)
      << manual.body;
  // A command that does not exist.
  std::string nocmd = Name("nocmd");
  expect_reason(CreateProcess(nocmd, a_, {"/no/such/program"}), nocmd, "/no/such/program");
  EXPECT_TRUE(InstanceCgroupsOf(a_).empty());
}

// The attack of the hardening review, end to end: a tenant's process reads the server's
// admin.token, a tenant's Image names the server's data dir. Neither gets anything.
TEST_F(AgentE2eTest, TenantWorkloadsCannotReachTheHost) {
  const std::string token_path = cluster_->dir() + "/server/admin.token";
  auto token = ReadFile(token_path);
  ASSERT_TRUE(token.ok());
  std::string thief = Name("thief");
  ASSERT_EQ(
      CreateProcess(thief, a_,
                    {"/bin/sh", "-c", "cat " + token_path + "; echo uid=$(id -u); exec sleep 300"})
          .status,
      202);
  ASSERT_TRUE(WaitPhase(thief, "RUNNING")) << cluster_->Instance(thief).dump();
  std::string out;
  ASSERT_TRUE(WaitFor(
      [&] {
        json op = cluster_->Action(thief, "logs");
        out = op["status"].value("message", "");
        return out.find("uid=") != std::string::npos;
      },
      10s))
      << out;
  EXPECT_EQ(out.find(token->substr(0, 20)), std::string::npos) << out;
  EXPECT_EQ(out.find("uid=0\n"), std::string::npos) << out;

  json img = {{"metadata", {{"name", "server-data"}}},
              {"spec", {{"sourcePath", cluster_->dir() + "/server"}, {"format", "rootfs-dir"}}}};
  ASSERT_EQ(cluster_->Call("POST", "/v1/namespaces/default/images", img).status, 202);
  std::string smuggler = Name("smuggler");
  ASSERT_EQ(CreateContainer(smuggler, a_, "server-data", {"/bin/sh"}).status, 202);
  ASSERT_TRUE(WaitPhase(smuggler, "ERROR")) << cluster_->Instance(smuggler).dump();
  std::string msg = cluster_->Instance(smuggler)["status"]["message"];
  EXPECT_NE(msg.find("outside the node's images root"), std::string::npos) << msg;
}

// The server runs its scheduler by default: an instance without metadata.agentId is placed.
TEST_F(AgentE2eTest, SchedulerPlacesAnInstance) {
  std::string name = Name("sched");
  json inst = {{"metadata", {{"name", name}}},
               {"spec",
                {{"process", {{"command", {"/bin/sh", "-c", "exec sleep 300"}}}},
                 {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
  ASSERT_EQ(cluster_->Call("POST", "/v1/namespaces/default/computeinstances", inst).status, 202);
  bool placed = WaitFor(
      [&] {
        auto j = cluster_->Instance(name);
        return j.is_object() && !j["metadata"].value("agentId", "").empty();
      },
      30s);
  ASSERT_TRUE(placed) << "the scheduler did not place the instance within 30 s: "
                      << cluster_->Instance(name).dump();
  ASSERT_TRUE(WaitPhase(name, "RUNNING")) << cluster_->Instance(name).dump();
  EXPECT_EQ(Pids(name).size(), 1u);
}

}  // namespace
}  // namespace photon::agent::testing
