// The shared SQLite wrapper's contract: every failure is a Status (no abort, no silent false),
// typed binds round-trip, and a locked database is UNAVAILABLE after the busy timeout.
#include "common/sqlite_db.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace photon {
namespace {

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sqlite_db_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto db = SqliteDb::Open(path());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    ASSERT_TRUE(db_->Exec("CREATE TABLE t(k TEXT PRIMARY KEY, n INTEGER, b BLOB)").ok());
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string path() const { return (dir_ / "t.db").string(); }

  std::filesystem::path dir_;
  std::unique_ptr<SqliteDb> db_;
};

TEST_F(SqliteDbTest, BindsAndReadsEveryType) {
  ASSERT_TRUE(db_->Run("INSERT INTO t(k, n, b) VALUES(?, ?, ?)", "a", int64_t{1} << 40,
                       SqliteBlob{std::string_view("\0x", 2)})
                  .ok());
  ASSERT_TRUE(db_->Run("INSERT INTO t(k, n, b) VALUES(?, ?, ?)", "", true, SqliteBlob{""}).ok());
  auto s = db_->Query("SELECT k, n, b, b IS NULL FROM t ORDER BY k");
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<std::string> rows;
  ASSERT_TRUE(s->ForEachRow([&](const SqliteStmt& r) {
                 rows.push_back(r.ColumnText(0) + "|" + std::to_string(r.ColumnInt(1)) + "|" +
                                std::to_string(r.ColumnBlob(2).size()) + "|" +
                                std::to_string(r.ColumnInt(3)));
               }).ok());
  // Empty TEXT and BLOB are values, not NULL.
  EXPECT_EQ(rows, (std::vector<std::string>{"|1|0|0", "a|1099511627776|2|0"}));
}

TEST_F(SqliteDbTest, ErrorsAreStatuses) {
  auto bad = db_->Prepare("SELEKT 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(bad.status().message().find("SELEKT"), std::string::npos);
  ASSERT_TRUE(db_->Run("INSERT INTO t(k) VALUES(?)", "dup").ok());
  Status dup = db_->Run("INSERT INTO t(k) VALUES(?)", "dup");
  EXPECT_EQ(dup.code(), absl::StatusCode::kInternal) << dup;
  EXPECT_NE(dup.message().find("UNIQUE"), std::string::npos) << dup;
}

TEST_F(SqliteDbTest, LockedDatabaseIsUnavailable) {
  auto other = SqliteDb::Open(path(), std::chrono::milliseconds(50));
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(db_->Exec("BEGIN EXCLUSIVE").ok());
  Status st = (*other)->Run("INSERT INTO t(k) VALUES(?)", "x");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  ASSERT_TRUE(db_->Exec("COMMIT").ok());
  EXPECT_TRUE((*other)->Run("INSERT INTO t(k) VALUES(?)", "x").ok());
}

}  // namespace
}  // namespace photon
