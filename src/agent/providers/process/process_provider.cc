#include "agent/providers/process/process_provider.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "agent/host/proc_util.h"
#include "agent/host/run.h"
#include "agent/host/spawn.h"
#include "agent/host/stop_timeout.h"
#include "common/file_util.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
namespace fs = std::filesystem;
using json = nlohmann::json;
using resource::ResourceStatus;

namespace {

constexpr int64_t kSecond = 1000000000;
constexpr int64_t kMaxBackoff = 30 * kSecond;
constexpr int64_t kStableRun = 10 * kSecond;  // a run this long resets the back-off

bool ValidPolicy(const std::string& p) {
  return p == "never" || p == "on-failure" || p == "always";
}

// Writes `data` aside and renames it over `path`: a reader (a restarted agent) finds the old or
// the new content whole, never a torn one. Without WriteFileAtomic's two fsyncs, on purpose:
// - kill -9 of the agent: its writes are in the kernel's page cache and visible to the next
//   agent without any sync, so "a workload never runs without a record of it" holds;
// - power loss (or a kernel crash): no workload survives it, so there is nothing a lost or
//   stale state.json could make the next agent adopt twice; it finds no state (or an old one
//   whose pid and start time no longer match a live process) and starts the instance again.
// What the agent acknowledges to the control plane after a start (RUNNING) is backed by its
// handle in DIR/handles.log, fdatasync'ed (group commit) before the status write. Two fsyncs
// per start here cost more than the rest of the start on a busy disk. A stop, which only this
// file records, is still written with WriteFileAtomic (synced): after a power cut the
// instance stays stopped.
Status ReplaceFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("create " + tmp + ": " + strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = absl::InternalError("write " + tmp + ": " + strerror(errno));
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = absl::InternalError("rename " + tmp + ": " + strerror(errno));
    ::unlink(tmp.c_str());
    return st;
  }
  return absl::OkStatus();
}

}  // namespace

ProcessProvider::~ProcessProvider() { Shutdown(); }

void ProcessProvider::Shutdown() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

Status ProcessProvider::Initialize(const ProviderContext& context) {
  context_ = context;
  PHOTON_RETURN_IF_ERROR(MakeDirs(context_.data_dir + "/instances", 0700));
  std::string parent = "photon/" + context_.node_name + "/process";
  if (auto it = context_.config.find("cgroup_parent"); it != context_.config.end()) {
    parent = it->second;
  }
  cgroups_ = std::make_unique<CgroupManager>(parent);
  PHOTON_ASSIGN_OR_RETURN(ids_, DynamicIds::FromConfig(context_.config));
  // Instances started by an earlier agent run: read their state back.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(context_.data_dir + "/instances", ec)) {
    auto data = ReadFile(e.path().string() + "/state.json");
    if (!data.ok()) continue;
    auto inst = std::make_shared<Instance>();
    if (!Decode(*data, inst.get()).ok()) continue;
    if (inst->uid >= 0 && !ids_->Adopt(static_cast<uid_t>(inst->uid), inst->id)) inst->uid = -1;
    instances_[inst->id] = inst;
  }
  SweepCgroups();
  supervisor_ = std::thread([this] { Supervise(); });
  return absl::OkStatus();
}

StatusOr<std::map<std::string, std::string>> ProcessProvider::Fingerprint() {
  return std::map<std::string, std::string>{{"process.cgroup", cgroups_->VersionName()}};
}

std::string ProcessProvider::Dir(const std::string& id) const {
  return context_.data_dir + "/instances/" + id;
}

std::string ProcessProvider::CgroupDir(const std::string& id, const std::string& c) const {
  return cgroups_->Dir(id, c);
}

