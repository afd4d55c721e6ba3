// Facts about host processes read from /proc: a process is identified by pid + start time
// (field 22 of /proc/<pid>/stat), so a recycled pid is never mistaken for ours.
// Thread-safety: stateless functions, safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace photon::agent {

// Start time in clock ticks since boot, or 0 when the process does not exist (or is a zombie).
uint64_t ProcessStartTime(pid_t pid);
// True when `pid` runs and started at `start_time` (0 = do not check the start time).
bool ProcessAlive(pid_t pid, uint64_t start_time);
// The parent's pid (field 4), 0 when gone.
pid_t ParentPid(pid_t pid);
// Total CPU time (user + system) of a process in clock ticks, 0 when gone.
uint64_t ProcessCpuTicks(pid_t pid);
// The same in seconds.
double ProcessCpuSeconds(pid_t pid);

}  // namespace photon::agent
