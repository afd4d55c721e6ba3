// Builds the QEMU command line of one VM from a plain description (no I/O), so the exact argv
// is unit-tested. One QEMU per instance: daemonized into its own session with a pidfile, a QMP
// unix socket for control, and the serial console on a unix socket that the agent connects to
// for `photon console`, everything the guest writes also appended to a log file.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

namespace photon::agent::vm {

struct QemuDisk {
  std::string id;  // node and device id suffix ("root", "cidata", "vol-data")
  std::string path;
  std::string format;  // raw, qcow2
  bool read_only = false;
  int port = -1;  // pcie-root-port index on q35 (hot-unpluggable); -1 = on the root bus
};

struct QemuConfig {
  std::string binary = "qemu-system-x86_64";
  std::string name;             // shown in ps and the QMP "query-name"
  std::string machine = "q35";  // q35 or microvm
  std::string accel = "tcg";    // tcg or kvm
  int tcg_tb_size_mb = 16;      // bounds the TCG translation cache (host memory beyond guest RAM)
  int vcpus = 1;
  int memory_mb = 256;
  std::string kernel, initrd, kernel_args;  // direct kernel boot when kernel is set
  std::vector<QemuDisk> disks;              // in guest order
  int hotplug_ports = 0;                    // spare pcie-root-ports (q35 only)
  std::string network = "none";             // none, user, tap
  std::string tap_name;                     // when network == tap: QEMU opens it by name...
  int tap_fd = -1;                          // ... or uses this open tap (a port's, see vm_start)
  std::string tap_netns;                    // the port namespace tap_fd is opened in (not argv)
  std::string mac;
  std::string qmp_socket, pidfile, console_log;
  std::string serial_socket;  // the console's socket; empty: the console only to console_log
  bool daemonize = true;
};

// Name of pcie-root-port `index` ("hp3"), the bus a hot-plugged device goes on.
std::string HotplugPortId(int index);

std::vector<std::string> BuildQemuArgv(const QemuConfig& config);

}  // namespace photon::agent::vm
