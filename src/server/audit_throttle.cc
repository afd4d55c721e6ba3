#include "server/audit_throttle.h"

#include "common/util.h"

namespace photon::server {

std::vector<RefusalThrottle::Record> RefusalThrottle::TakeEnded(Clock::time_point now, bool all) {
  std::vector<Record> owed;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (all || now - it->second.start >= window_) {
      if (it->second.pending.count > 0) owed.push_back(std::move(it->second.pending));
      it = windows_.erase(it);
    } else {
      ++it;
    }
  }
  return owed;
}

void RefusalThrottle::Refused(const std::string& source, const std::string& request) {
  const auto now = Clock::now();
  const std::string at = NowRfc3339();
  std::vector<Record> owed;
  Record first;
  {
    std::lock_guard lock(mu_);
    auto it = windows_.find(source);
    if (it != windows_.end() && now - it->second.start < window_) {
      Record& p = it->second.pending;
      if (p.count++ == 0) {
        p.source = source;
        p.request = request;
        p.first_at = at;
      }
      p.last_at = at;
      return;
    }
    // A flood that went on through the window just ended goes on being counted: one record
    // per window while it lasts, not two.
    const bool continued = it != windows_.end() && it->second.pending.count > 0;
    if (it != windows_.end() || windows_.size() >= kMaxSources) {
      // This source's window has ended, or too many are open: settle what is owed first.
      owed = TakeEnded(now, windows_.size() >= kMaxSources);
    }
    Window& w = windows_[source];
    w.start = now;
    first = Record{source, request, 1, at, at};
    if (continued) {
      w.pending = first;
      first.count = 0;
    }
  }
  for (const auto& r : owed) sink_(r);
  if (first.count > 0) sink_(first);
}

void RefusalThrottle::Flush(bool all) {
  std::vector<Record> owed;
  {
    std::lock_guard lock(mu_);
    owed = TakeEnded(Clock::now(), all);
  }
  for (const auto& r : owed) sink_(r);
}

}  // namespace photon::server
