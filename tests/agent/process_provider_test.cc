// The process provider against the real host: cgroup limits really applied, restart
// policies, logs, exit codes, adoption by a new provider object, and clean destruction.
#include "agent/providers/process/process_provider.h"

#include <gtest/gtest.h>

#include "agent/host/cgroup.h"
#include "agent/host/proc_util.h"
#include "common/util.h"
#include "test_env.h"

namespace photon::agent {
namespace {

using resource::ResourceStatus;
using testing::MakeTempDir;
using testing::Slurp;
using testing::WaitFor;
using namespace std::chrono_literals;

compute::ComputeInstance MakeInstance(const std::string& name, std::vector<std::string> command,
                                      const std::string& policy = "never") {
  compute::ComputeInstance inst;
  inst.mutable_metadata()->set_id(NewUuid());
  inst.mutable_metadata()->set_name(name);
  inst.mutable_metadata()->set_namespace_("default");
  auto* p = inst.mutable_spec()->mutable_process();
  for (auto& c : command) p->add_command(c);
  p->set_restart_policy(policy);
  return inst;
}

class ProcessProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("process-provider");
    node_ = "ptest-" + std::to_string(getpid());
    provider_ = NewProvider();
  }
  void TearDown() override {
    provider_.reset();
    testing::SweepHost(node_, dir_);
  }
  std::unique_ptr<ProcessProvider> NewProvider() {
    auto p = std::make_unique<ProcessProvider>();
    ProviderContext ctx;
    ctx.node_name = node_;
    ctx.data_dir = dir_;
    EXPECT_TRUE(p->Initialize(ctx).ok());
    return p;
  }
  Observed Inspect(const std::string& id) {
    auto o = provider_->Inspect(id);
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? *o : Observed{};
  }

  std::string dir_;
  std::string node_;
  std::unique_ptr<ProcessProvider> provider_;
};

TEST_F(ProcessProviderTest, LimitsAreAppliedInTheCgroup) {
  CgroupManager probe("photon");
  if (probe.version() == CgroupVersion::kNone) GTEST_SKIP() << "no cgroups here";
  auto inst = MakeInstance("limited", {"sleep", "30"});
  inst.mutable_spec()->mutable_resources()->set_vcpu(1);
  inst.mutable_spec()->mutable_resources()->set_memory_mb(48);
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  Observed o = Inspect(id);
  EXPECT_EQ(o.phase, ResourceStatus::RUNNING);
  std::string pid = o.details["pid"];
  if (probe.version() == CgroupVersion::kV1) {
    EXPECT_EQ(Slurp(provider_->CgroupDir(id, "memory") + "/memory.limit_in_bytes"),
              std::to_string(48 << 20) + "\n");
    EXPECT_EQ(Slurp(provider_->CgroupDir(id, "cpu") + "/cpu.cfs_quota_us"), "100000\n");
    EXPECT_EQ(Slurp(provider_->CgroupDir(id, "cpu") + "/cpu.cfs_period_us"), "100000\n");
    EXPECT_NE(Slurp(provider_->CgroupDir(id, "memory") + "/cgroup.procs").find(pid),
              std::string::npos);
  } else {
    EXPECT_EQ(Slurp(provider_->CgroupDir(id, "memory") + "/memory.max"),
              std::to_string(48 << 20) + "\n");
    EXPECT_EQ(Slurp(provider_->CgroupDir(id, "cpu") + "/cpu.max"), "100000 100000\n");
  }
  // The process's own view agrees.
  std::string own = Slurp("/proc/" + pid + "/cgroup");
  EXPECT_NE(own.find("photon/" + node_ + "/process/" + id), std::string::npos) << own;
}

TEST_F(ProcessProviderTest, ExitCodeAndLogs) {
  auto inst = MakeInstance("exits", {"/bin/sh", "-c", "echo out line; echo err line >&2; exit 7"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Inspect(id).phase == ResourceStatus::ERROR; }, 5s));
  Observed o = Inspect(id);
  EXPECT_EQ(o.exit_code, 7);
  EXPECT_NE(o.message.find("code 7"), std::string::npos);
  auto logs = provider_->Execute(id, "logs", {});
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_NE(logs->output.find("out line"), std::string::npos);
  EXPECT_NE(logs->output.find("err line"), std::string::npos);
  auto one = provider_->Execute(id, "logs", {{"lines", "1"}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->output.find("out line"), std::string::npos) << one->output;
  // never: it stays down.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Inspect(id).details["restarts"], "0");
}

TEST_F(ProcessProviderTest, OnFailureRestartsWithBackoff) {
  auto inst = MakeInstance("flaky", {"/bin/sh", "-c", "echo attempt; exit 3"}, "on-failure");
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Inspect(id).details["restarts"] == "2"; }, 8s))
      << Inspect(id).details["restarts"];
  auto attempts = [&] {
    auto logs = provider_->Execute(id, "logs", {});
    size_t n = 0;
    for (size_t p = 0; logs.ok() && (p = logs->output.find("attempt", p)) != std::string::npos;
         ++p) {
      ++n;
    }
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return attempts() >= 3; }, 3s)) << attempts();
  EXPECT_EQ(Inspect(id).exit_code, 3);
}

