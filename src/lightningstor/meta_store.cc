#include "lightningstor/meta_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/util.h"
#include "lightningstor/meta_store_internal.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS buckets(
  name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, versioning TEXT NOT NULL DEFAULT '',
  public_read INTEGER NOT NULL DEFAULT 0, policy TEXT NOT NULL DEFAULT '',
  lifecycle TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '',
  cors TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT 'lightningstor',
  acl TEXT NOT NULL DEFAULT '', object_lock TEXT NOT NULL DEFAULT '',
  logging TEXT NOT NULL DEFAULT '', public_access_block TEXT NOT NULL DEFAULT '',
  encryption TEXT NOT NULL DEFAULT '', ownership TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS objects(
  id INTEGER PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL,
  is_latest INTEGER NOT NULL, delete_marker INTEGER NOT NULL, size INTEGER NOT NULL,
  etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, content_type TEXT NOT NULL,
  extra TEXT NOT NULL, segments TEXT NOT NULL, data_crc INTEGER NOT NULL, data BLOB);
CREATE INDEX IF NOT EXISTS objects_key ON objects(bucket, key, id);
CREATE INDEX IF NOT EXISTS objects_latest ON objects(bucket, key, delete_marker, size, etag, mtime_ms)
  WHERE is_latest = 1;
