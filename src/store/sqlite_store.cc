// SqliteStore: group-commit writer thread, reader connection pool, lease sweeper and watch
// fan-out over one SQLite file. Thread-safe; see sqlite_store.h for the design.
#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "common/metrics.h"
#include "common/util.h"
#include "store/key_range.h"
#include "store/sqlite_db.h"
#include "store/sqlite_log.h"
#include "store/sqlite_queries.h"
#include "store/watch_hub.h"

namespace photon::store {
namespace {

using Clock = std::chrono::steady_clock;
using sqlite::BindKeyRange;
using sqlite::CompactedError;
using sqlite::CompareHolds;
using sqlite::CurrentRow;
using sqlite::FutureRevisionError;
using sqlite::HistoryEvents;
using sqlite::KeyCondition;
using sqlite::kSchema;
using sqlite::LeaseNotFoundError;
using sqlite::MetaRow;
using sqlite::RangeAt;
using sqlite::RangeLatest;
using sqlite::ReadMeta;
using sqlite::RunSql;

constexpr auto kSweepInterval = std::chrono::milliseconds(100);
// Log records one trim step removes at most: a step holds the writer (and every write queued
// behind it) for its transaction.
constexpr int64_t kTrimChunk = 10000;

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The database holds every secret digest and object: 0600. SQLite creates the file 0644 (less
// the umask) and gives its -wal and -shm files the database file's mode, so creating the file
// 0600 first makes all three private; files of an older data dir are tightened.
Status MakePrivate(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("store: cannot create " + path + ": " + strerror(errno));
  int rc = fchmod(fd, 0600);
  close(fd);
  if (rc != 0) return absl::InternalError("store: cannot chmod " + path + ": " + strerror(errno));
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string side = path + suffix;
    if (chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return absl::InternalError("store: cannot chmod " + side + ": " + strerror(errno));
    }
  }
  return absl::OkStatus();
}

}  // namespace

class SqliteStore::Impl {
 public:
  Impl(std::string path, Options options) : path_(std::move(path)), options_(options) {
    if (options_.max_batch < 1) options_.max_batch = 1;
  }
  ~Impl() { Shutdown(); }

  Status Init();
  void Shutdown();

  StatusOr<RangeResult> Range(const std::string& key, const RangeOptions& options);
  StatusOr<TxnResult> Txn(const TxnRequest& txn);
  StatusOr<LogPage> ReadLogPage(const std::string& stream, const LogPageOptions& options);
  StatusOr<int64_t> TrimLog(const std::string& stream, const LogRetention& retention);
  void TxnAsync(TxnRequest txn, Store::TxnCallback done);
  StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& key, const std::string& end,
                                               int64_t start_revision, WatchCallback on_events,
                                               WatchErrorCallback on_error);
  Status Compact(int64_t revision);
  int64_t CurrentRevision() const { return committed_revision_.load(); }
  int64_t CompactedRevision() const { return committed_compacted_.load(); }
  StatusOr<int64_t> GrantLease(int64_t ttl_seconds);
  Status KeepAlive(int64_t lease);
  Status RevokeLease(int64_t lease);
  StatusOr<int64_t> LeaseTimeToLive(int64_t lease);

 private:
  struct WriteResult {
    Status status;
    TxnResult txn;
    int64_t lease = 0;
  };
  struct WriteOp {
    enum class Kind { kTxn, kCompact, kGrant, kRevoke, kTrimLog };
    Kind kind = Kind::kTxn;
    TxnRequest txn;
    int64_t number = 0;  // compact revision or lease id; kTrimLog: records up to this seq go
    int64_t ttl = 0;
    std::string stream;  // kTrimLog
    int64_t cutoff = 0;  // kTrimLog: records appended before this (Unix ns) go
    // Called on the completion thread once the batch is durable (or failed), in commit
    // order; may be empty.
    std::function<void(WriteResult)> done;
    WriteResult result;
  };
  // What a batch changed besides rows, applied to memory only once the batch is durable.
  struct BatchEffects {
    int64_t revision = 0;
    int64_t compacted = 0;
    std::vector<WatchEvent> events;
    std::vector<std::pair<int64_t, int64_t>> granted;  // lease id, ttl
    std::vector<int64_t> revoked;
  };
  struct LeaseState {
    int64_t ttl = 0;
    Clock::time_point expiry;
  };

