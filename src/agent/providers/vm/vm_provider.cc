// The vm driver's lifecycle: start, adopt, inspect, stop, destroy; see vm_provider.h. Actions
// (reboot, pause, console, volumes) are in vm_actions.cc.
#include "agent/providers/vm/vm_provider.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/providers/vm/accel.h"
#include "agent/providers/vm/config_drive.h"
#include "agent/providers/vm/qemu_command.h"
#include "agent/providers/vm/qmp_client.h"
#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs QEMU with -daemonize: the direct child exits once QEMU is set up (0) or failed (its
// message is in log_path); the daemon itself is in a new session, not our child, so it
// survives the agent. Returns the daemon's pid from the pidfile.
StatusOr<int> SpawnQemu(const std::vector<std::string>& argv, const std::string& log_path,
                        const std::string& pidfile) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return absl::InternalError("cannot open " + log_path);
  pid_t child = fork();
  if (child < 0) {
    close(log_fd);
    return absl::InternalError("fork failed");
  }
  if (child == 0) {
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close_range(3, ~0U, 0);  // no agent socket or file leaks into the VMM
    signal(SIGPIPE, SIG_DFL);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(log_fd);
  int status = 0;
  bool reaped = false;
  int64_t deadline = MonotonicNanos() + 60'000'000'000LL;
  while (MonotonicNanos() < deadline) {
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) {
      reaped = true;
      break;
    }
    if (r < 0 && errno == ECHILD) break;  // someone else reaps children; judge by the pidfile
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (!reaped && MonotonicNanos() >= deadline) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return absl::DeadlineExceededError("QEMU did not finish starting within 60 s");
  }
  if (reaped && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    std::string log = TailFile(log_path, 4096);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 127 && log.empty()) return absl::FailedPreconditionError(argv[0] + " not found");
    return absl::FailedPreconditionError("QEMU failed to start (exit " + std::to_string(code) +
                                         "): " + log);
  }
  auto pid_text = ReadFile(pidfile);
  int pid = pid_text.ok() ? std::atoi(pid_text->c_str()) : 0;
  if (pid <= 0) return absl::InternalError("QEMU wrote no pidfile: " + TailFile(log_path, 4096));
  return pid;
}

bool WaitDead(const VmState& vm, milliseconds timeout) {
  int64_t deadline = MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
  while (MonotonicNanos() < deadline) {
    if (!ProcessAlive(vm.pid)) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return !ProcessAlive(vm.pid);
}

std::string DiskIdFor(const std::string& volume) { return "v" + Sha256Hex(volume).substr(0, 8); }

}  // namespace

