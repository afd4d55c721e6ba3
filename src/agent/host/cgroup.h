// Control groups for the workloads of one provider: one group per instance under an absolute
// parent path ("photon/<node>/process"), on cgroup v2 (unified at /sys/fs/cgroup) or v1 (one
// hierarchy per controller: cpu, memory), detected at construction.
// Absolute paths, not nested under the agent's own group, so a restarted agent started from
// elsewhere finds the same groups.
// Thread-safety: methods touch only the filesystem; calls for different ids may run
// concurrently, calls for the same id are serialised by the caller.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent {

enum class CgroupVersion { kNone, kV1, kV2 };

struct CgroupLimits {
  double cpus = 0;           // 0 = unlimited
  int64_t memory_bytes = 0;  // 0 = unlimited
};

class CgroupManager {
 public:
  // parent: relative path below each hierarchy root, e.g. "photon/node-a/process".
  CgroupManager(std::string parent, std::string root = "/sys/fs/cgroup");

  CgroupVersion version() const { return version_; }
  std::string VersionName() const;

  // Creates the group for `id` (idempotent) and writes its limits.
  Status Create(const std::string& id, const CgroupLimits& limits);
  // The cgroup.procs files a new process writes its pid into, one per hierarchy.
  std::vector<std::string> ProcsFiles(const std::string& id) const;
  std::vector<pid_t> Pids(const std::string& id) const;
  bool Exists(const std::string& id) const;
  // Signals every process in the group.
  void Signal(const std::string& id, int sig) const;
  // Kills every process in the group, waits for them to go and removes the group.
  Status Remove(const std::string& id);
  // Ids of every group under the parent.
  std::vector<std::string> List() const;
  // Removes every group under the parent that holds no process and is not in `keep` (left
  // behind by a delete that could not rmdir in time, or by an agent killed during one).
  // Returns how many went.
  int SweepEmpty(const std::set<std::string>& keep);
  // Directory of the group in the hierarchy holding `controller` ("cpu", "memory"); for v2 the
  // one unified directory.
  std::string Dir(const std::string& id, const std::string& controller) const;

 private:
  std::vector<std::string> Hierarchies() const;  // absolute parent dirs

  std::string parent_;
  std::string root_;
  CgroupVersion version_ = CgroupVersion::kNone;
};

}  // namespace photon::agent
