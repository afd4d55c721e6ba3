// SQL of SqliteStore: schema, latest and past-revision reads, history scans. Functions work on
// the connection they are given and are as thread-safe as that connection (one thread).
#include "store/sqlite_queries.h"

#include <algorithm>
#include <set>

#include "store/key_range.h"

namespace photon::store::sqlite {

// log holds the append-only records (TxnOp::kAppend): rowid order is append order, `at` the
// append's wall clock (Unix ns; sqlite_log.cc adds it to older files), and no index on
// stream: the few streams there are (the audit trail) are read from the end and trimmed from
// the start.
// history.sub orders the changes of one revision (a txn) as they were made, for watch replay.
// (key, rev) is unique by construction (a txn writes a key at most once); history_key carries
// `deleted` so that counting the keys alive at a past revision reads the index alone.
// Plain rowid tables with unique indexes rather than WITHOUT ROWID: values (whole resource
// objects) can be kilobytes, which WITHOUT ROWID tables store badly.
const char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  revision INTEGER NOT NULL,
  compacted INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (0, 1, 0);
CREATE TABLE IF NOT EXISTS history (
  key BLOB NOT NULL,
  rev INTEGER NOT NULL,
  sub INTEGER NOT NULL,
  create_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  value BLOB NOT NULL,
  lease INTEGER NOT NULL,
  deleted INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS history_key ON history (key, rev, deleted);
CREATE INDEX IF NOT EXISTS history_rev ON history (rev, sub);
CREATE TABLE IF NOT EXISTS current (
  key BLOB NOT NULL UNIQUE,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  value BLOB NOT NULL,
  lease INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS current_lease ON current (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS log (
  seq INTEGER PRIMARY KEY,
  stream BLOB NOT NULL,
  value BLOB NOT NULL,
  at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS leases (
  id INTEGER PRIMARY KEY,
  ttl INTEGER NOT NULL);
)sql";

Status CompactedError() {
  return absl::OutOfRangeError("mvcc: required revision has been compacted");
}
Status FutureRevisionError() {
  return absl::OutOfRangeError("mvcc: required revision is a future revision");
}
Status LeaseNotFoundError() { return absl::NotFoundError("requested lease not found"); }

std::string KeyCondition(const std::string& end) {
  if (end.empty()) return "key = ?1";
  if (IsOpenEnd(end)) return "key >= ?1";
  return "key >= ?1 AND key < ?2";
}

void BindKeyRange(SqliteStmt& stmt, const std::string& key, const std::string& end) {
  stmt.BindBlob(1, key);
  if (!end.empty() && !IsOpenEnd(end)) stmt.BindBlob(2, end);
}

bool CompareHolds(const Compare& compare, const CurrentRow& row) {
  // As etcd: a value compare against a missing key is false whatever the operator.
  if (!row.exists && compare.target == Compare::Target::kValue) return false;
  auto three_way = [](int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); };
  int order = 0;
  switch (compare.target) {
    case Compare::Target::kVersion:
      order = three_way(row.version, compare.number);
      break;
    case Compare::Target::kCreateRevision:
      order = three_way(row.create_revision, compare.number);
      break;
    case Compare::Target::kModRevision:
      order = three_way(row.mod_revision, compare.number);
      break;
    case Compare::Target::kValue: {
      int c = row.value.compare(compare.value);
      order = c < 0 ? -1 : (c > 0 ? 1 : 0);
      break;
    }
  }
  switch (compare.op) {
    case Compare::Op::kEqual:
      return order == 0;
    case Compare::Op::kNotEqual:
      return order != 0;
    case Compare::Op::kLess:
      return order < 0;
    case Compare::Op::kGreater:
      return order > 0;
  }
  return false;
}

Status ValidateTxn(const TxnRequest& txn) {
  if (std::max({txn.compares.size(), txn.success.size(), txn.failure.size()}) > kMaxTxnOps) {
    return absl::InvalidArgumentError("too many operations in txn request");
  }
  for (const auto& compare : txn.compares) {
    if (compare.key.empty()) return absl::InvalidArgumentError("key is not provided");
  }
  for (const auto* ops : {&txn.success, &txn.failure}) {
    std::set<std::string> put_keys;
    for (const auto& op : *ops) {
      if (op.key.empty()) return absl::InvalidArgumentError("key is not provided");
      if (op.type != TxnOp::Type::kPut) continue;
      bool deleted_too = std::any_of(ops->begin(), ops->end(), [&](const TxnOp& other) {
        return other.type == TxnOp::Type::kDelete && InRange(op.key, other.key, other.end);
      });
      if (!put_keys.insert(op.key).second || deleted_too) {
        return absl::InvalidArgumentError("duplicate key given in txn request");
      }
    }
  }
  return absl::OkStatus();
}

StatusOr<RangeResult> RangeLatest(SqliteDb& db, const std::string& key, const std::string& end,
                                  int64_t limit, bool keys_only, bool count_only) {
  RangeResult result;
  if (!count_only) {
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt, db.Prepare(std::string("SELECT key, create_rev, mod_rev, version, ") +
                                    (keys_only ? "x''" : "value") + ", lease FROM current WHERE " +
                                    KeyCondition(end) + " ORDER BY key LIMIT ?3"));
    BindKeyRange(stmt, key, end);
    stmt.BindInt(3, limit > 0 ? limit : -1);
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      KeyValue kv;
      kv.key = stmt.ColumnBlob(0);
      kv.create_revision = stmt.ColumnInt(1);
      kv.mod_revision = stmt.ColumnInt(2);
      kv.version = stmt.ColumnInt(3);
      kv.value = stmt.ColumnBlob(4);
      kv.lease = stmt.ColumnInt(5);
      result.kvs.push_back(std::move(kv));
    }
  }
  bool cut = limit > 0 && static_cast<int64_t>(result.kvs.size()) == limit;
  if (count_only || cut) {
    PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                            db.Prepare("SELECT COUNT(*) FROM current WHERE " + KeyCondition(end)));
    BindKeyRange(stmt, key, end);
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    result.count = row ? stmt.ColumnInt(0) : 0;
  } else {
    result.count = static_cast<int64_t>(result.kvs.size());
  }
  result.more = !count_only && result.count > static_cast<int64_t>(result.kvs.size());
  return result;
}

