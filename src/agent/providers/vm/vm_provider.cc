// The vm driver's lifecycle: adopt, inspect, stop, destroy; see vm_provider.h. Starting a VM
// is in vm_start.cc, actions (reboot, pause, console, volumes) in vm_actions.cc.
#include "agent/providers/vm/vm_provider.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/host/image_root.h"
#include "agent/providers/vm/accel.h"
#include "agent/providers/vm/config_drive.h"
#include "agent/providers/vm/qemu_command.h"
#include "agent/providers/vm/qmp_client.h"
#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent::vm {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

bool WaitDead(const VmState& vm, milliseconds timeout) {
  int64_t deadline = MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
  while (MonotonicNanos() < deadline) {
    if (!ProcessAlive(vm.pid)) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return !ProcessAlive(vm.pid);
}

}  // namespace

Status VmProvider::Initialize(const ProviderContext& context) {
  context_ = context;
  if (context_.data_dir.empty()) return absl::InvalidArgumentError("vm: no data_dir");
  PHOTON_RETURN_IF_ERROR(MakeDirs(context_.data_dir + "/instances", 0700));
  disks_ = std::make_unique<DiskStore>(context_.data_dir, ImagesRootFrom(context_.config));
  PHOTON_RETURN_IF_ERROR(disks_->Init());
  qemu_binary_ = Config("qemu", "qemu-system-x86_64");
  ready_marker_ = Config("ready_marker", "PHOTON-READY");
  std::string forced = Config("accel", "");
  if (!forced.empty() && forced != "kvm" && forced != "tcg") {
    return absl::InvalidArgumentError("vm: config accel must be kvm or tcg, not " + forced);
  }
  auto version = RunCommand({qemu_binary_, "--version"}, std::chrono::seconds(10));
  if (version.ok() && version->exit_code == 0) {
    qemu_version_ = version->output.substr(0, version->output.find('\n'));
  }
  AccelInfo info = DetectAccel(qemu_binary_, forced, context_.data_dir + "/probe");
  accel_ = info.accel;
  accel_reason_ = info.reason;
  return absl::OkStatus();
}

StatusOr<std::map<std::string, std::string>> VmProvider::Fingerprint() {
  if (qemu_version_.empty()) {
    return absl::UnavailableError("vm: " + qemu_binary_ + " is not installed or does not run");
  }
  return std::map<std::string, std::string>{{"vm.accel", accel_},
                                            {"vm.accel.reason", accel_reason_},
                                            {"vm.machines", "q35,microvm"},
                                            {"vm.qemu", qemu_version_}};
}

std::string VmProvider::Config(const std::string& key, const std::string& fallback) const {
  auto it = context_.config.find(key);
  return it == context_.config.end() || it->second.empty() ? fallback : it->second;
}

int64_t VmProvider::ConfigInt(const std::string& key, int64_t fallback) const {
  std::string v = Config(key, "");
  if (v.empty()) return fallback;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  return end && *end == '\0' && n > 0 ? n : fallback;
}

std::string VmProvider::InstanceDir(const std::string& id) const {
  return context_.data_dir + "/instances/" + id;
}

bool VmProvider::InstanceExists(const std::string& id) {
  return PathExists(InstanceDir(id) + "/state.json");
}

std::shared_ptr<VmState> VmProvider::Find(const std::string& id) {
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.') return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = vms_.find(id);
  if (it != vms_.end()) return it->second;
  auto loaded = VmState::Load(InstanceDir(id));
  if (!loaded.ok()) return nullptr;
  std::shared_ptr<VmState> vm = std::move(*loaded);
  vms_[id] = vm;
  return vm;
}

Handle VmProvider::MakeHandle(const VmState& vm) const {
  return Handle{vm.id, "vm", vm.HandleData()};
}

bool VmProvider::AliveLocked(const VmState& vm) const {
  return ProcessAlive(vm.pid) && CmdlineContains(vm.pid, vm.pidfile);
}