CREATE TABLE IF NOT EXISTS uploads(
  upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
  created_ms INTEGER NOT NULL, content_type TEXT NOT NULL, extra TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_key ON uploads(bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts(
  upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, size INTEGER NOT NULL,
  etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, segment TEXT NOT NULL,
  checksums TEXT NOT NULL DEFAULT '', PRIMARY KEY(upload_id, part_number)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts(
  name TEXT PRIMARY KEY, public_access_block TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completed_uploads(
  upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, parts TEXT NOT NULL,
  etag TEXT NOT NULL, version_id TEXT NOT NULL, completed_ms INTEGER NOT NULL) WITHOUT ROWID;
)sql";

// A bucket row (BucketMeta's fields in order) with its owner account's Public Access Block.
constexpr const char* kBucketCols =
    "b.name, b.created_ms, b.versioning, b.public_read, b.policy, b.lifecycle, b.tags, b.cors, "
    "b.owner, b.acl, b.object_lock, b.logging, b.public_access_block, b.encryption, b.ownership, "
    "COALESCE(a.public_access_block, '')";
constexpr const char* kBucketsJoin = "buckets b LEFT JOIN accounts a ON a.name = b.owner";

// Columns every object query selects, in the order RowToObject reads them.
}  // namespace

namespace meta_internal {

constexpr const char* kObjectCols =
    "id, bucket, key, version_id, is_latest, delete_marker, size, etag, mtime_ms, content_type, "
    "extra, segments, data_crc, data IS NOT NULL";
const char* const kObjectColsWithData =
    "id, bucket, key, version_id, is_latest, delete_marker, size, etag, mtime_ms, content_type, "
    "extra, segments, data_crc, data IS NOT NULL, data";

ObjectMeta RowToObject(const SqliteStmt& s, bool with_data) {
  ObjectMeta o;
  o.seq = s.ColumnInt(0);
  o.bucket = s.ColumnText(1);
  o.key = s.ColumnText(2);
  o.version_id = s.ColumnText(3);
  o.is_latest = s.ColumnInt(4) != 0;
  o.delete_marker = s.ColumnInt(5) != 0;
  o.size = static_cast<uint64_t>(s.ColumnInt(6));
  o.etag = s.ColumnText(7);
  o.mtime_ms = s.ColumnInt(8);
  o.content_type = s.ColumnText(9);
  o.headers = DecodeHeaders(s.ColumnText(10));
  DecodeSegments(s.ColumnText(11), &o.segments);
  o.inline_crc = static_cast<uint32_t>(s.ColumnInt(12));
  o.has_inline = s.ColumnInt(13) != 0;
  if (with_data && o.has_inline) o.inline_data = s.ColumnBlob(14);
  return o;
}

// Smallest string greater than every string starting with prefix, or "" when none exists.
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c < 0xFF) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return "";
}

Status FreeRow(SqliteDb& db, const ObjectMeta& row, WriteResult* result) {
  PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM objects WHERE id = ?", row.seq));
  for (const auto& seg : row.segments) {
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM blobs WHERE id = ?", seg.blob_id));
    result->freed_blobs.push_back(seg.blob_id);
  }
  return absl::OkStatus();
}

StatusOr<std::string> VersioningOf(SqliteDb& db, const std::string& bucket) {
  PHOTON_ASSIGN_OR_RETURN(auto s,
                          db.Query("SELECT versioning FROM buckets WHERE name = ?", bucket));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return S3Error("NoSuchBucket", "The specified bucket does not exist");
  return s.ColumnText(0);
}

StatusOr<std::optional<ObjectMeta>> FindVersion(SqliteDb& db, const std::string& bucket,
                                                const std::string& key,
                                                const std::string& version_id) {
  PHOTON_ASSIGN_OR_RETURN(
      auto s, db.Query(std::string("SELECT ") + kObjectCols +
                           " FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                       bucket, key, version_id));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (found) return std::optional<ObjectMeta>(RowToObject(s, false));
  return std::optional<ObjectMeta>();
}

Status CheckPrecondition(SqliteDb& db, const std::string& bucket, const std::string& key,
                         const std::string& version_id, const Precondition& pre) {
  if (!pre) return absl::OkStatus();
  std::optional<ObjectMeta> target;
  if (version_id.empty()) {
    PHOTON_ASSIGN_OR_RETURN(
        auto s, db.Query(std::string("SELECT ") + kObjectCols +
                             " FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1",
                         bucket, key));
    PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
    if (found) target = RowToObject(s, false);
  } else {
    PHOTON_ASSIGN_OR_RETURN(target, FindVersion(db, bucket, key, version_id));
  }
  return pre(target && !target->delete_marker ? &*target : nullptr);
}

Status ClearLatest(SqliteDb& db, const std::string& bucket, const std::string& key) {
  return db.Run("UPDATE objects SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1",
                bucket, key);
}

Status InsertRow(SqliteDb& db, const ObjectMeta& o) {
  PHOTON_ASSIGN_OR_RETURN(
      auto s, db.Query("INSERT INTO objects(bucket, key, version_id, is_latest, delete_marker, "
                       "size, etag, mtime_ms, content_type, extra, segments, data_crc, data) "
                       "VALUES(?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       o.bucket, o.key, o.version_id, o.delete_marker, static_cast<int64_t>(o.size),
                       o.etag, o.mtime_ms, o.content_type, EncodeHeaders(o.headers),
                       EncodeSegments(o.segments), o.inline_crc));
  if (o.has_inline) {
    s.BindBlob(12, o.inline_data);
  } else {
    s.BindNull(12);
  }
  PHOTON_RETURN_IF_ERROR(s.Run());
  for (const auto& seg : o.segments) {
    PHOTON_RETURN_IF_ERROR(db.Run("INSERT OR IGNORE INTO blobs(id) VALUES(?)", seg.blob_id));
  }
  return absl::OkStatus();
}

// Writes a new latest version (or delete marker) following the bucket's versioning state.
Status InsertVersion(SqliteDb& db, ObjectMeta& o, WriteResult* result) {
  PHOTON_ASSIGN_OR_RETURN(std::string versioning, VersioningOf(db, o.bucket));
  if (versioning == "Enabled") {
    o.version_id = NewVersionId(o.mtime_ms);
  } else {
    o.version_id = "null";
    PHOTON_ASSIGN_OR_RETURN(auto old, FindVersion(db, o.bucket, o.key, "null"));
    if (old) PHOTON_RETURN_IF_ERROR(FreeRow(db, *old, result));
  }
  PHOTON_RETURN_IF_ERROR(ClearLatest(db, o.bucket, o.key));
  PHOTON_RETURN_IF_ERROR(InsertRow(db, o));
  result->version_id = o.version_id;
  result->delete_marker = o.delete_marker;
  return absl::OkStatus();
}

UploadMeta RowToUpload(const SqliteStmt& s) {
  UploadMeta u;
  u.upload_id = s.ColumnText(0);
  u.bucket = s.ColumnText(1);
  u.key = s.ColumnText(2);
  u.created_ms = s.ColumnInt(3);
  u.content_type = s.ColumnText(4);
  u.headers = DecodeHeaders(s.ColumnText(5));
  return u;
}

PartMeta RowToPart(const SqliteStmt& s) {
  PartMeta p;
  p.part_number = static_cast<int>(s.ColumnInt(0));
  p.size = static_cast<uint64_t>(s.ColumnInt(1));
  p.etag = s.ColumnText(2);
  p.mtime_ms = s.ColumnInt(3);
  std::vector<Segment> segs;
  if (DecodeSegments(s.ColumnText(4), &segs) && !segs.empty()) p.segment = segs[0];
  p.checksums = DecodeHeaders(s.ColumnText(5));
  return p;
}

Status NoSuchUpload() {
  return S3Error("NoSuchUpload",
                 "The specified multipart upload does not exist. The upload ID may be invalid, "
                 "or the upload may have been aborted or completed.");
}

}  // namespace meta_internal

using namespace meta_internal;

std::string NewVersionId(int64_t now_ms) {
  char buf[24];
  snprintf(buf, sizeof buf, "%013lld", static_cast<long long>(now_ms));
  return std::string(buf) + RandomHex(8);
}

StatusOr<std::unique_ptr<SqliteDb>> MetaStore::NewConn() {
  PHOTON_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path_, std::chrono::seconds(30)));
  PHOTON_RETURN_IF_ERROR(
      db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               " PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;"));
  return db;
}

