// Starting one VM: resolve and verify its images, claim and create its volumes, build the
// config drive, the port's tap and the QEMU command line, and launch QEMU daemonized. See
// vm_provider.h. Thread-safety: StartLocked runs under the instance's mutex.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "agent/net/nft_ruleset.h"
#include "agent/providers/vm/config_drive.h"
#include "agent/providers/vm/qemu_command.h"
#include "agent/providers/vm/vm_provider.h"
#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

using std::chrono::milliseconds;
constexpr int64_t kConsoleRotateBytes = 8 << 20;

constexpr int kTapFd = 4;  // the port's tap, as QEMU inherits it (after the lock's fd 3)

// In the forked child (async-signal-safe calls only): attaches to the persistent tap of the
// port namespace and leaves it open as fd kTapFd, back in the node's namespace. A tap device is
// found in the namespace /dev/net/tun was opened in, hence the setns around the open. Exits 126
// with the reason in the log when it cannot.
void OpenPortTapInChild(int port_ns_fd, int node_ns_fd) {
  auto die = [](const char* what) {
    // Only write(2) after fork: no stdio or allocation (another thread may hold their locks).
    char digits[12];
    int n = sizeof digits, e = errno;
    do {
      digits[--n] = static_cast<char>('0' + e % 10);
      e /= 10;
    } while (e > 0 && n > 0);
    const char prefix[] = "photon-agent: port tap: ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, what, std::strlen(what));
    (void)!write(2, " failed, errno ", 15);
    (void)!write(2, digits + n, sizeof digits - n);
    (void)!write(2, "\n", 1);
    _exit(126);
  };
  if (setns(port_ns_fd, CLONE_NEWNET) != 0) die("setns into the port namespace");
  int tap = open("/dev/net/tun", O_RDWR);
  if (tap < 0) die("open /dev/net/tun");
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, net::kTapIfName, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(tap, TUNSETIFF, &ifr) != 0) die("TUNSETIFF tap0 (another QEMU holds it?)");
  if (setns(node_ns_fd, CLONE_NEWNET) != 0) die("setns back");
  if (tap != kTapFd && dup2(tap, kTapFd) != kTapFd) die("dup2");
}