  // Queues op for the writer; false once the store is closing.
  bool Enqueue(std::unique_ptr<WriteOp> op);
  StatusOr<WriteResult> Submit(std::unique_ptr<WriteOp> op);
  void WriterLoop();
  void ApplyBatch(std::vector<std::unique_ptr<WriteOp>> batch);
  // Hands a finished batch to the completion thread.
  void Complete(std::vector<std::unique_ptr<WriteOp>> batch);
  void CompletionLoop();
  // The Apply* functions return SQL failures, which abort the whole batch; a request's own
  // failure (failed validation, nothing written) goes into result.status instead.
  Status ApplyTxn(const TxnRequest& txn, BatchEffects& effects, WriteResult& result);
  Status ApplyCompact(int64_t revision, BatchEffects& effects, WriteResult& result);
  Status ApplyGrant(int64_t ttl, BatchEffects& effects, WriteResult& result);
  Status ApplyRevoke(int64_t lease, BatchEffects& effects, WriteResult& result);
  StatusOr<CurrentRow> LoadCurrent(const std::string& key);
  StatusOr<bool> LeaseExists(int64_t lease);
  Status PutKey(const std::string& key, const std::string& value, int64_t lease, int64_t revision,
                std::vector<WatchEvent>& events);
  Status DeleteKeys(const std::vector<std::string>& keys, int64_t revision,
                    std::vector<WatchEvent>& events);
  StatusOr<std::vector<std::string>> LiveKeys(const std::string& key, const std::string& end);
  void SweepLoop();

  StatusOr<std::unique_ptr<SqliteDb>> AcquireReader();
  void ReleaseReader(std::unique_ptr<SqliteDb> db);
  // Runs fn(db) inside one read transaction, so all its statements see one snapshot.
  template <typename T, typename Fn>
  StatusOr<T> InReadTxn(Fn fn);
  StatusOr<std::vector<WatchEvent>> ReadHistory(const std::string& key, const std::string& end,
                                                int64_t from, int64_t to);

  std::string path_;
  Options options_;
  int lock_fd_ = -1;  // flock held for the store's life

  // Writer thread state (Init runs before the thread starts).
  std::unique_ptr<SqliteDb> writer_db_;
  int64_t revision_ = 1;
  int64_t compacted_ = 0;
  std::mt19937_64 lease_ids_{std::random_device{}()};

  std::atomic<int64_t> committed_revision_{1};
  std::atomic<int64_t> committed_compacted_{0};

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<WriteOp>> queue_;
  bool stopping_ = false;
  // The writer sleeps on queue_cv_ until the queue holds wake_at_ requests; Enqueue wakes it
  // only then, so requests trickling into a filling batch cost no wake-up each.
  bool writer_waiting_ = false;
  size_t wake_at_ = 1;
  size_t last_batch_ = 0;
  std::thread writer_;

  // Acknowledgements (a create's answer is rendered and sent from its callback) run on their
  // own thread: the writer starts the next batch while the last one is answered, instead of
  // the whole store waiting on every socket write. One thread keeps them in commit order.
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<std::vector<std::unique_ptr<WriteOp>>> done_queue_;
  bool completer_waiting_ = false;
  bool completer_stop_ = false;
  std::thread completer_;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> readers_;

  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  std::unordered_map<int64_t, LeaseState> leases_;
  bool sweeper_stop_ = false;
  std::thread sweeper_;

  std::shared_ptr<WatchHub> hub_;

  // Declared once in Init when a registry is given; null otherwise.
  Histogram* commit_seconds_ = nullptr;
  Histogram* batch_requests_ = nullptr;
  Counter* write_requests_ = nullptr;
  Counter* failed_batches_ = nullptr;
};

Status SqliteStore::Impl::Init() {
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty()) PHOTON_RETURN_IF_ERROR(MakeDirs(dir.string(), 0700));
  PHOTON_RETURN_IF_ERROR(MakePrivate(path_));
  // One store per file: a second writer would keep its own idea of the revision.
  std::string lock_path = path_ + ".lock";
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return absl::InternalError("store: cannot open " + lock_path);
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    close(lock_fd_);
    lock_fd_ = -1;
    return absl::FailedPreconditionError("store: " + path_ +
                                         " is in use by another process or store");
  }
  PHOTON_ASSIGN_OR_RETURN(writer_db_, SqliteDb::Open(path_));
  // synchronous=FULL in WAL mode fsyncs the log on every commit: an acknowledged write
  // survives a crash of the process and of the machine.
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec("PRAGMA journal_mode=WAL"));
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec("PRAGMA synchronous=FULL"));
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec("PRAGMA cache_size=-65536"));
  // Checkpoints run inside a commit and fsync the main file; every 40 MB of log rather than
  // SQLite's 4 MB makes them rare and lets them copy each hot page once (about +25% puts/s).
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec("PRAGMA wal_autocheckpoint=10000"));
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec("PRAGMA journal_size_limit=67108864"));
  PHOTON_RETURN_IF_ERROR(writer_db_->Exec(kSchema));
  PHOTON_RETURN_IF_ERROR(sqlite::MigrateLogTime(*writer_db_, WallNanos()));
  PHOTON_ASSIGN_OR_RETURN(MetaRow meta, ReadMeta(*writer_db_));
  revision_ = meta.revision;
  compacted_ = meta.compacted;
  committed_revision_ = revision_;
  committed_compacted_ = compacted_;
  {
    PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, writer_db_->Prepare("SELECT id, ttl FROM leases"));
    auto now = Clock::now();
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      int64_t ttl = stmt.ColumnInt(1);
      leases_[stmt.ColumnInt(0)] = LeaseState{ttl, now + std::chrono::seconds(ttl)};
    }
  }
  if (options_.metrics != nullptr) {
    MetricsRegistry& metrics = *options_.metrics;
    commit_seconds_ =
        metrics.GetHistogram("photon_store_sqlite_commit_seconds",
                             "Time to apply and fsync one group-commit batch of the SQLite store.");
    batch_requests_ =
        metrics.GetHistogram("photon_store_sqlite_batch_requests",
                             "Write requests carried by one SQLite transaction (one fsync).", {},
                             {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    write_requests_ = metrics.GetCounter("photon_store_sqlite_write_requests_total",
                                         "Write requests applied by the SQLite store writer.");
    failed_batches_ = metrics.GetCounter(
        "photon_store_sqlite_failed_batches_total",
        "Group-commit batches rolled back by a SQLite error (all their requests failed).");
  }
  hub_ = std::make_shared<WatchHub>(revision_);
  completer_ = std::thread([this] {
    SetThreadName("store-done");
    CompletionLoop();
  });
  writer_ = std::thread([this] {
    SetThreadName("store-writer");
    WriterLoop();
  });
  sweeper_ = std::thread([this] {
    SetThreadName("lease-sweeper");
    SweepLoop();
  });
  return absl::OkStatus();
}

void SqliteStore::Impl::Shutdown() {
  {
    std::lock_guard lock(lease_mu_);
    sweeper_stop_ = true;
  }
  lease_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(done_mu_);
    completer_stop_ = true;
  }
  done_cv_.notify_all();
  if (completer_.joinable()) completer_.join();  // after the writer: every answer is given
  if (hub_) hub_->Close(absl::UnavailableError("store closed"));
  {
    std::lock_guard lock(readers_mu_);
    readers_.clear();
  }
  writer_db_.reset();
  if (lock_fd_ >= 0) {
    close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
}

bool SqliteStore::Impl::Enqueue(std::unique_ptr<WriteOp> op) {
  bool wake = false;
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(op));
    wake = writer_waiting_ && queue_.size() >= wake_at_;
  }
  if (wake) queue_cv_.notify_one();
  return true;
}

