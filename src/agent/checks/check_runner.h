// Runs the checks assigned to this node (seed 003: the agent checks its node and reports
// Events): fetches them from the control plane, runs each on its interval as a monitoring
// plugin (checks/plugin.h), and reports an event once `occurrences` results in a row were
// the same; the server decides by the event's reissue duration whether it acts again.
// Built-in checks come in through Report() (the instance controller's crash loops).
// Events go out in batches from one sender thread (what is queued while a request is under way
// goes in the next one). Thread-safety: Start/Stop from one thread; Report from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/api_client.h"
#include "agent/checks/plugin.h"
#include "common/metrics.h"

namespace photon::agent::checks {

struct RunnerOptions {
  std::string node;
  std::string user = "nobody";              // plugins run as this user when the agent is root
  std::chrono::milliseconds refresh{2000};  // how often the assignment is fetched again
};

class CheckRunner {
 public:
  CheckRunner(RunnerOptions options, ApiClient* api, MetricsRegistry* metrics);
  ~CheckRunner();
  // FAILED_PRECONDITION / NOT_FOUND when the check user is unusable (see LookupUser).
  Status Start();
  void Stop();
  // A built-in check's result: severity 0 Success, 1 Warning, 2 Critical.
  void Report(const std::string& check, const std::string& dedup_key, int severity,
              const std::string& output, const std::map<std::string, std::string>& labels);

 private:
  struct Running;
  void Refresh();
  void RunLoop(std::shared_ptr<Running> r);
  // Queues an event for the sender, which reports whatever is queued in one request
  // (POST /v1/namespaces/system/events/batch): results of many checks at once are one call.
  void Post(nlohmann::json event);
  void SendLoop();
  void Send(std::vector<nlohmann::json> events);

  RunnerOptions options_;
  ApiClient* api_;
  RunAs as_;
  Counter* runs_ = nullptr;
  Counter* reports_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::shared_ptr<Running>> running_;  // by "ns/name"
  std::vector<std::thread> retired_;                         // threads of checks no longer assigned
  std::thread refresher_;
  // Events waiting for the sender (bounded: the oldest go first, with a warning).
  static constexpr size_t kMaxQueued = 1000;
  static constexpr size_t kMaxBatch = 100;
  std::mutex out_mu_;
  std::condition_variable out_cv_;
  std::vector<nlohmann::json> outbox_;
  bool out_stop_ = false;
  std::thread sender_;
};

}  // namespace photon::agent::checks
