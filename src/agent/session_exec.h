// Runs a user's command inside a running instance for `photon exec` (docs/api.md "Streams"),
// and finds an instance's output log for `photon logs`.
//
// A process instance's command joins the workload's cgroup and its network, pid and mount
// namespaces and runs as the workload's dynamic uid/gid with no supplementary groups and
// no_new_privs, in its private /tmp (a privileged instance: as root in the host's namespaces,
// like the workload). A container's runs through `runc exec` as the container's own user.
// The instance is found through the provider's files (state.json, the runc state), read-only.
// Thread-safety: stateless functions, safe from any thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent {

// A started command: its process group leader and the agent's ends of its stdio pipes.
struct ExecChild {
  pid_t pid = 0;  // its own process group: kill(-pid) reaches what it started
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// `data_dir`: the agent's; `driver` "process" or "container"; `id` the instance's metadata.id.
StatusOr<ExecChild> StartExec(const std::string& data_dir, const std::string& driver,
                              const std::string& id, const std::vector<std::string>& argv);

// Waits for the command; its exit code (128 + signal when killed).
int WaitExec(pid_t pid);

// The file `photon logs` reads: output.log (process, container) or the serial log (vm).
StatusOr<std::string> LogPath(const std::string& data_dir, const std::string& driver,
                              const std::string& id);

}  // namespace photon::agent