// Runs QEMU with -daemonize: the direct child exits once QEMU is set up (0) or failed (its
// message is in log_path); the daemon itself is in a new session, not our child, so it
// survives the agent. QEMU inherits `lock_fd` (as fd 3) and with it the instance lock, which it
// then holds for its whole life, and with a `port_netns` its tap (fd kTapFd). Returns the
// daemon's pid from the pidfile.
StatusOr<int> SpawnQemu(const std::vector<std::string>& argv, const std::string& log_path,
                        const std::string& pidfile, int lock_fd, const std::string& port_netns) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int port_ns_fd = -1, node_ns_fd = -1;
  auto close_ns = [&] {
    if (port_ns_fd >= 0) close(port_ns_fd);
    if (node_ns_fd >= 0) close(node_ns_fd);
  };
  if (!port_netns.empty()) {
    port_ns_fd = open(port_netns.c_str(), O_RDONLY | O_CLOEXEC);
    node_ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (port_ns_fd < 0 || node_ns_fd < 0) {
      close_ns();
      return absl::FailedPreconditionError("vm: cannot open the port namespace " + port_netns);
    }
  }
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    close_ns();
    return absl::InternalError("cannot open " + log_path);
  }
  pid_t child = fork();
  if (child < 0) {
    close(log_fd);
    close_ns();
    return absl::InternalError("fork failed");
  }
  if (child == 0) {
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (lock_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(lock_fd, 3);  // dup2 clears close-on-exec
    }
    if (port_ns_fd >= 0) OpenPortTapInChild(port_ns_fd, node_ns_fd);
    // No agent socket or file leaks into the VMM.
    close_range(port_ns_fd >= 0 ? kTapFd + 1 : kTapFd, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(log_fd);
  close_ns();
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

// Volumes: from the spec on the first start, afterwards as attached/detached.
std::vector<std::string> WantedVolumes(const VmState& vm,
                                       const compute::ComputeInstanceSpec& spec) {
  std::vector<std::string> wanted;
  if (vm.volumes_initialized) {
    for (const auto& v : vm.volumes) wanted.push_back(v.name);
    return wanted;
  }
  std::set<std::string> seen;
  for (const auto& s : spec.storage()) {
    if (!s.volume().empty() && seen.insert(s.volume()).second) wanted.push_back(s.volume());
  }
  for (const auto& v : spec.vm().volumes()) {
    if (!v.empty() && seen.insert(v).second) wanted.push_back(v);
  }
  return wanted;
}

// Short socket path: sun_path holds 107 bytes; a deep data dir falls back to /tmp.
StatusOr<std::string> QmpSocketPath(const VmState& vm) {
  std::string qmp = vm.dir + "/qmp.sock";
  if (qmp.size() <= 100) return qmp;
  std::string run_dir = "/tmp/photon-vm-" + std::to_string(getuid());
  Status made = MakeDirs(run_dir, 0700);
  // /tmp is shared: use the directory only if it is really ours and private (not a
  // directory or symlink someone else planted to catch the control socket).
  struct stat st;
  if (!made.ok() || lstat(run_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      st.st_uid != getuid() || (st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(run_dir + " is not a private directory of ours");
  }
  return run_dir + "/" + Sha256Hex(vm.dir).substr(0, 16) + ".qmp";
}

}  // namespace

// Refuses a spec this node cannot run; returns the machine type to use.
StatusOr<std::string> VmProvider::CheckStartSpec(const compute::ComputeInstanceSpec& spec) const {
  const auto& vmspec = spec.vm();
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
  return machine;
}

QemuConfig VmProvider::BaseQemuConfig(const VmState& vm, const compute::ComputeInstanceSpec& spec,
                                      const std::string& machine) const {
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
  return qc;
}

// Images: resolved through the control plane, verified before use.
StatusOr<VmProvider::ImageFile> VmProvider::ResolveImage(const std::string& ns,
                                                         const std::string& name,
                                                         std::initializer_list<const char*> formats,
                                                         const std::string& holder) {
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
  // An uploaded image (no sourcePath) comes from the node's image cache, verified there.
  PHOTON_ASSIGN_OR_RETURN(std::string path, image->spec().source_path().empty()
                                                ? context_.lookup->FetchImage(*image, holder)
                                                : disks_->PrepareImage(*image));
  return ImageFile{path, format};
}

// The kernel (+ initrd) to boot directly, and/or the root disk as a qcow2 overlay on its image.
Status VmProvider::ResolveBootImages(const VmState& vm, const compute::ComputeInstanceSpec& spec,
                                     const std::string& ns, QemuConfig* qc) {
  const auto& vmspec = spec.vm();
  if (!vmspec.kernel().empty()) {
    PHOTON_ASSIGN_OR_RETURN(ImageFile kernel,
                            ResolveImage(ns, vmspec.kernel(), {"kernel"}, vm.dir));
    qc->kernel = kernel.path;
    if (!vmspec.initrd().empty()) {
      PHOTON_ASSIGN_OR_RETURN(ImageFile initrd,
                              ResolveImage(ns, vmspec.initrd(), {"initrd"}, vm.dir));
      qc->initrd = initrd.path;
    }
    qc->kernel_args = vmspec.kernel_args().empty() ? "console=ttyS0" : vmspec.kernel_args();
    if (qc->kernel_args.find("console=") == std::string::npos) qc->kernel_args += " console=ttyS0";
  }
  if (!vmspec.image().empty()) {
    PHOTON_ASSIGN_OR_RETURN(ImageFile disk,
                            ResolveImage(ns, vmspec.image(), {"raw", "qcow2"}, vm.dir));
    const std::string overlay = vm.dir + "/root.qcow2";
    if (!PathExists(overlay)) {
      PHOTON_RETURN_IF_ERROR(
          disks_->CreateOverlay(disk.path, disk.format, overlay, spec.resources().disk_gb()));
    }
    qc->disks.push_back(QemuDisk{"root", overlay, "qcow2", false, -1});
  }
  return absl::OkStatus();
}

void VmProvider::ReleaseVolumes(const std::string& ns, const VmState& vm,
                                const std::vector<std::string>& claimed) {
  for (const auto& name : claimed) disks_->ReleaseVolume(ns, name, vm.id);
}

// Claims each wanted volume for `vm` and creates it if new. `claimed` gets the ones this call
// claimed (not those the instance already held); on failure they are released here.
StatusOr<std::vector<AttachedVolume>> VmProvider::ClaimVolumes(
    const VmState& vm, const std::string& ns, const std::vector<std::string>& wanted,
    std::vector<std::string>* claimed) {
  std::vector<AttachedVolume> volumes;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const std::string& name = wanted[i];
    auto volume = context_.lookup->GetVolume(ns, name);
    if (!volume.ok()) {
      ReleaseVolumes(ns, vm, *claimed);
      return absl::FailedPreconditionError("volume " + name +
                                           " not found: " + std::string(volume.status().message()));
    }
    bool had = disks_->VolumeOwner(ns, name) == vm.id;
    Status claim = disks_->ClaimVolume(
        ns, name, vm.id, [this](const std::string& other) { return InstanceExists(other); });
    if (!claim.ok()) {
      ReleaseVolumes(ns, vm, *claimed);
      return claim;
    }
    if (!had) claimed->push_back(name);
    auto path = disks_->EnsureVolume(ns, *volume);
    if (!path.ok()) {
      ReleaseVolumes(ns, vm, *claimed);
      return path.status();
    }
    volumes.push_back(AttachedVolume{name, DiskIdFor(name), *path, DiskStore::VolumeFormat(*volume),
                                     static_cast<int>(i)});
  }
  return volumes;
}

StatusOr<VmProvider::GuestPort> VmProvider::PortOf(const compute::ComputeInstance& instance) const {
  GuestPort port;
  port.netns = context_.lookup->PortNetns(instance.metadata().id());
  if (port.netns.empty()) return port;
  // The control plane writes the Port's address and MAC on the instance in its create
  // transaction (docs/networking.md, contract with the node agent).
  const auto& details = instance.status().details();
  auto address = details.find("network.address");
  auto mac = details.find("network.mac");
  if (address == details.end() || address->second.empty() || mac == details.end() ||
      mac->second.empty()) {
    return absl::UnavailableError(
        "vm: the instance has a port but its status has no network.address/network.mac yet");
  }
  port.ip = address->second;
  port.mac = mac->second;
  std::transform(port.mac.begin(), port.mac.end(), port.mac.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return port;
}

// The config drive (with user_data and the port's address, rebuilt on every start: the spec
// may have changed), then the volumes, then spare hotplug ports (q35 only).
Status VmProvider::AddDrives(const VmState& vm, const compute::ComputeInstance& instance,
                             const GuestPort& port, const std::vector<AttachedVolume>& volumes,
                             QemuConfig* qc) const {
  const std::string cidata = vm.dir + "/cidata.img";
  PHOTON_RETURN_IF_ERROR(
      BuildConfigDrive(cidata, vm.id, instance.metadata().name(), instance.spec().user_data(),
                       port.netns.empty() ? "" : RenderNetworkConfig(port.mac, port.ip)));
  qc->disks.push_back(QemuDisk{"cidata", cidata, "raw", true, -1});
  for (const auto& v : volumes) {
    qc->disks.push_back(QemuDisk{v.disk_id, v.path, v.format, false, v.port});
  }
  qc->hotplug_ports =
      qc->machine == "q35" ? static_cast<int>(volumes.size() + ConfigInt("hotplug_ports", 2)) : 0;
  return absl::OkStatus();
}

// Network: virtio-net on the port's tap (opened by SpawnQemu in the port namespace) with the
// Port's MAC; a VM without a port gets the configured `network` (none or user).
void VmProvider::SetUpNetwork(const GuestPort& port, QemuConfig* qc) const {
  if (port.netns.empty()) {
    qc->network = Config("network", "none");
    return;
  }
  qc->network = "tap";
  qc->tap_fd = kTapFd;
  qc->tap_netns = port.netns;
  qc->mac = port.mac;
}

// Sets the per-boot files (rotating a large console log) and records the start in `vm` and on
// disk, before QEMU runs.
Status VmProvider::RecordStart(VmState& vm, const compute::ComputeInstance& instance,
                               const std::string& ns, const std::vector<AttachedVolume>& volumes,
                               QemuConfig* qc) {
  qc->pidfile = vm.dir + "/qemu.pid";
  qc->console_log = vm.dir + "/console.log";
  // Where the QMP socket is (a path that fits sun_path): DIR/serial.sock or RUN/<hash>.serial.
  const std::string& qmp = qc->qmp_socket;
  qc->serial_socket =
      qmp.ends_with(".qmp") ? qmp.substr(0, qmp.size() - 4) + ".serial" : vm.dir + "/serial.sock";
  // The console is appended across boots; keep one previous generation once it grows large.
  if (FileSize(qc->console_log) > kConsoleRotateBytes) {
    std::rename(qc->console_log.c_str(), (qc->console_log + ".1").c_str());
  }
  unlink(qc->qmp_socket.c_str());
  unlink(qc->serial_socket.c_str());
  unlink(qc->pidfile.c_str());

  vm.ns = ns;
  vm.name = instance.metadata().name();
  vm.qmp_socket = qc->qmp_socket;
  vm.pidfile = qc->pidfile;
  vm.console_log = qc->console_log;
  vm.serial_socket = qc->serial_socket;
  vm.accel = accel_;
  vm.machine = qc->machine;
  vm.tap = qc->tap_name;
  vm.volumes = volumes;
  vm.volumes_initialized = true;
  vm.hotplug_ports = qc->hotplug_ports;
  vm.ready_timeout_s = ConfigInt("ready_timeout_s", accel_ == "kvm" ? 60 : 300);
  vm.boot_offset = std::max<int64_t>(0, FileSize(qc->console_log));
  vm.scan_offset = vm.boot_offset;
  vm.ready = false;
  vm.paused = false;
  return vm.SaveSpec(instance);
}

// Launches QEMU and records its pid; on failure undoes this start's volume claims and tap.
// The intent is saved before the exec and the instance lock taken, so an agent killed in
// between leaves a state its successor adopts the QEMU from, never a second QEMU.
StatusOr<Handle> VmProvider::LaunchQemu(VmState& vm, const QemuConfig& qc,
                                        const std::vector<std::string>& claimed, int64_t start_ns) {
  auto fail = [&](Status st) {
    ReleaseVolumes(vm.ns, vm, claimed);
    if (!vm.tap.empty())
      RunCommand({"ip", "link", "del", vm.tap}, std::chrono::seconds(10)).IgnoreError();
    vm.pid = 0;
    vm.stopped = true;
    vm.launching = false;
    vm.Save().IgnoreError();
    return st;
  };
  StatusOr<int> lock_fd = TakeLock(vm.LockPath());
  if (absl::IsUnavailable(lock_fd.status())) {
    return absl::UnavailableError("vm: a QEMU of " + vm.id + " already runs (it holds " +
                                  vm.LockPath() + ")");
  }
  if (!lock_fd.ok()) return fail(lock_fd.status());
  vm.boot_started_ms = WallClockMs();
  vm.pid = 0;
  vm.stopped = false;
  vm.launching = true;
  if (Status saved = vm.Save(); !saved.ok()) {
    close(*lock_fd);
    return fail(saved);
  }
  const int64_t exec_ns = MonotonicNanos();
  auto pid = SpawnQemu(BuildQemuArgv(qc), vm.dir + "/qemu.log", qc.pidfile, *lock_fd, qc.tap_netns);
  close(*lock_fd);
  if (!pid.ok()) {
    // A QEMU that timed out may still be daemonizing: it goes before anything else does.
    Status killed = KillInstanceProcesses(vm.dir);
    return fail(killed.ok() ? pid.status() : killed);
  }
  vm.pid = *pid;
  vm.launching = false;
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

StatusOr<Handle> VmProvider::StartLocked(VmState& vm, const compute::ComputeInstance& instance) {
  const int64_t start_ns = MonotonicNanos();
  const auto& spec = instance.spec();
  const std::string ns =
      instance.metadata().namespace_().empty() ? "default" : instance.metadata().namespace_();
  PHOTON_ASSIGN_OR_RETURN(std::string machine, CheckStartSpec(spec));
  PHOTON_ASSIGN_OR_RETURN(GuestPort port, PortOf(instance));
  PHOTON_RETURN_IF_ERROR(MakeDirs(vm.dir, 0700));
  QemuConfig qc = BaseQemuConfig(vm, spec, machine);
  PHOTON_RETURN_IF_ERROR(ResolveBootImages(vm, spec, ns, &qc));

  std::vector<std::string> claimed;
  PHOTON_ASSIGN_OR_RETURN(std::vector<AttachedVolume> volumes,
                          ClaimVolumes(vm, ns, WantedVolumes(vm, spec), &claimed));
  // A failure in the next steps releases the volumes this start claimed.
  auto release_new = [&](Status st) {
    ReleaseVolumes(ns, vm, claimed);
    return st;
  };
  Status drives = AddDrives(vm, instance, port, volumes, &qc);
  if (!drives.ok()) return release_new(drives);
  StatusOr<std::string> qmp = QmpSocketPath(vm);
  if (!qmp.ok()) return release_new(qmp.status());
  qc.qmp_socket = *qmp;
  SetUpNetwork(port, &qc);

  // Unlike the steps above, a failure to save the spec keeps the claims.
  PHOTON_RETURN_IF_ERROR(RecordStart(vm, instance, ns, volumes, &qc));
  return LaunchQemu(vm, qc, claimed, start_ns);
}

}  // namespace photon::agent::vm
