// One real guest under TCG through its whole life: boot → readiness marker → RUNNING, user_data
// echoed on the console, a volume attached at create (written at boot), pause/resume, volume
// hot-plug and unplug, reboot, graceful stop, start again (the volume still holds what the
// previous boot wrote), and Destroy leaving no QEMU, socket or file behind (the volume stays).
#include <gtest/gtest.h>

#include "agent/providers/vm/accel.h"
#include "vm_test_util.h"

namespace photon::agent::vm {
namespace {

using resource::ResourceStatus;
using testing::WaitConsole;
using testing::WaitPhase;

TEST(VmLifecycleTest, BootUserDataVolumesActionsStopStartDestroy) {
  const std::string dir = testing::MakeTempDir("vmlife");
  ASSERT_FALSE(dir.empty());
  struct Cleanup {
    std::string dir;
    ~Cleanup() { testing::CleanupDir(dir); }
  } cleanup{dir};
  ASSERT_TRUE(testing::BuildGuest(dir));
  testing::MapLookup lookup;
  testing::AddGuestImages(&lookup, dir);
  lookup.AddVolume("data", 1, "qcow2");
  lookup.AddVolume("extra", 1, "raw");

  ProviderContext ctx;
  ctx.node_name = "n1";
  ctx.lookup = &lookup;
  ctx.data_dir = dir + "/data";
  ctx.config = {{"ready_timeout_s", "240"}, {"stop_timeout_s", "20"}, {"images_root", dir}};
  VmProvider provider;
  ASSERT_TRUE(provider.Initialize(ctx).ok());
  ASSERT_EQ(provider.accel(), testing::ExpectedAccel(dir));

  const std::string id = "0f6c2d1e-life";
  auto instance = testing::GuestInstance(id, "life");
  instance.mutable_spec()->set_user_data("hello from user_data 42");
  instance.mutable_spec()->add_storage()->set_volume("data");
  auto handle = provider.Start(instance);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(handle->driver, "vm");
  // Idempotent: a second Start returns the same QEMU.
  auto again = provider.Start(instance);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->data, handle->data);

  Observed o = WaitPhase(&provider, id, ResourceStatus::RUNNING);
  ASSERT_EQ(o.phase, ResourceStatus::RUNNING) << o.message;
  const std::string console = o.details["console"];
  std::string log = testing::ReadAll(console);
  EXPECT_NE(log.find("PHOTON-USERDATA-BEGIN\nhello from user_data 42"), std::string::npos) << log;
  EXPECT_NE(log.find("PHOTON-VOL-WROTE /dev/vdb: boot 1"), std::string::npos) << log;
  auto tail = provider.Execute(id, "console", {});
  ASSERT_TRUE(tail.ok());
  EXPECT_NE(tail->output.find("PHOTON-READY"), std::string::npos);

  // Pause / resume.
  ASSERT_TRUE(provider.Execute(id, "pause", {}).ok());
  EXPECT_EQ(provider.Inspect(id)->phase, ResourceStatus::SUSPENDED);
  ASSERT_TRUE(provider.Execute(id, "resume", {}).ok());
  EXPECT_EQ(provider.Inspect(id)->phase, ResourceStatus::RUNNING);

  // Hot-plug a second volume; the guest writes to it; then unplug it.
  auto attach = provider.Execute(id, "attach-volume", {{"volume", "extra"}});
  ASSERT_TRUE(attach.ok()) << attach.status();
  EXPECT_TRUE(WaitConsole(console, "PHOTON-HOTPLUG vdc")) << testing::ReadAll(console);
  EXPECT_FALSE(provider.Execute(id, "attach-volume", {}).ok());  // no volume named
  auto detach = provider.Execute(id, "detach-volume", {{"volume", "extra"}});
  ASSERT_TRUE(detach.ok()) << detach.status();
  EXPECT_TRUE(WaitConsole(console, "PHOTON-UNPLUG vdc"));
  auto not_attached = provider.Execute(id, "detach-volume", {{"volume", "extra"}});
  EXPECT_TRUE(absl::IsNotFound(not_attached.status()));

  // Reboot: not RUNNING until the new boot signals readiness again.
  ASSERT_TRUE(provider.Execute(id, "reboot", {}).ok());
  EXPECT_EQ(provider.Inspect(id)->phase, ResourceStatus::CREATING);
  o = WaitPhase(&provider, id, ResourceStatus::RUNNING);
  ASSERT_EQ(o.phase, ResourceStatus::RUNNING) << o.message;
  EXPECT_TRUE(
      WaitConsole(console, "PHOTON-VOL-WROTE /dev/vdb: boot 2", 1, std::chrono::seconds(5)));

  EXPECT_TRUE(PathExists(ctx.data_dir + "/instances/" + id + "/serial.sock"));
  // Graceful stop: the guest sees the ACPI power button and powers off.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(provider.Stop(id, std::chrono::seconds(20)).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  EXPECT_NE(testing::ReadAll(console).find("PHOTON-POWEROFF"), std::string::npos);
  o = *provider.Inspect(id);
  EXPECT_EQ(o.phase, ResourceStatus::SUSPENDED);
  EXPECT_EQ(o.message, "stopped");
  EXPECT_TRUE(testing::PidsMentioning(ctx.data_dir + "/instances/" + id).empty());
  // The serial console's socket (photon console) goes with its QEMU.
  EXPECT_FALSE(PathExists(ctx.data_dir + "/instances/" + id + "/serial.sock"));

  // Start again through the action: the volume keeps what the previous boot wrote.
  ASSERT_TRUE(provider.Execute(id, "start", {}).ok());
  o = WaitPhase(&provider, id, ResourceStatus::RUNNING);
  ASSERT_EQ(o.phase, ResourceStatus::RUNNING) << o.message;
  log = testing::ReadAll(console);
  EXPECT_NE(log.find("PHOTON-VOL-READ /dev/vdb: written by boot 2"), std::string::npos) << log;
  EXPECT_NE(log.find("PHOTON-VOL-WROTE /dev/vdb: boot 3"), std::string::npos);

  // Destroy: no QEMU, no instance directory, no socket; the volume data survives.
  ASSERT_TRUE(provider.Destroy(id).ok());
  EXPECT_TRUE(testing::PidsMentioning(ctx.data_dir + "/instances/" + id).empty());
  EXPECT_FALSE(PathExists(ctx.data_dir + "/instances/" + id));
  EXPECT_TRUE(PathExists(ctx.data_dir + "/volumes/default/data.qcow2"));
  EXPECT_FALSE(PathExists(ctx.data_dir + "/volumes/default/data.owner"));
  EXPECT_TRUE(absl::IsNotFound(provider.Inspect(id).status()));
  EXPECT_TRUE(provider.Destroy(id).ok());  // idempotent
}

}  // namespace
}  // namespace photon::agent::vm
