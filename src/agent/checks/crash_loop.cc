#include "agent/checks/crash_loop.h"

namespace photon::agent::checks {

void CrashLoopCheck::Observe(const std::string& key,
                             const std::map<std::string, std::string>& details) {
  auto it = details.find("restarts");
  if (it == details.end()) return;  // a driver that does not restart by itself
  int64_t restarts = 0;
  try {
    restarts = std::stoll(it->second);
  } catch (...) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  int severity = -1;
  std::string output;
  {
    std::lock_guard lock(mu_);
    State& s = states_[key];
    if (s.restarts >= 0) {
      for (int64_t i = s.restarts; i < restarts && s.times.size() < 1000; ++i) {
        s.times.push_back(now);
      }
    }
    s.restarts = restarts;
    while (!s.times.empty() && now - s.times.front() > window_) s.times.pop_front();
    const bool looping = static_cast<int>(s.times.size()) >= threshold_;
    if (looping == s.looping) return;
    s.looping = looping;
    severity = looping ? 2 : 0;
    output = "instance " + key + (looping ? " restarted " : " stable: ") +
             std::to_string(s.times.size()) + " restarts in the last " +
             std::to_string(window_.count()) + " s";
  }
  runner_->Report("instance-crashloop", "instance-crashloop/" + key, severity, output,
                  {{"instance", key}});
}

}  // namespace photon::agent::checks