StatusOr<RangeResult> RangeAt(SqliteDb& db, const std::string& key, const std::string& end,
                              int64_t revision, int64_t limit, bool keys_only, bool count_only) {
  RangeResult result;
  if (!count_only) {
    // SQLite takes the bare columns (HAVING's too) from the row holding MAX(rev); LIMIT lets a
    // page stop early instead of walking the rest of the range.
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        db.Prepare(std::string("SELECT key, create_rev, MAX(rev), version, ") +
                   (keys_only ? "x''" : "value") + ", lease, deleted FROM history WHERE " +
                   KeyCondition(end) +
                   " AND rev <= ?3 GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?4"));
    BindKeyRange(stmt, key, end);
    stmt.BindInt(3, revision);
    stmt.BindInt(4, limit > 0 ? limit : -1);
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      KeyValue kv;
      kv.key = stmt.ColumnBlob(0);
      kv.create_revision = stmt.ColumnInt(1);
      kv.mod_revision = stmt.ColumnInt(2);
      kv.version = stmt.ColumnInt(3);
      kv.value = stmt.ColumnBlob(4);
      kv.lease = stmt.ColumnInt(5);
      result.kvs.push_back(std::move(kv));
    }
  }
  bool cut = limit > 0 && static_cast<int64_t>(result.kvs.size()) == limit;
  if (count_only || cut) {
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        db.Prepare("SELECT COUNT(*) FROM (SELECT MAX(rev), deleted FROM history WHERE " +
                   KeyCondition(end) + " AND rev <= ?3 GROUP BY key) WHERE deleted = 0"));
    BindKeyRange(stmt, key, end);
    stmt.BindInt(3, revision);
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    result.count = row ? stmt.ColumnInt(0) : 0;
  } else {
    result.count = static_cast<int64_t>(result.kvs.size());
  }
  result.more = !count_only && result.count > static_cast<int64_t>(result.kvs.size());
  return result;
}

StatusOr<MetaRow> ReadMeta(SqliteDb& db) {
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                          db.Prepare("SELECT revision, compacted FROM meta WHERE id = 0"));
  PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::DataLossError("store: meta row missing");
  return MetaRow{stmt.ColumnInt(0), stmt.ColumnInt(1)};
}

Status RunSql(SqliteDb& db, const std::string& sql) {
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, db.Prepare(sql));
  return stmt.Run();
}

StatusOr<std::vector<WatchEvent>> HistoryEvents(SqliteDb& db, const std::string& key,
                                                const std::string& end, int64_t from, int64_t to) {
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      db.Prepare("SELECT key, create_rev, rev, version, value, lease, deleted FROM history "
                 "WHERE " +
                 KeyCondition(end) + " AND rev >= ?3 AND rev <= ?4 ORDER BY rev, sub"));
  BindKeyRange(stmt, key, end);
  stmt.BindInt(3, from);
  stmt.BindInt(4, to);
  std::vector<WatchEvent> events;
  for (;;) {
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    WatchEvent event;
    event.kv.key = stmt.ColumnBlob(0);
    event.kv.mod_revision = stmt.ColumnInt(2);
    if (stmt.ColumnInt(6) != 0) {
      event.type = WatchEvent::Type::kDelete;
    } else {
      event.type = WatchEvent::Type::kPut;
      event.kv.create_revision = stmt.ColumnInt(1);
      event.kv.version = stmt.ColumnInt(3);
      event.kv.value = stmt.ColumnBlob(4);
      event.kv.lease = stmt.ColumnInt(5);
    }
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace photon::store::sqlite
