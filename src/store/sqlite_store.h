// SqliteStore: the embedded Store backend, one SQLite file (WAL, synchronous=FULL) holding an
// MVCC history in the manner of kine.
//
// Layout: `history` has one row per (key, revision) written, tombstones included, so a read at
// a past revision picks each key's newest row at or below it; `current` holds the live value
// of each key so latest reads and compares never scan history; `meta` holds the store
// revision and the compaction point; `leases` the granted leases.
//
// Writes (Put/Delete/Txn/Compact/lease grant and revoke) go through one writer thread that
// applies a batch of queued requests in one SQLite transaction and one fsync, evaluating each
// request's compares after the previous requests of the batch, so the result equals serial
// execution. A request is acknowledged only after its batch is durable. Events of a committed
// batch are then fanned out in memory (WatchHub); reads use a pool of reader connections.
// Lease expiry is tracked in memory (granted leases get their full TTL again after a restart,
// as in etcd); a sweeper thread revokes expired leases through the normal write path.
//
// Compaction follows etcd: Compact(c) keeps revision c readable and fails reads and watches
// below c with OUT_OF_RANGE.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace photon::store {

class SqliteStore final : public Store {
 public:
  struct Options {
    // Most requests one transaction (and one fsync) may carry.
    int max_batch = 256;
    // Optional (not owned): commit latency, batch sizes, write requests.
    MetricsRegistry* metrics = nullptr;
    // Under load (the previous transaction carried several requests) the writer waits up to
    // this long for the next one to fill up before committing: one commit (one fsync, one
    // wake-up of the writer) then carries more requests. A lone writer never waits.
    int group_commit_wait_us = 300;
  };

  // Opens or creates the database file at path (its directory is created if missing).
  static StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                     const Options& options);
  ~SqliteStore() override;

  StatusOr<RangeResult> Range(const std::string& key, const RangeOptions& options) override;
  StatusOr<int64_t> Put(const std::string& key, const std::string& value, int64_t lease) override;
  StatusOr<int64_t> Delete(const std::string& key, const std::string& end) override;
  StatusOr<TxnResult> Txn(const TxnRequest& txn) override;
  StatusOr<LogPage> ReadLogPage(const std::string& stream, const LogPageOptions& options) override;
  StatusOr<int64_t> TrimLog(const std::string& stream, const LogRetention& retention) override;
  void TxnAsync(TxnRequest txn, TxnCallback done) override;
  StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& key, const std::string& end,
                                               int64_t start_revision, WatchCallback on_events,
                                               WatchErrorCallback on_error) override;
  Status Compact(int64_t revision) override;
  StatusOr<int64_t> CurrentRevision() override;
  StatusOr<int64_t> CompactedRevision() override;
  StatusOr<int64_t> GrantLease(int64_t ttl_seconds) override;
  Status KeepAlive(int64_t lease) override;
  Status RevokeLease(int64_t lease) override;
  StatusOr<int64_t> LeaseTimeToLive(int64_t lease) override;
  std::string Backend() const override { return "sqlite"; }

  class Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace photon::store
