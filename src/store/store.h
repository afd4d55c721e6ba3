// The state store ("chainfire"): a key-value store with etcd v3 semantics.
//
// Every write gets a new, store-wide revision. Each key keeps create_revision, mod_revision and
// version (number of writes since creation). Reads can be served at a past revision until it is
// compacted. Watches deliver every change of a key range from a start revision, in revision
// order, without gaps; a start revision below the compaction point fails with OUT_OF_RANGE so
// the caller relists. As in etcd, Compact(c) keeps revision c itself readable and watchable:
// after relisting at revision R, watch from R + 1. Leases attach keys to a TTL: when the lease
// expires or is revoked, its keys are deleted (a delete event each).
//
// Backends: SqliteStore (embedded default) and EtcdStore (a real etcd v3 cluster). Both pass the
// same contract tests (tests/store/store_contract_test.cc).
//
// Thread-safety: every method may be called from any thread concurrently. Watch callbacks run on
// a store-owned thread; they must not block for long and must not call Cancel() on their own
// handle from inside the callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon {
class MetricsRegistry;
}  // namespace photon

namespace photon::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct RangeOptions {
  // Exclusive end of the range; empty means the single key. PrefixEnd(p) ranges over prefix p.
  std::string end;
  int64_t revision = 0;  // 0 = latest; a compacted revision gives OUT_OF_RANGE
  int64_t limit = 0;     // 0 = no limit
  bool keys_only = false;
  bool count_only = false;
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  int64_t count = 0;          // keys in the range (ignoring limit)
  bool more = false;          // limit cut the result
  int64_t revision = 0;       // revision the read was served at (options.revision when set)
};

struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kModRevision;
  Op op = Op::kEqual;
  int64_t number = 0;  // for the revision/version targets; a missing key has all zeros
  std::string value;   // for kValue
};

// kAppend adds `value` as a record to the append-only log named `key` (see ReadLog): for
// records that are written once and never changed or watched, such as the audit trail, which
// thus commits with the change it describes. On SQLite a record is one appended row, about a
// fifth of the work of a put, which keeps every key's versions and indexes.
struct TxnOp {
  enum class Type { kPut, kDelete, kRange, kAppend };
  Type type = Type::kPut;
  std::string key;
  std::string value;  // kPut, kAppend
  std::string end;    // kDelete / kRange: exclusive end, empty = single key
  int64_t lease = 0;  // kPut
  int64_t limit = 0;  // kRange
};

// One page of an append-only log, read backwards from its newest record.
struct LogPageOptions {
  int64_t limit = 0;   // records at most; 0 = all that are left
  std::string before;  // LogPage::next of the previous page; empty = start at the newest
};

struct LogPage {
  std::vector<std::string> records;  // oldest first
  // Where the older records continue (pass as `before`); empty when none are left. Records
  // appended meanwhile do not shift it: successive pages cover the log exactly once.
  std::string next;
};

// What TrimLog removes from a log: its oldest records up to the first one that is both
// within the newest `max_records` and appended at or after `appended_before`. (A record's time
// is the backend's wall clock when it was appended; the log is treated as ordered by it.)
struct LogRetention {
  int64_t max_records = 0;                                  // 0 = no count limit
  std::chrono::system_clock::time_point appended_before{};  // the epoch = no age limit
};

struct TxnRequest {
  std::vector<Compare> compares;  // all must hold for `success` to run, else `failure` runs
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;             // revision after the txn (unchanged if it wrote nothing)
  std::vector<RangeResult> ranges;  // one per kRange op that ran, in order
  int64_t deleted = 0;              // keys deleted by the ops that ran
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for kDelete: key and mod_revision (the delete's revision) only
};

// Cancels the watch when destroyed. After Cancel() returns no callback is running or will run.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
  virtual void Cancel() = 0;
};

using WatchCallback = std::function<void(const std::vector<WatchEvent>& events)>;
// Called at most once when a watch ends by itself (store closed, compacted while lagging, lost
// connection); no event follows it.
using WatchErrorCallback = std::function<void(const Status& status)>;

