// SqliteStore beyond the shared contract: durability of acknowledged writes across kill -9,
// state (revision, compaction point, leases) across a clean reopen, group commit under load.
#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "etcd_process.h"
#include "store/store.h"
#include "watch_collector.h"

namespace photon::store {
namespace {

using namespace std::chrono_literals;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("sqlite-store"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Store> Open() {
    auto store = OpenStore(StoreOptions{"sqlite", dir_});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::string dir_;
};

TEST_F(SqliteStoreTest, AcknowledgedWritesSurviveKill9) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(PHOTON_STORE_CRASH_WRITER, PHOTON_STORE_CRASH_WRITER, dir_.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  // Read acknowledgements until enough arrived, then kill mid-write.
  std::string buffer;
  std::set<std::string> acked;
  char chunk[4096];
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (acked.size() < 2000 && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = read(out[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      acked.insert(buffer.substr(0, newline));
      buffer.erase(0, newline + 1);
    }
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "writer died by itself";
  // Lines written before the kill are acknowledged too.
  for (ssize_t n; (n = read(out[0], chunk, sizeof(chunk))) > 0;) {
    buffer.append(chunk, static_cast<size_t>(n));
  }
  close(out[0]);
  size_t newline;
  while ((newline = buffer.find('\n')) != std::string::npos) {
    acked.insert(buffer.substr(0, newline));
    buffer.erase(0, newline + 1);
  }
  ASSERT_GE(acked.size(), 2000u);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  RangeOptions options;
  options.end = PrefixEnd("crash/");
  auto all = store->Range("crash/", options);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> present;
  for (const auto& kv : all->kvs) {
    EXPECT_EQ(kv.value, "value-" + kv.key);
    present.insert(kv.key);
  }
  size_t missing = 0;
  for (const auto& key : acked) missing += present.count(key) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged keys";
  // Revisions stay dense and consistent after recovery.
  EXPECT_EQ(*store->CurrentRevision(), 1 + static_cast<int64_t>(present.size()));
}

// A database written before log records had a time: opening it adds the column, counting its
// records as appended now (kept a whole retention period), and tightens the file to 0600.
TEST_F(SqliteStoreTest, OlderLogTableIsMigratedAndTheFileMadePrivate) {
  const std::string db = dir_ + "/state.db";
  pid_t pid = fork();
  if (pid == 0) {
    umask(022);
    // Keys and values are BLOBs in SqliteStore ('audit', 'old').
    execl("/usr/bin/sqlite3", "sqlite3", db.c_str(),
          "CREATE TABLE log (seq INTEGER PRIMARY KEY, stream BLOB NOT NULL, value BLOB NOT NULL);"
          "INSERT INTO log (stream, value) VALUES (X'6175646974', X'6f6c64');",
          nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "sqlite3 exit " << status;
  ASSERT_EQ(std::filesystem::status(db).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0644));
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(std::filesystem::status(db).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0600));
  EXPECT_EQ(*store->ReadLog("audit", 0), std::vector<std::string>{"old"});
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(*store->TrimLog("audit", {.appended_before = now - std::chrono::hours(1)}), 0);
  EXPECT_EQ(*store->TrimLog("audit", {.appended_before = now + std::chrono::seconds(1)}), 1);
  EXPECT_TRUE(store->ReadLog("audit", 0)->empty());
}

TEST_F(SqliteStoreTest, ReopenKeepsRevisionCompactionAndLeases) {
  int64_t revision = 0;
  int64_t lease = 0;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    TxnRequest audit;
    audit.success.push_back({TxnOp::Type::kAppend, "audit", "kept", "", 0, 0});
    ASSERT_TRUE(store->Txn(audit).ok());
    ASSERT_TRUE(store->Put("a", "1").ok());
    ASSERT_TRUE(store->Put("a", "2").ok());
    auto compact_at = store->Put("a", "3");
    ASSERT_TRUE(compact_at.ok());
    ASSERT_TRUE(store->Compact(*compact_at).ok());
    auto granted = store->GrantLease(60);
    ASSERT_TRUE(granted.ok());
    lease = *granted;
    auto put = store->Put("leased", "x", lease);
    ASSERT_TRUE(put.ok());
    revision = *put;
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->CurrentRevision(), revision);
  EXPECT_EQ(*store->CompactedRevision(), revision - 1);
  EXPECT_EQ(*store->ReadLog("audit", 0), std::vector<std::string>{"kept"});
  auto got = store->Range("a");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].version, 3);
  EXPECT_TRUE(store->KeepAlive(lease).ok());
  ASSERT_TRUE(store->RevokeLease(lease).ok());
  EXPECT_TRUE(store->Range("leased")->kvs.empty());
  auto next = store->Put("b", "1");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, revision + 2);  // revoke took one revision
}

TEST_F(SqliteStoreTest, ManyConcurrentWritersGetDistinctRevisions) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 16;
  constexpr int kPuts = 100;
  std::mutex mu;
  std::set<int64_t> revisions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        auto revision = store->Put("m/" + std::to_string(t) + "/" + std::to_string(i), "x");
        ASSERT_TRUE(revision.ok()) << revision.status();
        std::lock_guard lock(mu);
        revisions.insert(*revision);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(revisions.size(), static_cast<size_t>(kThreads * kPuts));
  EXPECT_EQ(*revisions.rbegin(), 1 + kThreads * kPuts);
  RangeOptions options;
  options.end = PrefixEnd("m/");
  options.count_only = true;
  EXPECT_EQ(store->Range("m/", options)->count, kThreads * kPuts);
}

