// Internal to the metadata store (meta_store.cc, meta_store_uploads.cc): row decoding,
// shared write steps and the borrowed read connection. Not for use outside the store.
#pragma once

#include <optional>
#include <string>

#include "lightningstor/meta_store.h"

namespace photon::lightningstor::meta_internal {

// Columns every object query selects, in the order RowToObject reads them.
extern const char* const kObjectCols;
extern const char* const kObjectColsWithData;

ObjectMeta RowToObject(const SqliteStmt& s, bool with_data);
UploadMeta RowToUpload(const SqliteStmt& s);
PartMeta RowToPart(const SqliteStmt& s);
// Smallest string greater than every string starting with prefix, or "" when none exists.
std::string PrefixEnd(const std::string& prefix);
// Deletes an object row and its blob references; freed blob ids go to result.
Status FreeRow(SqliteDb& db, const ObjectMeta& row, WriteResult* result);
// The bucket's versioning state; NoSuchBucket when it does not exist.
StatusOr<std::string> VersioningOf(SqliteDb& db, const std::string& bucket);
StatusOr<std::optional<ObjectMeta>> FindVersion(SqliteDb& db, const std::string& bucket,
                                                const std::string& key,
                                                const std::string& version_id);
// Writes a new latest version (or delete marker) following the bucket's versioning state.
Status InsertVersion(SqliteDb& db, ObjectMeta& o, WriteResult* result);
Status NoSuchUpload();
// Runs `pre` (when set) against the version a write targets (see Precondition).
Status CheckPrecondition(SqliteDb& db, const std::string& bucket, const std::string& key,
                         const std::string& version_id, const Precondition& pre);

}  // namespace photon::lightningstor::meta_internal

namespace photon::lightningstor {

// A pooled read connection, returned to the pool on destruction.
class MetaStore::Reader {
 public:
  Reader(MetaStore* store, std::unique_ptr<SqliteDb> conn)
      : store_(store), conn_(std::move(conn)) {}
  Reader(Reader&& other) noexcept = default;
  ~Reader() {
    if (conn_) {
      std::lock_guard<std::mutex> lock(store_->pool_mu_);
      store_->pool_.push_back(std::move(conn_));
    }
  }
  bool ok() const { return conn_ != nullptr; }
  SqliteDb& operator*() { return *conn_; }
  SqliteDb* operator->() { return conn_.get(); }

 private:
  MetaStore* store_;
  std::unique_ptr<SqliteDb> conn_;
};

}  // namespace photon::lightningstor

#define PHOTON_BORROW(name) \
  Reader name = Borrow();   \
  if (!name.ok()) return absl::UnavailableError("metadata DB unavailable")
