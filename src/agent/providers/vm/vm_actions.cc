// The vm driver's actions: start, stop, restart, reboot, pause, resume, console/logs,
// attach-volume, detach-volume. Thread-safety: each runs under its instance's mutex.
#include <algorithm>

#include "agent/providers/vm/qemu_command.h"
#include "agent/providers/vm/qmp_client.h"
#include "agent/providers/vm/vm_provider.h"
#include "agent/providers/vm/vm_util.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

using std::chrono::seconds;
constexpr auto kQmpTimeout = seconds(10);

std::string Param(const std::map<std::string, std::string>& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? "" : it->second;
}

int64_t ParamInt(const std::map<std::string, std::string>& params, const std::string& key,
                 int64_t fallback) {
  std::string v = Param(params, key);
  char* end = nullptr;
  long long n = v.empty() ? 0 : std::strtoll(v.c_str(), &end, 10);
  return !v.empty() && end && *end == '\0' && n > 0 ? n : fallback;
}

}  // namespace

Status VmProvider::RebootLocked(VmState& vm) {
  PHOTON_ASSIGN_OR_RETURN(auto qmp, QmpClient::Connect(vm.qmp_socket, kQmpTimeout));
  if (vm.paused) PHOTON_RETURN_IF_ERROR(qmp->Execute("cont").status());
  // Readiness is awaited again from here: the new boot's marker, not the old one.
  vm.boot_offset = std::max<int64_t>(0, FileSize(vm.console_log));
  vm.scan_offset = vm.boot_offset;
  vm.ready = false;
  vm.paused = false;
  vm.boot_started_ms = WallClockMs();
  PHOTON_RETURN_IF_ERROR(qmp->Execute("system_reset").status());
  return vm.Save();
}

Status VmProvider::AttachVolumeLocked(VmState& vm, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("attach-volume needs params.volume");
  for (const auto& v : vm.volumes) {
    if (v.name == name) return absl::OkStatus();  // already attached here
  }
  const bool running = !vm.stopped && AliveLocked(vm);
  if (running && vm.machine != "q35") {
    return absl::FailedPreconditionError("hot-plug needs machine type q35 (this VM is " +
                                         vm.machine + "); stop the VM to attach");
  }
  int port = -1;
  for (int p = 0; p < std::max(vm.hotplug_ports, 64); ++p) {
    bool used = std::any_of(vm.volumes.begin(), vm.volumes.end(),
                            [p](const AttachedVolume& v) { return v.port == p; });
    if (!used) {
      port = p;
      break;
    }
  }
  if (running && port >= vm.hotplug_ports) {
    return absl::ResourceExhaustedError("no free hot-plug port (this VM has " +
                                        std::to_string(vm.hotplug_ports) +
                                        "); stop the VM to attach more volumes");
  }
  auto volume = context_.lookup->GetVolume(vm.ns, name);
  if (!volume.ok()) {
    return absl::FailedPreconditionError("volume " + name +
                                         " not found: " + std::string(volume.status().message()));
  }
  PHOTON_RETURN_IF_ERROR(disks_->ClaimVolume(
      vm.ns, name, vm.id, [this](const std::string& other) { return InstanceExists(other); }));
  auto path = disks_->EnsureVolume(vm.ns, *volume);
  if (!path.ok()) {
    disks_->ReleaseVolume(vm.ns, name, vm.id);
    return path.status();
  }
  AttachedVolume av{name, DiskIdFor(name), *path, DiskStore::VolumeFormat(*volume), port};
  if (running) {
    auto qmp = QmpClient::Connect(vm.qmp_socket, kQmpTimeout);
    Status st = qmp.status();
    const std::string node = "drive-" + av.disk_id;
    if (st.ok()) {
      st = (*qmp)
               ->Execute("blockdev-add",
                         {{"driver", "file"}, {"node-name", node + "-file"}, {"filename", av.path}})
               .status();
    }
    if (st.ok()) {
      st = (*qmp)
               ->Execute("blockdev-add",
                         {{"driver", av.format}, {"node-name", node}, {"file", node + "-file"}})
               .status();
    }
    if (st.ok()) {
      st = (*qmp)
               ->Execute("device_add", {{"driver", "virtio-blk-pci"},
                                        {"id", "dev-" + av.disk_id},
                                        {"drive", node},
                                        {"bus", HotplugPortId(port)}})
               .status();
    }
    if (!st.ok()) {
      if (qmp.ok()) {
        (*qmp)->Execute("blockdev-del", {{"node-name", node}}).IgnoreError();
        (*qmp)->Execute("blockdev-del", {{"node-name", node + "-file"}}).IgnoreError();
      }
      disks_->ReleaseVolume(vm.ns, name, vm.id);
      return st;
    }
  }
  vm.volumes.push_back(av);
  return vm.Save();
}

