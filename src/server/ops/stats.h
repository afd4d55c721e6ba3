// Long-term statistics (seed 003: small, kept for years): one small record per day and per
// month for each namespace and each node, computed from Prometheus (its HTTP query API) and
// stored by photon, so they outlive Prometheus's retention (15 days by default).
//
// A day is [k·D, (k+1)·D) of Unix time (D = 86400 s: UTC days; tests shorten it). Once a day
// has ended (and a grace period passed, for the last scrapes), the leader queries Prometheus
// at the day's end over the day's range and writes every subject's record and the day's
// marker in one transaction that requires the marker absent: a day is computed once, across
// restarts and servers, never doubled; a failed query leaves it for the next round. A month
// (calendar months of UTC days; with a shorter D, `month_days` days) is made from its days'
// records once its last day is done. Records: /ops/stats/<day|month>/<namespace|node>/
// <subject>/<start, 12 digits>, JSON. docs/operations.md "Long-term statistics".
// Thread-safe: one thread computes; reads go to the store.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "common/http_server.h"
#include "common/status.h"
#include "server/auth.h"
#include "store/store.h"

namespace photon::server::opsengine {

struct StatsOptions {
  std::string prometheus_url;  // http://HOST:PORT of its API; "" = no statistics
  std::chrono::seconds day{86400};
  int month_days = 0;    // 0 = calendar months (day must be 86400 s)
  int catchup_days = 7;  // days before now computed when missing (Prometheus keeps 15)
};

class StatsController {
 public:
  StatsController(store::Store* store, StatsOptions options);
  ~StatsController();
  // INVALID_ARGUMENT for options it cannot honour (a short day without month_days).
  static Status Validate(const StatsOptions& options);
  void Start();  // no-op without a Prometheus URL
  void Stop();
  void SetLeading(bool leading) { leading_ = leading; }
  // Computes every finished day and month not yet stored, as of Unix time `now_s`.
  Status RunOnce(int64_t now_s);
  // GET /v1/stats?period=day|month&kind=namespace|node[&subject=X][&from=T][&to=T]
  HttpResponse Serve(const HttpRequest& req, const Principal& who);

 private:
  Status ComputeDay(int64_t start, int64_t end);
  Status ComputeMonth(int64_t start, int64_t end);
  void Loop();

  store::Store* store_;
  StatsOptions options_;
  std::atomic<bool> leading_{true};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace photon::server::opsengine
