// Runs one monitoring plugin (Nagios plugin protocol: exit 0 OK, 1 WARNING, 2 CRITICAL,
// 3 UNKNOWN, and a line of text) without a shell and without root: when the agent is root
// the plugin runs as an unprivileged user (no supplementary groups, no_new_privs) in its own
// process group, which is killed when the timeout passes.
// Thread-safe (each call forks its own child).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::checks {

struct PluginResult {
  int exit_code = 3;   // the plugin's, or 3 (UNKNOWN) when it timed out, was killed or failed
  std::string output;  // first line of stdout+stderr, at most 1024 bytes
};

struct RunAs {
  uid_t uid = 65534;
  gid_t gid = 65534;
};

// The uid/gid of `user` (e.g. "nobody"); NOT_FOUND when the system has no such user, and
// FAILED_PRECONDITION for root.
StatusOr<RunAs> LookupUser(const std::string& user);

PluginResult RunPlugin(const std::string& command, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout, const RunAs& as);

}  // namespace photon::agent::checks
