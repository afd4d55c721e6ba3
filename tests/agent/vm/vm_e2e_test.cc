// End to end through the control plane: an in-process photon-server and a real photon-agent
// process; Images (with checksums), a Volume and a ComputeInstance with spec.vm are created over
// REST; the scheduler places it, the agent's vm driver boots the guest under TCG and reports
// RUNNING only after the guest's readiness marker; the console action returns user_data echoed
// by the guest; a kill -9 of the agent leaves the VM running and the restarted agent adopts it
// without a second QEMU; deleting the instance leaves no QEMU behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/providers/vm/accel.h"
#include "cli/http_client.h"
#include "common/file_util.h"
#include "server/server.h"
#include "vm_test_util.h"

namespace photon::agent::vm {
namespace {

using nlohmann::json;
namespace vt = testing;

json Body(const StatusOr<cli::HttpResult>& r) {
  return r.ok() ? json::parse(r->body, nullptr, false) : json();
}

TEST(VmEndToEndTest, ServerAgentBootsConsoleAndDeletes) {
  const std::string dir = vt::MakeTempDir("vme2e");
  ASSERT_FALSE(dir.empty());
  struct Cleanup {
    std::string dir;
    pid_t agent = 0;
    ~Cleanup() {
      if (agent > 0) {
        kill(agent, SIGKILL);
        waitpid(agent, nullptr, 0);
      }
      vt::CleanupDir(dir);
    }
  } cleanup{dir};
  ASSERT_TRUE(vt::BuildGuest(dir));

  server::ServerOptions opts;
  opts.data_dir = dir + "/server";
  opts.listen = "127.0.0.1:0";
  opts.grpc_listen = "127.0.0.1:0";
  auto server = server::Server::Start(opts);
  ASSERT_TRUE(server.ok()) << server.status();
  struct StopServer {
    server::Server* s;
    ~StopServer() { s->Stop(); }
  } stop_server{server->get()};
  const std::string addr = "127.0.0.1:" + std::to_string((*server)->http_port());
  std::string admin_token = vt::Trim(*ReadFile(opts.data_dir + "/admin.token"));
  auto client = cli::HttpClient::Create("http://" + addr, admin_token);
  ASSERT_TRUE(client.ok());

  ASSERT_TRUE(WriteFileAtomic(dir + "/agent.yaml",
                              "drivers:\n  vm:\n    ready_timeout_s: \"240\"\n    images_root: \"" +
                                  dir +
                                  "\"\n"
                                  "  container:\n    enabled: \"false\"\n")
                  .ok());
  auto start_agent = [&]() -> pid_t {
    pid_t pid = fork();
    if (pid == 0) {
      const std::string log = dir + "/agent.log";
      FILE* f = freopen(log.c_str(), "a", stderr);
      (void)f;
      dup2(2, 1);
      std::string token_file = opts.data_dir + "/join.token";
      std::string data = dir + "/agent";
      std::string config = dir + "/agent.yaml";
      execl(PHOTON_AGENT_BINARY, PHOTON_AGENT_BINARY, "--server", addr.c_str(), "--token-file",
            token_file.c_str(), "--data-dir", data.c_str(), "--name", "vmnode", "--config",
            config.c_str(), "--resync-seconds", "1", "--heartbeat-seconds", "1", "--network-mode",
            "shared", nullptr);
      _exit(127);
    }
    return pid;
  };
  pid_t agent = start_agent();
  ASSERT_GT(agent, 0);
  cleanup.agent = agent;

  auto post = [&](const std::string& path, const json& body) {
    auto r = client->Do("POST", path, body.dump());
    EXPECT_TRUE(r.ok());
    if (r.ok()) {
      EXPECT_LT(r->status, 300) << path << ": " << r->body;
    }
    return Body(r);
  };
  const std::string ns = "/v1/namespaces/default";
  post(ns + "/images", {{"kind", "Image"},
                        {"metadata", {{"name", "kernel"}}},
                        {"spec",
                         {{"sourcePath", dir + "/image/vmlinuz"},
                          {"format", "kernel"},
                          {"sha256", vt::Trim(vt::ReadAll(dir + "/image/vmlinuz.sha256"))}}}});
  post(ns + "/images", {{"kind", "Image"},
                        {"metadata", {{"name", "initrd"}}},
                        {"spec",
                         {{"sourcePath", dir + "/image/initrd.img"},
                          {"format", "initrd"},
                          {"sha256", vt::Trim(vt::ReadAll(dir + "/image/initrd.img.sha256"))}}}});
  post(ns + "/volumes", {{"kind", "Volume"},
                         {"metadata", {{"name", "e2e-data"}}},
                         {"spec", {{"sizeGb", "1"}, {"format", "qcow2"}}}});
  post(ns + "/computeinstances", {{"kind", "ComputeInstance"},
                                  {"metadata", {{"name", "e2e-vm"}}},
                                  {"spec",
                                   {{"vm",
                                     {{"kernel", "kernel"},
                                      {"initrd", "initrd"},
                                      {"kernelArgs", "console=ttyS0 quiet"},
                                      {"volumes", {"e2e-data"}}}},
                                    {"resources", {{"vcpu", 1}, {"memoryMb", "256"}}},
                                    // The agent runs in network mode shared (no ports):
                                    // a VM there needs the node's network, admins only.
                                    {"network", {{"hostNetwork", true}}},
                                    {"userData", "hello through the control plane"}}}});

  // RUNNING only once the guest signalled readiness.
  json obj;
  std::string phase;
  for (int i = 0; i < 2400 && phase != "RUNNING" && phase != "ERROR"; ++i) {
    obj = Body(client->Do("GET", ns + "/computeinstances/e2e-vm"));
    phase = obj.is_object() && obj.contains("status") ? obj["status"].value("phase", "") : "";
    if (phase != "RUNNING") std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(phase, "RUNNING") << obj.dump() << "\n" << vt::ReadAll(dir + "/agent.log");
  EXPECT_EQ(obj["metadata"].value("agentId", ""), "vmnode");
  const std::string id = obj["metadata"].value("id", "");
  const std::string instance_dir = dir + "/agent/providers/vm/instances/" + id;
  EXPECT_NE(vt::ReadAll(instance_dir + "/console.log").find("PHOTON-READY"), std::string::npos);
  auto node = Body(client->Do("GET", "/v1/namespaces/system/nodes/vmnode"));
  EXPECT_EQ(node["spec"]["attributes"].value("vm.accel", ""), vt::ExpectedAccel(dir))
      << node.dump();
  EXPECT_NE(node["spec"]["attributes"].value("vm.accel.reason", ""), "") << node.dump();

  // The console action: the operation's message is the console tail.
  json op = post(ns + "/computeinstances/e2e-vm/actions/console", json::object());
  const std::string op_id = op["operation"]["metadata"].value("id", "");
  ASSERT_FALSE(op_id.empty()) << op.dump();
  std::string state;
  json done;
  for (int i = 0; i < 300 && state != "DONE" && state != "FAILED"; ++i) {
    done = Body(client->Do("GET", "/v1/operations/" + op_id));
    state = done.is_object() && done.contains("status") ? done["status"].value("state", "") : "";
    if (state != "DONE") std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(state, "DONE") << done.dump();
  EXPECT_NE(done["status"].value("message", "").find("hello through the control plane"),
            std::string::npos)
      << done.dump();

  // kill -9 of the agent: QEMU keeps running; the restarted agent adopts it (same pid, no
  // second QEMU) and the instance stays RUNNING.
  std::vector<int> qemus = vt::PidsMentioning(instance_dir);
  ASSERT_EQ(qemus.size(), 1u);
  kill(agent, SIGKILL);
  waitpid(agent, nullptr, 0);
  cleanup.agent = 0;
  ASSERT_TRUE(ProcessAlive(qemus[0]));
  agent = start_agent();
  ASSERT_GT(agent, 0);
  cleanup.agent = agent;
  std::this_thread::sleep_for(std::chrono::seconds(4));  // join, adopt, a few resyncs
  EXPECT_EQ(vt::PidsMentioning(instance_dir), qemus);
  obj = Body(client->Do("GET", ns + "/computeinstances/e2e-vm"));
  EXPECT_EQ(obj["status"].value("phase", ""), "RUNNING") << obj.dump();
  EXPECT_EQ(obj["status"]["details"].value("pid", ""), std::to_string(qemus[0])) << obj.dump();

  // Delete: the agent destroys the VM and finishes the delete.
  auto del = client->Do("DELETE", ns + "/computeinstances/e2e-vm");
  ASSERT_TRUE(del.ok());
  int status = 0;
  for (int i = 0; i < 600; ++i) {
    auto r = client->Do("GET", ns + "/computeinstances/e2e-vm");
    status = r.ok() ? r->status : 0;
    if (status == 404) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 404) << vt::ReadAll(dir + "/agent.log");
  EXPECT_TRUE(vt::PidsMentioning(instance_dir).empty());
  EXPECT_FALSE(PathExists(instance_dir));

  kill(agent, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(agent, nullptr, WNOHANG) == agent) {
      cleanup.agent = 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace
}  // namespace photon::agent::vm