std::string ProcessProvider::Encode(const Instance& inst) const {
  json j{{"id", inst.id},
         {"name", inst.name},
         {"argv", inst.argv},
         {"env", inst.env},
         {"workingDir", inst.working_dir},
         {"restartPolicy", inst.restart_policy},
         {"cpus", inst.limits.cpus},
         {"memoryBytes", inst.limits.memory_bytes},
         {"wantRunning", inst.want_running},
         {"pid", inst.pid},
         {"startTime", inst.start_time},
         {"monitorPid", inst.monitor_pid},
         {"monitorStart", inst.monitor_start},
         {"restarts", inst.restarts},
         {"lastExitCode", inst.last_exit_code},
         {"privileged", inst.privileged},
         {"uid", inst.uid},
         {"netns", inst.netns}};
  return j.dump();
}

Status ProcessProvider::Decode(const std::string& data, Instance* inst) const {
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("id")) {
    return absl::DataLossError("bad process handle");
  }
  try {
    inst->id = j.at("id").get<std::string>();
    inst->name = j.value("name", "");
    inst->argv = j.value("argv", std::vector<std::string>{});
    inst->env = j.value("env", std::vector<std::string>{});
    inst->working_dir = j.value("workingDir", "");
    inst->restart_policy = j.value("restartPolicy", "never");
    inst->limits.cpus = j.value("cpus", 0.0);
    inst->limits.memory_bytes = j.value("memoryBytes", int64_t{0});
    inst->want_running = j.value("wantRunning", true);
    inst->pid = j.value("pid", 0);
    inst->start_time = j.value("startTime", uint64_t{0});
    inst->monitor_pid = j.value("monitorPid", 0);
    inst->monitor_start = j.value("monitorStart", uint64_t{0});
    inst->restarts = j.value("restarts", 0);
    inst->last_exit_code = j.value("lastExitCode", 0);
    inst->privileged = j.value("privileged", false);
    inst->uid = j.value("uid", int64_t{-1});
    inst->netns = j.value("netns", "");
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("bad process handle: ") + e.what());
  }
  if (inst->id.empty() || inst->id.find('/') != std::string::npos || inst->id[0] == '.') {
    return absl::DataLossError("bad instance id in process handle");
  }
  return absl::OkStatus();
}

Status ProcessProvider::Persist(const Instance& inst, bool sync) const {
  const std::string path = Dir(inst.id) + "/state.json";
  return sync ? WriteFileAtomic(path, Encode(inst), 0600) : ReplaceFile(path, Encode(inst));
}

