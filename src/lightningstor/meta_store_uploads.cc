// Multipart uploads, parts and the sweeper's queries of MetaStore (see meta_store.h).
#include <algorithm>

#include "lightningstor/meta_store.h"
#include "lightningstor/meta_store_internal.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {

using namespace meta_internal;

namespace {

// OK when the upload exists, NoSuchUpload when it does not.
Status UploadExists(SqliteDb& db, const std::string& upload_id) {
  PHOTON_ASSIGN_OR_RETURN(auto s, db.Query("SELECT 1 FROM uploads WHERE upload_id = ?", upload_id));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  return found ? absl::OkStatus() : NoSuchUpload();
}

// The parts of an upload, in part number order.
StatusOr<std::vector<PartMeta>> PartsOf(SqliteDb& db, const std::string& upload_id) {
  PHOTON_ASSIGN_OR_RETURN(
      auto s,
      db.Query("SELECT part_number, size, etag, mtime_ms, segment, checksums FROM parts WHERE "
               "upload_id = ? ORDER BY part_number",
               upload_id));
  std::vector<PartMeta> parts;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) { parts.push_back(RowToPart(r)); }));
  return parts;
}

}  // namespace

Status MetaStore::CreateUpload(const UploadMeta& u) {
  return Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, u.bucket).status());
    return db.Run(
        "INSERT INTO uploads(upload_id, bucket, key, created_ms, content_type, extra) "
        "VALUES(?, ?, ?, ?, ?, ?)",
        u.upload_id, u.bucket, u.key, u.created_ms, u.content_type, EncodeHeaders(u.headers));
  });
}

StatusOr<UploadMeta> MetaStore::GetUpload(const std::string& bucket, const std::string& key,
                                          const std::string& upload_id) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Query("SELECT upload_id, bucket, key, created_ms, "
                                            "content_type, extra FROM uploads WHERE upload_id = ?",
                                            upload_id));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return NoSuchUpload();
  UploadMeta u = RowToUpload(s);
  if (u.bucket != bucket || u.key != key) return NoSuchUpload();
  return u;
}

StatusOr<WriteResult> MetaStore::PutPart(const std::string& upload_id, const PartMeta& part) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(UploadExists(db, upload_id));
    WriteResult r;
    PHOTON_ASSIGN_OR_RETURN(
        auto old, db.Query("SELECT segment FROM parts WHERE upload_id = ? AND part_number = ?",
                           upload_id, part.part_number));
    PHOTON_ASSIGN_OR_RETURN(bool replaced, old.Step());
    if (replaced) {
      std::vector<Segment> segs;
      DecodeSegments(old.ColumnText(0), &segs);
      for (const auto& seg : segs) {
        PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM blobs WHERE id = ?", seg.blob_id));
        r.freed_blobs.push_back(seg.blob_id);
      }
    }
    PHOTON_RETURN_IF_ERROR(db.Run(
        "INSERT OR REPLACE INTO parts(upload_id, part_number, size, etag, mtime_ms, segment, "
        "checksums) VALUES(?, ?, ?, ?, ?, ?, ?)",
        upload_id, part.part_number, static_cast<int64_t>(part.size), part.etag, part.mtime_ms,
        EncodeSegments({part.segment}), EncodeHeaders(part.checksums)));
    PHOTON_RETURN_IF_ERROR(
        db.Run("INSERT OR IGNORE INTO blobs(id) VALUES(?)", part.segment.blob_id));
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<std::vector<PartMeta>> MetaStore::ListParts(const std::string& upload_id, int after,
                                                     int limit) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(
      auto s,
      db->Query("SELECT part_number, size, etag, mtime_ms, segment, checksums FROM parts WHERE "
                "upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
                upload_id, after, limit));
  std::vector<PartMeta> out;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) { out.push_back(RowToPart(r)); }));
  return out;
}

StatusOr<std::vector<UploadMeta>> MetaStore::ListUploads(const std::string& bucket,
                                                         const std::string& prefix,
                                                         const std::string& key_marker,
                                                         const std::string& upload_marker,
                                                         int limit) {
  PHOTON_BORROW(db);
  std::string end = PrefixEnd(prefix);
  std::string sql =
      "SELECT upload_id, bucket, key, created_ms, content_type, extra FROM uploads WHERE bucket = "
      "?1 "
      "AND key >= ?2 AND (key > ?3 OR (key = ?3 AND upload_id > ?4))";
  if (!end.empty()) sql += " AND key < ?5";
  sql += " ORDER BY key, upload_id LIMIT ?6";
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Prepare(sql));
  s.BindAll(bucket, prefix, key_marker).BindInt(6, limit);
  // Without an upload-id marker every upload of key_marker itself is after the marker... except
  // S3 says key-marker alone means keys strictly greater, so use a value above any id.
  s.BindText(4, key_marker.empty() ? std::string()
                                   : (upload_marker.empty() ? std::string("\xff") : upload_marker));
  if (!end.empty()) s.BindText(5, end);
  std::vector<UploadMeta> out;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) { out.push_back(RowToUpload(r)); }));
  return out;
}

