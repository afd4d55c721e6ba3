// Unit tests of the vm driver's parts against the real tools (qemu-system-x86_64, qemu-img,
// mkfs.vfat, mtools): argv builder, QMP client on a real paused QEMU, config drive contents,
// accelerator probe, checksums and overlays, and the provider refusing bad input with the
// reason named. No guest boots here except the readiness-timeout case (QEMU only starts).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "agent/providers/vm/accel.h"
#include "agent/providers/vm/config_drive.h"
#include "agent/providers/vm/disk_store.h"
#include "agent/providers/vm/qemu_command.h"
#include "agent/providers/vm/qmp_client.h"
#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"
#include "common/util.h"
#include "vm_test_util.h"

namespace photon::agent::vm {
namespace {

using testing::CleanupDir;
using testing::MakeTempDir;
using testing::MapLookup;

bool Has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST(QemuCommandTest, TcgQ35WithDisksAndHotplugPorts) {
  QemuConfig c;
  c.name = "photon-x";
  c.accel = "tcg";
  c.tcg_tb_size_mb = 16;
  c.vcpus = 2;
  c.memory_mb = 512;
  c.kernel = "/k";
  c.initrd = "/i";
  c.kernel_args = "console=ttyS0";
  c.disks = {{"cidata", "/d/cidata.img", "raw", true, -1}, {"v1", "/d/a,b.img", "qcow2", false, 0}};
  c.hotplug_ports = 3;
  c.qmp_socket = "/d/qmp.sock";
  c.pidfile = "/d/qemu.pid";
  c.console_log = "/d/console.log";
  auto argv = BuildQemuArgv(c);
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_TRUE(Has(argv, "tcg,tb-size=16"));
  EXPECT_TRUE(Has(argv, "q35"));
  // cloud-init's OpenStack datasource looks for the metadata service only on such a chassis.
  EXPECT_TRUE(Has(argv, "type=3,manufacturer=PhotonCloud,asset=OpenStack Compute"));
  EXPECT_TRUE(Has(argv, "-daemonize"));
  EXPECT_TRUE(Has(argv, "pcie-root-port,id=hp2,bus=pcie.0,chassis=3"));
  EXPECT_FALSE(Has(argv, "pcie-root-port,id=hp3,bus=pcie.0,chassis=4"));
  EXPECT_TRUE(Has(argv, "virtio-blk-pci,drive=drive-v1,id=dev-v1,bus=hp0"));
  EXPECT_TRUE(Has(argv, "virtio-blk-pci,drive=drive-cidata,id=dev-cidata"));
  // A comma in a path is doubled so QEMU does not read it as an option separator.
  EXPECT_TRUE(Has(argv, "driver=file,node-name=drive-v1-file,filename=/d/a,,b.img"));
  EXPECT_TRUE(Has(argv, "none"));  // -nic none without a network
  EXPECT_TRUE(Has(argv, "socket,id=qmp,path=/d/qmp.sock,server=on,wait=off"));
  EXPECT_TRUE(Has(argv, "file,id=serial0,path=/d/console.log,append=on"));
  // With a serial socket (what the driver starts): the console there, logged to the file.
  c.serial_socket = "/d/serial.sock";
  argv = BuildQemuArgv(c);
  EXPECT_TRUE(Has(argv,
                  "socket,id=serial0,path=/d/serial.sock,server=on,wait=off,"
                  "logfile=/d/console.log,logappend=on"));
  EXPECT_FALSE(Has(argv, "file,id=serial0,path=/d/console.log,append=on"));
}

TEST(QemuCommandTest, KvmMicrovmWithTap) {
  QemuConfig c;
  c.machine = "microvm";
  c.accel = "kvm";
  c.network = "tap";
  c.tap_name = "pvmabc";
  c.disks = {{"root", "/d/root.qcow2", "qcow2", false, -1}};
  c.hotplug_ports = 2;  // ignored: microvm has no PCIe
  auto argv = BuildQemuArgv(c);
  EXPECT_TRUE(Has(argv, "kvm"));
  EXPECT_TRUE(Has(argv, "host"));
  EXPECT_TRUE(Has(argv, "virtio-blk-device,drive=drive-root,id=dev-root"));
  EXPECT_TRUE(Has(argv, "tap,id=net0,ifname=pvmabc,script=no,downscript=no"));
  for (const auto& a : argv) EXPECT_EQ(a.find("pcie-root-port"), std::string::npos);
}

// A port's tap is handed to QEMU as an open fd (opened in the port namespace by the driver).
TEST(QemuCommandTest, PortTapAsFdWithThePortsMac) {
  QemuConfig c;
  c.network = "tap";
  c.tap_fd = 4;
  c.tap_netns = "/run/netns/photon-port-x";
  c.mac = "02:aa:bb:cc:dd:ee";
  auto argv = BuildQemuArgv(c);
  EXPECT_TRUE(Has(argv, "tap,id=net0,fd=4"));
  EXPECT_TRUE(Has(argv, "virtio-net-pci,netdev=net0,mac=02:aa:bb:cc:dd:ee"));
  for (const auto& a : argv) EXPECT_EQ(a.find("photon-port"), std::string::npos);
}

class VmUnitTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("vmunit"); }
  void TearDown() override { CleanupDir(dir_); }
  std::string dir_;
};