// A start that an earlier agent left before its go is being abandoned by its monitor (see
// SpawnMonitored): wait the moment it takes, so it is not taken for a running workload.
void ProcessProvider::SettleLocked(const Instance& inst) const {
  int64_t deadline = MonotonicNanos() + 2 * kSecond;
  while (inst.monitor_pid > 0 && ProcessAlive(inst.monitor_pid, inst.monitor_start) &&
         StartUndecided(inst.monitor_pid) && MonotonicNanos() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool ProcessProvider::AliveLocked(const Instance& inst) const {
  if (inst.pid > 0 && ProcessAlive(inst.pid, inst.start_time)) return true;
  // Exited but not yet recorded by its monitor: not over until the exit status is written.
  if (inst.monitor_pid > 0 && ProcessAlive(inst.monitor_pid, inst.monitor_start) &&
      ::access((Dir(inst.id) + "/exit").c_str(), F_OK) != 0) {
    return true;
  }
  // The direct child may have exited while others it started remain in the group.
  return cgroups_->version() != CgroupVersion::kNone && !cgroups_->Pids(inst.id).empty();
}

Status ProcessProvider::SpawnLocked(Instance* inst) {
  std::string dir = Dir(inst->id);
  PHOTON_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  SpawnSpec spec;
  spec.argv = inst->argv;
  spec.env = inst->env;
  if (inst->privileged) {
    spec.working_dir = inst->working_dir.empty() ? dir : inst->working_dir;
  } else {
    PHOTON_ASSIGN_OR_RETURN(spec.confine, ConfineLocked(inst));
    spec.working_dir = inst->working_dir.empty() ? "/tmp" : inst->working_dir;
  }
  spec.log_path = dir + "/output.log";
  spec.exit_path = dir + "/exit";
  spec.netns = inst->netns;
  if (cgroups_->version() != CgroupVersion::kNone) {
    PHOTON_RETURN_IF_ERROR(cgroups_->Create(inst->id, inst->limits));
    spec.cgroup_procs = cgroups_->ProcsFiles(inst->id);
  } else if (inst->limits.cpus > 0 || inst->limits.memory_bytes > 0) {
    return absl::FailedPreconditionError("resource limits requested but no cgroups on this host");
  }
  // The handle is on disk before the workload runs: an agent killed at any moment of a start
  // is succeeded by one that either adopts the workload or knows it never ran (exit file
  // "aborted"), never one that runs it a second time.
  PHOTON_ASSIGN_OR_RETURN(Spawned s, SpawnMonitored(spec, [inst, this](const Spawned& spawned) {
                            inst->pid = spawned.pid;
                            inst->start_time = spawned.start_time;
                            inst->monitor_pid = spawned.monitor_pid;
                            inst->monitor_start = spawned.monitor_start;
                            return Persist(*inst, /*sync=*/false);
                          }));
  inst->started_at_ns = MonotonicNanos();
  inst->restart_at_ns = 0;
  spdlog::info("process {}: started pid {} ({})", inst->name, s.pid, inst->argv[0]);
  return absl::OkStatus();
}

// The instance's uid and its private directory (created on first use, owned by that uid, 0700:
// no other instance's uid can enter it).
StatusOr<SpawnSpec::Confinement> ProcessProvider::ConfineLocked(Instance* inst) {
  if (inst->uid < 0) {
    PHOTON_ASSIGN_OR_RETURN(uid_t uid, ids_->Acquire(inst->id));
    inst->uid = uid;
  }
  SpawnSpec::Confinement c;
  c.uid = static_cast<uid_t>(inst->uid);
  c.gid = static_cast<gid_t>(inst->uid);
  c.private_tmp = Dir(inst->id) + "/tmp";
  PHOTON_RETURN_IF_ERROR(MakeDirs(c.private_tmp, 0700));
  if (::chown(c.private_tmp.c_str(), c.uid, c.gid) != 0) {
    return absl::InternalError("chown " + c.private_tmp + ": " + strerror(errno));
  }
  return c;
}

StatusOr<Handle> ProcessProvider::Start(const compute::ComputeInstance& instance) {
  const auto& id = instance.metadata().id();
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.') {
    return absl::InvalidArgumentError("metadata.id: not a valid instance id");
  }
  if (!instance.spec().has_process()) return absl::InvalidArgumentError("spec.process is missing");
  const auto& p = instance.spec().process();
  if (p.command().empty()) return absl::InvalidArgumentError("spec.process.command is empty");
  std::string policy = p.restart_policy().empty() ? "never" : p.restart_policy();
  if (!ValidPolicy(policy)) {
    return absl::InvalidArgumentError("spec.process.restartPolicy: '" + policy +
                                      "' is not one of never, on-failure, always");
  }
  const auto& res = instance.spec().resources();
  if (res.memory_mb() < 0) {
    return absl::InvalidArgumentError("spec.resources.memoryMb must not be negative");
  }
  if (res.vcpu() < 0) return absl::InvalidArgumentError("spec.resources.vcpu must not be negative");

  std::shared_ptr<Instance> inst;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& slot = instances_[id];
    if (!slot) slot = std::make_shared<Instance>();
    inst = slot;
  }
  std::lock_guard<std::mutex> l(inst->mu);
  SettleLocked(*inst);
  if (!inst->id.empty() && AliveLocked(*inst)) {
    return Handle{id, Driver(), Encode(*inst)};  // already running: never a duplicate
  }
  inst->id = id;
  inst->name = instance.metadata().namespace_() + "/" + instance.metadata().name();
  inst->argv.assign(p.command().begin(), p.command().end());
  inst->argv.insert(inst->argv.end(), p.args().begin(), p.args().end());
  inst->env.clear();
  bool has_path = false;
  std::map<std::string, std::string> env(p.env().begin(), p.env().end());
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find('=') != std::string::npos) {
      return absl::InvalidArgumentError("spec.process.env: bad variable name '" + k + "'");
    }
    has_path |= k == "PATH";
    inst->env.push_back(k + "=" + v);
  }
  if (!has_path)
    inst->env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  inst->privileged = instance.spec().security().privileged();
  // The agent made the instance's port before this start; restarts run in it too.
  inst->netns = context_.lookup != nullptr ? context_.lookup->PortNetns(id) : "";
  if (!env.count("HOME")) inst->env.push_back("HOME=" + (inst->privileged ? Dir(id) : "/tmp"));
  inst->env.push_back("PHOTON_INSTANCE=" + instance.metadata().name());
  inst->env.push_back("PHOTON_NAMESPACE=" + instance.metadata().namespace_());
  inst->working_dir = p.working_dir();
  inst->restart_policy = policy;
  inst->limits.cpus = res.vcpu();
  inst->limits.memory_bytes = res.memory_mb() * 1024 * 1024;
  inst->want_running = true;
  inst->removed = false;
  inst->consecutive_failures = 0;
  Status s = SpawnLocked(inst.get());
  if (!s.ok()) {
    // Leave nothing behind for a start that failed.
    (void)cgroups_->Remove(id);
    std::error_code ec;
    fs::remove_all(Dir(id), ec);
    ids_->Release(id);
    std::lock_guard<std::mutex> ml(mu_);
    instances_.erase(id);
    return s;
  }
  return Handle{id, Driver(), Encode(*inst)};
}