TEST_F(ProcessProviderTest, OnFailureDoesNotRestartASuccess) {
  auto inst = MakeInstance("ok", {"/bin/true"}, "on-failure");
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Inspect(id).phase == ResourceStatus::SUSPENDED; }, 5s));
  std::this_thread::sleep_for(1500ms);
  Observed o = Inspect(id);
  EXPECT_EQ(o.details["restarts"], "0");
  EXPECT_EQ(o.exit_code, 0);
}

TEST_F(ProcessProviderTest, AlwaysRestartsASuccess) {
  auto inst = MakeInstance("loop", {"/bin/true"}, "always");
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor([&] { return Inspect(id).details["restarts"] == "1"; }, 5s));
}

TEST_F(ProcessProviderTest, EnvWorkingDirAndStopStart) {
  std::string wd = dir_ + "/wd";
  std::filesystem::create_directories(wd);
  auto inst =
      MakeInstance("env", {"/bin/sh", "-c", "echo \"$GREETING from $(pwd)\"; exec sleep 30"});
  (*inst.mutable_spec()->mutable_process()->mutable_env())["GREETING"] = "hi there";
  inst.mutable_spec()->mutable_process()->set_working_dir(wd);
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = provider_->Execute(id, "logs", {});
        return l.ok() && l->output.find("hi there from " + wd) != std::string::npos;
      },
      5s));
  ASSERT_TRUE(provider_->Execute(id, "stop", {{"timeout", "1"}}).ok());
  Observed o = Inspect(id);
  EXPECT_EQ(o.phase, ResourceStatus::SUSPENDED);
  ASSERT_TRUE(provider_->Execute(id, "start", {}).ok());
  EXPECT_EQ(Inspect(id).phase, ResourceStatus::RUNNING);
  auto bad = provider_->Execute(id, "console", {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnimplemented);
}

TEST_F(ProcessProviderTest, SurvivesTheProviderAndIsAdoptedWithoutDuplicate) {
  auto inst = MakeInstance("durable", {"sleep", "60"});
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  std::string pid = Inspect(id).details["pid"];
  provider_.reset();  // the agent goes away; the process must not
  ASSERT_TRUE(ProcessAlive(std::stoi(pid), 0));
  provider_ = NewProvider();
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].instance_id, id);
  ASSERT_TRUE(provider_->Recover((*listed)[0]).ok());
  EXPECT_EQ(Inspect(id).phase, ResourceStatus::RUNNING);
  EXPECT_EQ(Inspect(id).details["pid"], pid);
  // Start again is idempotent: the same process, no second one.
  ASSERT_TRUE(provider_->Start(inst).ok());
  EXPECT_EQ(Inspect(id).details["pid"], pid);
}

TEST_F(ProcessProviderTest, DestroyLeavesNothing) {
  auto inst = MakeInstance("gone", {"/bin/sh", "-c", "sleep 60 & sleep 60"});
  inst.mutable_spec()->mutable_resources()->set_memory_mb(32);
  ASSERT_TRUE(provider_->Start(inst).ok());
  const std::string& id = inst.metadata().id();
  ASSERT_TRUE(
      WaitFor([&] { return testing::PidsWithEnv({"PHOTON_INSTANCE=gone"}).size() == 3; }, 3s));
  ASSERT_TRUE(provider_->Destroy(id).ok());
  EXPECT_TRUE(testing::PidsWithEnv({"PHOTON_INSTANCE=gone"}).empty());
  EXPECT_TRUE(testing::InstanceCgroupsOf(node_).empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/instances/" + id));
  EXPECT_EQ(provider_->Inspect(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(provider_->Destroy(id).ok());  // idempotent
}

TEST_F(ProcessProviderTest, BadSpecsNameTheField) {
  auto empty = MakeInstance("empty", {});
  auto s = provider_->Start(empty).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("spec.process.command"), std::string::npos) << s;

  auto policy = MakeInstance("policy", {"true"}, "sometimes");
  s = provider_->Start(policy).status();
  EXPECT_NE(s.message().find("spec.process.restartPolicy"), std::string::npos) << s;

  auto mem = MakeInstance("mem", {"true"});
  mem.mutable_spec()->mutable_resources()->set_memory_mb(-5);
  s = provider_->Start(mem).status();
  EXPECT_NE(s.message().find("spec.resources.memoryMb"), std::string::npos) << s;

  auto missing = MakeInstance("missing", {"/no/such/binary"});
  s = provider_->Start(missing).status();
  EXPECT_NE(s.message().find("/no/such/binary"), std::string::npos) << s;
  EXPECT_TRUE(testing::InstanceCgroupsOf(node_).empty());
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

}  // namespace
}  // namespace photon::agent