TEST_F(VmUnitTest, QmpClientDrivesARealQemu) {
  const std::string sock = dir_ + "/qmp.sock";
  QemuConfig c;
  c.name = "qmp-test";
  c.qmp_socket = sock;
  c.pidfile = dir_ + "/qemu.pid";
  c.console_log = dir_ + "/console.log";
  c.hotplug_ports = 1;
  c.memory_mb = 64;
  auto argv = BuildQemuArgv(c);
  argv.push_back("-S");  // no guest needed: the vCPU never starts
  auto r = RunCommand(argv, std::chrono::seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->exit_code, 0) << r->output;
  int pid = std::atoi(testing::ReadAll(c.pidfile).c_str());
  ASSERT_TRUE(ProcessAlive(pid));
  EXPECT_TRUE(CmdlineContains(pid, c.pidfile));

  auto qmp = QmpClient::Connect(sock, std::chrono::seconds(5));
  ASSERT_TRUE(qmp.ok()) << qmp.status();
  EXPECT_TRUE((*qmp)->greeting().contains("QMP"));
  auto status = (*qmp)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->value("status", ""), "prelaunch");
  ASSERT_TRUE((*qmp)->Execute("cont").ok());
  EXPECT_EQ((*qmp)->Execute("query-status")->value("status", ""), "running");
  ASSERT_TRUE((*qmp)->Execute("stop").ok());
  EXPECT_EQ((*qmp)->Execute("query-status")->value("status", ""), "paused");
  auto bad = (*qmp)->Execute("no-such-command");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no-such-command"), std::string::npos);

  // Hot-plug plumbing: a blockdev and a virtio-blk device on the spare root port.
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "raw", dir_ + "/v.img", "8M"},
                         std::chrono::seconds(30))
                  .ok());
  auto add = (*qmp)->Execute(
      "blockdev-add", {{"driver", "file"}, {"node-name", "n1"}, {"filename", dir_ + "/v.img"}});
  ASSERT_TRUE(add.ok()) << add.status();
  auto dev = (*qmp)->Execute(
      "device_add",
      {{"driver", "virtio-blk-pci"}, {"id", "d1"}, {"drive", "n1"}, {"bus", HotplugPortId(0)}});
  ASSERT_TRUE(dev.ok()) << dev.status();
  auto blocks = (*qmp)->Execute("query-block");
  ASSERT_TRUE(blocks.ok());
  EXPECT_NE(blocks->dump().find("d1"), std::string::npos);

  ASSERT_TRUE((*qmp)->Execute("quit").ok());
  EXPECT_TRUE((*qmp)->WaitClosed(std::chrono::seconds(10)));
  for (int i = 0; i < 100 && ProcessAlive(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST_F(VmUnitTest, ConfigDriveCarriesUserData) {
  const std::string img = dir_ + "/cidata.img";
  std::string user_data = "#!/bin/sh\necho hello, world\n";
  ASSERT_TRUE(BuildConfigDrive(img, "id-123", "web-1", user_data).ok());
  auto label = RunCommand({"mlabel", "-i", img, "-s", "::"}, std::chrono::seconds(10));
  ASSERT_TRUE(label.ok());
  EXPECT_NE(label->output.find("CIDATA"), std::string::npos) << label->output;
  auto ud = RunCommand({"mtype", "-i", img, "::user-data"}, std::chrono::seconds(10));
  ASSERT_TRUE(ud.ok());
  EXPECT_EQ(ud->output, user_data);
  auto md = RunCommand({"mtype", "-i", img, "::meta-data"}, std::chrono::seconds(10));
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->output.find("instance-id: id-123"), std::string::npos);
  EXPECT_EQ(std::filesystem::status(img).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  EXPECT_FALSE(BuildConfigDrive(img, "x", "y", std::string(kMaxUserDataBytes + 1, 'a')).ok());
  auto nc = RunCommand({"mtype", "-i", img, "::network-config"}, std::chrono::seconds(10));
  EXPECT_TRUE(!nc.ok() || nc->exit_code != 0);  // no port, no network-config
}

TEST_F(VmUnitTest, ConfigDriveCarriesThePortsAddress) {
  const std::string img = dir_ + "/cidata.img";
  ASSERT_TRUE(BuildConfigDrive(img, "id-1", "vm-1", "",
                               RenderNetworkConfig("02:aa:bb:cc:dd:ee", "10.0.0.7"))
                  .ok());
  auto nc = RunCommand({"mtype", "-i", img, "::network-config"}, std::chrono::seconds(10));
  ASSERT_TRUE(nc.ok() && nc->exit_code == 0);
  EXPECT_NE(nc->output.find("macaddress: \"02:aa:bb:cc:dd:ee\""), std::string::npos) << nc->output;
  EXPECT_NE(nc->output.find("addresses: [10.0.0.7/32]"), std::string::npos) << nc->output;
  EXPECT_NE(nc->output.find("via: 169.254.1.1"), std::string::npos) << nc->output;
  EXPECT_NE(nc->output.find("on-link: true"), std::string::npos) << nc->output;
}

TEST_F(VmUnitTest, AcceleratorDetection) {
  // The probe mechanism itself works (under TCG, which every host has).
  EXPECT_TRUE(ProbeAccel("qemu-system-x86_64", "tcg", dir_, std::chrono::seconds(20)).ok());
  EXPECT_EQ(DetectAccel("qemu-system-x86_64", "tcg", dir_).accel, "tcg");
  EXPECT_EQ(DetectAccel("qemu-system-x86_64", "kvm", dir_).accel, "kvm");
  AccelInfo detected = DetectAccel("qemu-system-x86_64", "", dir_);
  EXPECT_EQ(detected.accel, testing::ExpectedAccel(dir_)) << detected.reason;
  if (!CpuHasHardwareVirtualization()) {
    // /dev/kvm may exist (a paravirtual nested KVM) but without vmx/svm we never use it.
    EXPECT_EQ(detected.accel, "tcg");
    EXPECT_NE(detected.reason.find("vmx/svm"), std::string::npos);
  }
}

// The attack of the hardening review: an editor's Image names a host file. Images come only
// from the node's images root; what a guest reads is a copy hashed as it was made (not a hard
// link sharing the source's inode, not a digest cached on size and mtime).
TEST_F(VmUnitTest, ImagesAreCopiedFromTheImagesRootAndVerified) {
  const std::string root = dir_ + "/images-root";
  ASSERT_TRUE(MakeDirs(root, 0755).ok());
  DiskStore store(dir_ + "/data", root);
  ASSERT_TRUE(store.Init().ok());
  compute::Image image;
  image.mutable_metadata()->set_name("disk");
  image.mutable_spec()->set_format("raw");
  for (const std::string outside : {"/etc/hostname", "../../../../../../../../etc/passwd"}) {
    image.mutable_spec()->set_source_path(outside);
    auto r = store.PrepareImage(image);
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << outside << r.status();
  }
  std::filesystem::create_symlink("/etc/passwd", root + "/link.raw");
  image.mutable_spec()->set_source_path(root + "/link.raw");
  EXPECT_TRUE(absl::IsPermissionDenied(store.PrepareImage(image).status()));

  const std::string src = root + "/disk.raw";
  ASSERT_TRUE(WriteFileAtomic(src, std::string(4096, 'a'), 0644).ok());
  const std::string digest = Sha256Hex(std::string(4096, 'a'));
  image.mutable_spec()->set_source_path("disk.raw");  // relative to the root
  image.mutable_spec()->set_sha256(digest);
  auto stored = store.PrepareImage(image);
  ASSERT_TRUE(stored.ok()) << stored.status();
  struct stat a, b;
  ASSERT_EQ(stat(src.c_str(), &a), 0);
  ASSERT_EQ(stat(stored->c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);  // a copy, not a link
  EXPECT_EQ(b.st_mode & 07777, 0444u);
  // The source changes in place, keeping its size and mtime: the stored copy does not, and an
  // unverified image is hashed again rather than trusted from a cache.
  ASSERT_TRUE(WriteFileAtomic(src, std::string(4096, 'b'), 0644).ok());
  struct timespec times[2] = {a.st_atim, a.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, src.c_str(), times, 0), 0);
  EXPECT_EQ(*ReadFile(*stored), std::string(4096, 'a'));
  image.mutable_spec()->clear_sha256();
  auto fresh = store.PrepareImage(image);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(*fresh, dir_ + "/data/images/" + Sha256Hex(std::string(4096, 'b')) + ".raw");
  image.mutable_spec()->set_sha256(Sha256Hex(std::string(4096, 'c')));
  EXPECT_NE(store.PrepareImage(image).status().message().find("sha256 mismatch"),
            std::string::npos);

  // A qcow2 that names a backing file would hand the guest an unverified host file.
  const std::string backed = root + "/backed.qcow2";
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                          "/etc/passwd", backed, "1M"},
                         std::chrono::seconds(30))
                  .ok());
  image.mutable_spec()->set_source_path(backed);
  image.mutable_spec()->set_format("qcow2");
  image.mutable_spec()->clear_sha256();
  auto refused = store.PrepareImage(image);
  EXPECT_TRUE(absl::IsPermissionDenied(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("backing file"), std::string::npos);
}

