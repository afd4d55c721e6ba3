// The grace period of stop/restart actions: params["timeout"] in seconds (default 10), after
// which the workload is killed. Thread-safety: stateless.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "common/status.h"

namespace photon::agent {

inline StatusOr<std::chrono::seconds> StopTimeout(
    const std::map<std::string, std::string>& params) {
  auto it = params.find("timeout");
  if (it == params.end()) return std::chrono::seconds(10);
  int v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < 0 || v > 3600) {
    return absl::InvalidArgumentError("timeout: want seconds between 0 and 3600");
  }
  return std::chrono::seconds(v);
}

}  // namespace photon::agent
