// Per-instance and node usage for the agent's /metrics (docs/operations.md "Usage metrics"):
// CPU and memory of each instance's cgroup (process and container drivers, the groups
// photon/<node>/<driver>/<instance id>), and the node's CPUs and memory, labelled with the
// instance's namespace and name so Prometheus and `photon top` can tell them apart.
//
// Sampled every `interval` on its own thread: the CPU figures are cores used on average over
// the last interval (a rate needs two readings; scrapes may come at any pace), the rest as read
// then. cgroup v2: cpu.stat usage_usec, memory.current, memory.max, io.stat. cgroup v1:
// cpuacct.usage where the group has one, else the CPU time of the group's live processes
// (/proc/PID/stat; time of processes that exited is not counted), memory.usage_in_bytes,
// memory.limit_in_bytes. VMs have no cgroup of their own here: their QEMU's CPU time and
// resident memory, and their drives' traffic over QMP (vm_usage.h). An instance with a port
// namespace also gets the traffic of the namespace's interfaces.
// Thread-safety: Run on one thread; Render from any; the setters before Run.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/host/cgroup.h"
#include "agent/informer.h"
#include "agent/vm_usage.h"

namespace photon::agent {

struct InstanceUsage {
  std::string ns, name, driver;
  double cpu_seconds = 0;          // since the group was made (v1 without cpuacct: live processes)
  double cpu_cores = -1;           // average over the last interval; -1 before the second reading
  int64_t memory_bytes = -1;       // -1 when unreadable
  int64_t memory_limit_bytes = 0;  // 0 = no limit
  int64_t io_read_bytes = -1, io_write_bytes = -1;  // v2 io.stat; -1 when unknown
  std::optional<BlockCounters> block;               // a VM's drives (QMP query-blockstats)
  std::optional<NetCounters> net;                   // its port namespace's interfaces
};

struct NodeUsage {
  int cpus = 0;
  double cpu_cores = -1;  // busy cores over the last interval (/proc/stat)
  int64_t memory_total_bytes = 0, memory_available_bytes = 0;  // /proc/meminfo
};

class InstanceMetrics {
 public:
  explicit InstanceMetrics(std::string node,
                           std::chrono::milliseconds interval = std::chrono::seconds(5),
                           std::string cgroup_root = "/sys/fs/cgroup");
  // The agent's informer of the instances placed on this node (not owned; set once it
  // exists: /metrics is served before). Until then only the node is sampled.
  void SetInstances(const Informer* instances) { instances_ = instances; }
  // The vm driver's instance directories (its state.json files): VMs are sampled too.
  void SetVmInstancesDir(std::string dir) { vm_dir_ = std::move(dir); }
  // The port namespace (a path) of an instance id, "" for none: its traffic is sampled.
  void SetNetnsOf(std::function<std::string(const std::string&)> netns_of) {
    netns_of_ = std::move(netns_of);
  }
  void Run(const std::atomic<bool>* stop);
  // One reading now (Run calls it every interval).
  void Sample();
  // Prometheus text exposition of the last reading (empty before the first).
  std::string Render() const;

 private:
  struct Cpu {
    double seconds = 0;
    std::chrono::steady_clock::time_point at;
  };
  InstanceUsage Read(const CgroupManager& cgroups, const std::string& id) const;
  // A VM's usage, or nullopt when `id` has no running QEMU; keeps the last block counters
  // when QMP is busy (QEMU serves one monitor client at a time).
  std::optional<InstanceUsage> ReadVmUsage(const std::string& id);

  std::string node_;
  std::atomic<const Informer*> instances_{nullptr};
  std::chrono::milliseconds interval_;
  std::map<std::string, CgroupManager> drivers_;  // driver → its groups
  mutable std::mutex mu_;
  bool sampled_ = false;
  NodeUsage node_usage_;
  std::vector<InstanceUsage> usage_;
  std::map<std::string, Cpu> last_cpu_;  // instance id → previous reading
  std::string vm_dir_;
  std::function<std::string(const std::string&)> netns_of_;
  std::map<std::string, BlockCounters> last_block_;  // VM id → last QMP answer
  Cpu last_node_busy_, last_node_total_;
};

}  // namespace photon::agent
