// The one SQLite wrapper of the project (photon-server's store, lightningstor's metadata):
// RAII over one connection with its prepared statements cached, typed binds and columns, and
// every failure a photon::Status (BUSY/LOCKED → UNAVAILABLE, FULL → RESOURCE_EXHAUSTED,
// CORRUPT → DATA_LOSS, the rest INTERNAL). Nothing aborts and no step error goes unreported:
// Step() answers StatusOr<bool>.
//
// Thread-safety: a SqliteDb (and its statements) belongs to one thread at a time; callers
// serialise access (the store and lightningstor give each thread its own connection).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace photon {

// A value to bind as a BLOB (Query/Run bind strings as TEXT).
struct SqliteBlob {
  std::string_view data;
};

class SqliteStmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(SqliteStmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  SqliteStmt& operator=(SqliteStmt&&) = delete;
  // Resets the statement (it stays cached) so it holds no read snapshot open.
  ~SqliteStmt();

  // Parameters are 1-based as in SQLite. A BLOB compares bytewise (memcmp), the order etcd
  // uses; an empty BLOB or TEXT is bound as empty, never as NULL.
  SqliteStmt& BindBlob(int index, std::string_view data);
  SqliteStmt& BindText(int index, std::string_view text);
  SqliteStmt& BindInt(int index, int64_t value);
  SqliteStmt& BindNull(int index);
  // Binds values to ?1, ?2, ... by type: strings as TEXT, SqliteBlob as BLOB, integers.
  template <typename... Values>
  SqliteStmt& BindAll(const Values&... values) {
    int index = 0;
    (BindValue(++index, values), ...);
    return *this;
  }

  // True while a row is available, false when done.
  StatusOr<bool> Step();
  // Runs a statement that returns no rows (or ignores them).
  Status Run();
  // Calls on_row with each row in turn; the first step error ends it.
  Status ForEachRow(const std::function<void(const SqliteStmt&)>& on_row);

  int64_t ColumnInt(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  void BindValue(int index, std::string_view text) { BindText(index, text); }
  void BindValue(int index, const SqliteBlob& blob) { BindBlob(index, blob.data); }
  template <std::integral T>
  void BindValue(int index, T value) {
    BindInt(index, static_cast<int64_t>(value));
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  // Opens (creating) the database file; a locked database is waited for up to busy_timeout.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(
      const std::string& path,
      std::chrono::milliseconds busy_timeout = std::chrono::milliseconds(10000));
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Runs one or more statements without parameters.
  Status Exec(const std::string& sql);
  // The cached prepared statement for sql (prepared on first use).
  StatusOr<SqliteStmt> Prepare(const std::string& sql);
  // Prepare, then BindAll(values...): a statement ready to Step.
  template <typename... Values>
  StatusOr<SqliteStmt> Query(const std::string& sql, const Values&... values) {
    PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, Prepare(sql));
    stmt.BindAll(values...);
    return stmt;
  }
  // Query(sql, values...), run to completion.
  template <typename... Values>
  Status Run(const std::string& sql, const Values&... values) {
    PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, Query(sql, values...));
    return stmt.Run();
  }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// Status for a SQLite result code, with the connection's message.
Status SqliteError(sqlite3* db, int rc, std::string_view what);

}  // namespace photon
