#include "server/ops/stats.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/hex.h"
#include "common/http_client.h"
#include "server/ops/ops_internal.h"
#include "server/rest_gateway.h"

namespace photon::server::opsengine {

using nlohmann::json;

namespace {

constexpr char kStatsPrefix[] = "/ops/stats/";

std::string Rfc3339(int64_t unix_s) {
  std::time_t t = unix_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Padded(int64_t unix_s) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%012lld", static_cast<long long>(unix_s));
  return buf;
}

std::string RecordKey(const std::string& period, const std::string& kind,
                      const std::string& subject, int64_t start) {
  return std::string(kStatsPrefix) + period + "/" + kind + "/" + subject + "/" + Padded(start);
}

std::string MarkerKey(const std::string& period, int64_t start) {
  return std::string(kStatsPrefix) + "done/" + period + "/" + Padded(start);
}

// One figure of a record: the PromQL that computes it over a day (RANGE and STEP replaced by
// the day's length and the subquery's step) and how a month is made of its days.
enum class Fold { kSum, kMax, kTimeAverage, kMean };
struct Figure {
  const char* kind;   // namespace or node: the label the query keeps
  const char* field;  // in the record's "values"
  const char* promql;
  Fold fold;
};

#define EVENTS_DELTA(SEVERITY)                                                        \
  "sum by (namespace) (clamp_min(photon_ops_events_issued_total{severity=\"" SEVERITY \
  "\"} - photon_ops_events_issued_total{severity=\"" SEVERITY                         \
  "\"} offset DAYNs, 0) or "                                                          \
  "photon_ops_events_issued_total{severity=\"" SEVERITY "\"})"

// A record holds what it was computed from only, so computing it again gives the same bytes.
// Averages are over the whole day (sum of the step samples · step / day): a namespace that
// ran for half the day at 2 cores averages 1 core.
const Figure kFigures[] = {
    {"namespace", "cpuCoreSeconds",
     "sum by (namespace) (increase(photon_instance_cpu_seconds_total[RANGE]))", Fold::kSum},
    {"namespace", "cpuCoresMax",
     "max_over_time((sum by (namespace) (photon_instance_cpu_cores))[RANGE:STEP])", Fold::kMax},
    {"namespace", "memoryBytesAvg",
     "sum_over_time((sum by (namespace) (photon_instance_memory_bytes))[RANGE:STEP]) * STEPN / "
     "DAYN",
     Fold::kTimeAverage},
    {"namespace", "memoryBytesMax",
     "max_over_time((sum by (namespace) (photon_instance_memory_bytes))[RANGE:STEP])", Fold::kMax},
    {"namespace", "instancesAvg",
     "sum_over_time((count by (namespace) (photon_instance_memory_bytes))[RANGE:STEP]) * STEPN / "
     "DAYN",
     Fold::kTimeAverage},
    // Its events: those processed by the rules (photon-server's counter), by severity. The
    // counter at the day's end less the counter at its start (the series that began that day:
    // all of it), so the days add up to the counter exactly (increase() over adjacent windows
    // loses a jump between their last and first samples).
    {"namespace", "criticalEvents", EVENTS_DELTA("CRITICAL"), Fold::kSum},
    {"namespace", "warningEvents", EVENTS_DELTA("WARNING"), Fold::kSum},
    {"node", "cpuCoresAvg",
     "sum_over_time((max by (node) (photon_node_cpu_cores_used))[RANGE:STEP]) * STEPN / DAYN",
     Fold::kTimeAverage},
    {"node", "cpuCoresMax",
     "max_over_time((max by (node) (photon_node_cpu_cores_used))[RANGE:STEP])", Fold::kMax},
    {"node", "cpus", "max by (node) (max_over_time(photon_node_cpus[RANGE]))", Fold::kMax},
    {"node", "memoryUsedBytesAvg",
     "sum_over_time((max by (node) (photon_node_memory_total_bytes - "
     "photon_node_memory_available_bytes))[RANGE:STEP]) * STEPN / DAYN",
     Fold::kTimeAverage},
    {"node", "memoryTotalBytes",
     "max by (node) (max_over_time(photon_node_memory_total_bytes[RANGE]))", Fold::kMax},
    // The error rate of a node: the share of its agent's scrapes that failed.
    {"node", "agentDownRatio", "1 - avg by (node) (avg_over_time(up{job=\"photon-agent\"}[RANGE]))",
     Fold::kMean},
};

std::string Expand(std::string q, int64_t day_s, int64_t step_s) {
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t at = q.find(from); at != std::string::npos; at = q.find(from, at + to.size())) {
      q.replace(at, from.size(), to);
    }
  };
  // A millisecond short of the day: Prometheus 2 closes ranges at both ends, so a sample (or a
  // subquery step) at the day's start would count in two days; 3 leaves the start out.
  replace("RANGE", std::to_string(day_s * 1000 - 1) + "ms");
  replace("STEPN", std::to_string(step_s));
  replace("STEP", std::to_string(step_s) + "s");
  replace("DAYN", std::to_string(day_s));
  return q;
}

