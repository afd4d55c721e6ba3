// Cluster-to-cluster monitoring (seed 003 クラスタ間監視): the built-in check command
// "builtin:photon-cluster" probes another PhotonCloud control plane's API from this node, with
// a token of that cluster read from a file on the node, and answers as a plugin would:
//   --url http(s)://HOST:PORT   the other cluster's REST API (required)
//   --token-file PATH           its token (one line; may list nodes in namespace system)
//   --ca-file PATH              PEM CA for an https URL (default: the system's)
// CRITICAL when /healthz does not answer 200 or the token is refused, WARNING when some of its
// nodes are not READY, OK otherwise; one line naming what was found. It runs in the agent
// (as the agent's user: the token file stays unreadable to plugins), so only cluster admins
// may create such a check (server/privilege.h). docs/operations.md "Checks".
// Thread-safe (each call makes its own client).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/checks/plugin.h"

namespace photon::agent::checks {

inline constexpr char kClusterCheckCommand[] = "builtin:photon-cluster";

PluginResult RunClusterCheck(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout);

}  // namespace photon::agent::checks
