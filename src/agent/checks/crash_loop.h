// Built-in check: an instance crash-looping on this node. Fed by the instance controller with
// each observation of an instance (its `restarts` detail, which the process driver counts);
// `threshold` restarts within `window` make a Critical event for that instance, and a window
// without a restart a Success. Events go out through the CheckRunner, one dedup key per
// instance; only transitions are reported.
// Thread-safe (the controller's workers call Observe concurrently).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "agent/checks/check_runner.h"

namespace photon::agent::checks {

class CrashLoopCheck {
 public:
  CrashLoopCheck(CheckRunner* runner, int threshold = 3,
                 std::chrono::seconds window = std::chrono::seconds(300))
      : runner_(runner), threshold_(threshold), window_(window) {}
  // `key` is "ns/name"; `details` the instance's observed status details.
  void Observe(const std::string& key, const std::map<std::string, std::string>& details);

 private:
  struct State {
    int64_t restarts = -1;                                    // last seen count
    std::deque<std::chrono::steady_clock::time_point> times;  // restarts within the window
    bool looping = false;
  };
  CheckRunner* runner_;
  int threshold_;
  std::chrono::seconds window_;
  std::mutex mu_;
  std::map<std::string, State> states_;
};

}  // namespace photon::agent::checks