MetaStore::Reader MetaStore::Borrow() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      auto conn = std::move(pool_.back());
      pool_.pop_back();
      return Reader(this, std::move(conn));
    }
  }
  auto conn = NewConn();
  if (!conn.ok()) {
    spdlog::error("metadata: {}", std::string(conn.status().message()));
    return Reader(this, nullptr);
  }
  return Reader(this, std::move(*conn));
}

StatusOr<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& db_path) {
  std::unique_ptr<MetaStore> store(new MetaStore());
  store->path_ = db_path;
  PHOTON_ASSIGN_OR_RETURN(store->writer_, store->NewConn());
  PHOTON_RETURN_IF_ERROR(store->writer_->Exec(kSchema));
  // Data directories made before bucket tagging, CORS or accounts existed lack the column; their
  // buckets belong to the default account.
  for (const char* column : {"tags", "cors", "acl", "owner", "object_lock", "logging",
                             "public_access_block", "encryption", "ownership"}) {
    PHOTON_ASSIGN_OR_RETURN(
        auto has, store->writer_->Query("SELECT 1 FROM pragma_table_info('buckets') WHERE name = ?",
                                        std::string(column)));
    PHOTON_ASSIGN_OR_RETURN(bool present, has.Step());
    if (!present) {
      std::string fallback = std::string(column) == "owner" ? "lightningstor" : "";
      PHOTON_RETURN_IF_ERROR(store->writer_->Exec(std::string("ALTER TABLE buckets ADD COLUMN ") +
                                                  column + " TEXT NOT NULL DEFAULT '" + fallback +
                                                  "'"));
    }
  }
  // Parts stored before their checksums were kept have none.
  PHOTON_ASSIGN_OR_RETURN(
      auto has, store->writer_->Query("SELECT 1 FROM pragma_table_info('parts') WHERE name = ?",
                                      std::string("checksums")));
  PHOTON_ASSIGN_OR_RETURN(bool present, has.Step());
  if (!present) {
    PHOTON_RETURN_IF_ERROR(
        store->writer_->Exec("ALTER TABLE parts ADD COLUMN checksums TEXT NOT NULL DEFAULT ''"));
  }
  return store;
}

