// The container provider against the real runc: a busybox rootfs (scripts/make-rootfs.sh) as a
// directory and as a tarball, logs, exit codes, cgroup limits, stop/start, adoption by a new
// provider object, and destruction leaving no container, mount or cgroup behind.
#include "agent/providers/container/container_provider.h"

#include <gtest/gtest.h>

#include "agent/host/cgroup.h"
#include "agent/host/run.h"
#include "agent/host/spawn.h"
#include "common/util.h"
#include "test_env.h"

namespace photon::agent {
namespace {

using resource::ResourceStatus;
using testing::MakeTempDir;
using testing::Slurp;
using testing::WaitFor;
using namespace std::chrono_literals;

// Images as the control plane would serve them.
class ImageTable : public ResourceLookup {
 public:
  std::map<std::string, std::string> paths;  // name -> sourcePath
  StatusOr<compute::Image> GetImage(const std::string&, const std::string& name) override {
    auto it = paths.find(name);
    if (it == paths.end()) return absl::NotFoundError("Image '" + name + "' not found");
    compute::Image img;
    img.mutable_metadata()->set_name(name);
    img.mutable_spec()->set_source_path(it->second);
    return img;
  }
  StatusOr<storage::Volume> GetVolume(const std::string&, const std::string&) override {
    return absl::NotFoundError("no volumes");
  }
};

class ContainerProviderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_dir_ = new std::string(MakeTempDir("rootfs"));
    auto r = RunCommand({"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-rootfs.sh",
                         *images_dir_ + "/busybox", "--tar", *images_dir_ + "/busybox.tar.gz"});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.status().ToString());
    // Confined rootfs trees need every directory above them searchable (rootfs.h); /tmp is
    // 0700 on some hosts, /var/tmp is 1777 by policy.
    rootfs_root_ = new std::string("/var/tmp/photon-ctr-XXXXXX");
    ASSERT_NE(mkdtemp(rootfs_root_->data()), nullptr);
    ASSERT_EQ(chmod(rootfs_root_->c_str(), 0711), 0);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*images_dir_);
    std::filesystem::remove_all(*rootfs_root_);
    delete images_dir_;
    delete rootfs_root_;
  }
  void SetUp() override {
    if (ResolveExecutable("runc", {}).empty() || geteuid() != 0) {
      GTEST_SKIP() << "runc and root are needed";
    }
    if (InChroot()) GTEST_SKIP() << "SKIPPED LOUDLY: inside a chroot runc cannot start containers";
    dir_ = MakeTempDir("container-provider");
    node_ = "ctest-" + std::to_string(getpid());
    images_.paths["busybox"] = *images_dir_ + "/busybox";
    images_.paths["busybox-tar"] = *images_dir_ + "/busybox.tar.gz";
    images_.paths["vanished"] = *images_dir_ + "/nothing-here";
    provider_ = NewProvider();
  }
  void TearDown() override {
    provider_.reset();
    if (!dir_.empty()) testing::SweepHost(node_, dir_);
  }
  std::unique_ptr<ContainerProvider> NewProvider() {
    auto p = std::make_unique<ContainerProvider>();
    ProviderContext ctx;
    ctx.node_name = node_;
    ctx.data_dir = dir_;
    ctx.lookup = &images_;
    ctx.config["images_root"] = *images_dir_;
    ctx.config["rootfs_root"] = *rootfs_root_;
    EXPECT_TRUE(p->Initialize(ctx).ok());
    return p;
  }
  compute::ComputeInstance MakeInstance(const std::string& name, const std::string& image,
                                        std::vector<std::string> command) {
    compute::ComputeInstance inst;
    inst.mutable_metadata()->set_id(NewUuid());
    inst.mutable_metadata()->set_name(name);
    inst.mutable_metadata()->set_namespace_("default");
    auto* c = inst.mutable_spec()->mutable_container();
    c->set_image(image);
    for (auto& a : command) c->add_command(a);
    return inst;
  }
  Observed Inspect(const std::string& id) {
    auto o = provider_->Inspect(id);
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? *o : Observed{};
  }
  std::string Logs(const std::string& id) {
    auto l = provider_->Execute(id, "logs", {});
    return l.ok() ? l->output : l.status().ToString();
  }

  static std::string* images_dir_;
  static std::string* rootfs_root_;
  ImageTable images_;
  std::string dir_;
  std::string node_;
  std::unique_ptr<ContainerProvider> provider_;
};
std::string* ContainerProviderTest::images_dir_ = nullptr;
std::string* ContainerProviderTest::rootfs_root_ = nullptr;