TEST_F(VmUnitTest, ChecksumsOverlaysAndVolumes) {
  DiskStore store(dir_ + "/data", dir_);
  ASSERT_TRUE(store.Init().ok());
  const std::string raw = dir_ + "/disk.raw";
  ASSERT_TRUE(WriteFileAtomic(raw, std::string(1 << 20, 'x')).ok());
  auto digest = Sha256File(raw);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, Sha256Hex(std::string(1 << 20, 'x')));

  compute::Image image;
  image.mutable_metadata()->set_name("disk");
  image.mutable_spec()->set_source_path(raw);
  image.mutable_spec()->set_format("raw");
  image.mutable_spec()->set_sha256(std::string(64, '0'));
  auto bad = store.PrepareImage(image);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sha256 mismatch"), std::string::npos);
  image.mutable_spec()->set_sha256(*digest);
  auto good = store.PrepareImage(image);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(*good, dir_ + "/data/images/" + *digest + ".raw");

  // A private host file is never handed to a guest.
  const std::string secret = dir_ + "/secret.raw";
  ASSERT_TRUE(WriteFileAtomic(secret, "key", 0600).ok());
  compute::Image private_image = image;
  private_image.mutable_spec()->set_source_path(secret);
  private_image.mutable_spec()->clear_sha256();
  auto refused = store.PrepareImage(private_image);
  EXPECT_TRUE(absl::IsPermissionDenied(refused.status())) << refused.status();

  const std::string overlay = dir_ + "/root.qcow2";
  ASSERT_TRUE(store.CreateOverlay(*good, "raw", overlay, 0).ok());
  auto info = RunCommand({"qemu-img", "info", "-U", overlay}, std::chrono::seconds(10));
  ASSERT_TRUE(info.ok());
  EXPECT_NE(info->output.find("backing file: " + *good), std::string::npos) << info->output;

  storage::Volume volume;
  volume.mutable_metadata()->set_name("data");
  volume.mutable_spec()->set_size_gb(1);
  volume.mutable_spec()->set_format("qcow2");
  auto path = store.EnsureVolume("default", volume);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir_ + "/data/volumes/default/data.qcow2");
  auto exists = [](const std::string& id) { return id == "a" || id == "b"; };
  ASSERT_TRUE(store.ClaimVolume("default", "data", "a", exists).ok());
  Status taken = store.ClaimVolume("default", "data", "b", exists);
  EXPECT_TRUE(absl::IsFailedPrecondition(taken));
  EXPECT_NE(taken.message().find("already attached to instance a"), std::string::npos);
  // A claim by an instance that no longer exists is stale and taken over.
  EXPECT_TRUE(
      store.ClaimVolume("default", "data", "c", [](const std::string&) { return false; }).ok());
  store.ReleaseVolume("default", "data", "c");
  EXPECT_EQ(store.VolumeOwner("default", "data"), "");
}

class VmProviderInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("vminput");
    ASSERT_TRUE(testing::BuildGuest(dir_));
    testing::AddGuestImages(&lookup_, dir_);
    lookup_.AddVolume("shared", 1, "raw");
    ProviderContext ctx;
    ctx.node_name = "n1";
    ctx.lookup = &lookup_;
    ctx.data_dir = dir_ + "/data";
    ctx.config["accel"] = "tcg";
    ctx.config["images_root"] = dir_;
    ASSERT_TRUE(provider_.Initialize(ctx).ok());
  }
  void TearDown() override { CleanupDir(dir_); }
  std::string dir_;
  MapLookup lookup_;
  VmProvider provider_;
};

TEST_F(VmProviderInputTest, BadInputIsRefusedWithTheReason) {
  auto fp = provider_.Fingerprint();
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(fp->at("vm.accel"), "tcg");

  auto missing = testing::GuestInstance("i-missing", "missing");
  missing.mutable_spec()->mutable_vm()->set_kernel("no-such-kernel");
  auto r1 = provider_.Start(missing);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.status().message().find("image no-such-kernel not found"), std::string::npos)
      << r1.status();

  lookup_.AddImage("tampered", dir_ + "/image/vmlinuz", "kernel", std::string(64, 'a'));
  auto tampered = testing::GuestInstance("i-tampered", "tampered");
  tampered.mutable_spec()->mutable_vm()->set_kernel("tampered");
  auto r2 = provider_.Start(tampered);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("sha256 mismatch"), std::string::npos) << r2.status();

  auto needs_kvm = testing::GuestInstance("i-kvm", "kvm");
  needs_kvm.mutable_spec()->mutable_vm()->set_accel("kvm");
  auto r3 = provider_.Start(needs_kvm);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("requires vm.accel=kvm but this node runs tcg"),
            std::string::npos)
      << r3.status();

  auto no_volume = testing::GuestInstance("i-novol", "novol");
  no_volume.mutable_spec()->mutable_vm()->add_volumes("ghost");
  auto r4 = provider_.Start(no_volume);
  ASSERT_FALSE(r4.ok());
  EXPECT_NE(r4.status().message().find("volume ghost not found"), std::string::npos);

  // A volume in use by one instance is refused to a second one, naming the holder.
  auto a = testing::GuestInstance("i-a", "a");
  a.mutable_spec()->mutable_vm()->add_volumes("shared");
  ASSERT_TRUE(provider_.Start(a).ok());
  auto b = testing::GuestInstance("i-b", "b");
  b.mutable_spec()->add_storage()->set_volume("shared");
  auto r5 = provider_.Start(b);
  ASSERT_FALSE(r5.ok());
  EXPECT_NE(r5.status().message().find("volume shared is already attached to instance i-a"),
            std::string::npos)
      << r5.status();
  // A refused first start leaves nothing: the agent sees NOT_FOUND and retries later.
  EXPECT_TRUE(absl::IsNotFound(provider_.Inspect("i-b").status()));
  EXPECT_FALSE(PathExists(dir_ + "/data/instances/i-b"));
  // Hot-attach of the same volume to b is refused too; after a is destroyed it is free.
  ASSERT_TRUE(provider_.Destroy("i-a").ok());
  EXPECT_TRUE(testing::PidsMentioning(dir_ + "/data/instances/i-a").empty());
  auto r6 = provider_.Start(b);
  EXPECT_TRUE(r6.ok()) << r6.status();
  ASSERT_TRUE(provider_.Destroy("i-b").ok());
  for (const char* id : {"i-missing", "i-tampered", "i-kvm", "i-novol"}) {
    EXPECT_TRUE(provider_.Destroy(id).ok());
  }
  EXPECT_TRUE(provider_.List()->empty());
}

