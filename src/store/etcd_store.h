// EtcdStore: the Store backend over a real etcd v3 cluster, spoken to with gRPC (the KV, Watch
// and Lease services of etcd's API; the proto subset lives in src/store/etcd/).
//
// Endpoints are tried in order: a call that finds its endpoint UNAVAILABLE moves on to the next
// one and later calls stay there. Every Watch() opens its own bidirectional Watch stream and a
// thread that reads it and runs the callbacks; when the stream's member goes away, the watch
// resumes on another member from the revision after its last event (for up to 30 s, then it
// ends with UNAVAILABLE), so the caller sees neither a gap nor an error. Revisions, compaction and
// lease rules are etcd's own (the SQLite backend copies them): after Compact(c), revision c stays
// readable and reads and watches below c fail with OUT_OF_RANGE.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace photon::store {

class EtcdStore final : public Store {
 public:
  // endpoints: "host:port" (an "http://" prefix is accepted). Fails when none answers.
  static StatusOr<std::unique_ptr<EtcdStore>> Open(const std::vector<std::string>& endpoints);
  ~EtcdStore() override;

  StatusOr<RangeResult> Range(const std::string& key, const RangeOptions& options) override;
  StatusOr<int64_t> Put(const std::string& key, const std::string& value, int64_t lease) override;
  StatusOr<int64_t> Delete(const std::string& key, const std::string& end) override;
  StatusOr<TxnResult> Txn(const TxnRequest& txn) override;
  void TxnAsync(TxnRequest txn, TxnCallback done) override;
  StatusOr<LogPage> ReadLogPage(const std::string& stream, const LogPageOptions& options) override;
  StatusOr<int64_t> TrimLog(const std::string& stream, const LogRetention& retention) override;
  StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& key, const std::string& end,
                                               int64_t start_revision, WatchCallback on_events,
                                               WatchErrorCallback on_error) override;
  Status Compact(int64_t revision) override;
  StatusOr<int64_t> CurrentRevision() override;
  // etcd has no call for it: found by probing reads at past revisions (a binary search).
  StatusOr<int64_t> CompactedRevision() override;
  StatusOr<int64_t> GrantLease(int64_t ttl_seconds) override;
  Status KeepAlive(int64_t lease) override;
  Status RevokeLease(int64_t lease) override;
  StatusOr<int64_t> LeaseTimeToLive(int64_t lease) override;
  std::string Backend() const override { return "etcd"; }

  class Impl;

 private:
  explicit EtcdStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace photon::store
