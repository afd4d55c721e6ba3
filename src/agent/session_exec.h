// Runs a user's command inside a running instance for `photon exec` (docs/api.md "Streams"),
// and finds an instance's output log for `photon logs` and a VM's console for `photon console`.
//
// A process instance's command joins the workload's cgroup and its network, pid and mount
// namespaces and runs as the workload's dynamic uid/gid with no supplementary groups and
// no_new_privs, in its private /tmp (a privileged instance: as root in the host's namespaces,
// like the workload). A container's runs through `runc exec` as the container's own user.
// The instance is found through the provider's files (state.json, the runc state), read-only.
// Thread-safety: stateless functions, safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent {

// A started command: its process group leader and the agent's ends of its stdio pipes. On a
// terminal, stdin_fd, stdout_fd and tty_fd are the pty's master (three descriptors: each is
// closed on its own) and stderr_fd is -1: the terminal carries both outputs.
struct ExecChild {
  pid_t pid = 0;  // its own process group (and session, on a terminal): kill(-pid) reaches it
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int tty_fd = -1;  // for window size changes
};

// `photon exec -t`: the command runs on a new pseudo-terminal of this size, which is its
// controlling terminal (so Ctrl-C typed by the user interrupts it), with TERM=xterm unless the
// workload's environment sets TERM.
struct ExecTty {
  uint16_t rows = 24;
  uint16_t cols = 80;
};

// `data_dir`: the agent's; `driver` "process" or "container"; `id` the instance's metadata.id.
StatusOr<ExecChild> StartExec(const std::string& data_dir, const std::string& driver,
                              const std::string& id, const std::vector<std::string>& argv,
                              const std::optional<ExecTty>& tty = std::nullopt);

// Sets the window size of a command's terminal (tty_fd of ExecChild).
Status ResizeTty(int tty_fd, const ExecTty& size);

// Waits for the command; its exit code (128 + signal when killed).
int WaitExec(pid_t pid);

// The unix socket of a VM's serial console (`photon console`), from the vm driver's state.
StatusOr<std::string> ConsoleSocket(const std::string& data_dir, const std::string& id);

// The file `photon logs` reads: output.log (process, container) or the serial log (vm).
StatusOr<std::string> LogPath(const std::string& data_dir, const std::string& driver,
                              const std::string& id);

}  // namespace photon::agent