Status MetaStore::Write(Change change, bool buckets) {
  Pending pending{std::move(change), absl::OkStatus(), false, buckets};
  std::unique_lock<std::mutex> lock(write_mu_);
  queue_.push_back(&pending);
  while (!pending.done) {
    if (leader_active_) {
      write_cv_.wait(lock);
      continue;
    }
    // Become the leader: take everything queued so far, commit it as one transaction.
    leader_active_ = true;
    std::vector<Pending*> batch;
    batch.swap(queue_);
    lock.unlock();
    RunBatch(batch);
    lock.lock();
    for (Pending* p : batch) p->done = true;
    leader_active_ = false;
    write_cv_.notify_all();
  }
  return pending.status;
}

Status MetaStore::WriteBuckets(Change change) { return Write(std::move(change), true); }

// The generations are odd while a COMMIT is under way (no cached row is served or kept) and
// even again once it is done, which retires every row read before it. A reader that read a
// generation, then the database, keeps its row only when the generation is the same even
// number afterwards: no commit happened in between, so the row was the latest. A row read
// before a commit can then never be served after a reader saw the commit's row.
void MetaStore::BumpGenerations(bool buckets) {
  {
    std::lock_guard<std::shared_mutex> lock(object_mu_);
    ++object_generation_;
  }
  if (!buckets) return;
  std::lock_guard<std::shared_mutex> lock(bucket_mu_);
  ++bucket_generation_;
  bucket_cache_.clear();
}

void MetaStore::RunBatch(std::vector<Pending*>& batch) {
  SqliteDb& db = *writer_;
  Status begin = db.Exec("BEGIN IMMEDIATE");
  if (!begin.ok()) {
    for (Pending* p : batch) p->status = begin;
    return;
  }
  for (Pending* p : batch) {
    (void)db.Exec("SAVEPOINT change");
    p->status = p->change(db);
    if (!p->status.ok()) (void)db.Exec("ROLLBACK TO change");
    (void)db.Exec("RELEASE change");
  }
  bool buckets = false;
  for (Pending* p : batch) buckets = buckets || p->buckets;
  BumpGenerations(buckets);  // odd: a commit is under way
  Status commit = db.Exec("COMMIT");
  if (!commit.ok()) {
    (void)db.Exec("ROLLBACK");
    for (Pending* p : batch)
      if (p->status.ok()) p->status = commit;
  }
  BumpGenerations(buckets);  // even: every later read sees the commit
}

Status MetaStore::CreateBucket(const BucketMeta& bucket) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_ASSIGN_OR_RETURN(auto s, db.Query("SELECT 1 FROM buckets WHERE name = ?", bucket.name));
    PHOTON_ASSIGN_OR_RETURN(bool exists, s.Step());
    if (exists) {
      PHOTON_ASSIGN_OR_RETURN(auto o,
                              db.Query("SELECT owner FROM buckets WHERE name = ?", bucket.name));
      PHOTON_ASSIGN_OR_RETURN(bool found, o.Step());
      if (found && o.ColumnText(0) != bucket.owner) {
        return S3Error("BucketAlreadyExists",
                       "The requested bucket name is not available. The bucket namespace is "
                       "shared by all users of the system. Please select a different name and "
                       "try again.");
      }
      return S3Error(
          "BucketAlreadyOwnedByYou",
          "Your previous request to create the named bucket succeeded and you already own it.");
    }
    return db.Run(
        "INSERT INTO buckets(name, created_ms, tags, owner, acl, public_read, versioning, "
        "object_lock, ownership) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        bucket.name, bucket.created_ms, bucket.tags, bucket.owner, bucket.acl, bucket.public_read,
        bucket.versioning, bucket.object_lock, bucket.ownership);
  });
}

StatusOr<BucketMeta> MetaStore::GetBucket(const std::string& name) {
  PHOTON_ASSIGN_OR_RETURN(auto bucket, GetBucketShared(name));
  return *bucket;
}