StatusOr<WriteResult> MetaStore::CompleteUpload(const std::string& upload_id, ObjectMeta object,
                                                const std::vector<int>& used_parts,
                                                const CompletedUpload& done,
                                                const Precondition& pre) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(UploadExists(db, upload_id));
    PHOTON_RETURN_IF_ERROR(CheckPrecondition(db, object.bucket, object.key, "", pre));
    WriteResult r;
    PHOTON_ASSIGN_OR_RETURN(std::vector<PartMeta> parts, PartsOf(db, upload_id));
    for (const auto& p : parts) {
      if (std::find(used_parts.begin(), used_parts.end(), p.part_number) != used_parts.end())
        continue;
      PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM blobs WHERE id = ?", p.segment.blob_id));
      r.freed_blobs.push_back(p.segment.blob_id);
    }
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM parts WHERE upload_id = ?", upload_id));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM uploads WHERE upload_id = ?", upload_id));
    PHOTON_RETURN_IF_ERROR(InsertVersion(db, object, &r));
    PHOTON_RETURN_IF_ERROR(db.Run(
        "INSERT OR REPLACE INTO completed_uploads(upload_id, bucket, key, parts, etag, "
        "version_id, completed_ms) VALUES(?, ?, ?, ?, ?, ?, ?)",
        upload_id, done.bucket, done.key, done.parts, done.etag, r.version_id, object.mtime_ms));
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<CompletedUpload> MetaStore::FindCompleted(const std::string& upload_id) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Query("SELECT bucket, key, parts, etag, version_id FROM "
                                            "completed_uploads WHERE upload_id = ?",
                                            upload_id));
  PHOTON_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return NoSuchUpload();
  return CompletedUpload{s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnText(3),
                         s.ColumnText(4)};
}

Status MetaStore::ForgetCompleted(int64_t before_ms) {
  return Write([&](SqliteDb& db) -> Status {
    return db.Run("DELETE FROM completed_uploads WHERE completed_ms < ?", before_ms);
  });
}

StatusOr<WriteResult> MetaStore::AbortUpload(const std::string& upload_id) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    PHOTON_RETURN_IF_ERROR(UploadExists(db, upload_id));
    WriteResult r;
    PHOTON_ASSIGN_OR_RETURN(std::vector<PartMeta> parts, PartsOf(db, upload_id));
    for (const auto& p : parts) r.freed_blobs.push_back(p.segment.blob_id);
    for (const auto& b : r.freed_blobs)
      PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM blobs WHERE id = ?", b));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM parts WHERE upload_id = ?", upload_id));
    PHOTON_RETURN_IF_ERROR(db.Run("DELETE FROM uploads WHERE upload_id = ?", upload_id));
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<std::vector<UploadMeta>> MetaStore::UploadsOlderThan(int64_t created_before_ms,
                                                              int limit) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Query("SELECT upload_id, bucket, key, created_ms, "
                                            "content_type, extra FROM uploads WHERE "
                                            "created_ms < ? LIMIT ?",
                                            created_before_ms, limit));
  std::vector<UploadMeta> out;
  PHOTON_RETURN_IF_ERROR(s.ForEachRow([&](const SqliteStmt& r) { out.push_back(RowToUpload(r)); }));
  return out;
}

StatusOr<std::vector<ObjectMeta>> MetaStore::ExpiryCandidates(const std::string& bucket,
                                                              const std::string& prefix,
                                                              const std::string& after,
                                                              int64_t mtime_before_ms, int limit) {
  PHOTON_BORROW(db);
  std::string end = PrefixEnd(prefix);
  std::string sql = std::string("SELECT ") + kObjectCols +
                    " FROM objects WHERE bucket = ?1 AND is_latest = 1 AND delete_marker = 0 AND "
                    "key >= ?2 AND mtime_ms < ?3 AND key > ?6";
  if (!end.empty()) sql += " AND key < ?4";
  sql += " ORDER BY key LIMIT ?5";
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Prepare(sql));
  s.BindAll(bucket, prefix, mtime_before_ms).BindInt(5, limit).BindText(6, after);
  if (!end.empty()) s.BindText(4, end);
  std::vector<ObjectMeta> out;
  PHOTON_RETURN_IF_ERROR(
      s.ForEachRow([&](const SqliteStmt& r) { out.push_back(RowToObject(r, false)); }));
  return out;
}

StatusOr<bool> MetaStore::BlobReferenced(const std::string& blob_id) {
  PHOTON_BORROW(db);
  PHOTON_ASSIGN_OR_RETURN(auto s, db->Query("SELECT 1 FROM blobs WHERE id = ?", blob_id));
  return s.Step();
}

}  // namespace photon::lightningstor
