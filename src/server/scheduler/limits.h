// Upper bounds of every resource quantity the control plane accepts, and int64 arithmetic
// that cannot wrap. The API refuses a larger quantity (an instance's request, a RegionService
// template, a Flavor, a Volume, a Node's capacity); the scheduler clamps what it reads from the
// store to the same bounds (objects written before the bounds existed) and adds with
// saturation, so "no overcommit" cannot be beaten by a sum that wraps to a small number.
// Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <limits>

namespace photon::scheduler {

inline constexpr int64_t kMaxVcpu = 1024;
inline constexpr int64_t kMaxMemoryMb = int64_t{64} << 20;  // 64 TiB in MB
inline constexpr int64_t kMaxDiskGb = int64_t{1} << 20;     // 1 PiB in GB
inline constexpr int64_t kMaxReplicas = 10000;

// a + b, or the int64 limit in the direction of the overflow.
inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

inline int64_t SaturatingSub(int64_t a, int64_t b) {
  int64_t r;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  return b < 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

// v within [0, max].
inline int64_t Clamp(int64_t v, int64_t max) { return v < 0 ? 0 : (v > max ? max : v); }

}  // namespace photon::scheduler