StatusOr<SqliteStore::Impl::WriteResult> SqliteStore::Impl::Submit(std::unique_ptr<WriteOp> op) {
  // The promise lives in the op, not on this stack: set_value may still be touching it when
  // this thread wakes and returns.
  auto promise = std::make_shared<std::promise<WriteResult>>();
  std::future<WriteResult> done = promise->get_future();
  op->done = [promise](WriteResult r) { promise->set_value(std::move(r)); };
  if (!Enqueue(std::move(op))) return absl::UnavailableError("store closed");
  WriteResult result = done.get();
  if (!result.status.ok()) return result.status;
  return result;
}

void SqliteStore::Impl::WriterLoop() {
  for (;;) {
    std::vector<std::unique_ptr<WriteOp>> batch;
    {
      std::unique_lock lock(queue_mu_);
      writer_waiting_ = true;
      wake_at_ = 1;
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      // Several requests in the last commit mean several writers are waiting on the store:
      // give their next requests a moment to join this commit. A lone writer (the last commit
      // carried one request) commits at once.
      const size_t want = std::min<size_t>(static_cast<size_t>(options_.max_batch),
                                           std::max<size_t>(2, last_batch_ * 3 / 4));
      if (last_batch_ >= 2 && queue_.size() < want && options_.group_commit_wait_us > 0) {
        wake_at_ = want;
        queue_cv_.wait_for(lock, std::chrono::microseconds(options_.group_commit_wait_us),
                           [&] { return stopping_ || queue_.size() >= want; });
      }
      writer_waiting_ = false;
      // On shutdown the queue is drained first, so no caller is left waiting.
      if (queue_.empty()) return;
      while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      last_batch_ = batch.size();
    }
    ApplyBatch(std::move(batch));
  }
}