StatusOr<std::shared_ptr<const BucketMeta>> MetaStore::GetBucketShared(const std::string& name) {
  uint64_t generation;
  {
    std::shared_lock<std::shared_mutex> lock(bucket_mu_);
    generation = bucket_generation_;
    auto it = bucket_cache_.find(name);
    if (generation % 2 == 0 && it != bucket_cache_.end()) return it->second;
  }
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Query(std::string("SELECT ") + kBucketCols + " FROM " +
                                                kBucketsJoin + " WHERE b.name = ?",
                                            name));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return S3Error("NoSuchBucket", "The specified bucket does not exist");
  auto bucket = std::make_shared<const BucketMeta>(
      BucketMeta{s.ColumnText(0), s.ColumnInt(1), s.ColumnText(2), s.ColumnInt(3) != 0,
                 s.ColumnText(4), s.ColumnText(5), s.ColumnText(6), s.ColumnText(7),
                 s.ColumnText(8), s.ColumnText(9), s.ColumnText(10), s.ColumnText(11),
                 s.ColumnText(12), s.ColumnText(13), s.ColumnText(14), s.ColumnText(15)});
  std::lock_guard<std::shared_mutex> lock(bucket_mu_);
  // Kept only if no bucket write committed since the read began: that row may predate it.
  if (generation == bucket_generation_ && generation % 2 == 0) {
    if (bucket_cache_.size() >= kBucketCacheSize) bucket_cache_.clear();
    bucket_cache_.emplace(name, bucket);
  }
  return bucket;
}

StatusOr<std::vector<BucketMeta>> MetaStore::ListBuckets() {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Prepare(std::string("SELECT ") + kBucketCols + " FROM " +
                                              kBucketsJoin + " ORDER BY b.name"));
  std::vector<BucketMeta> out;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) {
    out.push_back({r.ColumnText(0), r.ColumnInt(1), r.ColumnText(2), r.ColumnInt(3) != 0,
                   r.ColumnText(4), r.ColumnText(5), r.ColumnText(6), r.ColumnText(7),
                   r.ColumnText(8), r.ColumnText(9), r.ColumnText(10), r.ColumnText(11),
                   r.ColumnText(12), r.ColumnText(13), r.ColumnText(14), r.ColumnText(15)});
  }));
  return out;
}

StatusOr<WriteResult> MetaStore::DeleteBucket(const std::string& name) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    PHOTON_ASSIGN_OR_RETURN(auto s,
                            db.Query("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", name));
    PHOTON_ASSIGN_OR_RETURN(bool used, s.Step());
    if (used) return S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty");
    WriteResult r;
    PHOTON_ASSIGN_OR_RETURN(auto parts, db.Query("SELECT p.segment FROM parts p JOIN uploads u ON "
                                                 "p.upload_id = u.upload_id WHERE u.bucket = ?",
                                                 name));
    PHOTON_RETURN_IF_ERROR(parts.ForEachRow([&](const SqliteStmt& row) {
      std::vector<Segment> segs;
      DecodeSegments(row.ColumnText(0), &segs);
      for (const auto& seg : segs) r.freed_blobs.push_back(seg.blob_id);
    }));
    for (const auto& id : r.freed_blobs)
      PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM blobs WHERE id = ?", id));
    PHOTON_RETURN_IF_ERROR(db.Run(
        "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket = ?)",
        name));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM uploads WHERE bucket = ?", name));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM completed_uploads WHERE bucket = ?", name));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM buckets WHERE name = ?", name));
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

Status MetaStore::SetVersioning(const std::string& name, const std::string& state) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET versioning = ? WHERE name = ?", state, name);
  });
}

Status MetaStore::SetPolicy(const std::string& name, bool public_read, const std::string& policy) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET public_read = ?, policy = ? WHERE name = ?", public_read,
                  policy, name);
  });
}

Status MetaStore::SetBucketAcl(const std::string& name, bool public_read, const std::string& acl) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET public_read = ?, acl = ? WHERE name = ?", public_read, acl,
                  name);
  });
}

Status MetaStore::SetObjectLock(const std::string& name, const std::string& config) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_ASSIGN_OR_RETURN(auto s,
                            db.Query("SELECT object_lock FROM buckets WHERE name = ?", name));
    PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return S3Error("NoSuchBucket", "The specified bucket does not exist");
    if (s.ColumnText(0).empty()) {
      return S3Error("InvalidBucketState",
                     "Object Lock configuration cannot be enabled on existing buckets");
    }
    return db.Run("UPDATE buckets SET object_lock = ? WHERE name = ?", config, name);
  });
}

