// See record_health.h.
#include "flashdns/record_health.h"

#include <spdlog/spdlog.h>

#include <set>

#include "common/tcp_probe.h"

namespace photon::flashdns {

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