// Subject (the `label` of each series) → value of an instant query at `at`.
StatusOr<std::map<std::string, double>> Query(const std::string& base, const std::string& promql,
                                              const std::string& label, int64_t at) {
  PHOTON_ASSIGN_OR_RETURN(auto client, HttpClient::Create(base, ""));
  client.set_timeout(std::chrono::seconds(30));
  PHOTON_ASSIGN_OR_RETURN(auto r, client.Do("GET", "/api/v1/query?query=" + PercentEncode(promql) +
                                                       "&time=" + std::to_string(at)));
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || j.value("status", "") != "success") {
    return absl::UnavailableError("prometheus " + base + " answered " + std::to_string(r.status) +
                                  " to " + promql + ": " + r.body.substr(0, 300));
  }
  std::map<std::string, double> out;
  for (const auto& s : j["data"]["result"]) {
    const std::string subject = s["metric"].value(label, "");
    // A subject names a key of the store: a name the API could have made, no '/'.
    if (subject.empty() || subject.find('/') != std::string::npos || !s["value"].is_array() ||
        s["value"].size() != 2) {
      continue;
    }
    const double v = std::strtod(s["value"][1].get<std::string>().c_str(), nullptr);
    if (std::isfinite(v)) out[subject] = v;
  }
  return out;
}

int64_t MonthStart(int64_t t, const StatsOptions& o) {
  if (o.month_days > 0) {
    const int64_t len = o.month_days * o.day.count();
    return t / len * len;
  }
  std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  return timegm(&tm);
}

int64_t MonthEnd(int64_t start, const StatsOptions& o) {
  if (o.month_days > 0) return start + o.month_days * o.day.count();
  std::time_t tt = start;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  tm.tm_mon += 1;  // timegm normalises December + 1
  return timegm(&tm);
}

}  // namespace

StatsController::StatsController(store::Store* store, StatsOptions options)
    : store_(store), options_(std::move(options)) {}

StatsController::~StatsController() { Stop(); }

Status StatsController::Validate(const StatsOptions& o) {
  if (o.prometheus_url.empty()) return absl::OkStatus();
  if (o.prometheus_url.rfind("http://", 0) != 0 && o.prometheus_url.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError("prometheus_url: want http://HOST:PORT, not '" +
                                      o.prometheus_url + "'");
  }
  if (o.day.count() < 2) return absl::InvalidArgumentError("stats_day_s: at least 2");
  if (o.month_days < 0 || (o.month_days == 0 && o.day.count() != 86400)) {
    return absl::InvalidArgumentError(
        "stats_month_days: required (> 0) with a day other than 86400 s: calendar months are "
        "made of UTC days");
  }
  if (o.catchup_days < 1) return absl::InvalidArgumentError("stats_catchup_days: at least 1");
  return absl::OkStatus();
}

void StatsController::Start() {
  if (options_.prometheus_url.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void StatsController::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StatsController::Loop() {
  // A quarter of a day, at most a minute: a finished day is stored soon after its grace.
  const auto every =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(60), options_.day / 4);
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (leading_) {
      if (auto st = RunOnce(std::time(nullptr)); !st.ok()) {
        spdlog::warn("statistics: {} (retried in {} ms)", std::string(st.message()), every.count());
      }
    }
    lock.lock();
    cv_.wait_for(lock, every, [this] { return stop_; });
  }
}

