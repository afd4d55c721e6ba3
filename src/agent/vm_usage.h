// What /metrics reports of a VM and of a port namespace (docs/operations.md "Usage"): a VM has
// no cgroup of its own (QEMU runs in the agent's), so its CPU time and resident memory are its
// QEMU process's (/proc/PID), and its drives' traffic comes from QEMU over QMP
// (query-blockstats, summed over the drives). An instance with a port (network mode "ports")
// has its own network namespace: its traffic is that of the namespace's interfaces (a VM's tap,
// a container's or process's veth), read from /proc/thread-self/net/dev on a thread that
// entered the namespace.
// Thread-safety: stateless functions; each opens its own QMP connection or thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace photon::agent {

struct BlockCounters {
  int64_t read_bytes = 0, write_bytes = 0, read_ops = 0, write_ops = 0;
};

struct NetCounters {
  int64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0;
};

struct VmReading {
  int pid = 0;
  double cpu_seconds = 0;              // utime + stime of QEMU (every vCPU thread)
  int64_t rss_bytes = -1;              // VmRSS of QEMU
  std::optional<BlockCounters> block;  // nullopt: QMP did not answer within the timeout
};

// The running QEMU of instance `id` under the vm driver's `instances_dir` (its state.json: not
// stopped or launching, its pid alive with that QMP socket); nullopt when there is none.
std::optional<VmReading> ReadVm(const std::string& instances_dir, const std::string& id,
                                std::chrono::milliseconds qmp_timeout);

// Sums over the interfaces of the network namespace at `netns_path` other than lo; nullopt
// when the namespace cannot be entered or read.
std::optional<NetCounters> ReadNetns(const std::string& netns_path);

}  // namespace photon::agent
