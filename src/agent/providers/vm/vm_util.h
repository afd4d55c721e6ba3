// Host helpers of the vm driver: hashing files, and checking that a pid is still the QEMU we
// started. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/host/run.h"  // RunCommand, RunChecked: the agent's one way to run a tool
#include "common/status.h"

namespace photon::agent::vm {

// Streams the file through SHA-256; lower-case hex.
StatusOr<std::string> Sha256File(const std::string& path);

// True when pid is alive and not a zombie (a zombie child of ours is reaped on the way).
bool ProcessAlive(int pid);
// True when /proc/pid/cmdline contains `needle` as one argument or part of one. This is how a
// recycled pid is told apart from our QEMU (its argv names the instance directory).
bool CmdlineContains(int pid, const std::string& needle);
// Pids of live processes whose argv contains `needle` (see CmdlineContains).
std::vector<int> PidsWithCmdline(const std::string& needle);
// The instance lock: a file whose flock QEMU inherits from the agent and holds for its whole
// life, so "is a QEMU of this instance alive?" has an answer even before QEMU wrote its pidfile
// and for one the agent never recorded. TakeLock returns the locked descriptor (O_CLOEXEC), or
// UNAVAILABLE when another process holds the lock; LockHeld is false for a missing file.
StatusOr<int> TakeLock(const std::string& path);
bool LockHeld(const std::string& path);
// SIGKILLs every process whose argv mentions <dir>/qemu.pid (a QEMU, also one still
// daemonizing or one no state recorded) until none holds <dir>/qemu.lock, so no QEMU outlives
// its instance's delete. INTERNAL when they still hold it after 10 s.
Status KillInstanceProcesses(const std::string& dir);
// Resident set size of pid in bytes (0 when unknown).
int64_t ProcessRssBytes(int pid);

// Last `max_bytes` of a file, starting at a line boundary.
std::string TailFile(const std::string& path, size_t max_bytes);
int64_t FileSize(const std::string& path);  // -1 when missing
bool PathExists(const std::string& path);
// Wall-clock milliseconds since the epoch: boot start times must survive an agent restart.
int64_t WallClockMs();

}  // namespace photon::agent::vm
