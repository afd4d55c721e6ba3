// Metadata of buckets, object versions, multipart uploads and parts in SQLite (WAL,
// synchronous=FULL) inside the data dir. Object bytes either sit inline in the DB (small
// objects: one commit makes them durable and visible together) or in blob files written and
// fsynced *before* the metadata commit that makes them visible.
//
// Writes go through a group commit: concurrent writers queue their change, one of them (the
// leader) applies the whole queue in one transaction, each change inside its own savepoint so
// one failure does not undo the others, and one fsync covers them all. Reads use a pool of
// connections and see the last commit. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "common/status.h"
#include "lightningstor/types.h"

namespace photon::lightningstor {

// One row of a listing of latest versions.
struct ListEntry {
  std::string key;
  bool delete_marker = false;
  uint64_t size = 0;
  std::string etag;
  int64_t mtime_ms = 0;
};

// What a write did, so the caller can remove freed blob files after the commit.
struct WriteResult {
  std::string version_id;
  bool delete_marker = false;
  std::vector<std::string> freed_blobs;
};

class MetaStore {
 public:
  static StatusOr<std::unique_ptr<MetaStore>> Open(const std::string& db_path);

  // Buckets.
  Status CreateBucket(const BucketMeta& bucket);
  StatusOr<BucketMeta> GetBucket(const std::string& name);
  StatusOr<std::vector<BucketMeta>> ListBuckets();
  Status DeleteBucket(const std::string& name);  // BucketNotEmpty unless no versions/uploads
  Status SetVersioning(const std::string& name, const std::string& state);
  Status SetPolicy(const std::string& name, bool public_read, const std::string& policy);
  Status SetLifecycle(const std::string& name, const std::string& lifecycle_xml);
  Status SetTags(const std::string& name, const std::string& tagging_xml);

  // Objects. PutObject assigns the version id from the bucket's versioning state and
  // replaces the "null" version when versioning is off or suspended.
  StatusOr<WriteResult> PutObject(ObjectMeta object);
  // Latest version (NoSuchKey if none or a delete marker; `*is_marker` tells which) or a
  // given version (NoSuchVersion).
  StatusOr<ObjectMeta> GetObject(const std::string& bucket, const std::string& key,
                                 const std::string& version_id, bool* is_marker = nullptr);
  // S3 DELETE semantics: without a version id, a delete marker when versioning is on;
  // with one, removes exactly that version. A new delete marker is stamped now_ms.
  StatusOr<WriteResult> DeleteObject(const std::string& bucket, const std::string& key,
                                     const std::string& version_id, int64_t now_ms);
  // Latest versions with key > after (>= when inclusive) and key starting with prefix, in key
  // order, at most limit rows (delete markers included, flagged).
  StatusOr<std::vector<ListEntry>> ListLatest(const std::string& bucket, const std::string& prefix,
                                              const std::string& after, bool inclusive, int limit);
  // All versions, key ascending then newest first, starting after (key_marker,
  // version_marker) when given.
  StatusOr<std::vector<ObjectMeta>> ListVersions(const std::string& bucket,
                                                 const std::string& prefix,
                                                 const std::string& key_marker,
                                                 const std::string& version_marker, int limit);

  // Multipart.
  Status CreateUpload(const UploadMeta& upload);
  StatusOr<UploadMeta> GetUpload(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id);
  // Adds or replaces a part; the replaced part's blob is freed.
  StatusOr<WriteResult> PutPart(const std::string& upload_id, const PartMeta& part);
  StatusOr<std::vector<PartMeta>> ListParts(const std::string& upload_id, int after, int limit);
  StatusOr<std::vector<UploadMeta>> ListUploads(const std::string& bucket,
                                                const std::string& prefix,
                                                const std::string& key_marker,
                                                const std::string& upload_marker, int limit);
  // Turns the upload into an object; `used_parts` are kept, other parts' blobs are freed.
  StatusOr<WriteResult> CompleteUpload(const std::string& upload_id, ObjectMeta object,
                                       const std::vector<int>& used_parts);
  StatusOr<WriteResult> AbortUpload(const std::string& upload_id);
  StatusOr<std::vector<UploadMeta>> UploadsOlderThan(int64_t created_before_ms, int limit);

  // Objects (latest, not delete markers) in a bucket with a prefix and mtime < before.
  StatusOr<std::vector<ObjectMeta>> ExpiryCandidates(const std::string& bucket,
                                                     const std::string& prefix,
                                                     int64_t mtime_before_ms, int limit);
  // Whether any object or part still uses this blob (startup clean-up of orphans).
  StatusOr<bool> BlobReferenced(const std::string& blob_id);

 private:
  using Change = std::function<Status(SqliteDb&)>;
  struct Pending {
    Change change;
    Status status;
    bool done = false;
  };

  MetaStore() = default;
  // Runs `change` inside the next group commit; returns its status (or the commit's error).
  Status Write(Change change);
  void RunBatch(std::vector<Pending*>& batch);

  // Borrowed read connection; returned to the pool on destruction.
  class Reader;
  Reader Borrow();
  StatusOr<std::unique_ptr<SqliteDb>> NewConn();

  std::string path_;
  std::mutex write_mu_;  // guards queue_ and leader_active_
  std::condition_variable write_cv_;
  std::vector<Pending*> queue_;
  bool leader_active_ = false;
  std::unique_ptr<SqliteDb> writer_;

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<SqliteDb>> pool_;
};

// Version ids for versioned buckets: sortable by time, unique by randomness.
std::string NewVersionId(int64_t now_ms);

}  // namespace photon::lightningstor
