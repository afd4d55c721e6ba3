// The SQL side of SqliteStore: schema, reads at the latest or a past revision, history scans for
// watch replay, and the compare rule of txns. Each function works on the connection it is
// given, so it is as thread-safe as that connection (used by one thread at a time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/sqlite_db.h"
#include "store/store.h"

namespace photon::store::sqlite {

// Tables: meta (revision, compaction point), history (one row per key and revision written,
// tombstones included), current (live keys only), leases (id, ttl).
extern const char kSchema[];

Status CompactedError();
Status FutureRevisionError();
Status LeaseNotFoundError();

// SQL condition over column `key` for [key, end) in etcd's convention; binds ?1 (and ?2).
std::string KeyCondition(const std::string& end);
void BindKeyRange(SqliteStmt& stmt, const std::string& key, const std::string& end);

// A key's live row; all zeros when it does not exist.
struct CurrentRow {
  bool exists = false;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string value;
};
bool CompareHolds(const Compare& compare, const CurrentRow& row);
// etcd's request checks, on both branches whatever the compares say: no empty key, at most
// kMaxTxnOps per part, and no key written twice in one branch (by two puts, or by a put inside
// a delete range). INVALID_ARGUMENT otherwise.
inline constexpr size_t kMaxTxnOps = 128;
Status ValidateTxn(const TxnRequest& txn);

// Latest values, from `current`. On the writer connection inside its transaction a txn's range
// sees the txn's own earlier writes.
StatusOr<RangeResult> RangeLatest(SqliteDb& db, const std::string& key, const std::string& end,
                                  int64_t limit, bool keys_only, bool count_only);
// Values as of a past revision: each key's newest history row at or below it, unless that row
// is a tombstone.
StatusOr<RangeResult> RangeAt(SqliteDb& db, const std::string& key, const std::string& end,
                              int64_t revision, int64_t limit, bool keys_only, bool count_only);

struct MetaRow {
  int64_t revision = 0;
  int64_t compacted = 0;
};
StatusOr<MetaRow> ReadMeta(SqliteDb& db);

// Runs a parameterless statement through the statement cache.
Status RunSql(SqliteDb& db, const std::string& sql);

// Every change of [key, end) with from <= revision <= to, in revision order, as watch events.
StatusOr<std::vector<WatchEvent>> HistoryEvents(SqliteDb& db, const std::string& key,
                                                const std::string& end, int64_t from, int64_t to);

}  // namespace photon::store::sqlite
