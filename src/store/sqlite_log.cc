// SQL of SqliteStore's append-only logs. As thread-safe as the connection given (one thread).
#include "store/sqlite_log.h"

#include <algorithm>
#include <limits>

namespace photon::store::sqlite {

Status MigrateLogTime(SqliteDb& db, int64_t now_nanos) {
  {
    PHOTON_ASSIGN_OR_RETURN(SqliteStmt columns,
                            db.Prepare("SELECT name FROM pragma_table_info('log')"));
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, columns.Step());
      if (!row) break;
      if (columns.ColumnBlob(0) == "at") return absl::OkStatus();
    }
  }
  PHOTON_RETURN_IF_ERROR(db.Exec("ALTER TABLE log ADD COLUMN at INTEGER NOT NULL DEFAULT 0"));
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, db.Prepare("UPDATE log SET at = ?1"));
  stmt.BindInt(1, now_nanos);
  return stmt.Run();
}

Status AppendLog(SqliteDb& db, const std::string& stream, const std::string& value,
                 int64_t at_nanos) {
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                          db.Prepare("INSERT INTO log (stream, value, at) VALUES (?1, ?2, ?3)"));
  stmt.BindBlob(1, stream);
  stmt.BindBlob(2, value);
  stmt.BindInt(3, at_nanos);
  return stmt.Run();
}

StatusOr<LogPage> ReadLogPage(SqliteDb& db, const std::string& stream,
                              const LogPageOptions& options) {
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!options.before.empty()) {
    if (options.before.size() > 18 ||
        options.before.find_first_not_of("0123456789") != std::string::npos) {
      return absl::InvalidArgumentError("log: '" + options.before + "' is not a log position");
    }
    before = std::stoll(options.before);
  }
  if (options.limit < 0) return absl::InvalidArgumentError("log: limit must be >= 0");
  // The rowid range from the end: no scan of what lies before the page.
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      db.Prepare("SELECT seq, value FROM log WHERE stream = ?1 AND seq < ?2 ORDER BY seq DESC "
                 "LIMIT ?3"));
  stmt.BindBlob(1, stream);
  stmt.BindInt(2, before);
  stmt.BindInt(3, options.limit > 0 ? options.limit + 1 : -1);  // one more: are there older?
  LogPage page;
  int64_t oldest = 0;
  for (;;) {
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (options.limit > 0 && static_cast<int64_t>(page.records.size()) == options.limit) {
      page.next = std::to_string(oldest);
      break;
    }
    oldest = stmt.ColumnInt(0);
    page.records.push_back(stmt.ColumnBlob(1));
  }
  std::reverse(page.records.begin(), page.records.end());
  return page;
}

StatusOr<int64_t> CountBoundary(SqliteDb& db, const std::string& stream, int64_t max_records) {
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      db.Prepare("SELECT seq FROM log WHERE stream = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2"));
  stmt.BindBlob(1, stream);
  stmt.BindInt(2, max_records);
  PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.ColumnInt(0) : 0;
}

StatusOr<int64_t> TrimLogChunk(SqliteDb& db, const std::string& stream, int64_t upto_seq,
                               int64_t cutoff_nanos, int64_t chunk) {
  int64_t last = 0, count = 0;
  {
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        db.Prepare("SELECT seq, at FROM log WHERE stream = ?1 ORDER BY seq LIMIT ?2"));
    stmt.BindBlob(1, stream);
    stmt.BindInt(2, chunk);
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      int64_t seq = stmt.ColumnInt(0);
      if (seq > upto_seq && stmt.ColumnInt(1) >= cutoff_nanos) break;
      last = seq;
      ++count;
    }
  }
  if (count == 0) return 0;
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt del,
                          db.Prepare("DELETE FROM log WHERE stream = ?1 AND seq <= ?2"));
  del.BindBlob(1, stream);
  del.BindInt(2, last);
  PHOTON_RETURN_IF_ERROR(del.Run());
  return count;
}

}  // namespace photon::store::sqlite