TEST_F(VmProviderInputTest, DiskImageIsSharedReadOnlyBehindAPerInstanceOverlay) {
  const std::string raw = dir_ + "/disk.raw";
  ASSERT_TRUE(
      RunChecked({"qemu-img", "create", "-q", "-f", "raw", raw, "64M"}, std::chrono::seconds(30))
          .ok());
  auto digest = Sha256File(raw);
  ASSERT_TRUE(digest.ok());
  lookup_.AddImage("disk", raw, "raw", *digest);
  // Kernel boot with a root disk: the disk is the instance's overlay, never the image.
  auto instance = testing::GuestInstance("i-disk", "disk");
  instance.mutable_spec()->mutable_vm()->set_image("disk");
  instance.mutable_spec()->mutable_resources()->set_disk_gb(1);
  ASSERT_TRUE(provider_.Start(instance).ok());
  const std::string overlay = dir_ + "/data/instances/i-disk/root.qcow2";
  const std::string shared = dir_ + "/data/images/" + *digest + ".raw";
  auto info = RunCommand({"qemu-img", "info", "-U", overlay}, std::chrono::seconds(10));
  ASSERT_TRUE(info.ok());
  EXPECT_NE(info->output.find("backing file: " + shared), std::string::npos) << info->output;
  EXPECT_NE(info->output.find("virtual size: 1 GiB"), std::string::npos) << info->output;
  auto o = provider_.Inspect("i-disk");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->phase, resource::ResourceStatus::CREATING) << o->message;
  ASSERT_TRUE(provider_.Destroy("i-disk").ok());
  EXPECT_FALSE(PathExists(overlay));
  EXPECT_TRUE(PathExists(shared));  // shared by other instances; not the instance's to delete
}

