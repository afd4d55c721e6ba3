// Thin RAII wrappers over the SQLite C API that turn every failure into a photon::Status:
// SqliteDb owns one connection and caches its prepared statements; SqliteStmt is a statement
// borrowed from that cache, reset when it goes out of scope.
//
// Thread-safety: a SqliteDb (and its statements) belongs to one thread at a time; callers
// serialise access (the store gives each thread its own connection).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace photon::store {

class SqliteStmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(SqliteStmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  SqliteStmt& operator=(SqliteStmt&&) = delete;
  ~SqliteStmt();

  // Parameters are 1-based as in SQLite. Keys and values are bound as BLOBs so that they
  // compare bytewise (memcmp), the order etcd uses.
  void BindBlob(int index, std::string_view data);
  void BindInt(int index, int64_t value);
  // Returns true while a row is available, false when done.
  StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  Status Run();

  int64_t ColumnInt(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Runs one or more statements without parameters.
  Status Exec(const std::string& sql);
  // Returns the cached prepared statement for sql (prepared on first use).
  StatusOr<SqliteStmt> Prepare(const std::string& sql);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// Status for a SQLite result code, with the connection's message.
Status SqliteError(sqlite3* db, int rc, std::string_view what);

}  // namespace photon::store
