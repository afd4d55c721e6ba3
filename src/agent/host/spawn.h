// Starts a workload under a small monitor process that outlives the agent.
//
//   agent ──posix_spawn──> photon-procmon (setsid, reads the start request, exits at once)
//                            └─fork──> monitor (own session, re-parented to init)
//                                        └─fork──> workload (own process group, in its
//                                                  cgroups, exec)
//
// photon-procmon is a small static binary (host/procmon.cc, protocol in host/procmon_wire.h)
// installed next to photon-agent: the agent never forks itself (a fork copies the page tables
// of hundreds of MiB and was half of the agent's CPU when starting 1,000 processes), it
// execs procmon with posix_spawn (clone with CLONE_VM | CLONE_VFORK). The monitor waits for
// the workload and writes its exit status to `exit_path`, so the exit code is known even when
// the agent was down (kill -9) while the workload ended.
// Thread-safety: SpawnMonitored may be called from several threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent {

struct SpawnSpec {
  std::vector<std::string> argv;          // argv[0] absolute or looked up in PATH
  std::vector<std::string> env;           // "KEY=VALUE"
  std::string working_dir;                // "" = the monitor's ("/")
  std::string log_path;                   // stdout and stderr are appended here
  std::string exit_path;                  // "exited N" or "signaled N" once the workload ends
  std::vector<std::string> cgroup_procs;  // the workload joins these before exec
  // The monitor becomes a child subreaper and records the last descendant to exit (runc
  // --detach: the container's init is re-parented to the monitor). A non-zero exit of the
  // direct child is recorded instead.
  bool subreaper = false;
  // Tenant workloads run confined (see SecurityContext in proto/photon/compute.proto): the
  // workload is the only child of a small init that is pid 1 of a new pid namespace, in a new
  // mount namespace with its own /proc and `private_tmp` bind-mounted on /tmp (nosuid, nodev),
  // and it runs as `uid`/`gid` with no supplementary groups and no_new_privs. The init
  // forwards TERM, INT, HUP, QUIT, USR1 and USR2 to it and exits with its status (128 + the
  // signal number when it was killed). Unset: the workload runs with the agent's privileges in
  // the host's namespaces (admins only).
  struct Confinement {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string private_tmp;  // bind-mounted on /tmp; owned by uid
  };
  std::optional<Confinement> confine;
  // A network namespace (path, e.g. /run/netns/NAME: the instance's port namespace) the
  // monitor and the workload join before anything else; "" = the agent's. A workload left with
  // the agent's privileges (not confined) loses CAP_NET_ADMIN, so it cannot rewire its port.
  std::string netns;
};

struct Spawned {
  pid_t monitor_pid = 0;
  uint64_t monitor_start = 0;
  pid_t pid = 0;  // the workload (for runc: the runc process, gone after start)
  uint64_t start_time = 0;
};

// photon-procmon beside the running executable, else (tests) the build tree's; FAILED_PRECONDITION
// naming the places tried when neither exists.
StatusOr<std::string> ProcmonPath();

// Resolves a command name against PATH (from `env`, else a default); "" when not found.
std::string ResolveExecutable(const std::string& name, const std::vector<std::string>& env);

// The workload does not exec before `before_start` (called once the monitor and the waiting
// workload process exist, with their pids) returned OK: a caller persists its handle there, so
// a workload never runs without a record of it. An error from `before_start`, or the caller's
// death before it returned, ends the start with nothing run; the monitor then writes "aborted"
// to the exit file.
StatusOr<Spawned> SpawnMonitored(
    const SpawnSpec& spec, const std::function<Status(const Spawned&)>& before_start = nullptr);

// True while the monitor `monitor_pid` has not yet seen its workload run or fail, e.g. it waits
// for the go of a starter that died (it then writes "aborted" within milliseconds).
bool StartUndecided(pid_t monitor_pid);

// Parses the exit file: exit code (128 + signal for signals); NOT_FOUND while running; ABORTED
// when the start was abandoned before the workload ran (see SpawnMonitored).
StatusOr<int> ReadExitCode(const std::string& exit_path);

}  // namespace photon::agent