Status MetaStore::SetLogging(const std::string& name, const std::string& target) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET logging = ? WHERE name = ?", target, name);
  });
}

Status MetaStore::SetPublicAccessBlock(const std::string& name, const std::string& config) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET public_access_block = ? WHERE name = ?", config, name);
  });
}

Status MetaStore::SetEncryption(const std::string& name, const std::string& config) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET encryption = ? WHERE name = ?", config, name);
  });
}

Status MetaStore::SetOwnership(const std::string& name, const std::string& ownership,
                               const std::function<Status(const BucketMeta&)>& check) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_ASSIGN_OR_RETURN(
        auto s, db.Query("SELECT owner, acl, public_read FROM buckets WHERE name = ?", name));
    PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return S3Error("NoSuchBucket", "The specified bucket does not exist");
    BucketMeta b;
    b.name = name;
    b.owner = s.ColumnText(0);
    b.acl = s.ColumnText(1);
    b.public_read = s.ColumnInt(2) != 0;
    if (check) PHOTON_RETURN_IF_ERROR(check(b));
    return db.Run("UPDATE buckets SET ownership = ? WHERE name = ?", ownership, name);
  });
}

Status MetaStore::SetAccountPublicAccessBlock(const std::string& account,
                                              const std::string& config) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    return db.Run(
        "INSERT INTO accounts(name, public_access_block) VALUES(?, ?) ON CONFLICT(name) DO "
        "UPDATE SET public_access_block = excluded.public_access_block",
        account, config);
  });
}

StatusOr<std::string> MetaStore::GetAccountPublicAccessBlock(const std::string& account) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(
      auto s, db->Query("SELECT public_access_block FROM accounts WHERE name = ?", account));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  return found ? s.ColumnText(0) : std::string();
}

Status MetaStore::SetLifecycle(const std::string& name, const std::string& lifecycle_xml) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET lifecycle = ? WHERE name = ?", lifecycle_xml, name);
  });
}

Status MetaStore::SetCors(const std::string& name, const std::string& cors_xml) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET cors = ? WHERE name = ?", cors_xml, name);
  });
}

Status MetaStore::SetTags(const std::string& name, const std::string& tagging_xml) {
  return WriteBuckets([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, name).status());
    return db.Run("UPDATE buckets SET tags = ? WHERE name = ?", tagging_xml, name);
  });
}

StatusOr<WriteResult> MetaStore::PutObject(ObjectMeta object, const Precondition& pre) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, object.bucket).status());
    PHOTON_RETURN_IF_ERROR(CheckPrecondition(db, object.bucket, object.key, "", pre));
    WriteResult attempt;
    PHOTON_RETURN_IF_ERROR(InsertVersion(db, object, &attempt));
    result = std::move(attempt);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<ObjectMeta> MetaStore::GetObject(const std::string& bucket, const std::string& key,
                                          const std::string& version_id, bool* is_marker) {
  PHOTON_ASSIGN_OR_RETURN(auto row, GetObjectShared(bucket, key, version_id, is_marker));
  return *row;
}

StatusOr<std::shared_ptr<const ObjectMeta>> MetaStore::GetObjectShared(
    const std::string& bucket, const std::string& key, const std::string& version_id,
    bool* is_marker) {
  if (is_marker) *is_marker = false;
  std::string cache_key;
  uint64_t generation = 0;
  if (version_id.empty()) {
    cache_key = bucket + '\0' + key;
    std::shared_lock<std::shared_mutex> lock(object_mu_);
    generation = object_generation_;
    auto it = object_cache_.find(cache_key);
    if (generation % 2 == 0 && it != object_cache_.end() && it->second.first == generation) {
      const auto& hit = it->second.second;
      return std::shared_ptr<const ObjectMeta>(hit, &hit->first);
    }
  }
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(
      auto s, db->Query(std::string("SELECT ") + kObjectColsWithData +
                            (version_id.empty()
                                 ? " FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1"
                                 : " FROM objects WHERE bucket = ? AND key = ? AND version_id = ?"),
                        bucket, key));
  if (!version_id.empty()) s.BindText(3, version_id);
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) {
    if (!version_id.empty())
      return S3Error("NoSuchVersion", "The specified version does not exist.");
    return S3Error("NoSuchKey", "The specified key does not exist.");
  }
  ObjectMeta o = RowToObject(s, true);
  if (o.delete_marker) {
    if (is_marker) *is_marker = true;
    if (version_id.empty()) return S3Error("NoSuchKey", "The specified key does not exist.");
    return S3Error("MethodNotAllowed",
                   "The specified method is not allowed against this resource.");
  }
  if (cache_key.empty()) return std::make_shared<const ObjectMeta>(std::move(o));
  return KeepObject(cache_key, generation, std::move(o));
}

