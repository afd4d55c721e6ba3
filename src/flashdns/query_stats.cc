// Per-thread query statistics; see query_stats.h.
#include "flashdns/query_stats.h"

#include <cstdio>

#include "flashdns/wire.h"

namespace photon::flashdns {
namespace {

constexpr uint16_t kTypeOrder[ThreadStats::kTypes - 1] = {
    kTypeA,   kTypeAaaa, kTypeNs,  kTypeSoa, kTypeCname, kTypeMx,
    kTypeTxt, kTypeSrv,  kTypePtr, kTypeCaa, kTypeAny,   kTypeAxfr};
const char* const kRcodeNames[ThreadStats::kRcodes] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                                       "NOTIMP",  "REFUSED", "other"};
// Upper bounds in seconds: 10 µs .. 100 ms, then +Inf.
constexpr double kBounds[ThreadStats::kBuckets] = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                                   1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 1e-1};

int TypeIndex(uint16_t qtype) {
  for (int i = 0; i < ThreadStats::kTypes - 1; ++i) {
    if (kTypeOrder[i] == qtype) return i;
  }
  return ThreadStats::kTypes - 1;
}

}  // namespace

void ThreadStats::Record(uint16_t qtype, uint8_t rcode, bool truncated, int64_t nanos) {
  int r = rcode < kRcodes - 1 ? rcode : kRcodes - 1;
  Add(counts_[TypeIndex(qtype) * kRcodes + r], 1);
  double seconds = static_cast<double>(nanos) * 1e-9;
  int b = 0;
  while (b < kBuckets && seconds > kBounds[b]) ++b;
  Add(buckets_[b], 1);
  Add(latency_sum_ns_, static_cast<uint64_t>(nanos < 0 ? 0 : nanos));
  if (truncated) Add(truncated_, 1);
}

ThreadStats* QueryStats::NewThread(bool shared) {
  std::lock_guard<std::mutex> lock(mu_);
  threads_.push_back(std::make_unique<ThreadStats>(shared));
  return threads_.back().get();
}

std::string QueryStats::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t counts[ThreadStats::kTypes * ThreadStats::kRcodes] = {};
  uint64_t buckets[ThreadStats::kBuckets + 1] = {};
  uint64_t sum_ns = 0, truncated = 0, dropped = 0, rrl_dropped = 0, rrl_slipped = 0;
  for (const auto& t : threads_) {
    for (size_t i = 0; i < t->counts_.size(); ++i)
      counts[i] += t->counts_[i].load(std::memory_order_relaxed);
    for (size_t i = 0; i < t->buckets_.size(); ++i)
      buckets[i] += t->buckets_[i].load(std::memory_order_relaxed);
    sum_ns += t->latency_sum_ns_.load(std::memory_order_relaxed);
    truncated += t->truncated_.load(std::memory_order_relaxed);
    dropped += t->dropped_.load(std::memory_order_relaxed);
    rrl_dropped += t->rrl_dropped_.load(std::memory_order_relaxed);
    rrl_slipped += t->rrl_slipped_.load(std::memory_order_relaxed);
  }
  std::string out;
  char line[256];
  out += "# HELP flashdns_queries_total DNS queries answered, by query type and rcode.\n";
  out += "# TYPE flashdns_queries_total counter\n";
  uint64_t total = 0;
  for (int t = 0; t < ThreadStats::kTypes; ++t) {
    std::string type = t < ThreadStats::kTypes - 1 ? TypeToText(kTypeOrder[t]) : "other";
    for (int r = 0; r < ThreadStats::kRcodes; ++r) {
      uint64_t v = counts[t * ThreadStats::kRcodes + r];
      total += v;
      if (v == 0) continue;
      snprintf(line, sizeof(line), "flashdns_queries_total{qtype=\"%s\",rcode=\"%s\"} %llu\n",
               type.c_str(), kRcodeNames[r], static_cast<unsigned long long>(v));
      out += line;
    }
  }
  out += "# HELP flashdns_query_duration_seconds Time from receiving a query to its answer.\n";
  out += "# TYPE flashdns_query_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (int b = 0; b <= ThreadStats::kBuckets; ++b) {
    cumulative += buckets[b];
    if (b < ThreadStats::kBuckets) {
      snprintf(line, sizeof(line), "flashdns_query_duration_seconds_bucket{le=\"%g\"} %llu\n",
               kBounds[b], static_cast<unsigned long long>(cumulative));
    } else {
      snprintf(line, sizeof(line), "flashdns_query_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
               static_cast<unsigned long long>(cumulative));
    }
    out += line;
  }
  snprintf(line, sizeof(line), "flashdns_query_duration_seconds_sum %.9f\n",
           static_cast<double>(sum_ns) * 1e-9);
  out += line;
  snprintf(line, sizeof(line), "flashdns_query_duration_seconds_count %llu\n",
           static_cast<unsigned long long>(total));
  out += line;
  out += "# HELP flashdns_truncated_total Responses sent with TC set.\n";
  out += "# TYPE flashdns_truncated_total counter\n";
  out += "flashdns_truncated_total " + std::to_string(truncated) + "\n";
  out += "# HELP flashdns_dropped_total Packets dropped unanswered (responses, runts).\n";
  out += "# TYPE flashdns_dropped_total counter\n";
  out += "flashdns_dropped_total " + std::to_string(dropped) + "\n";
  out += "# HELP flashdns_rrl_dropped_total UDP responses withheld by response-rate limiting.\n";
  out += "# TYPE flashdns_rrl_dropped_total counter\n";
  out += "flashdns_rrl_dropped_total " + std::to_string(rrl_dropped) + "\n";
  out += "# HELP flashdns_rrl_slipped_total UDP responses rate-limited to a truncated reply.\n";
  out += "# TYPE flashdns_rrl_slipped_total counter\n";
  out += "flashdns_rrl_slipped_total " + std::to_string(rrl_slipped) + "\n";
  return out;
}

}  // namespace photon::flashdns