VmProvider::Presence VmProvider::LocateLocked(VmState& vm) {
  if (AliveLocked(vm)) return Presence::kAlive;
  if (vm.dir.empty() || !LockHeld(vm.LockPath())) return Presence::kNone;
  // A process holds the lock, so a QEMU of this instance runs or is being exec'd: its pid is in
  // the pidfile once it daemonized (a few ms after exec; QEMU writes it before the guest runs).
  const std::string pidfile = vm.dir + "/qemu.pid";
  int64_t deadline = MonotonicNanos() + 10'000'000'000LL;
  while (MonotonicNanos() < deadline) {
    auto text = ReadFile(pidfile);
    int pid = text.ok() ? std::atoi(text->c_str()) : 0;
    if (pid > 0 && ProcessAlive(pid) && CmdlineContains(pid, pidfile)) {
      spdlog::info("vm {}: adopting QEMU pid {} (not recorded before)", vm.id, pid);
      vm.pid = pid;
      vm.pidfile = pidfile;
      vm.launching = false;
      vm.stopped = false;
      vm.Save().IgnoreError();
      return Presence::kAlive;
    }
    if (!LockHeld(vm.LockPath())) return Presence::kNone;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return Presence::kStarting;
}

StatusOr<Handle> VmProvider::Start(const compute::ComputeInstance& instance) {
  if (!disks_) return absl::FailedPreconditionError("vm: not initialized");
  const std::string& id = instance.metadata().id();
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.') {
    return absl::InvalidArgumentError("vm: instance has no valid metadata.id");
  }
  if (!instance.spec().has_vm()) return absl::InvalidArgumentError("vm: spec.vm is not set");
  std::shared_ptr<VmState> vm = Find(id);
  if (!vm) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = vms_[id];
    if (!slot) {
      slot = std::make_shared<VmState>();
      slot->id = id;
      slot->dir = InstanceDir(id);
    }
    vm = slot;
  }
  std::lock_guard<std::mutex> lock(vm->mu);
  // Idempotent: never a second QEMU, also not beside one the agent never recorded.
  switch (LocateLocked(*vm)) {
    case Presence::kAlive:
      return MakeHandle(*vm);
    case Presence::kStarting:
      return absl::UnavailableError("vm: a QEMU of " + id + " is still starting");
    case Presence::kNone:
      break;
  }
  // A start interrupted before QEMU ran counts as a first start.
  const bool fresh = !PathExists(vm->StatePath()) || vm->launching;
  auto handle = StartLocked(*vm, instance);
  if (!handle.ok() && fresh && !LockHeld(vm->LockPath())) {
    // Nothing of a first start that failed stays behind: Inspect answers NOT_FOUND again, so
    // the agent retries Start (e.g. once the missing image exists) instead of seeing an ERROR
    // for a VM that never ran.
    std::error_code ec;
    fs::remove_all(vm->dir, ec);
    std::lock_guard<std::mutex> table(mu_);
    auto it = vms_.find(id);
    if (it != vms_.end() && it->second == vm) vms_.erase(it);
  }
  return handle;
}