void SqliteStore::Impl::ApplyBatch(std::vector<std::unique_ptr<WriteOp>> batch) {
  auto started = std::chrono::steady_clock::now();
  BatchEffects effects;
  effects.revision = revision_;
  effects.compacted = compacted_;
  Status status = RunSql(*writer_db_, "BEGIN IMMEDIATE");
  for (size_t i = 0; i < batch.size() && status.ok(); ++i) {
    WriteOp& op = *batch[i];
    switch (op.kind) {
      case WriteOp::Kind::kTxn:
        status = ApplyTxn(op.txn, effects, op.result);
        break;
      case WriteOp::Kind::kCompact:
        status = ApplyCompact(op.number, effects, op.result);
        break;
      case WriteOp::Kind::kGrant:
        status = ApplyGrant(op.ttl, effects, op.result);
        break;
      case WriteOp::Kind::kRevoke:
        status = ApplyRevoke(op.number, effects, op.result);
        break;
      case WriteOp::Kind::kTrimLog: {
        auto trimmed =
            sqlite::TrimLogChunk(*writer_db_, op.stream, op.number, op.cutoff, kTrimChunk);
        status = trimmed.status();
        if (trimmed.ok()) op.result.txn.deleted = *trimmed;
        op.result.txn.revision = effects.revision;
        break;
      }
    }
  }
  if (status.ok() && (effects.revision != revision_ || effects.compacted != compacted_)) {
    auto stmt = writer_db_->Prepare("UPDATE meta SET revision = ?1, compacted = ?2 WHERE id = 0");
    status = stmt.status();
    if (stmt.ok()) {
      stmt->BindInt(1, effects.revision);
      stmt->BindInt(2, effects.compacted);
      status = stmt->Run();
    }
  }
  if (status.ok()) status = RunSql(*writer_db_, "COMMIT");
  if (commit_seconds_ != nullptr) {
    commit_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    batch_requests_->Observe(static_cast<double>(batch.size()));
    write_requests_->Inc(static_cast<double>(batch.size()));
    if (!status.ok()) failed_batches_->Inc();
  }
  if (!status.ok()) {
    (void)writer_db_->Exec("ROLLBACK");
    for (auto& op : batch) op->result = WriteResult{status, {}, 0};
  } else {
    revision_ = effects.revision;
    compacted_ = effects.compacted;
    committed_revision_ = revision_;
    committed_compacted_ = compacted_;
    if (!effects.granted.empty() || !effects.revoked.empty()) {
      std::lock_guard lock(lease_mu_);
      auto now = Clock::now();
      for (auto [id, ttl] : effects.granted) {
        leases_[id] = LeaseState{ttl, now + std::chrono::seconds(ttl)};
      }
      for (int64_t id : effects.revoked) leases_.erase(id);
    }
    // Published before the acknowledgements: a caller that wrote and then watches from its
    // revision finds the hub already past it.
    if (!effects.events.empty()) hub_->Publish(effects.events, revision_);
  }
  Complete(std::move(batch));
}

void SqliteStore::Impl::Complete(std::vector<std::unique_ptr<WriteOp>> batch) {
  bool wake = false;
  {
    std::lock_guard lock(done_mu_);
    done_queue_.push_back(std::move(batch));
    wake = completer_waiting_;
  }
  if (wake) done_cv_.notify_one();
}

void SqliteStore::Impl::CompletionLoop() {
  for (;;) {
    std::vector<std::unique_ptr<WriteOp>> batch;
    {
      std::unique_lock lock(done_mu_);
      completer_waiting_ = true;
      done_cv_.wait(lock, [&] { return completer_stop_ || !done_queue_.empty(); });
      completer_waiting_ = false;
      if (done_queue_.empty()) return;  // stopping, and everything is answered
      batch = std::move(done_queue_.front());
      done_queue_.pop_front();
    }
    // The ops (and the values they carry) are freed here too, off the writer.
    for (auto& op : batch) {
      if (op->done) op->done(std::move(op->result));
    }
  }
}

StatusOr<CurrentRow> SqliteStore::Impl::LoadCurrent(const std::string& key) {
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      writer_db_->Prepare(
          "SELECT create_rev, mod_rev, version, value, lease FROM current WHERE key = ?1"));
  stmt.BindBlob(1, key);
  CurrentRow row;
  PHOTON_ASSIGN_OR_RETURN(row.exists, stmt.Step());
  if (row.exists) {
    row.create_revision = stmt.ColumnInt(0);
    row.mod_revision = stmt.ColumnInt(1);
    row.version = stmt.ColumnInt(2);
    row.value = stmt.ColumnBlob(3);
    row.lease = stmt.ColumnInt(4);
  }
  return row;
}

StatusOr<bool> SqliteStore::Impl::LeaseExists(int64_t lease) {
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                          writer_db_->Prepare("SELECT 1 FROM leases WHERE id = ?1"));
  stmt.BindInt(1, lease);
  return stmt.Step();
}

Status SqliteStore::Impl::PutKey(const std::string& key, const std::string& value, int64_t lease,
                                 int64_t revision, std::vector<WatchEvent>& events) {
  WatchEvent event;
  event.type = WatchEvent::Type::kPut;
  {
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        writer_db_->Prepare(
            "INSERT INTO current (key, create_rev, mod_rev, version, value, lease) "
            "VALUES (?1, ?2, ?2, 1, ?3, ?4) ON CONFLICT (key) DO UPDATE SET "
            "mod_rev = excluded.mod_rev, version = version + 1, value = excluded.value, "
            "lease = excluded.lease RETURNING create_rev, version"));
    stmt.BindBlob(1, key);
    stmt.BindInt(2, revision);
    stmt.BindBlob(3, value);
    stmt.BindInt(4, lease);
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::InternalError("store: upsert returned no row");
    event.kv.create_revision = stmt.ColumnInt(0);
    event.kv.version = stmt.ColumnInt(1);
    PHOTON_RETURN_IF_ERROR(stmt.Run());
  }
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      writer_db_->Prepare("INSERT INTO history "
                          "(key, rev, sub, create_rev, version, value, lease, deleted) "
                          "VALUES (?1, ?2, ?7, ?3, ?4, ?5, ?6, 0)"));
  stmt.BindBlob(1, key);
  stmt.BindInt(2, revision);
  stmt.BindInt(3, event.kv.create_revision);
  stmt.BindInt(4, event.kv.version);
  stmt.BindBlob(5, value);
  stmt.BindInt(6, lease);
  stmt.BindInt(7, static_cast<int64_t>(events.size()));
  PHOTON_RETURN_IF_ERROR(stmt.Run());
  event.kv.key = key;
  event.kv.value = value;
  event.kv.mod_revision = revision;
  event.kv.lease = lease;
  events.push_back(std::move(event));
  return absl::OkStatus();
}

