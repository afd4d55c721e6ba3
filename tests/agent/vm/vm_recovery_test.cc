// The agent dies (kill -9 of the process holding the provider) while a guest runs: a fresh
// provider finds it through List, re-adopts it with Recover (pidfile + QMP socket), and a
// Start for the same instance returns the adopted QEMU instead of a second one. Then QEMU
// itself is killed: Inspect reports ERROR. Destroy leaves nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "vm_test_util.h"

namespace photon::agent::vm {
namespace {

using resource::ResourceStatus;

TEST(VmRecoveryTest, AgentKill9ReadoptsAndQemuDeathIsError) {
  const std::string dir = testing::MakeTempDir("vmrec");
  ASSERT_FALSE(dir.empty());
  struct Cleanup {
    std::string dir;
    ~Cleanup() { testing::CleanupDir(dir); }
  } cleanup{dir};
  ASSERT_TRUE(testing::BuildGuest(dir));
  const std::string data_dir = dir + "/data";
  const std::string id = "7a1b-recover";
  const std::string instance_dir = data_dir + "/instances/" + id;

  // The "agent": a child process that starts the VM, reports, and waits to be killed.
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t agent = fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    close(report[0]);
    testing::MapLookup lookup;
    testing::AddGuestImages(&lookup, dir);
    ProviderContext ctx;
    ctx.lookup = &lookup;
    ctx.data_dir = data_dir;
    ctx.config = {{"ready_timeout_s", "240"}, {"images_root", dir}};
    VmProvider provider;
    char ok =
        provider.Initialize(ctx).ok() && provider.Start(testing::GuestInstance(id, "rec")).ok()
            ? '1'
            : '0';
    if (write(report[1], &ok, 1) != 1) _exit(1);
    while (true) pause();
  }
  close(report[1]);
  char ok = 0;
  ASSERT_EQ(read(report[0], &ok, 1), 1);
  close(report[0]);
  ASSERT_EQ(ok, '1');
  std::vector<int> qemus = testing::PidsMentioning(instance_dir);
  ASSERT_EQ(qemus.size(), 1u);
  kill(agent, SIGKILL);
  waitpid(agent, nullptr, 0);
  ASSERT_TRUE(ProcessAlive(qemus[0])) << "QEMU must survive its agent";

  // The restarted agent: a fresh provider.
  testing::MapLookup lookup;
  testing::AddGuestImages(&lookup, dir);
  ProviderContext ctx;
  ctx.lookup = &lookup;
  ctx.data_dir = data_dir;
  ctx.config = {{"ready_timeout_s", "240"}, {"images_root", dir}};
  VmProvider provider;
  ASSERT_TRUE(provider.Initialize(ctx).ok());
  auto handles = provider.List();
  ASSERT_TRUE(handles.ok());
  ASSERT_EQ(handles->size(), 1u);
  EXPECT_EQ((*handles)[0].instance_id, id);
  ASSERT_TRUE(provider.Recover((*handles)[0]).ok());
  Observed o = testing::WaitPhase(&provider, id, ResourceStatus::RUNNING);
  ASSERT_EQ(o.phase, ResourceStatus::RUNNING) << o.message;
  EXPECT_EQ(o.details["pid"], std::to_string(qemus[0]));
  // The agent re-applies the desired state: Start must adopt, not launch a second QEMU.
  ASSERT_TRUE(provider.Start(testing::GuestInstance(id, "rec")).ok());
  EXPECT_EQ(testing::PidsMentioning(instance_dir), qemus);
  // Control still works after adoption.
  ASSERT_TRUE(provider.Execute(id, "pause", {}).ok());
  EXPECT_EQ(provider.Inspect(id)->phase, ResourceStatus::SUSPENDED);
  ASSERT_TRUE(provider.Execute(id, "resume", {}).ok());

  // QEMU dies under us: ERROR (the agent applies the restart policy).
  kill(qemus[0], SIGKILL);
  o = testing::WaitPhase(&provider, id, ResourceStatus::ERROR, std::chrono::seconds(10));
  EXPECT_EQ(o.phase, ResourceStatus::ERROR);
  EXPECT_NE(o.message.find("exited"), std::string::npos) << o.message;

