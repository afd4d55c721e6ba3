// Query counters (by type and rcode) and a latency histogram, kept per worker thread so the
// query path never contends on a shared cache line; /metrics sums the slots when scraped.
// Thread-safety: a ThreadStats made with shared=false has a single writer (its thread) and
// uses plain load+store increments; shared=true (TCP connections) uses atomic adds. Render()
// may run concurrently from any thread and reads with relaxed atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace photon::flashdns {

class ThreadStats {
 public:
  explicit ThreadStats(bool shared = false) : shared_(shared) {}
  static constexpr int kTypes = 13;  // A AAAA NS SOA CNAME MX TXT SRV PTR CAA ANY AXFR other
  static constexpr int kRcodes = 7;  // NOERROR FORMERR SERVFAIL NXDOMAIN NOTIMP REFUSED other
  static constexpr int kBuckets = 12;

  // One query answered (or dropped: rcode 0xFF is not counted by type/rcode).
  void Record(uint16_t qtype, uint8_t rcode, bool truncated, int64_t nanos);
  void RecordDropped() { Add(dropped_, 1); }
  // A UDP response that response-rate limiting withheld, or sent truncated (slipped).
  void RecordRrlDropped() { Add(rrl_dropped_, 1); }
  void RecordRrlSlipped() { Add(rrl_slipped_, 1); }

 private:
  friend class QueryStats;
  void Add(std::atomic<uint64_t>& a, uint64_t v) {
    if (shared_) {
      a.fetch_add(v, std::memory_order_relaxed);
    } else {
      a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }
  }
  const bool shared_;
  alignas(64) std::array<std::atomic<uint64_t>, kTypes * kRcodes> counts_{};
  std::array<std::atomic<uint64_t>, kBuckets + 1> buckets_{};
  std::atomic<uint64_t> latency_sum_ns_{0};
  std::atomic<uint64_t> truncated_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> rrl_dropped_{0};
  std::atomic<uint64_t> rrl_slipped_{0};
};

class QueryStats {
 public:
  // A new slot for one worker thread; lives as long as the QueryStats.
  ThreadStats* NewThread(bool shared = false);
  // Prometheus text for flashdns_queries_total, flashdns_query_duration_seconds, etc.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<ThreadStats>> threads_;
};

}  // namespace photon::flashdns
