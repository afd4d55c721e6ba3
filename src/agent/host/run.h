// Runs a helper command (runc, tar, mount) to completion and captures its output.
// argv only, never a shell. Thread-safety: may be called from several threads.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent {

struct RunResult {
  int exit_code = 0;   // 128 + signal when killed
  std::string output;  // stdout and stderr together
};

// Fails only when the command cannot be started (UNAVAILABLE when it is not installed) or
// exceeds `timeout` (then it is killed: DEADLINE_EXCEEDED); a non-zero exit is in the result.
StatusOr<RunResult> RunCommand(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));
// RunCommand that turns a non-zero exit into INTERNAL naming the tool and quoting its output.
Status RunChecked(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The last `lines` lines of a file ("" when missing), reading at most the final 1 MiB.
std::string TailFile(const std::string& path, int lines);

}  // namespace photon::agent