Status StatsController::RunOnce(int64_t now_s) {
  const int64_t d = options_.day.count();
  // The last scrapes of a day reach Prometheus a little after it ends.
  const int64_t grace = std::min<int64_t>(300, d / 2);
  const int64_t finished = (now_s - grace) / d * d;  // every day ending by then is over
  const int64_t first = finished - options_.catchup_days * d;
  for (int64_t s = first; s < finished; s += d) PHOTON_RETURN_IF_ERROR(ComputeDay(s, s + d));
  for (int64_t m = MonthStart(first, options_); MonthEnd(m, options_) <= finished;
       m = MonthEnd(m, options_)) {
    PHOTON_RETURN_IF_ERROR(ComputeMonth(m, MonthEnd(m, options_)));
  }
  return absl::OkStatus();
}

Status StatsController::ComputeDay(int64_t start, int64_t end) {
  const std::string marker = MarkerKey("day", start);
  PHOTON_ASSIGN_OR_RETURN(auto done, store_->Range(marker));
  if (!done.kvs.empty()) return absl::OkStatus();
  const int64_t d = end - start;
  const int64_t step = std::max<int64_t>(1, d / 1440);          // a minute of a real day
  std::map<std::pair<std::string, std::string>, json> records;  // (kind, subject) → values
  for (const Figure& f : kFigures) {
    PHOTON_ASSIGN_OR_RETURN(auto values,
                            Query(options_.prometheus_url, Expand(f.promql, d, step), f.kind, end));
    for (const auto& [subject, v] : values) records[{f.kind, subject}][f.field] = v;
  }
  store::TxnRequest txn;
  txn.compares.push_back(Absent(marker));
  for (auto& [who, values] : records) {
    if (who.first == "namespace" && values.contains("cpuCoreSeconds")) {
      values["cpuCoresAvg"] = values["cpuCoreSeconds"].get<double>() / static_cast<double>(d);
    }
    json rec{{"period", "day"},         {"kind", who.first},   {"subject", who.second},
             {"start", Rfc3339(start)}, {"end", Rfc3339(end)}, {"values", values}};
    txn.success.push_back({.type = store::TxnOp::Type::kPut,
                           .key = RecordKey("day", who.first, who.second, start),
                           .value = rec.dump()});
  }
  json mark{{"records", records.size()}, {"computedAt", Rfc3339(std::time(nullptr))}};
  txn.success.push_back({.type = store::TxnOp::Type::kPut, .key = marker, .value = mark.dump()});
  PHOTON_ASSIGN_OR_RETURN(auto r, store_->Txn(txn));
  if (r.succeeded) {
    spdlog::info("statistics: day {} stored ({} records)", Rfc3339(start), records.size());
  }
  return absl::OkStatus();  // not succeeded: another server stored it first
}

Status StatsController::ComputeMonth(int64_t start, int64_t end) {
  const std::string marker = MarkerKey("month", start);
  PHOTON_ASSIGN_OR_RETURN(auto done, store_->Range(marker));
  if (!done.kvs.empty()) return absl::OkStatus();
  const double d = static_cast<double>(options_.day.count());
  const double len = static_cast<double>(end - start);
  std::map<std::string, Fold> folds;
  for (const Figure& f : kFigures) folds[f.field] = f.fold;
  folds["cpuCoresAvg"] = Fold::kTimeAverage;
  // Every day record of the month, by (kind, subject).
  std::map<std::pair<std::string, std::string>, std::vector<json>> days;
  for (const char* kind : {"namespace", "node"}) {
    const std::string prefix = std::string(kStatsPrefix) + "day/" + kind + "/";
    PHOTON_ASSIGN_OR_RETURN(auto all, store_->Range(prefix, {.end = store::PrefixEnd(prefix)}));
    for (const auto& kv : all.kvs) {
      const int64_t s = std::strtoll(kv.key.substr(kv.key.rfind('/') + 1).c_str(), nullptr, 10);
      if (s < start || s >= end) continue;
      json rec = json::parse(kv.value, nullptr, false);
      if (rec.is_object()) days[{kind, rec.value("subject", "")}].push_back(std::move(rec));
    }
  }
  store::TxnRequest txn;
  txn.compares.push_back(Absent(marker));
  for (const auto& [who, recs] : days) {
    json values = json::object();
    for (const auto& [field, fold] : folds) {
      double acc = 0;
      int n = 0;
      for (const auto& rec : recs) {
        if (!rec["values"].contains(field)) continue;
        const double v = rec["values"][field].get<double>();
        acc = fold == Fold::kMax ? (n ? std::max(acc, v) : v) : acc + v;
        ++n;
      }
      if (n == 0) continue;
      if (fold == Fold::kTimeAverage) acc = acc * d / len;  // days without data count as 0
      if (fold == Fold::kMean) acc /= n;
      values[field] = acc;
    }
    json rec{{"period", "month"},       {"kind", who.first},   {"subject", who.second},
             {"start", Rfc3339(start)}, {"end", Rfc3339(end)}, {"values", values},
             {"days", recs.size()}};
    txn.success.push_back({.type = store::TxnOp::Type::kPut,
                           .key = RecordKey("month", who.first, who.second, start),
                           .value = rec.dump()});
  }
  json mark{{"records", days.size()}, {"computedAt", Rfc3339(std::time(nullptr))}};
  txn.success.push_back({.type = store::TxnOp::Type::kPut, .key = marker, .value = mark.dump()});
  PHOTON_ASSIGN_OR_RETURN(auto r, store_->Txn(txn));
  if (r.succeeded) {
    spdlog::info("statistics: month {} stored ({} records)", Rfc3339(start), days.size());
  }
  return absl::OkStatus();
}

