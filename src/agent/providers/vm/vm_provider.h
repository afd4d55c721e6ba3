// The "vm" driver: one QEMU process per ComputeInstance with spec.vm (KVM when the host really
// has it, TCG otherwise), controlled through QMP, booting a kernel+initrd or a disk image
// (qcow2 overlay on a verified, shared image), with virtio-blk volumes (cold- and hot-plugged),
// a CIDATA config drive for user_data, and the serial console in a log file. RUNNING means the
// guest printed the readiness marker (default "PHOTON-READY") on its console, not that QEMU
// started. QEMU runs daemonized in its own session, so it survives the agent; a new provider
// re-adopts it from <data_dir>/instances/<id>/state.json, its pidfile and QMP socket.
//
// ProviderContext.config keys (all optional): accel (kvm|tcg: force), qemu (binary),
// machine (q35|microvm default), tcg_tb_size_mb (16), default_memory_mb (256),
// ready_timeout_s (60 under KVM, 300 under TCG), ready_marker, hotplug_ports (2 spare ports),
// network (none|user: a VM without a port), stop_timeout_s (30).
//
// Network: a VM whose instance has a port (ResourceLookup::PortNetns, made by the agent's port
// wiring before Start) gets a virtio-net NIC with the Port's MAC on the tap "tap0" of its port
// namespace: QEMU is handed the tap as an open fd (it runs in the node's namespace), and the
// config drive carries the address (network-config). The tap belongs to the port: it outlives
// QEMU restarts and goes with the port namespace.
//
// Thread-safety: all methods may be called concurrently; each instance is serialised by its
// own mutex, the instance table by another.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/provider.h"
#include "agent/providers/vm/disk_store.h"
#include "agent/providers/vm/vm_state.h"

namespace photon::agent::vm {

struct QemuConfig;

class VmProvider : public Provider {
 public:
  VmProvider() = default;
  ~VmProvider() override = default;

  std::string Driver() const override { return "vm"; }
  Status Initialize(const ProviderContext& context) override;
  StatusOr<std::map<std::string, std::string>> Fingerprint() override;
  StatusOr<Handle> Start(const compute::ComputeInstance& instance) override;
  Status Recover(const Handle& handle) override;
  Status Stop(const std::string& instance_id, std::chrono::seconds timeout) override;
  Status Destroy(const std::string& instance_id) override;
  StatusOr<Observed> Inspect(const std::string& instance_id) override;
  StatusOr<std::vector<Handle>> List() override;
  StatusOr<ActionResult> Execute(const std::string& instance_id, const std::string& action,
                                 const std::map<std::string, std::string>& params) override;

  // The accelerator this node uses ("kvm" or "tcg") and why; valid after Initialize.
  const std::string& accel() const { return accel_; }
  const std::string& accel_reason() const { return accel_reason_; }

 private:
  std::string InstanceDir(const std::string& id) const;
  std::string Config(const std::string& key, const std::string& fallback) const;
  int64_t ConfigInt(const std::string& key, int64_t fallback) const;
  // The state of `id`: from the table, else from disk; nullptr when unknown.
  std::shared_ptr<VmState> Find(const std::string& id);
  bool InstanceExists(const std::string& id);

  StatusOr<Handle> StartLocked(VmState& vm, const compute::ComputeInstance& instance);
  // The steps of StartLocked (vm_start.cc), in the order it takes them.
  struct ImageFile {
    std::string path;    // the driver's verified copy
    std::string format;  // from the Image's spec
  };
  StatusOr<std::string> CheckStartSpec(const compute::ComputeInstanceSpec& spec) const;
  QemuConfig BaseQemuConfig(const VmState& vm, const compute::ComputeInstanceSpec& spec,
                            const std::string& machine) const;
  // holder: the instance's directory, where an uploaded image is linked (agent/image_cache.h).
  StatusOr<ImageFile> ResolveImage(const std::string& ns, const std::string& name,
                                   std::initializer_list<const char*> formats,
                                   const std::string& holder);
  Status ResolveBootImages(const VmState& vm, const compute::ComputeInstanceSpec& spec,
                           const std::string& ns, QemuConfig* qc);
  StatusOr<std::vector<AttachedVolume>> ClaimVolumes(const VmState& vm, const std::string& ns,
                                                     const std::vector<std::string>& wanted,
                                                     std::vector<std::string>* claimed);
  void ReleaseVolumes(const std::string& ns, const VmState& vm,
                      const std::vector<std::string>& claimed);
  // The instance's port on this node: its namespace ("" = none), address and MAC.
  struct GuestPort {
    std::string netns, ip, mac;
  };
  StatusOr<GuestPort> PortOf(const compute::ComputeInstance& instance) const;
  Status AddDrives(const VmState& vm, const compute::ComputeInstance& instance,
                   const GuestPort& port, const std::vector<AttachedVolume>& volumes,
                   QemuConfig* qc) const;
  void SetUpNetwork(const GuestPort& port, QemuConfig* qc) const;
  Status RecordStart(VmState& vm, const compute::ComputeInstance& instance, const std::string& ns,
                     const std::vector<AttachedVolume>& volumes, QemuConfig* qc);
  StatusOr<Handle> LaunchQemu(VmState& vm, const QemuConfig& qc,
                              const std::vector<std::string>& claimed, int64_t start_ns);
  // Where the instance's QEMU is. kAlive: vm.pid is it (adopted and saved when it was not
  // recorded, e.g. the agent died between exec and daemonize). kStarting: something holds the
  // instance lock but no QEMU pid showed up in time. kNone: no process of this instance runs.
  enum class Presence { kNone, kStarting, kAlive };
  Presence LocateLocked(VmState& vm);
  Status StopLocked(VmState& vm, std::chrono::seconds timeout);
  Status KillLocked(VmState& vm);
  bool AliveLocked(const VmState& vm) const;
  bool ScanReadyLocked(VmState& vm);
  Status AttachVolumeLocked(VmState& vm, const std::string& volume);
  Status DetachVolumeLocked(VmState& vm, const std::string& volume);
  Status RebootLocked(VmState& vm);
  std::string ConsoleTail(const VmState& vm, size_t bytes) const;
  Handle MakeHandle(const VmState& vm) const;

  ProviderContext context_;
  std::unique_ptr<DiskStore> disks_;
  std::string qemu_binary_ = "qemu-system-x86_64";
  std::string accel_ = "tcg";
  std::string accel_reason_;
  std::string ready_marker_ = "PHOTON-READY";
  std::string qemu_version_;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<VmState>> vms_;
};

}  // namespace photon::agent::vm

namespace photon::agent {
using VmProvider = vm::VmProvider;
}  // namespace photon::agent
