// Wall clock seam: the sweeper and request-time checks read time through Clock so tests can
// move time by hand. Implementations are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace photon::lightningstor {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock tests set by hand.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t now_millis) : now_(now_millis) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t millis) { now_ += millis; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace photon::lightningstor
