// A loopback port for a daemon a test or benchmark starts: the one way every suite picks one.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <fstream>

namespace photon::testing {

// Whether nothing holds `port` on the IPv4 address `ip` for `type` (bound without SO_REUSEADDR,
// so a port in TIME_WAIT counts as held too).
inline bool PortFree(const char* ip, int port, int type) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return false;
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return false;
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return free;
}

// A port free for both TCP and UDP on `ip` (an IPv4 address of this network namespace) a
// moment ago, never the same twice in one process. Drawn from below the kernel's ephemeral range
// (ip_local_port_range), not with bind(0): a port bind(0) hands out is one any process's outgoing
// connection may take before the daemon binds it (CI once saw a test's Prometheus lose its port
// so). Below that range only another listener can take it; each process starts at a random place in
// it, so suites running side by side rarely meet. -1 when none is free.
inline int FreePort(const char* ip = "127.0.0.1") {
  int low = 10000, high = 32768;  // [low, high)
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (int first = 0, last = 0; range >> first >> last && first > low + 1000) high = first;
  const int span = high - low;
  static std::atomic<unsigned> next = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<unsigned>(getpid()) * 2654435761u ^ static_cast<unsigned>(ts.tv_nsec);
  }();
  for (int tries = 0; tries < span; ++tries) {
    const int port = low + static_cast<int>(next.fetch_add(1) % static_cast<unsigned>(span));
    if (PortFree(ip, port, SOCK_STREAM) && PortFree(ip, port, SOCK_DGRAM)) return port;
  }
  return -1;
}

}  // namespace photon::testing
