// Small helpers every component needs: time stamps, ids, secrets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace photon {

// Now as RFC 3339 UTC with milliseconds, e.g. "2026-11-22T03:04:05.678Z".
std::string NowRfc3339();
// Random UUID v4 (from the OS random source).
std::string NewUuid();
// n random bytes, hex encoded (2n characters), for tokens and keys.
std::string RandomHex(size_t n);
std::string Sha256Hex(const std::string& data);
// Raw (binary) SHA-256 and HMAC-SHA256, for SigV4's key chain and hashes.
std::string Sha256Raw(std::string_view data);
std::string HmacSha256Raw(std::string_view key, std::string_view data);
// Constant-time comparison for secrets.
bool SecureEquals(const std::string& a, const std::string& b);
// Monotonic nanoseconds.
int64_t MonotonicNanos();
// Names the calling thread (at most 15 characters show) so top -H, perf and /proc tell the
// daemon's threads apart.
void SetThreadName(const char* name);
// Turns off Abseil's lock-order graph. Debian builds Abseil without NDEBUG, so every
// absl::Mutex (gRPC locks with them on each call) otherwise records lock order in one global
// graph and each destroyed mutex takes the graph's lock: a few percent of a gRPC process's
// CPU, serialised across its threads. Processes that serve or call gRPC (photon-server, the
// API bench) call this first thing in main.
void DisableAbslDeadlockDetection();

}  // namespace photon
