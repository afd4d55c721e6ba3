// Runs a network tool (ip, nft, birdc, sysctl) to completion, optionally inside a network
// namespace, feeding it stdin and capturing its output. argv only, never a shell.
// Thread-safety: may be called from several threads at once.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::net {

struct ExecResult {
  int exit_code = 0;   // 128 + signal when killed
  std::string output;  // stdout and stderr together, at most 1 MiB kept
};

struct ExecOptions {
  std::string netns;  // path of a network namespace (/run/netns/NAME); "" = the caller's
  std::string stdin_data;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// Fails only when the command cannot be started, the namespace cannot be entered or the command
// exceeds the timeout (then it is killed); a non-zero exit is in the result.
StatusOr<ExecResult> Exec(const std::vector<std::string>& argv, const ExecOptions& options = {});

// Exec, and a non-zero exit becomes an error naming the command and quoting its output.
StatusOr<std::string> ExecOk(const std::vector<std::string>& argv, const ExecOptions& options = {});

}  // namespace photon::agent::net