Status ProcessProvider::Recover(const Handle& handle) {
  auto inst = std::make_shared<Instance>();
  PHOTON_RETURN_IF_ERROR(Decode(handle.data, inst.get()));
  std::lock_guard<std::mutex> l(mu_);
  if (instances_.count(inst->id)) return absl::OkStatus();
  if (inst->uid >= 0 && !ids_->Adopt(static_cast<uid_t>(inst->uid), inst->id)) inst->uid = -1;
  instances_[inst->id] = inst;
  return absl::OkStatus();
}

std::shared_ptr<ProcessProvider::Instance> ProcessProvider::Find(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = instances_.find(id);
  return it == instances_.end() ? nullptr : it->second;
}

void ProcessProvider::StopLocked(Instance* inst, std::chrono::seconds timeout) {
  inst->restart_at_ns = 0;
  auto signal_all = [&](int sig) {
    if (inst->pid > 0 && ProcessAlive(inst->pid, inst->start_time)) ::kill(-inst->pid, sig);
    if (inst->pid > 0 && ProcessAlive(inst->pid, inst->start_time)) ::kill(inst->pid, sig);
    if (cgroups_->version() != CgroupVersion::kNone) cgroups_->Signal(inst->id, sig);
  };
  signal_all(SIGTERM);
  int64_t deadline = MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
  while (AliveLocked(*inst) && MonotonicNanos() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < 250 && AliveLocked(*inst); ++i) {
    signal_all(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status ProcessProvider::Stop(const std::string& instance_id, std::chrono::seconds timeout) {
  auto inst = Find(instance_id);
  if (!inst) return absl::NotFoundError("no process instance " + instance_id);
  std::lock_guard<std::mutex> l(inst->mu);
  inst->want_running = false;
  (void)Persist(*inst);
  StopLocked(inst.get(), timeout);
  return absl::OkStatus();
}

Status ProcessProvider::Destroy(const std::string& instance_id) {
  auto inst = Find(instance_id);
  if (inst) {
    std::lock_guard<std::mutex> l(inst->mu);
    inst->want_running = false;
    inst->removed = true;
    StopLocked(inst.get(), std::chrono::seconds(5));
    // The monitor ends by itself once the workload is gone; make sure of it.
    for (int i = 0;
         i < 100 && inst->monitor_pid > 0 && ProcessAlive(inst->monitor_pid, inst->monitor_start);
         ++i) {
      if (i == 25) ::kill(inst->monitor_pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Status s = absl::OkStatus();
  if (cgroups_->version() != CgroupVersion::kNone && cgroups_->Exists(instance_id)) {
    s = cgroups_->Remove(instance_id);
  }
  std::error_code ec;
  if (instance_id.find('/') == std::string::npos && !instance_id.empty() && instance_id[0] != '.') {
    fs::remove_all(Dir(instance_id), ec);
  }
  ids_->Release(instance_id);
  std::lock_guard<std::mutex> l(mu_);
  instances_.erase(instance_id);
  return s;
}

// A confined instance's pid is its namespace's init; the workload is that init's child (found
// through the instance's cgroup; the init itself until the workload is seen).
pid_t ProcessProvider::WorkloadPidLocked(const Instance& inst) const {
  if (inst.privileged || cgroups_->version() == CgroupVersion::kNone) return inst.pid;
  for (pid_t p : cgroups_->Pids(inst.id)) {
    if (ParentPid(p) == inst.pid) return p;
  }
  return inst.pid;
}

StatusOr<Observed> ProcessProvider::Inspect(const std::string& instance_id) {
  auto inst = Find(instance_id);
  if (!inst) return absl::NotFoundError("no process instance " + instance_id);
  std::lock_guard<std::mutex> l(inst->mu);
  Observed o;
  o.details["restarts"] = std::to_string(inst->restarts);
  o.details["cgroup"] = cgroups_->VersionName();
  o.addresses.push_back("127.0.0.1");
  SettleLocked(*inst);
  auto code = ReadExitCode(Dir(inst->id) + "/exit");
  if (AliveLocked(*inst)) {
    o.phase = ResourceStatus::RUNNING;
    o.details["pid"] = std::to_string(WorkloadPidLocked(*inst));
    o.exit_code = inst->last_exit_code;  // the previous run's
    return o;
  }
  if (absl::IsAborted(code.status()) && inst->want_running) {
    // The agent died between recording the start and letting the workload run.
    return absl::NotFoundError("the start of " + instance_id + " was abandoned before it ran");
  }
  if (code.ok()) o.exit_code = *code;
  if (!inst->want_running) {
    o.phase = ResourceStatus::SUSPENDED;
    o.message = "stopped";
  } else if (inst->restart_at_ns > 0) {
    o.phase = ResourceStatus::CREATING;
    o.message = "exited with code " + std::to_string(o.exit_code) + "; restarting (" +
                std::to_string(inst->restarts) + " restarts so far)";
  } else if (code.ok() && *code == 0) {
    o.phase = ResourceStatus::SUSPENDED;
    o.message = "exited with code 0";
  } else {
    o.phase = ResourceStatus::ERROR;
    o.message = code.ok() ? "exited with code " + std::to_string(*code)
                          : "process is gone (exit status unknown)";
  }
  return o;
}

StatusOr<std::vector<Handle>> ProcessProvider::List() {
  std::vector<Handle> out;
  std::set<std::string> seen;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, inst] : instances_) {
      std::lock_guard<std::mutex> il(inst->mu);
      if (inst->id.empty()) continue;
      out.push_back(Handle{id, Driver(), Encode(*inst)});
      seen.insert(id);
    }
  }
  // Groups whose state file is gone (a crash between the two): orphans to destroy.
  for (const auto& id : cgroups_->List()) {
    if (!seen.count(id)) out.push_back(Handle{id, Driver(), ""});
  }
  return out;
}

StatusOr<ActionResult> ProcessProvider::Execute(const std::string& instance_id,
                                                const std::string& action,
                                                const std::map<std::string, std::string>& params) {
  auto inst = Find(instance_id);
  if (!inst) return absl::NotFoundError("no process instance " + instance_id);
  ActionResult r;
  if (action == "logs") {
    int lines = 100;
    if (auto it = params.find("lines"); it != params.end()) {
      if (!absl::SimpleAtoi(it->second, &lines) || lines < 0) {
        return absl::InvalidArgumentError("lines: want a non-negative number");
      }
    }
    r.output = TailFile(Dir(instance_id) + "/output.log", lines);
    return r;
  }
  PHOTON_ASSIGN_OR_RETURN(auto timeout, StopTimeout(params));
  std::lock_guard<std::mutex> l(inst->mu);
  if (action == "stop" || action == "restart") {
    inst->want_running = false;
    StopLocked(inst.get(), timeout);
    r.output = "stopped";
  }
  if (action == "start" || action == "restart") {
    inst->want_running = true;
    inst->consecutive_failures = 0;
    if (!AliveLocked(*inst)) PHOTON_RETURN_IF_ERROR(SpawnLocked(inst.get()));
    r.output = action == "start" ? "started" : "restarted";
  }
  if (r.output.empty()) {
    return absl::UnimplementedError("the process driver has no action '" + action + "'");
  }
  PHOTON_RETURN_IF_ERROR(Persist(*inst));
  return r;
}

// Empty per-instance groups of no known instance go: at start (what an earlier run left) and
// now and then (a delete whose rmdir found the group still busy).
void ProcessProvider::SweepCgroups() {
  if (cgroups_->version() == CgroupVersion::kNone) return;
  std::set<std::string> keep;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, inst] : instances_) keep.insert(id);
  }
  if (int n = cgroups_->SweepEmpty(keep); n > 0) {
    spdlog::info("process: removed {} empty cgroups of instances that are gone", n);
  }
}

