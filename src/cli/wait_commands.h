// Commands that wait for the cluster to reach a state: `photon wait`, and actions that print
// their result when done (`photon action`, `photon logs`).
#pragma once

#include <chrono>
#include <string>

#include "cli/http_client.h"

namespace photon::cli {

// What `photon wait --for` accepts: "phase=RUNNING" (status.phase), "condition=READY" (a
// node's condition) or "delete" (the object is gone).
struct WaitCondition {
  enum class Type { kPhase, kCondition, kDelete } type = Type::kPhase;
  std::string value;
};
// A clear error naming what is accepted for anything else.
StatusOr<WaitCondition> ParseWaitCondition(const std::string& text);

// "90s", "15m", "2h", "500ms" or plain seconds.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

// Follows the object through a watch (no polling) until the condition holds; exit status 0,
// or 1 with a message naming the object, the condition and what it is at now on timeout.
int WaitFor(HttpClient client, const std::string& ns, const std::string& plural,
            const std::string& name, const WaitCondition& cond, std::chrono::milliseconds timeout);

// Waits until the operation ends, then prints its output (DONE: stdout, exit 0) or its reason
// (FAILED: stderr, exit 1). Exit 1 naming the operation on timeout.
int AwaitOperation(HttpClient client, const std::string& id, std::chrono::milliseconds timeout);

}  // namespace photon::cli