std::shared_ptr<const ObjectMeta> MetaStore::KeepObject(const std::string& cache_key,
                                                        uint64_t generation, ObjectMeta o) {
  size_t bytes = cache_key.size() + o.inline_data.size() + o.etag.size() + o.content_type.size() +
                 o.segments.size() * 64 + 256;
  for (const auto& seg : o.segments) bytes += seg.block_crcs.size();
  for (const auto& [k, v] : o.headers) bytes += k.size() + v.size() + 64;
  auto row = std::make_shared<const std::pair<ObjectMeta, size_t>>(std::move(o), bytes);
  std::shared_ptr<const ObjectMeta> shared(row, &row->first);
  if (bytes > kObjectCacheBytes / 64) return shared;  // (an object of many parts, say)
  std::lock_guard<std::shared_mutex> lock(object_mu_);
  // A row read before or during a commit may be stale: not kept.
  if (generation != object_generation_ || generation % 2 != 0) return shared;
  if (object_cache_bytes_ + bytes > kObjectCacheBytes) {
    object_cache_.clear();
    object_cache_bytes_ = 0;
  }
  auto& entry = object_cache_[cache_key];
  object_cache_bytes_ += bytes - (entry.second ? entry.second->second : 0);
  entry = {generation, std::move(row)};
  return shared;
}

StatusOr<WriteResult> MetaStore::DeleteObject(const std::string& bucket, const std::string& key,
                                              const std::string& version_id, int64_t now_ms,
                                              const Precondition& pre, bool bypass_governance) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    WriteResult r;
    PHOTON_ASSIGN_OR_RETURN(std::string versioning, VersioningOf(db, bucket));
    PHOTON_RETURN_IF_ERROR(CheckPrecondition(db, bucket, key, version_id, pre));
    if (version_id.empty()) {
      if (versioning.empty()) {
        PHOTON_ASSIGN_OR_RETURN(auto old, FindVersion(db, bucket, key, "null"));
        if (old) PHOTON_RETURN_IF_ERROR(FreeRow(db, *old, &r));
      } else {
        ObjectMeta marker;
        marker.bucket = bucket;
        marker.key = key;
        marker.delete_marker = true;
        marker.mtime_ms = now_ms;
        PHOTON_RETURN_IF_ERROR(InsertVersion(db, marker, &r));
      }
    } else {
      PHOTON_ASSIGN_OR_RETURN(auto row, FindVersion(db, bucket, key, version_id));
      if (row) {
        // Checked in the commit that would delete it: every path (DELETE, DeleteObjects, the
        // lifecycle sweeper) meets the same lock.
        PHOTON_RETURN_IF_ERROR(CheckDeletable(row->headers, now_ms, bypass_governance));
        PHOTON_RETURN_IF_ERROR(FreeRow(db, *row, &r));
        if (row->is_latest) {
          PHOTON_RETURN_IF_ERROR(
              db.Run("UPDATE objects SET is_latest = 1 WHERE id = (SELECT id FROM objects "
                     "WHERE bucket = ? AND key = ? ORDER BY id DESC LIMIT 1)",
                     bucket, key));
        }
        r.delete_marker = row->delete_marker;
      }
      r.version_id = version_id;
    }
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<std::string> MetaStore::UpdateObjectHeaders(
    const std::string& bucket, const std::string& key, const std::string& version_id,
    const std::function<Status(std::map<std::string, std::string>&)>& change) {
  std::string changed;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, bucket).status());
    std::optional<ObjectMeta> row;
    if (version_id.empty()) {
      PHOTON_ASSIGN_OR_RETURN(
          auto s, db.Query(std::string("SELECT ") + kObjectCols +
                               " FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1",
                           bucket, key));
      PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
      if (found) row = RowToObject(s, false);
      if (!row || row->delete_marker)
        return S3Error("NoSuchKey", "The specified key does not exist.");
    } else {
      PHOTON_ASSIGN_OR_RETURN(row, FindVersion(db, bucket, key, version_id));
      if (!row) return S3Error("NoSuchVersion", "The specified version does not exist.");
      if (row->delete_marker) {
        return S3Error("MethodNotAllowed",
                       "The specified method is not allowed against this resource.");
      }
    }
    PHOTON_RETURN_IF_ERROR(change(row->headers));
    changed = row->version_id;
    return db.Run("UPDATE objects SET extra = ? WHERE id = ?", EncodeHeaders(row->headers),
                  row->seq);
  }));
  return changed;
}

