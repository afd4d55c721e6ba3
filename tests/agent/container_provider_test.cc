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
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*images_dir_);
    delete images_dir_;
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
  ImageTable images_;
  std::string dir_;
  std::string node_;
  std::unique_ptr<ContainerProvider> provider_;
};
std::string* ContainerProviderTest::images_dir_ = nullptr;

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

}  // namespace
}  // namespace photon::agent
