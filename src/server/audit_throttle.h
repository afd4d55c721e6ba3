// Folds a flood of refused credentials into a few counted audit records. Per source address
// the first refusal of a window is recorded at once (count 1); later ones within the window
// are only counted, and their count is recorded once the window has ended: at the source's
// next refusal after it, or at Flush (the housekeeper flushes every pass, the resource manager
// everything when it goes). A flood that goes on makes one record per window. Memory is
// bounded: at most kMaxSources windows are open.
// Thread-safe; the sink runs outside the lock, on the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace photon::server {

class RefusalThrottle {
 public:
  struct Record {
    std::string source;             // client address
    std::string request;            // "METHOD /path" of the first refusal counted
    int64_t count = 0;              // refusals this record stands for
    std::string first_at, last_at;  // RFC 3339
  };
  using Sink = std::function<void(const Record&)>;
  static constexpr size_t kMaxSources = 4096;

  RefusalThrottle(std::chrono::milliseconds window, Sink sink)
      : window_(window), sink_(std::move(sink)) {}
  void Refused(const std::string& source, const std::string& request);
  // Records the counts of ended windows; of every window when `all`.
  void Flush(bool all);

 private:
  using Clock = std::chrono::steady_clock;
  struct Window {
    Clock::time_point start;
    Record pending;  // refusals after the first, not yet recorded
  };
  // Removes ended (or all) windows, returning the counts they still owe. Holds mu_.
  std::vector<Record> TakeEnded(Clock::time_point now, bool all);

  const std::chrono::milliseconds window_;
  const Sink sink_;
  std::mutex mu_;
  std::map<std::string, Window> windows_;  // by source
};

}  // namespace photon::server