StatusOr<std::vector<std::string>> SqliteStore::Impl::LiveKeys(const std::string& key,
                                                               const std::string& end) {
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      writer_db_->Prepare("SELECT key FROM current WHERE " + KeyCondition(end) + " ORDER BY key"));
  BindKeyRange(stmt, key, end);
  std::vector<std::string> keys;
  for (;;) {
    PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    keys.push_back(stmt.ColumnBlob(0));
  }
  return keys;
}

Status SqliteStore::Impl::DeleteKeys(const std::vector<std::string>& keys, int64_t revision,
                                     std::vector<WatchEvent>& events) {
  for (const auto& key : keys) {
    {
      PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                              writer_db_->Prepare("DELETE FROM current WHERE key = ?1"));
      stmt.BindBlob(1, key);
      PHOTON_RETURN_IF_ERROR(stmt.Run());
    }
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        writer_db_->Prepare("INSERT INTO history "
                            "(key, rev, sub, create_rev, version, value, lease, deleted) "
                            "VALUES (?1, ?2, ?3, 0, 0, x'', 0, 1)"));
    stmt.BindBlob(1, key);
    stmt.BindInt(2, revision);
    stmt.BindInt(3, static_cast<int64_t>(events.size()));
    PHOTON_RETURN_IF_ERROR(stmt.Run());
    WatchEvent event;
    event.type = WatchEvent::Type::kDelete;
    event.kv.key = key;
    event.kv.mod_revision = revision;
    events.push_back(std::move(event));
  }
  return absl::OkStatus();
}

Status SqliteStore::Impl::ApplyTxn(const TxnRequest& txn, BatchEffects& effects,
                                   WriteResult& result) {
  bool succeeded = true;
  for (const auto& compare : txn.compares) {
    PHOTON_ASSIGN_OR_RETURN(CurrentRow row, LoadCurrent(compare.key));
    if (!CompareHolds(compare, row)) {
      succeeded = false;
      break;
    }
  }
  const std::vector<TxnOp>& ops = succeeded ? txn.success : txn.failure;
  // Leases are checked on the path that runs, like etcd, before its first write.
  for (const auto& op : ops) {
    if (op.type != TxnOp::Type::kPut || op.lease == 0) continue;
    PHOTON_ASSIGN_OR_RETURN(bool exists, LeaseExists(op.lease));
    if (!exists) {
      result.status = LeaseNotFoundError();
      return absl::OkStatus();
    }
  }
  TxnResult& out = result.txn;
  out.succeeded = succeeded;
  // All writes of one txn share one revision, as in etcd.
  const int64_t write_revision = effects.revision + 1;
  bool wrote = false;
  const int64_t now = WallNanos();
  for (const auto& op : ops) {
    switch (op.type) {
      case TxnOp::Type::kPut:
        PHOTON_RETURN_IF_ERROR(PutKey(op.key, op.value, op.lease, write_revision, effects.events));
        wrote = true;
        break;
      case TxnOp::Type::kDelete: {
        PHOTON_ASSIGN_OR_RETURN(std::vector<std::string> keys, LiveKeys(op.key, op.end));
        PHOTON_RETURN_IF_ERROR(DeleteKeys(keys, write_revision, effects.events));
        out.deleted += static_cast<int64_t>(keys.size());
        wrote = wrote || !keys.empty();
        break;
      }
      case TxnOp::Type::kRange: {
        PHOTON_ASSIGN_OR_RETURN(RangeResult range,
                                RangeLatest(*writer_db_, op.key, op.end, op.limit, false, false));
        out.ranges.push_back(std::move(range));
        break;
      }
      case TxnOp::Type::kAppend: {
        // Not a key change: no revision, no event.
        PHOTON_RETURN_IF_ERROR(sqlite::AppendLog(*writer_db_, op.key, op.value, now));
        break;
      }
    }
  }
  if (wrote) effects.revision = write_revision;
  out.revision = effects.revision;
  for (auto& range : out.ranges) range.revision = effects.revision;
  return absl::OkStatus();
}