Status VmProvider::DetachVolumeLocked(VmState& vm, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("detach-volume needs params.volume");
  auto it = std::find_if(vm.volumes.begin(), vm.volumes.end(),
                         [&](const AttachedVolume& v) { return v.name == name; });
  if (it == vm.volumes.end()) {
    return absl::NotFoundError("volume " + name + " is not attached to this instance");
  }
  if (!vm.stopped && AliveLocked(vm)) {
    if (vm.machine != "q35") {
      return absl::FailedPreconditionError("hot-unplug needs machine type q35; stop the VM");
    }
    PHOTON_ASSIGN_OR_RETURN(auto qmp, QmpClient::Connect(vm.qmp_socket, kQmpTimeout));
    const std::string dev = "dev-" + it->disk_id;
    const std::string node = "drive-" + it->disk_id;
    PHOTON_RETURN_IF_ERROR(qmp->Execute("device_del", {{"id", dev}}).status());
    // The guest has to release the device (ACPI eject); only then is the drive free.
    auto deleted = qmp->WaitEvent("DEVICE_DELETED", {{"device", dev}}, seconds(60));
    if (!deleted.ok()) {
      return absl::DeadlineExceededError("guest did not release volume " + name + " within 60 s: " +
                                         std::string(deleted.status().message()));
    }
    qmp->Execute("blockdev-del", {{"node-name", node}}).IgnoreError();
    qmp->Execute("blockdev-del", {{"node-name", node + "-file"}}).IgnoreError();
  }
  disks_->ReleaseVolume(vm.ns, name, vm.id);
  vm.volumes.erase(it);
  return vm.Save();
}

StatusOr<ActionResult> VmProvider::Execute(const std::string& instance_id,
                                           const std::string& action,
                                           const std::map<std::string, std::string>& params) {
  std::shared_ptr<VmState> vm = Find(instance_id);
  if (!vm) return absl::NotFoundError("vm: no instance " + instance_id);
  std::lock_guard<std::mutex> lock(vm->mu);
  const seconds stop_timeout(ParamInt(params, "timeout", ConfigInt("stop_timeout_s", 30)));
  ActionResult result;
  if (action == "console" || action == "logs") {
    result.output = ConsoleTail(*vm, static_cast<size_t>(ParamInt(params, "bytes", 16384)));
    // The guest's serial line discipline ends lines with "\r\n"; plain "\n" reads better.
    std::erase(result.output, '\r');
    return result;
  }
  if (action == "start" || action == "restart") {
    if (action == "restart") PHOTON_RETURN_IF_ERROR(StopLocked(*vm, stop_timeout));
    if (AliveLocked(*vm)) {
      result.output = "already running";
      return result;
    }
    PHOTON_ASSIGN_OR_RETURN(compute::ComputeInstance instance, vm->LoadSpec());
    PHOTON_RETURN_IF_ERROR(StartLocked(*vm, instance).status());
    result.output = "started";
    return result;
  }
  if (action == "stop") {
    PHOTON_RETURN_IF_ERROR(StopLocked(*vm, stop_timeout));
    result.output = "stopped";
    return result;
  }
  if (action == "attach-volume") {
    PHOTON_RETURN_IF_ERROR(AttachVolumeLocked(*vm, Param(params, "volume")));
    result.output = "attached " + Param(params, "volume");
    return result;
  }
  if (action == "detach-volume") {
    PHOTON_RETURN_IF_ERROR(DetachVolumeLocked(*vm, Param(params, "volume")));
    result.output = "detached " + Param(params, "volume");
    return result;
  }
  // The rest need a running QEMU.
  if (vm->stopped || !AliveLocked(*vm)) {
    return absl::FailedPreconditionError("vm " + vm->name + " is not running");
  }
  if (action == "reboot") {
    PHOTON_RETURN_IF_ERROR(RebootLocked(*vm));
    result.output = "rebooting";
    return result;
  }
  if (action == "pause" || action == "resume") {
    PHOTON_ASSIGN_OR_RETURN(auto qmp, QmpClient::Connect(vm->qmp_socket, kQmpTimeout));
    PHOTON_RETURN_IF_ERROR(qmp->Execute(action == "pause" ? "stop" : "cont").status());
    vm->paused = action == "pause";
    PHOTON_RETURN_IF_ERROR(vm->Save());
    result.output = vm->paused ? "paused" : "resumed";
    return result;
  }
  return absl::InvalidArgumentError("vm: unknown action " + action);
}

}  // namespace photon::agent::vm