Status VmProvider::Recover(const Handle& handle) {
  if (!disks_) return absl::FailedPreconditionError("vm: not initialized");
  const std::string& id = handle.instance_id;
  if (id.empty() || id.find('/') != std::string::npos || id[0] == '.') {
    return absl::InvalidArgumentError("vm: handle has no valid instance id");
  }
  auto loaded = VmState::Load(InstanceDir(id));
  if (!loaded.ok()) return absl::NotFoundError("vm: no instance " + id + " on this node");
  std::shared_ptr<VmState> vm = std::move(*loaded);
  {
    std::lock_guard<std::mutex> lock(vm->mu);
    if (LocateLocked(*vm) == Presence::kAlive) {
      // Confirm we can still control it, and learn whether it is paused.
      auto qmp = QmpClient::Connect(vm->qmp_socket, std::chrono::seconds(5));
      if (!qmp.ok()) return qmp.status();
      auto status = (*qmp)->Execute("query-status");
      if (status.ok()) vm->paused = status->value("status", "") == "paused";
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  vms_[id] = vm;
  return absl::OkStatus();
}

Status VmProvider::KillLocked(VmState& vm) {
  if (LocateLocked(vm) == Presence::kAlive) {
    auto qmp = QmpClient::Connect(vm.qmp_socket, std::chrono::seconds(1));
    if (qmp.ok()) (*qmp)->Execute("quit").IgnoreError();
    if (!WaitDead(vm, std::chrono::seconds(3)) && AliveLocked(vm)) {
      kill(vm.pid, SIGKILL);
      if (!WaitDead(vm, std::chrono::seconds(5))) {
        return absl::InternalError("QEMU pid " + std::to_string(vm.pid) + " does not die");
      }
    }
  }
  PHOTON_RETURN_IF_ERROR(KillInstanceProcesses(vm.dir));
  vm.launching = false;
  if (!vm.tap.empty()) {
    RunCommand({"ip", "link", "del", vm.tap}, std::chrono::seconds(10)).IgnoreError();
  }
  unlink(vm.qmp_socket.c_str());
  if (!vm.serial_socket.empty()) unlink(vm.serial_socket.c_str());
  unlink(vm.pidfile.c_str());
  return absl::OkStatus();
}

Status VmProvider::StopLocked(VmState& vm, std::chrono::seconds timeout) {
  // Graceful: the guest powers off on the ACPI power button. A guest still booting, or whose
  // listener for the button is not up yet, misses a press, so it is pressed again every few
  // seconds; a guest already shutting down ignores the repeats.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (AliveLocked(vm) && std::chrono::steady_clock::now() < deadline) {
    auto qmp = QmpClient::Connect(vm.qmp_socket, std::chrono::seconds(2));
    if (qmp.ok()) {
      // A paused guest cannot see the power button.
      if (vm.paused && (*qmp)->Execute("cont").ok()) vm.paused = false;
      (*qmp)->Execute("system_powerdown").IgnoreError();
    }
    WaitDead(vm, std::min<milliseconds>(std::chrono::seconds(3),
                                        std::chrono::duration_cast<milliseconds>(
                                            deadline - std::chrono::steady_clock::now())));
  }
  PHOTON_RETURN_IF_ERROR(KillLocked(vm));  // forced when still there
  vm.stopped = true;
  vm.paused = false;
  vm.ready = false;
  return vm.Save();
}

Status VmProvider::Stop(const std::string& instance_id, std::chrono::seconds timeout) {
  std::shared_ptr<VmState> vm = Find(instance_id);
  if (!vm) return absl::NotFoundError("vm: no instance " + instance_id);
  std::lock_guard<std::mutex> lock(vm->mu);
  return StopLocked(*vm, timeout);
}

Status VmProvider::Destroy(const std::string& instance_id) {
  std::shared_ptr<VmState> vm = Find(instance_id);
  if (!vm) {
    // A directory without a readable state (crash during the first start) still goes.
    if (!instance_id.empty() && instance_id.find('/') == std::string::npos &&
        instance_id[0] != '.' && PathExists(InstanceDir(instance_id))) {
      PHOTON_RETURN_IF_ERROR(KillInstanceProcesses(InstanceDir(instance_id)));
      std::error_code ec;
      fs::remove_all(InstanceDir(instance_id), ec);
    }
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(vm->mu);
    PHOTON_RETURN_IF_ERROR(KillLocked(*vm));
    for (const auto& v : vm->volumes) disks_->ReleaseVolume(vm->ns, v.name, vm->id);
    std::error_code ec;
    fs::remove_all(vm->dir, ec);
    if (ec) return absl::InternalError("remove " + vm->dir + ": " + ec.message());
    vm->pid = 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  vms_.erase(instance_id);
  return absl::OkStatus();
}

bool VmProvider::ScanReadyLocked(VmState& vm) {
  if (vm.ready) return true;
  std::ifstream in(vm.console_log, std::ios::binary);
  if (!in) return false;
  // Re-read a marker's length before the last scan end: the marker may straddle two reads.
  int64_t from =
      std::max(vm.boot_offset, vm.scan_offset - static_cast<int64_t>(ready_marker_.size()));
  in.seekg(from);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  vm.scan_offset = from + static_cast<int64_t>(data.size());
  vm.ready = data.find(ready_marker_) != std::string::npos;
  return vm.ready;
}

std::string VmProvider::ConsoleTail(const VmState& vm, size_t bytes) const {
  return TailFile(vm.console_log, bytes);
}

StatusOr<Observed> VmProvider::Inspect(const std::string& instance_id) {
  std::shared_ptr<VmState> vm = Find(instance_id);
  if (!vm) return absl::NotFoundError("vm: no instance " + instance_id);
  std::lock_guard<std::mutex> lock(vm->mu);
  Observed o;
  o.details["accel"] = vm->accel;
  o.details["machine"] = vm->machine;
  o.details["console"] = vm->console_log;
  if (vm->stopped) {
    // Like the process driver: a stopped instance is SUSPENDED until started again.
    o.phase = resource::ResourceStatus::SUSPENDED;
    o.message = "stopped";
    o.details["state"] = "stopped";
    return o;
  }
  Presence presence = LocateLocked(*vm);
  if (presence == Presence::kNone && vm->launching) {
    // The agent died before QEMU ran: nothing to observe, the agent starts it again.
    return absl::NotFoundError("vm: the start of " + instance_id + " was interrupted");
  }
  o.details["pid"] = std::to_string(vm->pid);
  if (presence == Presence::kStarting) {
    o.phase = resource::ResourceStatus::CREATING;
    o.message = "QEMU is starting";
    o.details["state"] = "starting";
    return o;
  }
  if (presence == Presence::kNone) {
    o.phase = resource::ResourceStatus::ERROR;
    o.message = "QEMU (pid " + std::to_string(vm->pid) + ") exited; console tail:\n" +
                ConsoleTail(*vm, 1024);
    o.details["state"] = "exited";
    return o;
  }
  if (vm->paused) {
    o.phase = resource::ResourceStatus::SUSPENDED;
    o.message = "paused";
    o.details["state"] = "paused";
    return o;
  }
  if (ScanReadyLocked(*vm)) {
    o.phase = resource::ResourceStatus::RUNNING;
    o.message = "guest ready (" + vm->accel + ")";
    o.details["state"] = "running";
    return o;
  }
  int64_t elapsed_s = (WallClockMs() - vm->boot_started_ms) / 1000;
  if (elapsed_s >= vm->ready_timeout_s) {
    o.phase = resource::ResourceStatus::ERROR;
    o.message = "guest did not signal readiness (" + ready_marker_ + ") within " +
                std::to_string(vm->ready_timeout_s) + " s under " + vm->accel +
                "; console tail:\n" + ConsoleTail(*vm, 1024);
    o.details["state"] = "not-ready";
    return o;
  }
  o.phase = resource::ResourceStatus::CREATING;
  o.message = "booting under " + vm->accel + " (" + std::to_string(elapsed_s) + " s)";
  o.details["state"] = "booting";
  return o;
}

StatusOr<std::vector<Handle>> VmProvider::List() {
  std::vector<Handle> handles;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(context_.data_dir + "/instances", ec)) {
    if (!entry.is_directory()) continue;
    auto state = VmState::Load(entry.path().string());
    if (!state.ok()) continue;
    handles.push_back(MakeHandle(**state));
  }
  return handles;
}

}  // namespace photon::agent::vm
