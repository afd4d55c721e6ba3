#include "lightningstor/sqlite_db.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace photon::lightningstor {

bool Stmt::Step(Status* status) {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE && status) {
    *status =
        absl::InternalError(std::string("sqlite: ") + sqlite3_errmsg(sqlite3_db_handle(stmt_)));
  }
  return false;
}

Status Stmt::Run() {
  int rc;
  while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    return absl::InternalError(std::string("sqlite: ") + sqlite3_errmsg(sqlite3_db_handle(stmt_)));
  }
  return absl::OkStatus();
}

SqliteConn::~SqliteConn() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

StatusOr<std::unique_ptr<SqliteConn>> SqliteConn::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError("sqlite open " + path + ": " + msg);
  }
  std::unique_ptr<SqliteConn> conn(new SqliteConn(db));
  sqlite3_busy_timeout(db, 30000);
  PHOTON_RETURN_IF_ERROR(
      conn->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 " PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;"));
  return conn;
}

Status SqliteConn::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError("sqlite: " + msg);
  }
  return absl::OkStatus();
}

Stmt SqliteConn::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Stmt(it->second);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK) {
    spdlog::critical("sqlite prepare failed: {}: {}", sqlite3_errmsg(db_), sql);
    std::abort();
  }
  cache_.emplace(sql, stmt);
  return Stmt(stmt);
}

}  // namespace photon::lightningstor
