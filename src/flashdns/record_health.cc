// See record_health.h.
#include "flashdns/record_health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace photon::flashdns {

std::string CheckTcpConnect(const std::string& address, int port, int timeout_ms) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a6;
  } else {
    return "not an IP address";
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  std::string result = "ok";
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) {
      result = strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t elen = sizeof err;
      if (poll(&p, 1, timeout_ms) != 1) {
        result = "timeout";
      } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        result = strerror(err);
      }
    }
  }
  close(fd);
  return result;
}

void RecordHealth::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void RecordHealth::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RecordHealth::Loop() {
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the checks' tick
    auto now = std::chrono::steady_clock::now();
    std::set<std::string> present;
    for (const auto& t : zones_->CheckTargets()) {
      present.insert(t.id);
      State& st = state_[t.id];
      if (st.next > now) continue;
      st.next = now + std::chrono::milliseconds(t.check.interval_ms);
      std::string result = CheckTcpConnect(t.address, t.check.port, t.check.timeout_ms);
      bool ok = result == "ok";
      st.successes = ok ? st.successes + 1 : 0;
      st.failures = ok ? 0 : st.failures + 1;
      bool next = st.healthy;
      if (ok && st.successes >= t.check.rise) next = true;
      if (!ok && st.failures >= t.check.fall) next = false;
      if (next == st.healthy) continue;
      Status s = zones_->SetRecordHealthy(t.zone, t.id, next);
      if (!s.ok()) {
        spdlog::warn("record {}: {}", t.id, std::string(s.message()));
        continue;  // tried again at the next check
      }
      st.healthy = next;
      spdlog::info("record {} ({} in {}) {}: {}", t.id, t.address, t.zone,
                   next ? "healthy, served" : "unhealthy, left out", result);
    }
    for (auto it = state_.begin(); it != state_.end();) {
      it = present.contains(it->first) ? std::next(it) : state_.erase(it);
    }
  }
}

}  // namespace photon::flashdns
