// WatchCollector: gathers the events and the error of one watch so a test can wait for them.
// Thread-safe (callbacks arrive on the store's thread, the test reads on its own).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "store/store.h"

namespace photon::store::testing {

class WatchCollector {
 public:
  WatchCallback OnEvents() {
    return [this](const std::vector<WatchEvent>& events) {
      std::lock_guard lock(mu_);
      events_.insert(events_.end(), events.begin(), events.end());
      cv_.notify_all();
    };
  }
  WatchErrorCallback OnError() {
    return [this](const Status& status) {
      std::lock_guard lock(mu_);
      error_ = status;
      cv_.notify_all();
    };
  }
  // Waits until at least n events arrived (or the timeout passed); returns all of them.
  std::vector<WatchEvent> WaitFor(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
    return events_;
  }
  std::vector<WatchEvent> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::optional<Status> Error() {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  std::optional<Status> error_;
};

}  // namespace photon::store::testing