void ProcessProvider::Supervise() {
  int rounds = 0;
  for (;;) {
    if (++rounds % 120 == 0) SweepCgroups();  // every 30 s
    {
      std::unique_lock<std::mutex> l(stop_mu_);
      if (stop_cv_.wait_for(l, std::chrono::milliseconds(250), [this] { return stopping_; })) {
        return;
      }
    }
    std::vector<std::shared_ptr<Instance>> all;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [id, inst] : instances_) all.push_back(inst);
    }
    for (const auto& inst : all) {
      std::unique_lock<std::mutex> l(inst->mu, std::try_to_lock);
      if (!l.owns_lock() || inst->id.empty() || inst->removed || !inst->want_running) continue;
      if (inst->restart_policy == "never") continue;  // nothing to do when it ends
      if (AliveLocked(*inst)) continue;
      int64_t now = MonotonicNanos();
      if (inst->restart_at_ns == 0) {
        auto code = ReadExitCode(Dir(inst->id) + "/exit");
        // The monitor writes the exit status a moment after the workload is gone.
        if (!code.ok() && inst->monitor_pid > 0 &&
            ProcessAlive(inst->monitor_pid, inst->monitor_start)) {
          continue;
        }
        int exit_code = code.ok() ? *code : -1;
        inst->last_exit_code = exit_code;
        bool restart = inst->restart_policy == "always" ||
                       (inst->restart_policy == "on-failure" && exit_code != 0);
        if (!restart) continue;
        if (inst->started_at_ns > 0 && now - inst->started_at_ns >= kStableRun) {
          inst->consecutive_failures = 0;
        }
        int64_t backoff = kSecond << std::min(inst->consecutive_failures, 5);
        inst->restart_at_ns = now + std::min(backoff, kMaxBackoff);
        inst->consecutive_failures++;
        spdlog::info("process {}: exited with code {}; restarting in {} ms", inst->name, exit_code,
                     (inst->restart_at_ns - now) / 1000000);
        continue;
      }
      if (now < inst->restart_at_ns) continue;
      inst->restarts++;
      Status s = SpawnLocked(inst.get());
      if (!s.ok()) {
        spdlog::warn("process {}: restart failed: {}", inst->name, s.ToString());
        inst->restart_at_ns = now + kMaxBackoff;
      }
    }
  }
}

}  // namespace photon::agent