class Store {
 public:
  virtual ~Store() = default;

  virtual StatusOr<RangeResult> Range(const std::string& key, const RangeOptions& options = {}) = 0;
  // Returns the revision of the write.
  virtual StatusOr<int64_t> Put(const std::string& key, const std::string& value,
                                int64_t lease = 0) = 0;
  // Deletes key, or [key, end) when end is set. Returns the number of keys deleted.
  virtual StatusOr<int64_t> Delete(const std::string& key, const std::string& end = "") = 0;
  virtual StatusOr<TxnResult> Txn(const TxnRequest& txn) = 0;
  // The newest `limit` records of an append-only log (0 = all of them), oldest first.
  // Records are not keys: no revision, no watch event, never compacted away (TrimLog removes
  // them). (The etcd backend keeps them as keys under /_log/STREAM/, which a range over
  // everything shows.)
  StatusOr<std::vector<std::string>> ReadLog(const std::string& stream, int64_t limit);
  // A page of the log; INVALID_ARGUMENT for a `before` that is not a LogPage::next.
  virtual StatusOr<LogPage> ReadLogPage(const std::string& stream,
                                        const LogPageOptions& options) = 0;
  // Removes old records (see LogRetention) in bounded steps, so other writes interleave.
  // Returns how many went. Takes no revision and makes no watch event on SQLite (on etcd the
  // records are keys, so their deletes do).
  virtual StatusOr<int64_t> TrimLog(const std::string& stream, const LogRetention& retention) = 0;
  // Txn without a thread waiting for it: `done` gets the outcome exactly once, on any thread,
  // possibly before this returns. SqliteStore calls it on its completion thread right after
  // the commit, in commit order (keep `done` short: later answers wait behind it), so a
  // server with many writes in flight needs no thread parked per write. The default runs
  // Txn inline.
  using TxnCallback = std::function<void(StatusOr<TxnResult>)>;
  virtual void TxnAsync(TxnRequest txn, TxnCallback done) { done(Txn(txn)); }

  // Watches [key, end) (end empty = the single key) from start_revision (inclusive; 0 = changes
  // after now). Events arrive in revision order, batched per revision or more.
  virtual StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& key,
                                                       const std::string& end,
                                                       int64_t start_revision,
                                                       WatchCallback on_events,
                                                       WatchErrorCallback on_error) = 0;

  // Drops history below revision (revision itself stays readable, as in etcd); reads and
  // watches below it then give OUT_OF_RANGE, as does compacting at or below the current
  // compaction point or above the current revision.
  virtual Status Compact(int64_t revision) = 0;
  virtual StatusOr<int64_t> CurrentRevision() = 0;
  virtual StatusOr<int64_t> CompactedRevision() = 0;

  // Leases. GrantLease returns the lease id; keys put with it go when it expires.
  virtual StatusOr<int64_t> GrantLease(int64_t ttl_seconds) = 0;
  virtual Status KeepAlive(int64_t lease) = 0;                   // NOT_FOUND once expired
  virtual Status RevokeLease(int64_t lease) = 0;                 // deletes its keys
  virtual StatusOr<int64_t> LeaseTimeToLive(int64_t lease) = 0;  // seconds left; NOT_FOUND if gone

  // Name for logs and metrics: "sqlite" or "etcd".
  virtual std::string Backend() const = 0;
};

// The smallest key greater than every key starting with prefix ("" → "\0" meaning everything
// from key, as in etcd).
std::string PrefixEnd(const std::string& prefix);

struct StoreOptions {
  // "sqlite" (file DATA_DIR/state.db) or "etcd://host:port[,host:port...]".
  std::string spec = "sqlite";
  std::string data_dir;
  // SQLite: most write requests one transaction (one fsync) carries; requests queued while a
  // commit runs share the next one.
  int group_commit_max_batch = 256;
  // Optional, not owned, must outlive the store: where the backend declares its metrics
  // (photon_store_*). Null = no metrics.
  MetricsRegistry* metrics = nullptr;
};

StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

}  // namespace photon::store