  ASSERT_TRUE(provider.Destroy(id).ok());
  EXPECT_TRUE(testing::PidsMentioning(instance_dir).empty());
  EXPECT_FALSE(PathExists(instance_dir));
  EXPECT_TRUE(provider.List()->empty());
}

// The agent is killed (kill -9) at moments inside a VM's start: as soon as its QEMU exists
// (before it daemonized and before the agent recorded its pid), and at fixed delays after the
// start began. The restarted agent (List, Recover, Inspect, and Start when Inspect finds
// nothing) ends with exactly one QEMU for the instance, adopting the first one when it runs;
// Destroy then leaves no QEMU and no directory.
TEST(VmRecoveryTest, AgentKilledDuringStartLeavesExactlyOneQemu) {
  const std::string dir = testing::MakeTempDir("vmwin");
  ASSERT_FALSE(dir.empty());
  struct Cleanup {
    std::string dir;
    ~Cleanup() { testing::CleanupDir(dir); }
  } cleanup{dir};
  ASSERT_TRUE(testing::BuildGuest(dir));
  const std::string data_dir = dir + "/data";
  auto context = [&](testing::MapLookup* lookup) {
    testing::AddGuestImages(lookup, dir);
    ProviderContext ctx;
    ctx.lookup = lookup;
    ctx.data_dir = data_dir;
    ctx.config = {{"ready_timeout_s", "240"}, {"images_root", dir}};
    return ctx;
  };
  // -1: kill as soon as a process of the instance exists; else milliseconds after Start began.
  const int kDelaysMs[] = {-1, -1, 0, 40, 80, 120, 200, 400};
  int i = 0;
  for (int delay_ms : kDelaysMs) {
    SCOPED_TRACE("kill at " + std::to_string(delay_ms) + " ms");
    const std::string id = "a1b2-window-" + std::to_string(i++);
    const std::string instance_dir = data_dir + "/instances/" + id;
    pid_t agent = fork();
    ASSERT_GE(agent, 0);
    if (agent == 0) {
      testing::MapLookup lookup;
      VmProvider provider;
      if (provider.Initialize(context(&lookup)).ok()) {
        provider.Start(testing::GuestInstance(id, "win")).IgnoreError();
      }
      while (true) pause();
    }
    if (delay_ms < 0) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (testing::PidsMentioning(instance_dir + "/qemu.pid").empty() &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));  // the moment to kill
    }
    kill(agent, SIGKILL);
    waitpid(agent, nullptr, 0);

    // The restarted agent, as InstanceController does it.
    testing::MapLookup lookup;
    VmProvider provider;
    ASSERT_TRUE(provider.Initialize(context(&lookup)).ok());
    auto handles = provider.List();
    ASSERT_TRUE(handles.ok());
    for (const auto& h : *handles) {
      if (h.instance_id == id) {
        EXPECT_TRUE(provider.Recover(h).ok());
      }
    }
    std::string pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (pid.empty() && std::chrono::steady_clock::now() < deadline) {
      auto o = provider.Inspect(id);
      if (o.ok() && o->details.count("pid") && o->details["pid"] != "0") {
        pid = o->details["pid"];
      } else if (!o.ok() && absl::IsNotFound(o.status())) {
        auto started = provider.Start(testing::GuestInstance(id, "win"));
        EXPECT_TRUE(started.ok() || absl::IsUnavailable(started.status())) << started.status();
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    ASSERT_FALSE(pid.empty()) << "no QEMU adopted or started";
    // A QEMU still daemonizing shows as two processes for a moment; two QEMUs stay two.
    std::vector<int> qemus = testing::PidsMentioning(instance_dir);
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (qemus.size() > 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      qemus = testing::PidsMentioning(instance_dir);
    }
    ASSERT_EQ(qemus.size(), 1u) << "QEMUs of one instance";
    EXPECT_EQ(std::to_string(qemus[0]), pid);
    auto again = provider.Start(testing::GuestInstance(id, "win"));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(testing::PidsMentioning(instance_dir), qemus);

    ASSERT_TRUE(provider.Destroy(id).ok());
    EXPECT_TRUE(testing::PidsMentioning(instance_dir).empty());
    EXPECT_FALSE(PathExists(instance_dir));
  }
}

}  // namespace
}  // namespace photon::agent::vm
