#include "agent/checks/check_runner.h"

#include <spdlog/spdlog.h>

#include "agent/checks/cluster_check.h"
#include "common/util.h"

namespace photon::agent::checks {

using nlohmann::json;

// One assigned check and its thread; replaced when the check's spec changes.
struct CheckRunner::Running {
  std::string ns, name;
  int64_t generation = 0;
  json spec;
  std::atomic<bool> removed{false};
  std::thread thread;
};

namespace {

int Severity(int exit_code) {
  if (exit_code == 0) return 0;
  if (exit_code == 2) return 2;
  return 1;  // WARNING, and UNKNOWN (3 or anything else): someone should look
}

const char* kSeverityNames[] = {"SUCCESS", "WARNING", "CRITICAL"};

}  // namespace

CheckRunner::CheckRunner(RunnerOptions options, ApiClient* api, MetricsRegistry* metrics)
    : options_(std::move(options)), api_(api) {
  runs_ = metrics->GetCounter("photon_agent_check_runs_total", "Check plugin runs");
  reports_ = metrics->GetCounter("photon_agent_check_events_total", "Check events reported");
}

CheckRunner::~CheckRunner() { Stop(); }

Status CheckRunner::Start() {
  // Built-in checks report even when plugins cannot run (no check user).
  sender_ = std::thread([this] { SendLoop(); });
  PHOTON_ASSIGN_OR_RETURN(as_, LookupUser(options_.user));
  refresher_ = std::thread([this] {
    SetThreadName("checks");
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      Refresh();
      lock.lock();
      cv_.wait_for(lock, options_.refresh, [&] { return stop_; });
    }
  });
  return absl::OkStatus();
}

void CheckRunner::Stop() {
  std::map<std::string, std::shared_ptr<Running>> running;
  std::vector<std::thread> retired;
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
    running.swap(running_);
    retired.swap(retired_);
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  for (auto& [k, r] : running) {
    r->removed = true;
    if (r->thread.joinable()) r->thread.join();
  }
  for (auto& t : retired) {
    if (t.joinable()) t.join();
  }
  {
    std::lock_guard lock(out_mu_);
    out_stop_ = true;
  }
  out_cv_.notify_all();
  if (sender_.joinable()) sender_.join();  // sends what is queued first
}