TEST_F(ContainerProviderTest, FingerprintReportsRunc) {
  auto fp = provider_->Fingerprint();
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ((*fp)["container.runtime"], "runc");
}

TEST_F(ContainerProviderTest, RunsBusyboxWithLimitsAndLogs) {
  auto inst = MakeInstance("box", "busybox",
                           {"/bin/sh", "-c", "echo hello from busybox; hostname; exec sleep 60"});
  inst.mutable_spec()->mutable_resources()->set_memory_mb(40);
  inst.mutable_spec()->mutable_resources()->set_vcpu(1);
  (*inst.mutable_spec()->mutable_container()->mutable_env())["FOO"] = "bar";
  auto h = provider_->Start(inst);
  ASSERT_TRUE(h.ok()) << h.status();
  const std::string& id = inst.metadata().id();
  EXPECT_EQ(Inspect(id).phase, ResourceStatus::RUNNING);
  ASSERT_TRUE(
      WaitFor([&] { return Logs(id).find("hello from busybox\nbox\n") != std::string::npos; }, 5s))
      << Logs(id);
  CgroupManager probe("photon");
  if (probe.version() == CgroupVersion::kV1) {
    EXPECT_EQ(
        Slurp("/sys/fs/cgroup/memory/" + provider_->CgroupPath(id) + "/memory.limit_in_bytes"),
        std::to_string(40 << 20) + "\n");
    EXPECT_EQ(Slurp("/sys/fs/cgroup/cpu/" + provider_->CgroupPath(id) + "/cpu.cfs_quota_us"),
              "100000\n");
  } else if (probe.version() == CgroupVersion::kV2) {
    EXPECT_EQ(Slurp("/sys/fs/cgroup/" + provider_->CgroupPath(id) + "/memory.max"),
              std::to_string(40 << 20) + "\n");
  }
  EXPECT_EQ(testing::PidsWithEnv({"PHOTON_INSTANCE=box", "FOO=bar"}).size(), 1u);
  // Idempotent start: no second container.
  ASSERT_TRUE(provider_->Start(inst).ok());
  EXPECT_EQ(testing::PidsWithEnv({"PHOTON_INSTANCE=box", "FOO=bar"}).size(), 1u);
}

TEST_F(ContainerProviderTest, ExitCodeFromATarballRootfs) {
  auto inst = MakeInstance("quits", "busybox-tar", {"/bin/sh", "-c", "echo leaving; exit 5"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Inspect(id).phase == ResourceStatus::ERROR; }, 5s));
  EXPECT_EQ(Inspect(id).exit_code, 5);
  EXPECT_NE(Logs(id).find("leaving"), std::string::npos);
}