Status SqliteStore::Impl::ApplyCompact(int64_t revision, BatchEffects& effects,
                                       WriteResult& result) {
  if (revision <= effects.compacted) {
    result.status = CompactedError();
    return absl::OkStatus();
  }
  if (revision > effects.revision) {
    result.status = FutureRevisionError();
    return absl::OkStatus();
  }
  // Keeps, for every key, its newest row at or below `revision` unless it is a tombstone:
  // exactly what reads at `revision` and later need.
  PHOTON_ASSIGN_OR_RETURN(
      SqliteStmt stmt,
      writer_db_->Prepare("DELETE FROM history WHERE rev < ?1 AND (deleted = 1 OR rev < "
                          "(SELECT MAX(h.rev) FROM history AS h WHERE h.key = history.key "
                          "AND h.rev <= ?1))"));
  stmt.BindInt(1, revision);
  PHOTON_RETURN_IF_ERROR(stmt.Run());
  effects.compacted = revision;
  result.txn.revision = effects.revision;
  return absl::OkStatus();
}

Status SqliteStore::Impl::ApplyGrant(int64_t ttl, BatchEffects& effects, WriteResult& result) {
  if (ttl <= 0) {
    result.status = absl::InvalidArgumentError("lease TTL must be positive");
    return absl::OkStatus();
  }
  int64_t id = 0;
  for (;;) {
    id = static_cast<int64_t>(lease_ids_() >> 1);
    if (id == 0) continue;
    PHOTON_ASSIGN_OR_RETURN(bool taken, LeaseExists(id));
    if (!taken) break;
  }
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt,
                          writer_db_->Prepare("INSERT INTO leases (id, ttl) VALUES (?1, ?2)"));
  stmt.BindInt(1, id);
  stmt.BindInt(2, ttl);
  PHOTON_RETURN_IF_ERROR(stmt.Run());
  effects.granted.emplace_back(id, ttl);
  result.lease = id;
  return absl::OkStatus();
}

Status SqliteStore::Impl::ApplyRevoke(int64_t lease, BatchEffects& effects, WriteResult& result) {
  PHOTON_ASSIGN_OR_RETURN(bool exists, LeaseExists(lease));
  if (!exists) {
    result.status = LeaseNotFoundError();
    return absl::OkStatus();
  }
  std::vector<std::string> keys;
  {
    PHOTON_ASSIGN_OR_RETURN(
        SqliteStmt stmt,
        writer_db_->Prepare(
            "SELECT key FROM current WHERE lease = ?1 AND lease != 0 ORDER BY key"));
    stmt.BindInt(1, lease);
    for (;;) {
      PHOTON_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      keys.push_back(stmt.ColumnBlob(0));
    }
  }
  if (!keys.empty()) {
    PHOTON_RETURN_IF_ERROR(DeleteKeys(keys, effects.revision + 1, effects.events));
    effects.revision += 1;
  }
  PHOTON_ASSIGN_OR_RETURN(SqliteStmt stmt, writer_db_->Prepare("DELETE FROM leases WHERE id = ?1"));
  stmt.BindInt(1, lease);
  PHOTON_RETURN_IF_ERROR(stmt.Run());
  effects.revoked.push_back(lease);
  result.txn.revision = effects.revision;
  result.txn.deleted = static_cast<int64_t>(keys.size());
  return absl::OkStatus();
}

void SqliteStore::Impl::SweepLoop() {
  std::unique_lock lock(lease_mu_);
  while (!sweeper_stop_) {
    lease_cv_.wait_for(lock, kSweepInterval);
    if (sweeper_stop_) break;
    auto now = Clock::now();
    std::vector<int64_t> expired;
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.expiry <= now) {
        expired.push_back(it->first);
        // Gone from memory at once: KeepAlive must not revive a lease being revoked.
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    if (expired.empty()) continue;
    lock.unlock();
    for (int64_t id : expired) {
      auto op = std::make_unique<WriteOp>();
      op->kind = WriteOp::Kind::kRevoke;
      op->number = id;
      // Nobody waits for the outcome; the writer applies it like any revoke.
      Enqueue(std::move(op));
    }
    lock.lock();
  }
}

StatusOr<std::unique_ptr<SqliteDb>> SqliteStore::Impl::AcquireReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!readers_.empty()) {
      auto db = std::move(readers_.back());
      readers_.pop_back();
      return db;
    }
  }
  PHOTON_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path_));
  return db;
}

void SqliteStore::Impl::ReleaseReader(std::unique_ptr<SqliteDb> db) {
  std::lock_guard lock(readers_mu_);
  readers_.push_back(std::move(db));
}

template <typename T, typename Fn>
StatusOr<T> SqliteStore::Impl::InReadTxn(Fn fn) {
  PHOTON_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, AcquireReader());
  Status begin = RunSql(*db, "BEGIN");
  if (!begin.ok()) return begin;
  StatusOr<T> result = fn(*db);
  Status end = RunSql(*db, "COMMIT");
  if (!end.ok()) {
    // A connection left inside a transaction must not go back to the pool.
    return end;
  }
  ReleaseReader(std::move(db));
  return result;
}

