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
#include <shared_mutex>
#include <string>
#include <unordered_map>
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
  std::string owner;  // with_owner listings: the writer ("" = the bucket's owner)
};

// What a write did, so the caller can remove freed blob files after the commit.
struct WriteResult {
  std::string version_id;
  bool delete_marker = false;
  std::vector<std::string> freed_blobs;
};

// A condition a write checks inside its transaction (so no other write can come between the
// check and the write) against the version the write targets: the named version of a delete by
// version id, else the key's latest version. The argument is nullptr when there is none or it
// is a delete marker. An error aborts the write and is its answer.
using Precondition = std::function<Status(const ObjectMeta* target)>;

// What a completed multipart upload answered, kept so a retried CompleteMultipartUpload (the
// first answer lost) gets the same answer.
struct CompletedUpload {
  std::string bucket;
  std::string key;
  std::string parts;  // "number:etag,..." as requested
  std::string etag;
  std::string version_id;
};

class MetaStore {
 public:
  static StatusOr<std::unique_ptr<MetaStore>> Open(const std::string& db_path);

  // Buckets.
  Status CreateBucket(const BucketMeta& bucket);
  StatusOr<BucketMeta> GetBucket(const std::string& name);
  // The same row shared with the cache, never changed (the access check of every request
  // reads its bucket: a copy is 16 strings).
  StatusOr<std::shared_ptr<const BucketMeta>> GetBucketShared(const std::string& name);
  StatusOr<std::vector<BucketMeta>> ListBuckets();
  // BucketNotEmpty while any version is left; unfinished multipart uploads are deleted with the
  // bucket (as S3 does), their part blobs are in the result.
  StatusOr<WriteResult> DeleteBucket(const std::string& name);
  Status SetVersioning(const std::string& name, const std::string& state);
  Status SetPolicy(const std::string& name, bool public_read, const std::string& policy);
  // The bucket's ACL grants (object_attrs.h) and whether they let everyone read.
  Status SetBucketAcl(const std::string& name, bool public_read, const std::string& acl);
  Status SetLifecycle(const std::string& name, const std::string& lifecycle_xml);
  Status SetLogging(const std::string& name, const std::string& target);
  Status SetPublicAccessBlock(const std::string& name, const std::string& config);
  Status SetEncryption(const std::string& name, const std::string& config);
  // An account's Public Access Block (S3 Control; "" = none). GetBucket reads its owner's
  // with each bucket (BucketMeta::account_public_access_block).
  Status SetAccountPublicAccessBlock(const std::string& account, const std::string& config);
  StatusOr<std::string> GetAccountPublicAccessBlock(const std::string& account);
  // Object Ownership; `check` sees the bucket's owner and ACL inside the commit (an ACL set
  // at the same time cannot slip past a refusal of BucketOwnerEnforced).
  Status SetOwnership(const std::string& name, const std::string& ownership,
                      const std::function<Status(const BucketMeta&)>& check = nullptr);
  // Replaces the Object Lock configuration of a bucket made with Object Lock
  // (InvalidBucketState otherwise: it cannot be turned on later).
  Status SetObjectLock(const std::string& name, const std::string& config);
  Status SetTags(const std::string& name, const std::string& tagging_xml);
  Status SetCors(const std::string& name, const std::string& cors_xml);