Status VmProvider::Initialize(const ProviderContext& context) {
  context_ = context;
  if (context_.data_dir.empty()) return absl::InvalidArgumentError("vm: no data_dir");
  PHOTON_RETURN_IF_ERROR(MakeDirs(context_.data_dir + "/instances", 0700));
  disks_ = std::make_unique<DiskStore>(context_.data_dir);
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
  if (AliveLocked(*vm)) return MakeHandle(*vm);  // idempotent: never a second QEMU
  const bool fresh = !PathExists(vm->StatePath());
  auto handle = StartLocked(*vm, instance);
  if (!handle.ok() && fresh) {
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

StatusOr<Handle> VmProvider::StartLocked(VmState& vm, const compute::ComputeInstance& instance) {
  const int64_t start_ns = MonotonicNanos();
  const auto& spec = instance.spec();
  const auto& vmspec = spec.vm();
  const std::string ns =
      instance.metadata().namespace_().empty() ? "default" : instance.metadata().namespace_();
  if (!vmspec.accel().empty() && vmspec.accel() != accel_) {
    return absl::FailedPreconditionError("instance requires vm.accel=" + vmspec.accel() +
                                         " but this node runs " + accel_ + " (" + accel_reason_ +
                                         ")");
  }
  std::string machine =
      vmspec.machine_type().empty() ? Config("machine", "q35") : vmspec.machine_type();
  if (machine != "q35" && machine != "microvm") {
    return absl::InvalidArgumentError("vm: machine type must be q35 or microvm, not " + machine);
  }
  if (vmspec.image().empty() && vmspec.kernel().empty()) {
    return absl::InvalidArgumentError("vm: spec.vm needs an image or a kernel");
  }
  if (!context_.lookup) return absl::FailedPreconditionError("vm: no resource lookup");
  PHOTON_RETURN_IF_ERROR(MakeDirs(vm.dir, 0700));

  QemuConfig qc;
  qc.binary = qemu_binary_;
  qc.name = "photon-" + vm.id;
  qc.machine = machine;
  qc.accel = accel_;
  qc.tcg_tb_size_mb = static_cast<int>(ConfigInt("tcg_tb_size_mb", 16));
  qc.vcpus = spec.resources().vcpu() > 0 ? spec.resources().vcpu() : 1;
  qc.memory_mb =
      static_cast<int>(spec.resources().memory_mb() > 0 ? spec.resources().memory_mb()
                                                        : ConfigInt("default_memory_mb", 256));

  // Images: resolved through the control plane, verified before use.
  auto image_path = [&](const std::string& name, std::initializer_list<const char*> formats)
      -> StatusOr<std::pair<std::string, std::string>> {
    auto image = context_.lookup->GetImage(ns, name);
    if (!image.ok()) {
      return absl::FailedPreconditionError("image " + name +
                                           " not found: " + std::string(image.status().message()));
    }
    const std::string& format = image->spec().format();
    bool ok = false;
    for (const char* f : formats) ok = ok || format == f;
    if (!ok) {
      return absl::InvalidArgumentError("image " + name + " has format '" + format +
                                        "', which cannot be used here");
    }
    PHOTON_ASSIGN_OR_RETURN(std::string path, disks_->PrepareImage(*image));
    return std::make_pair(path, format);
  };
  if (!vmspec.kernel().empty()) {
    PHOTON_ASSIGN_OR_RETURN(auto kernel, image_path(vmspec.kernel(), {"kernel"}));
    qc.kernel = kernel.first;
    if (!vmspec.initrd().empty()) {
      PHOTON_ASSIGN_OR_RETURN(auto initrd, image_path(vmspec.initrd(), {"initrd"}));
      qc.initrd = initrd.first;
    }
    qc.kernel_args = vmspec.kernel_args().empty() ? "console=ttyS0" : vmspec.kernel_args();
    if (qc.kernel_args.find("console=") == std::string::npos) qc.kernel_args += " console=ttyS0";
  }
  if (!vmspec.image().empty()) {
    PHOTON_ASSIGN_OR_RETURN(auto disk, image_path(vmspec.image(), {"raw", "qcow2"}));
    const std::string overlay = vm.dir + "/root.qcow2";
    if (!PathExists(overlay)) {
      PHOTON_RETURN_IF_ERROR(
          disks_->CreateOverlay(disk.first, disk.second, overlay, spec.resources().disk_gb()));
    }
    qc.disks.push_back(QemuDisk{"root", overlay, "qcow2", false, -1});
  }

  // Volumes: from the spec on the first start, afterwards as attached/detached.
  std::vector<std::string> wanted;
  if (vm.volumes_initialized) {
    for (const auto& v : vm.volumes) wanted.push_back(v.name);
  } else {
    std::set<std::string> seen;
    for (const auto& s : spec.storage()) {
      if (!s.volume().empty() && seen.insert(s.volume()).second) wanted.push_back(s.volume());
    }
    for (const auto& v : vmspec.volumes()) {
      if (!v.empty() && seen.insert(v).second) wanted.push_back(v);
    }
  }
  std::vector<AttachedVolume> volumes;
  std::vector<std::string> claimed;
  auto release_new = [&] {
    for (const auto& name : claimed) disks_->ReleaseVolume(ns, name, vm.id);
  };
  for (size_t i = 0; i < wanted.size(); ++i) {
    const std::string& name = wanted[i];
    auto volume = context_.lookup->GetVolume(ns, name);
    if (!volume.ok()) {
      release_new();
      return absl::FailedPreconditionError("volume " + name +
                                           " not found: " + std::string(volume.status().message()));
    }
    bool had = disks_->VolumeOwner(ns, name) == vm.id;
    Status claim = disks_->ClaimVolume(
        ns, name, vm.id, [this](const std::string& other) { return InstanceExists(other); });
    if (!claim.ok()) {
      release_new();
      return claim;
    }
    if (!had) claimed.push_back(name);
    auto path = disks_->EnsureVolume(ns, *volume);
    if (!path.ok()) {
      release_new();
      return path.status();
    }
    volumes.push_back(AttachedVolume{name, DiskIdFor(name), *path, DiskStore::VolumeFormat(*volume),
                                     static_cast<int>(i)});
  }

  // Config drive with user_data, rebuilt on every start (the spec may have changed).
  const std::string cidata = vm.dir + "/cidata.img";
  Status drive = BuildConfigDrive(cidata, vm.id, instance.metadata().name(), spec.user_data());
  if (!drive.ok()) {
    release_new();
    return drive;
  }
  qc.disks.push_back(QemuDisk{"cidata", cidata, "raw", true, -1});
  for (const auto& v : volumes) {
    qc.disks.push_back(QemuDisk{v.disk_id, v.path, v.format, false, v.port});
  }
  qc.hotplug_ports =
      machine == "q35" ? static_cast<int>(volumes.size() + ConfigInt("hotplug_ports", 2)) : 0;

  // Network: a tap on the configured bridge when the instance asks for a VPC, else user-mode
  // or none (tests and hosts without a bridge).
  std::string tap;
  const std::string bridge = Config("bridge", "");
  if (!bridge.empty() && !spec.network().vpc().empty()) {
    tap = "pvm" + vm.id.substr(0, std::min<size_t>(vm.id.size(), 12));
    RunCommand({"ip", "link", "del", tap}, std::chrono::seconds(10)).IgnoreError();
    Status st =
        RunChecked({"ip", "tuntap", "add", "dev", tap, "mode", "tap"}, std::chrono::seconds(10));
    if (st.ok()) {
      st = RunChecked({"ip", "link", "set", tap, "master", bridge, "up"}, std::chrono::seconds(10));
    }
    if (!st.ok()) {
      release_new();
      return st;
    }
    qc.network = "tap";
    qc.tap_name = tap;
  } else {
    qc.network = Config("network", "none");
  }

  // Short socket path: sun_path holds 107 bytes; a deep data dir falls back to /tmp.
  std::string qmp = vm.dir + "/qmp.sock";
  if (qmp.size() > 100) {
    std::string run_dir = "/tmp/photon-vm-" + std::to_string(getuid());
    PHOTON_RETURN_IF_ERROR(MakeDirs(run_dir, 0700));
    qmp = run_dir + "/" + Sha256Hex(vm.dir).substr(0, 16) + ".qmp";
  }
  qc.qmp_socket = qmp;
  qc.pidfile = vm.dir + "/qemu.pid";
  qc.console_log = vm.dir + "/console.log";
  unlink(qc.qmp_socket.c_str());
  unlink(qc.pidfile.c_str());

  vm.ns = ns;
  vm.name = instance.metadata().name();
  vm.qmp_socket = qc.qmp_socket;
  vm.pidfile = qc.pidfile;
  vm.console_log = qc.console_log;
  vm.accel = accel_;
  vm.machine = machine;
  vm.tap = tap;
  vm.volumes = volumes;
  vm.volumes_initialized = true;
  vm.hotplug_ports = qc.hotplug_ports;
  vm.ready_timeout_s = ConfigInt("ready_timeout_s", accel_ == "kvm" ? 60 : 300);
  vm.boot_offset = std::max<int64_t>(0, FileSize(qc.console_log));
  vm.scan_offset = vm.boot_offset;
  vm.ready = false;
  vm.paused = false;
  PHOTON_RETURN_IF_ERROR(vm.SaveSpec(instance));

  const int64_t exec_ns = MonotonicNanos();
  vm.boot_started_ms = NowMs();
  auto pid = SpawnQemu(BuildQemuArgv(qc), vm.dir + "/qemu.log", qc.pidfile);
  if (!pid.ok()) {
    release_new();
    vm.pid = 0;
    vm.stopped = true;
    vm.Save().IgnoreError();
    return pid.status();
  }
  vm.pid = *pid;
  vm.stopped = false;
  PHOTON_RETURN_IF_ERROR(vm.Save());
  // For the benchmark: our share of start-up before QEMU was exec'd, and QEMU's own set-up.
  WriteFileAtomic(vm.dir + "/timing.json",
                  "{\"prepare_us\":" + std::to_string((exec_ns - start_ns) / 1000) +
                      ",\"daemonize_us\":" + std::to_string((MonotonicNanos() - exec_ns) / 1000) +
                      "}",
                  0600)
      .IgnoreError();
  return MakeHandle(vm);
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
    if (AliveLocked(*vm)) {
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
  if (AliveLocked(vm)) {
    auto qmp = QmpClient::Connect(vm.qmp_socket, std::chrono::seconds(1));
    if (qmp.ok()) (*qmp)->Execute("quit").IgnoreError();
    if (!WaitDead(vm, std::chrono::seconds(3)) && AliveLocked(vm)) {
      kill(vm.pid, SIGKILL);
      if (!WaitDead(vm, std::chrono::seconds(5))) {
        return absl::InternalError("QEMU pid " + std::to_string(vm.pid) + " does not die");
      }
    }
  }
  if (!vm.tap.empty()) {
    RunCommand({"ip", "link", "del", vm.tap}, std::chrono::seconds(10)).IgnoreError();
  }
  unlink(vm.qmp_socket.c_str());
  unlink(vm.pidfile.c_str());
  return absl::OkStatus();
}

Status VmProvider::StopLocked(VmState& vm, std::chrono::seconds timeout) {
  if (AliveLocked(vm)) {
    auto qmp = QmpClient::Connect(vm.qmp_socket, std::chrono::seconds(2));
    if (qmp.ok()) {
      // A paused guest cannot see the power button.
      if (vm.paused) (*qmp)->Execute("cont").IgnoreError();
      (*qmp)->Execute("system_powerdown").IgnoreError();
    }
    WaitDead(vm, timeout);  // graceful: the guest powers off on ACPI power button
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
  o.details["pid"] = std::to_string(vm->pid);
  if (!AliveLocked(*vm)) {
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
  int64_t elapsed_s = (NowMs() - vm->boot_started_ms) / 1000;
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