StatusOr<RangeResult> SqliteStore::Impl::Range(const std::string& key,
                                               const RangeOptions& options) {
  if (key.empty()) return absl::InvalidArgumentError("key is not provided");
  return InReadTxn<RangeResult>([&](SqliteDb& db) -> StatusOr<RangeResult> {
    PHOTON_ASSIGN_OR_RETURN(MetaRow meta, ReadMeta(db));
    int64_t revision = options.revision == 0 ? meta.revision : options.revision;
    if (revision > meta.revision) return FutureRevisionError();
    if (revision < meta.compacted) return CompactedError();
    StatusOr<RangeResult> result = revision == meta.revision
                                       ? RangeLatest(db, key, options.end, options.limit,
                                                     options.keys_only, options.count_only)
                                       : RangeAt(db, key, options.end, revision, options.limit,
                                                 options.keys_only, options.count_only);
    if (result.ok()) result->revision = revision;
    return result;
  });
}

StatusOr<LogPage> SqliteStore::Impl::ReadLogPage(const std::string& stream,
                                                 const LogPageOptions& options) {
  if (stream.empty()) return absl::InvalidArgumentError("log stream is not provided");
  return InReadTxn<LogPage>([&](SqliteDb& db) { return sqlite::ReadLogPage(db, stream, options); });
}

StatusOr<int64_t> SqliteStore::Impl::TrimLog(const std::string& stream,
                                             const LogRetention& retention) {
  if (stream.empty()) return absl::InvalidArgumentError("log stream is not provided");
  if (retention.max_records < 0) return absl::InvalidArgumentError("log: max_records < 0");
  // Found once, from a snapshot: appends only add newer records, so the newest max_records
  // stay newer than this boundary however long the steps take.
  int64_t upto = 0;
  if (retention.max_records > 0) {
    PHOTON_ASSIGN_OR_RETURN(upto, InReadTxn<int64_t>([&](SqliteDb& db) {
                              return sqlite::CountBoundary(db, stream, retention.max_records);
                            }));
  }
  const int64_t cutoff = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             retention.appended_before.time_since_epoch())
                             .count();
  if (upto == 0 && cutoff <= 0) return 0;
  int64_t removed = 0;
  for (;;) {
    auto op = std::make_unique<WriteOp>();
    op->kind = WriteOp::Kind::kTrimLog;
    op->stream = stream;
    op->number = upto;
    op->cutoff = cutoff;
    PHOTON_ASSIGN_OR_RETURN(WriteResult result, Submit(std::move(op)));
    removed += result.txn.deleted;
    if (result.txn.deleted < kTrimChunk) return removed;
  }
}

StatusOr<TxnResult> SqliteStore::Impl::Txn(const TxnRequest& txn) {
  PHOTON_RETURN_IF_ERROR(sqlite::ValidateTxn(txn));
  auto op = std::make_unique<WriteOp>();
  op->kind = WriteOp::Kind::kTxn;
  op->txn = txn;
  PHOTON_ASSIGN_OR_RETURN(WriteResult result, Submit(std::move(op)));
  return std::move(result.txn);
}

void SqliteStore::Impl::TxnAsync(TxnRequest txn, Store::TxnCallback done) {
  if (auto st = sqlite::ValidateTxn(txn); !st.ok()) {
    done(st);
    return;
  }
  auto op = std::make_unique<WriteOp>();
  op->kind = WriteOp::Kind::kTxn;
  op->txn = std::move(txn);
  auto shared_done = std::make_shared<Store::TxnCallback>(std::move(done));
  op->done = [shared_done](WriteResult r) {
    if (!r.status.ok()) {
      (*shared_done)(r.status);
    } else {
      (*shared_done)(std::move(r.txn));
    }
  };
  if (!Enqueue(std::move(op))) (*shared_done)(absl::UnavailableError("store closed"));
}

Status SqliteStore::Impl::Compact(int64_t revision) {
  auto op = std::make_unique<WriteOp>();
  op->kind = WriteOp::Kind::kCompact;
  op->number = revision;
  return Submit(std::move(op)).status();
}

StatusOr<int64_t> SqliteStore::Impl::GrantLease(int64_t ttl_seconds) {
  // etcd's ceiling; it also keeps now + TTL within the clock's range.
  constexpr int64_t kMaxLeaseTtl = 9'000'000'000;
  if (ttl_seconds > kMaxLeaseTtl) return absl::OutOfRangeError("too large lease TTL");
  auto op = std::make_unique<WriteOp>();
  op->kind = WriteOp::Kind::kGrant;
  op->ttl = ttl_seconds;
  PHOTON_ASSIGN_OR_RETURN(WriteResult result, Submit(std::move(op)));
  return result.lease;
}

Status SqliteStore::Impl::KeepAlive(int64_t lease) {
  std::lock_guard lock(lease_mu_);
  auto it = leases_.find(lease);
  auto now = Clock::now();
  if (it == leases_.end() || it->second.expiry <= now) return LeaseNotFoundError();
  it->second.expiry = now + std::chrono::seconds(it->second.ttl);
  return absl::OkStatus();
}

Status SqliteStore::Impl::RevokeLease(int64_t lease) {
  auto op = std::make_unique<WriteOp>();
  op->kind = WriteOp::Kind::kRevoke;
  op->number = lease;
  return Submit(std::move(op)).status();
}