HttpResponse StatsController::Serve(const HttpRequest& req, const Principal& who) {
  static const std::set<std::string> kParams = {"period", "kind", "subject", "from", "to"};
  for (const auto& [k, v] : req.query) {
    if (!kParams.count(k)) {
      return ErrorResponse(
          absl::InvalidArgumentError(k + ": unknown parameter (period, kind, subject, from, to)"));
    }
  }
  auto param = [&](const std::string& k, const std::string& def) {
    auto it = req.query.find(k);
    return it == req.query.end() ? def : it->second;
  };
  const std::string period = param("period", "day"), kind = param("kind", "namespace");
  const std::string subject = param("subject", "");
  if (period != "day" && period != "month") {
    return ErrorResponse(absl::InvalidArgumentError("period: day or month, not '" + period + "'"));
  }
  if (kind != "namespace" && kind != "node") {
    return ErrorResponse(absl::InvalidArgumentError("kind: namespace or node, not '" + kind + "'"));
  }
  if (subject.find('/') != std::string::npos) {
    return ErrorResponse(absl::InvalidArgumentError("subject: a name, not '" + subject + "'"));
  }
  int64_t bounds[2] = {0, INT64_MAX};
  const char* names[2] = {"from", "to"};
  for (int i = 0; i < 2; ++i) {
    const std::string v = param(names[i], "");
    if (v.empty()) continue;
    const int64_t ms = ParseMs(v);
    if (ms <= 0) {
      return ErrorResponse(absl::InvalidArgumentError(std::string(names[i]) +
                                                      ": an RFC 3339 UTC time, not '" + v + "'"));
    }
    bounds[i] = ms / 1000;
  }
  // Nodes are the cluster's; a namespace's figures are for who may list its instances.
  std::vector<std::string> readable;
  if (kind == "node") {
    if (!who.Allowed(Verb::kList, "nodes", "system")) {
      return ErrorResponse(
          absl::PermissionDeniedError("'" + who.name + "' may not read the statistics of nodes"));
    }
  } else if (!subject.empty()) {
    if (!who.Allowed(Verb::kList, "computeinstances", subject)) {
      return ErrorResponse(absl::PermissionDeniedError(
          "'" + who.name + "' may not read the statistics of namespace '" + subject + "'"));
    }
  } else {
    readable = who.ReadableNamespaces("computeinstances");
  }
  const bool all = kind == "node" || !subject.empty() ||
                   std::find(readable.begin(), readable.end(), "*") != readable.end();
  const std::string prefix = std::string(kStatsPrefix) + period + "/" + kind + "/" +
                             (subject.empty() ? "" : subject + "/");
  auto got = store_->Range(prefix, {.end = store::PrefixEnd(prefix)});
  if (!got.ok()) return ErrorResponse(got.status());
  std::string body = "{\"items\":[";
  bool first = true;
  for (const auto& kv : got->kvs) {
    const std::string rest = kv.key.substr(prefix.size());
    const std::string ns = rest.substr(0, rest.find('/'));
    if (!all && std::find(readable.begin(), readable.end(), ns) == readable.end()) continue;
    const int64_t s = std::strtoll(kv.key.substr(kv.key.rfind('/') + 1).c_str(), nullptr, 10);
    if (s < bounds[0] || s >= bounds[1]) continue;
    if (!first) body += ',';
    first = false;
    body += kv.value;
  }
  return HttpResponse::Json(200, body + "]}");
}

}  // namespace photon::server::opsengine