  // Objects. PutObject assigns the version id from the bucket's versioning state and
  // replaces the "null" version when versioning is off or suspended.
  StatusOr<WriteResult> PutObject(ObjectMeta object, const Precondition& pre = nullptr);
  // Latest version (NoSuchKey if none or a delete marker; `*is_marker` tells which) or a
  // given version (NoSuchVersion).
  StatusOr<ObjectMeta> GetObject(const std::string& bucket, const std::string& key,
                                 const std::string& version_id, bool* is_marker = nullptr);
  // The same row, shared with the read cache instead of copied (the GET path's).
  StatusOr<std::shared_ptr<const ObjectMeta>> GetObjectShared(const std::string& bucket,
                                                              const std::string& key,
                                                              const std::string& version_id,
                                                              bool* is_marker = nullptr);
  // S3 DELETE semantics: without a version id, a delete marker when versioning is on;
  // with one, removes exactly that version. A new delete marker is stamped now_ms.
  // Removing a version under Object Lock is AccessDenied (object_attrs.h CheckDeletable).
  StatusOr<WriteResult> DeleteObject(const std::string& bucket, const std::string& key,
                                     const std::string& version_id, int64_t now_ms,
                                     const Precondition& pre = nullptr,
                                     bool bypass_governance = false);
  // Changes the internal headers (tags, ACL) of an object version in place (the latest when
  // version_id is ""); NoSuchKey / NoSuchVersion, MethodNotAllowed for a delete marker.
  // Returns the version id changed.
  StatusOr<std::string> UpdateObjectHeaders(
      const std::string& bucket, const std::string& key, const std::string& version_id,
      const std::function<Status(std::map<std::string, std::string>&)>& change);
  // Latest versions with key > after (>= when inclusive) and key starting with prefix, in key
  // order, at most limit rows (delete markers included, flagged); with_owner also reads each
  // object's owner (off the covering index, so only when a listing shows owners).
  StatusOr<std::vector<ListEntry>> ListLatest(const std::string& bucket, const std::string& prefix,
                                              const std::string& after, bool inclusive, int limit,
                                              bool with_owner = false);
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
  // The completion is remembered (`done`) for FindCompleted.
  StatusOr<WriteResult> CompleteUpload(const std::string& upload_id, ObjectMeta object,
                                       const std::vector<int>& used_parts,
                                       const CompletedUpload& done,
                                       const Precondition& pre = nullptr);
  // A completed upload's answer, NoSuchUpload when none is remembered.
  StatusOr<CompletedUpload> FindCompleted(const std::string& upload_id);
  // Forgets completions older than before_ms.
  Status ForgetCompleted(int64_t before_ms);
  StatusOr<WriteResult> AbortUpload(const std::string& upload_id);
  StatusOr<std::vector<UploadMeta>> UploadsOlderThan(int64_t created_before_ms, int limit);

  // Objects (latest, not delete markers) in a bucket with a prefix, key > after and
  // mtime < before, in key order.
  StatusOr<std::vector<ObjectMeta>> ExpiryCandidates(const std::string& bucket,
                                                     const std::string& prefix,
                                                     const std::string& after,
                                                     int64_t mtime_before_ms, int limit);
  // Whether any object or part still uses this blob (startup clean-up of orphans).
  StatusOr<bool> BlobReferenced(const std::string& blob_id);

 private:
  using Change = std::function<Status(SqliteDb&)>;
  struct Pending {
    Change change;
    Status status;
    bool done = false;
    bool buckets = false;  // touches the buckets or accounts tables
  };

  MetaStore() = default;
  // Runs `change` inside the next group commit; returns its status (or the commit's error).
  // `buckets`: it changes the buckets or accounts tables (the commit drops the bucket cache).
  Status Write(Change change, bool buckets = false);
  Status WriteBuckets(Change change);
  void RunBatch(std::vector<Pending*>& batch);
  // Around each COMMIT (meta_store.cc says how the caches use the parity).
  void BumpGenerations(bool buckets);

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

  // Bucket rows as GetBucket last read them: every request reads its bucket (access check),
  // and a read transaction costs more than the rest of a small GET's metadata work. Emptied by
  // every bucket or account write; bucket_generation_ keeps a read that raced one out of the cache.
  static constexpr size_t kBucketCacheSize = 4096;
  std::shared_mutex bucket_mu_;  // shared for a cache hit: 16 request threads read at once
  std::unordered_map<std::string, std::shared_ptr<const BucketMeta>> bucket_cache_;
  uint64_t bucket_generation_ = 0;

  // Latest versions as GetObject last read them (small objects with their bytes), so a GET
  // of a hot object skips SQLite. Every commit bumps object_generation_ before and after,
  // which retires all entries at once (an entry counts only at its generation): the cache
  // serves GET-heavy moments and steps aside while anything is written.
  // Returns the row as shared (cached or not).
  std::shared_ptr<const ObjectMeta> KeepObject(const std::string& cache_key, uint64_t generation,
                                               ObjectMeta o);
  static constexpr size_t kObjectCacheBytes = 64 << 20;
  std::shared_mutex object_mu_;  // shared for a cache hit
  // key -> (generation, (row, bytes it is counted as))
  std::unordered_map<std::string,
                     std::pair<uint64_t, std::shared_ptr<const std::pair<ObjectMeta, size_t>>>>
      object_cache_;
  size_t object_cache_bytes_ = 0;
  uint64_t object_generation_ = 0;
};

// Version ids for versioned buckets: sortable by time, unique by randomness.
std::string NewVersionId(int64_t now_ms);

}  // namespace photon::lightningstor