TEST_F(SqliteStoreTest, TxnRejectsDuplicateKeysAndEmptyKeys) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  TxnRequest txn;
  txn.success.push_back({TxnOp::Type::kPut, "k", "1", "", 0, 0});
  txn.success.push_back({TxnOp::Type::kPut, "k", "2", "", 0, 0});
  EXPECT_EQ(store->Txn(txn).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Put("", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*store->CurrentRevision(), 1);  // refused requests write nothing
}

TEST_F(SqliteStoreTest, LongReplayArrivesInRevisionAlignedChunks) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kTxns = 25;
  constexpr int kPerTxn = 100;
  for (int t = 0; t < kTxns; ++t) {
    TxnRequest txn;
    for (int i = 0; i < kPerTxn; ++i) {
      txn.success.push_back(
          {TxnOp::Type::kPut, "chunk/" + std::to_string(t * kPerTxn + i), "x", "", 0, 0});
    }
    ASSERT_TRUE(store->Txn(txn).ok());
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<WatchEvent>> batches;
  size_t total = 0;
  auto watch = store->Watch(
      "chunk/", PrefixEnd("chunk/"), 2,
      [&](const std::vector<WatchEvent>& events) {
        std::lock_guard lock(mu);
        batches.push_back(events);
        total += events.size();
        cv.notify_all();
      },
      nullptr);
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::unique_lock lock(mu);
  cv.wait_for(lock, 10s, [&] { return total >= kTxns * kPerTxn; });
  ASSERT_EQ(total, static_cast<size_t>(kTxns * kPerTxn));
  EXPECT_GT(batches.size(), 1u);
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_LE(batches[i].size(), 1100u);
    if (i > 0) {
      EXPECT_LT(batches[i - 1].back().kv.mod_revision, batches[i].front().kv.mod_revision);
    }
  }
}

TEST_F(SqliteStoreTest, DeclaresMetricsWhenGivenARegistry) {
  MetricsRegistry registry;
  StoreOptions options{"sqlite", dir_};
  options.metrics = &registry;
  auto store = OpenStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*store)->Put("metric/" + std::to_string(i), "x").ok());
  EXPECT_EQ(registry.GetCounter("photon_store_sqlite_write_requests_total", "")->Value(), 3);
  EXPECT_NE(registry.Render().find("photon_store_sqlite_commit_seconds"), std::string::npos);
}

TEST_F(SqliteStoreTest, OneStorePerFile) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  auto second = OpenStore(StoreOptions{"sqlite", dir_});
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition) << second.status();
  first.reset();
  EXPECT_NE(Open(), nullptr);
}

TEST_F(SqliteStoreTest, WatchFromCompactionRevisionKeepsItsDeletes) {
  // etcd drops a delete made at exactly the compaction revision from a watch starting there;
  // this store keeps it (see README).
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("k", "v").ok());
  ASSERT_TRUE(store->Delete("k").ok());
  int64_t deleted_at = *store->CurrentRevision();
  ASSERT_TRUE(store->Put("z", "v").ok());
  ASSERT_TRUE(store->Compact(deleted_at).ok());
  testing::WatchCollector collector;
  auto watch = store->Watch("k", "", deleted_at, collector.OnEvents(), collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();
  auto events = collector.WaitFor(1, 5s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[0].kv.mod_revision, deleted_at);
}

}  // namespace
}  // namespace photon::store