// Starts threads for new or changed checks, stops those no longer assigned.
void CheckRunner::Refresh() {
  auto list = api_->Get("/v1/ops/nodes/" + options_.node + "/checks");
  if (!list.ok()) {
    spdlog::warn("checks: fetching this node's checks: {}", list.status().ToString());
    return;
  }
  std::map<std::string, json> want;
  for (const auto& c : (*list)["items"]) {
    const auto& md = c["metadata"];
    want[md.value("namespace", "") + "/" + md.value("name", "")] = c;
  }
  std::vector<std::shared_ptr<Running>> gone;
  std::lock_guard lock(mu_);
  if (stop_) return;
  for (auto it = running_.begin(); it != running_.end();) {
    auto w = want.find(it->first);
    int64_t gen = w == want.end() ? -1 : std::stoll(w->second["metadata"].value("generation", "0"));
    if (w == want.end() || gen != it->second->generation) {
      it->second->removed = true;
      gone.push_back(it->second);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [key, c] : want) {
    if (running_.count(key)) continue;
    auto r = std::make_shared<Running>();
    r->ns = c["metadata"].value("namespace", "");
    r->name = c["metadata"].value("name", "");
    r->generation = std::stoll(c["metadata"].value("generation", "0"));
    r->spec = c.value("spec", json::object());
    r->thread = std::thread([this, r] { RunLoop(r); });
    running_[key] = r;
  }
  cv_.notify_all();  // wake removed loops; Stop joins them
  for (auto& r : gone) retired_.push_back(std::move(r->thread));
}

void CheckRunner::RunLoop(std::shared_ptr<Running> r) {
  SetThreadName("check");
  const auto& s = r->spec;
  const int interval = s.value("intervalSeconds", 0) > 0 ? s.value("intervalSeconds", 0) : 60;
  const int timeout = s.value("timeoutSeconds", 0) > 0 ? s.value("timeoutSeconds", 0) : 10;
  const int occurrences = std::max(1, s.value("occurrences", 0));
  // proto3 JSON leaves out zeros: 0 and absent both mean the default.
  const int64_t reissue =
      s.value("reissueDurationSeconds", 0) > 0 ? s.value("reissueDurationSeconds", 0) : 3600;
  std::vector<std::string> args;
  for (const auto& a : s.value("args", json::array())) args.push_back(a.get<std::string>());
  int last = -1, streak = 0;
  while (!r->removed) {
    const std::string command = s.value("command", "");
    PluginResult res = command == kClusterCheckCommand
                           ? RunClusterCheck(args, std::chrono::seconds(timeout))
                           : RunPlugin(command, args, std::chrono::seconds(timeout), as_);
    runs_->Inc();
    const int sev = Severity(res.exit_code);
    streak = sev == last ? streak + 1 : 1;
    last = sev;
    if (streak >= occurrences) {
      json labels = s.value("labels", json::object());
      labels["checkNamespace"] = r->ns;
      json ev{{"spec",
               {{"opsEvent",
                 {{"severity", kSeverityNames[sev]},
                  {"check", r->name},
                  {"dedupKey", "check/" + r->ns + "/" + r->name},
                  {"output", res.output},
                  {"exitCode", res.exit_code},
                  {"reissueDurationSeconds", std::to_string(reissue)},
                  {"labels", labels}}}}}};
      Post(std::move(ev));
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(interval), [&] { return stop_ || r->removed.load(); });
  }
}

void CheckRunner::Report(const std::string& check, const std::string& dedup_key, int severity,
                         const std::string& output,
                         const std::map<std::string, std::string>& labels) {
  severity = std::clamp(severity, 0, 2);
  json ev{{"spec",
           {{"opsEvent",
             {{"severity", kSeverityNames[severity]},
              {"check", check},
              {"dedupKey", dedup_key},
              {"output", output},
              {"reissueDurationSeconds", "3600"},
              {"labels", labels}}}}}};
  Post(std::move(ev));
}

void CheckRunner::Post(json event) {
  {
    std::lock_guard lock(out_mu_);
    if (outbox_.size() >= kMaxQueued) {
      spdlog::warn("checks: {} events waiting for the server; dropping the oldest ({})",
                   outbox_.size(), outbox_.front()["spec"]["opsEvent"].value("dedupKey", ""));
      outbox_.erase(outbox_.begin());
    }
    outbox_.push_back(std::move(event));
  }
  out_cv_.notify_all();
}

void CheckRunner::SendLoop() {
  SetThreadName("check-events");
  std::unique_lock lock(out_mu_);
  for (;;) {
    out_cv_.wait(lock, [&] { return out_stop_ || !outbox_.empty(); });
    if (outbox_.empty()) return;  // stopping, all sent
    const size_t n = std::min(outbox_.size(), kMaxBatch);
    std::vector<json> batch(std::make_move_iterator(outbox_.begin()),
                            std::make_move_iterator(outbox_.begin() + n));
    outbox_.erase(outbox_.begin(), outbox_.begin() + n);
    lock.unlock();
    Send(std::move(batch));
    lock.lock();
  }
}

// One batch request; a refused event is logged with the server's reason (the check reports
// again at its next run).
void CheckRunner::Send(std::vector<json> events) {
  json body{{"items", events}};
  auto r = api_->Call("POST", "/v1/namespaces/system/events/batch", body);
  if (!r.ok()) {
    spdlog::warn("checks: reporting {} events: {}", events.size(), r.status().ToString());
    return;
  }
  const json& items = (*r)["items"];
  for (size_t i = 0; i < events.size(); ++i) {
    const json item = i < items.size() ? items[i] : json::object();
    if (item.value("status", 0) >= 300 || !item.is_object()) {
      spdlog::warn("checks: event {} refused: {}", events[i]["spec"]["opsEvent"].value("check", ""),
                   item.contains("error") ? item["error"].dump() : "no answer");
      continue;
    }
    reports_->Inc();
  }
}

}  // namespace photon::agent::checks
