// What the vm driver knows about one instance, persisted as <instance dir>/state.json (0600)
// next to instance.pb (the last spec it was started with), so a restarted agent re-adopts the
// running QEMU through its pidfile and QMP socket instead of starting a second one.
// Thread-safety: a VmState is guarded by its `mu`; Save/Load touch only its own files.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/compute.pb.h"

namespace photon::agent::vm {

struct AttachedVolume {
  std::string name;     // Volume name (in the instance's namespace)
  std::string disk_id;  // QEMU id suffix: "v" + 8 hex of sha256(name), fits node-name limits
  std::string path;
  std::string format;
  int port = 0;  // pcie-root-port index
};

// The QEMU id suffix of a volume's drive and device.
std::string DiskIdFor(const std::string& volume);

struct VmState {
  std::mutex mu;
  std::string id, ns, name, dir;
  std::string qmp_socket, pidfile, console_log;
  std::string serial_socket;  // `photon console` connects here (empty: started before it)
  int pid = 0;
  bool stopped = false;
  // Saved before QEMU is exec'd and cleared once its pid is known: a restarted agent that
  // finds it set looks for the QEMU through the instance lock instead of starting another.
  bool launching = false;
  bool paused = false;
  bool ready = false;
  bool volumes_initialized = false;  // volumes below came from the spec once, then attach/detach
  int64_t boot_offset = 0;           // console bytes written before the current boot
  int64_t scan_offset = 0;           // how far the readiness scan got (not persisted)
  int64_t boot_started_ms = 0;       // wall clock, survives an agent restart
  int64_t ready_timeout_s = 0;
  int hotplug_ports = 0;
  std::string accel, machine, tap;
  std::vector<AttachedVolume> volumes;

  std::string StatePath() const { return dir + "/state.json"; }
  std::string SpecPath() const { return dir + "/instance.pb"; }
  std::string LockPath() const { return dir + "/qemu.lock"; }
  Status Save() const;
  // Reads dir/state.json into a fresh state (NOT_FOUND when absent).
  static StatusOr<std::unique_ptr<VmState>> Load(const std::string& dir);
  Status SaveSpec(const compute::ComputeInstance& instance) const;
  StatusOr<compute::ComputeInstance> LoadSpec() const;
  std::string HandleData() const;
};

}  // namespace photon::agent::vm