StatusOr<std::vector<ListEntry>> MetaStore::ListLatest(const std::string& bucket,
                                                       const std::string& prefix,
                                                       const std::string& after,
                                                       bool inclusive_after, int limit,
                                                       bool with_owner) {
  PHOTON_BORROW(db);
  std::string end = PrefixEnd(prefix);
  // Start at the prefix, or just after `after` when that lies at or beyond the prefix.
  bool use_after = !after.empty() && after >= prefix;
  const std::string& lower = use_after ? after : prefix;
  bool inclusive = !use_after || inclusive_after;
  std::string sql = std::string("SELECT key, delete_marker, size, etag, mtime_ms") +
                    (with_owner ? ", extra" : "") +
                    " FROM objects WHERE bucket = ?1 AND is_latest = 1 AND key ";
  sql += inclusive ? ">= ?2" : "> ?2";
  if (!end.empty()) sql += " AND key < ?3";
  sql += " ORDER BY key LIMIT ?4";
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Prepare(sql));
  s.BindText(1, bucket).BindText(2, lower).BindInt(4, limit);
  if (!end.empty()) s.BindText(3, end);
  std::vector<ListEntry> out;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) {
    out.push_back({r.ColumnText(0), r.ColumnInt(1) != 0, static_cast<uint64_t>(r.ColumnInt(2)),
                   r.ColumnText(3), r.ColumnInt(4), ""});
    if (with_owner) {
      auto headers = DecodeHeaders(r.ColumnText(5));
      auto owner = headers.find("x-photon-owner");
      if (owner != headers.end()) out.back().owner = owner->second;
    }
  }));
  return out;
}

StatusOr<std::vector<ObjectMeta>> MetaStore::ListVersions(const std::string& bucket,
                                                          const std::string& prefix,
                                                          const std::string& key_marker,
                                                          const std::string& version_marker,
                                                          int limit) {
  PHOTON_BORROW(db);
  int64_t marker_id = -1;
  if (!key_marker.empty() && !version_marker.empty()) {
    PHOTON_ASSIGN_OR_RETURN(
        auto s, db->Query("SELECT id FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
                          bucket, key_marker, version_marker));
    PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
    if (found) marker_id = s.ColumnInt(0);
  }
  std::string end = PrefixEnd(prefix);
  std::string sql =
      std::string("SELECT ") + kObjectCols +
      " FROM objects WHERE bucket = ?1 AND key >= ?2 AND (key > ?3 OR (key = ?3 AND id < ?4))";
  if (!end.empty()) sql += " AND key < ?5";
  sql += " ORDER BY key, id DESC LIMIT ?6";
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Prepare(sql));
  s.BindAll(bucket, prefix, key_marker, marker_id).BindInt(6, limit);
  if (!end.empty()) s.BindText(5, end);
  std::vector<ObjectMeta> out;
  PHOTON_RETURN_IF_ERROR(
      s.ForEachRow([&](const SqliteStmt& r) { out.push_back(RowToObject(r, false)); }));
  return out;
}

}  // namespace photon::lightningstor