TEST_F(VmProviderInputTest, ReadinessTimeoutIsAnErrorWithTheConsoleTail) {
  ProviderContext ctx;
  ctx.lookup = &lookup_;
  ctx.data_dir = dir_ + "/data2";
  ctx.config = {{"accel", "tcg"},
                {"ready_timeout_s", "3"},
                {"ready_marker", "NEVER-PRINTED"},
                {"images_root", dir_}};
  VmProvider provider;
  ASSERT_TRUE(provider.Initialize(ctx).ok());
  auto instance = testing::GuestInstance("i-slow", "slow");
  ASSERT_TRUE(provider.Start(instance).ok());
  auto o = provider.Inspect("i-slow");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->phase, resource::ResourceStatus::CREATING);  // QEMU started ≠ RUNNING
  Observed last = testing::WaitPhase(&provider, "i-slow", resource::ResourceStatus::ERROR,
                                     std::chrono::seconds(30));
  EXPECT_EQ(last.phase, resource::ResourceStatus::ERROR);
  EXPECT_NE(last.message.find("did not signal readiness (NEVER-PRINTED) within 3 s under tcg"),
            std::string::npos)
      << last.message;
  EXPECT_NE(last.message.find("console tail"), std::string::npos);
  ASSERT_TRUE(provider.Destroy("i-slow").ok());
  EXPECT_FALSE(PathExists(ctx.data_dir + "/instances/i-slow"));
}

}  // namespace
}  // namespace photon::agent::vm