StatusOr<int64_t> SqliteStore::Impl::LeaseTimeToLive(int64_t lease) {
  std::lock_guard lock(lease_mu_);
  auto it = leases_.find(lease);
  auto now = Clock::now();
  if (it == leases_.end() || it->second.expiry <= now) return LeaseNotFoundError();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(it->second.expiry - now);
  return (left.count() + 999) / 1000;
}

StatusOr<std::vector<WatchEvent>> SqliteStore::Impl::ReadHistory(const std::string& key,
                                                                 const std::string& end,
                                                                 int64_t from, int64_t to) {
  return InReadTxn<std::vector<WatchEvent>>([&](SqliteDb& db) -> StatusOr<std::vector<WatchEvent>> {
    PHOTON_ASSIGN_OR_RETURN(MetaRow meta, ReadMeta(db));
    if (from < meta.compacted) return CompactedError();
    return HistoryEvents(db, key, end, from, to);
  });
}

StatusOr<std::unique_ptr<WatchHandle>> SqliteStore::Impl::Watch(const std::string& key,
                                                                const std::string& end,
                                                                int64_t start_revision,
                                                                WatchCallback on_events,
                                                                WatchErrorCallback on_error) {
  if (key.empty()) return absl::InvalidArgumentError("key is not provided");
  if (start_revision != 0 && start_revision < committed_compacted_.load()) {
    return CompactedError();
  }
  auto watcher = std::make_shared<WatchHub::Watcher>();
  watcher->key = key;
  watcher->end = end;
  watcher->min_revision = start_revision;
  watcher->on_events = std::move(on_events);
  watcher->on_error = std::move(on_error);
  // Registered before reading history: from here on every live event is buffered, and the
  // replay covers exactly the revisions up to the one published at registration.
  PHOTON_ASSIGN_OR_RETURN(int64_t published, hub_->Register(watcher));
  std::vector<WatchEvent> replay;
  if (start_revision != 0 && start_revision <= published) {
    auto history = ReadHistory(key, end, start_revision, published);
    if (!history.ok()) {
      hub_->Cancel(watcher);
      return history.status();
    }
    replay = std::move(*history);
  }
  hub_->Activate(watcher, std::move(replay));
  return hub_->MakeHandle(std::move(watcher));
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqliteStore::~SqliteStore() = default;

StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                         const Options& options) {
  auto impl = std::make_unique<Impl>(path, options);
  PHOTON_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

StatusOr<RangeResult> SqliteStore::Range(const std::string& key, const RangeOptions& options) {
  return impl_->Range(key, options);
}

StatusOr<int64_t> SqliteStore::Put(const std::string& key, const std::string& value,
                                   int64_t lease) {
  TxnRequest txn;
  txn.success.push_back(TxnOp{TxnOp::Type::kPut, key, value, "", lease, 0});
  PHOTON_ASSIGN_OR_RETURN(TxnResult result, impl_->Txn(txn));
  return result.revision;
}

StatusOr<int64_t> SqliteStore::Delete(const std::string& key, const std::string& end) {
  TxnRequest txn;
  txn.success.push_back(TxnOp{TxnOp::Type::kDelete, key, "", end, 0, 0});
  PHOTON_ASSIGN_OR_RETURN(TxnResult result, impl_->Txn(txn));
  return result.deleted;
}

StatusOr<TxnResult> SqliteStore::Txn(const TxnRequest& txn) { return impl_->Txn(txn); }
StatusOr<LogPage> SqliteStore::ReadLogPage(const std::string& stream,
                                           const LogPageOptions& options) {
  return impl_->ReadLogPage(stream, options);
}
StatusOr<int64_t> SqliteStore::TrimLog(const std::string& stream, const LogRetention& retention) {
  return impl_->TrimLog(stream, retention);
}

void SqliteStore::TxnAsync(TxnRequest txn, TxnCallback done) {
  impl_->TxnAsync(std::move(txn), std::move(done));
}

StatusOr<std::unique_ptr<WatchHandle>> SqliteStore::Watch(const std::string& key,
                                                          const std::string& end,
                                                          int64_t start_revision,
                                                          WatchCallback on_events,
                                                          WatchErrorCallback on_error) {
  return impl_->Watch(key, end, start_revision, std::move(on_events), std::move(on_error));
}

Status SqliteStore::Compact(int64_t revision) { return impl_->Compact(revision); }
StatusOr<int64_t> SqliteStore::CurrentRevision() { return impl_->CurrentRevision(); }
StatusOr<int64_t> SqliteStore::CompactedRevision() { return impl_->CompactedRevision(); }
StatusOr<int64_t> SqliteStore::GrantLease(int64_t ttl_seconds) {
  return impl_->GrantLease(ttl_seconds);
}
Status SqliteStore::KeepAlive(int64_t lease) { return impl_->KeepAlive(lease); }
Status SqliteStore::RevokeLease(int64_t lease) { return impl_->RevokeLease(lease); }
StatusOr<int64_t> SqliteStore::LeaseTimeToLive(int64_t lease) {
  return impl_->LeaseTimeToLive(lease);
}

}  // namespace photon::store