TEST_F(ContainerProviderTest, StopStartAndAdoption) {
  auto inst = MakeInstance("cycle", "busybox", {"/bin/sh", "-c", "echo up; exec sleep 60"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(provider_->Execute(id, "stop", {{"timeout", "1"}}).ok());
  EXPECT_EQ(Inspect(id).phase, ResourceStatus::SUSPENDED);
  EXPECT_TRUE(testing::PidsWithEnv({"PHOTON_INSTANCE=cycle"}).empty());
  ASSERT_TRUE(provider_->Execute(id, "start", {}).ok());
  EXPECT_EQ(Inspect(id).phase, ResourceStatus::RUNNING);
  std::string pid = Inspect(id).details["pid"];
  provider_ = NewProvider();  // an agent restart
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  ASSERT_TRUE(provider_->Recover((*listed)[0]).ok());
  EXPECT_EQ(Inspect(id).details["pid"], pid);
  ASSERT_TRUE(provider_->Start(inst).ok());
  EXPECT_EQ(testing::PidsWithEnv({"PHOTON_INSTANCE=cycle"}).size(), 1u);
}

TEST_F(ContainerProviderTest, DestroyLeavesNothing) {
  auto inst = MakeInstance("gone", "busybox", {"/bin/sh", "-c", "sleep 60 & exec sleep 60"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(provider_->Destroy(id).ok());
  EXPECT_TRUE(testing::PidsWithEnv({"PHOTON_INSTANCE=gone"}).empty());
  EXPECT_TRUE(testing::InstanceCgroupsOf(node_).empty());
  EXPECT_TRUE(testing::MountsUnder(dir_).empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/bundles/" + id));
  EXPECT_FALSE(std::filesystem::exists(*rootfs_root_ + "/" + node_ + "/" + id));
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(ContainerProviderTest, BadSpecsNameTheField) {
  auto s = provider_->Start(MakeInstance("noimg", "nosuch", {"/bin/true"})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("spec.container.image"), std::string::npos) << s;
  s = provider_->Start(MakeInstance("gonepath", "vanished", {"/bin/true"})).status();
  EXPECT_NE(s.message().find("spec.sourcePath"), std::string::npos) << s;
  s = provider_->Start(MakeInstance("nocmd", "busybox", {})).status();
  EXPECT_NE(s.message().find("spec.container.command"), std::string::npos) << s;
  auto neg = MakeInstance("neg", "busybox", {"/bin/true"});
  neg.mutable_spec()->mutable_resources()->set_memory_mb(-1);
  s = provider_->Start(neg).status();
  EXPECT_NE(s.message().find("spec.resources.memoryMb"), std::string::npos) << s;
  EXPECT_TRUE(testing::MountsUnder(dir_).empty());
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

// The attack of the hardening review: an editor's Image names a host directory (or smuggles
// overlay options). Images come only from the node's images root.
TEST_F(ContainerProviderTest, ImagesComeOnlyFromTheImagesRoot) {
  images_.paths["etc"] = "/etc";
  images_.paths["relative-escape"] = "../../../../etc";
  images_.paths["options"] = *images_dir_ + "/busybox,upperdir=/root";
  std::filesystem::create_symlink("/root", *images_dir_ + "/link-to-root");
  images_.paths["symlink"] = *images_dir_ + "/link-to-root";
  for (const char* name : {"etc", "relative-escape", "symlink"}) {
    auto s = provider_->Start(MakeInstance(std::string("esc-") + name, name, {"/bin/true"}));
    EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied) << name << s.status();
    EXPECT_NE(s.status().message().find("outside the node's images root"), std::string::npos)
        << s.status();
  }
  auto s = provider_->Start(MakeInstance("esc-options", "options", {"/bin/true"}));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  EXPECT_TRUE(testing::MountsUnder(dir_).empty());
  std::filesystem::remove(*images_dir_ + "/link-to-root");
}

// Root inside a confined container is an unprivileged host uid: it owns its (shifted) rootfs
// but nothing of the host's.
TEST_F(ContainerProviderTest, RunsInAUserNamespace) {
  auto inst =
      MakeInstance("userns", "busybox",
                   {"/bin/sh", "-c",
                    "cat /proc/self/uid_map; echo uid=$(id -u); touch /etc/mine && echo wrote-etc; "
                    "exec sleep 60"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Logs(id).find("wrote-etc") != std::string::npos; }, 5s))
      << Logs(id);
  std::string logs = Logs(id);
  EXPECT_NE(logs.find("uid=0"), std::string::npos) << logs;
  unsigned inside = 1, host = 0, size = 0;
  ASSERT_EQ(sscanf(logs.c_str(), "%u %u %u", &inside, &host, &size), 3) << logs;
  EXPECT_EQ(inside, 0u);
  EXPECT_GE(host, 3000000u);
  EXPECT_EQ(size, 65536u);
  // Seen from the host, the container's init runs as that uid, not as root.
  std::string status = Slurp("/proc/" + Inspect(id).details["pid"] + "/status");
  EXPECT_NE(status.find("Uid:\t" + std::to_string(host) + "\t"), std::string::npos) << status;
  // A second container gets another range.
  auto other = MakeInstance("userns2", "busybox-tar",
                            {"/bin/sh", "-c", "cat /proc/self/uid_map; exec sleep 60"});
  ASSERT_TRUE(provider_->Start(other).ok());
  const std::string& id2 = other.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Logs(id2).find("65536") != std::string::npos; }, 5s))
      << Logs(id2);
  unsigned host2 = 0;
  ASSERT_EQ(sscanf(Logs(id2).c_str(), "%u %u", &inside, &host2), 2);
  EXPECT_NE(host2, host);
}

TEST_F(ContainerProviderTest, PrivilegedIsTheHostsRoot) {
  auto inst =
      MakeInstance("priv", "busybox", {"/bin/sh", "-c", "cat /proc/self/uid_map; exec sleep 60"});
  inst.mutable_spec()->mutable_security()->set_privileged(true);
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Logs(id).find("4294967295") != std::string::npos; }, 5s))
      << Logs(id);
}

}  // namespace
}  // namespace photon::agent
