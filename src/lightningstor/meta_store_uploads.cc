// Multipart uploads, parts and the sweeper's queries of MetaStore (see meta_store.h).
#include <algorithm>

#include "lightningstor/meta_store.h"
#include "lightningstor/meta_store_internal.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {

using namespace meta_internal;

Status MetaStore::CreateUpload(const UploadMeta& u) {
  return Write([&](SqliteConn& db) -> Status {
    PHOTON_RETURN_IF_ERROR(VersioningOf(db, u.bucket).status());
    return db
        .Prepare(
            "INSERT INTO uploads(upload_id, bucket, key, created_ms, content_type, extra) "
            "VALUES(?, ?, ?, ?, ?, ?)")
        .Bind(1, u.upload_id)
        .Bind(2, u.bucket)
        .Bind(3, u.key)
        .Bind(4, u.created_ms)
        .Bind(5, u.content_type)
        .Bind(6, EncodeHeaders(u.headers))
        .Run();
  });
}

StatusOr<UploadMeta> MetaStore::GetUpload(const std::string& bucket, const std::string& key,
                                          const std::string& upload_id) {
  PHOTON_BORROW(db);
  auto s = db->Prepare(
      "SELECT upload_id, bucket, key, created_ms, content_type, extra FROM uploads WHERE upload_id "
      "= ?");
  s.Bind(1, upload_id);
  Status st;
  if (!s.Step(&st)) {
    PHOTON_RETURN_IF_ERROR(st);
    return NoSuchUpload();
  }
  UploadMeta u = RowToUpload(s);
  if (u.bucket != bucket || u.key != key) return NoSuchUpload();
  return u;
}

StatusOr<WriteResult> MetaStore::PutPart(const std::string& upload_id, const PartMeta& part) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteConn& db) -> Status {
    auto u = db.Prepare("SELECT 1 FROM uploads WHERE upload_id = ?");
    u.Bind(1, upload_id);
    if (!u.Step()) return NoSuchUpload();
    WriteResult r;
    auto old = db.Prepare("SELECT segment FROM parts WHERE upload_id = ? AND part_number = ?");
    old.Bind(1, upload_id).Bind(2, int64_t{part.part_number});
    if (old.Step()) {
      std::vector<Segment> segs;
      DecodeSegments(old.Text(0), &segs);
      for (const auto& seg : segs) {
        PHOTON_RETURN_IF_ERROR(
            db.Prepare("DELETE FROM blobs WHERE id = ?").Bind(1, seg.blob_id).Run());
        r.freed_blobs.push_back(seg.blob_id);
      }
    }
    PHOTON_RETURN_IF_ERROR(
        db.Prepare(
              "INSERT OR REPLACE INTO parts(upload_id, part_number, size, etag, mtime_ms, segment) "
              "VALUES(?, ?, ?, ?, ?, ?)")
            .Bind(1, upload_id)
            .Bind(2, int64_t{part.part_number})
            .Bind(3, static_cast<int64_t>(part.size))
            .Bind(4, part.etag)
            .Bind(5, part.mtime_ms)
            .Bind(6, EncodeSegments({part.segment}))
            .Run());
    PHOTON_RETURN_IF_ERROR(db.Prepare("INSERT OR IGNORE INTO blobs(id) VALUES(?)")
                               .Bind(1, part.segment.blob_id)
                               .Run());
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<std::vector<PartMeta>> MetaStore::ListParts(const std::string& upload_id, int after,
                                                     int limit) {
  PHOTON_BORROW(db);
  auto s = db->Prepare(
      "SELECT part_number, size, etag, mtime_ms, segment FROM parts WHERE upload_id = ? AND "
      "part_number > ? ORDER BY part_number LIMIT ?");
  s.Bind(1, upload_id).Bind(2, int64_t{after}).Bind(3, int64_t{limit});
  std::vector<PartMeta> out;
  Status st;
  while (s.Step(&st)) out.push_back(RowToPart(s));
  PHOTON_RETURN_IF_ERROR(st);
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
  auto s = db->Prepare(sql);
  s.Bind(1, bucket).Bind(2, prefix).Bind(3, key_marker).Bind(6, int64_t{limit});
  // Without an upload-id marker every upload of key_marker itself is after the marker... except
  // S3 says key-marker alone means keys strictly greater, so use a value above any id.
  s.Bind(4, key_marker.empty() ? std::string()
                               : (upload_marker.empty() ? std::string("\xff") : upload_marker));
  if (!end.empty()) s.Bind(5, end);
  std::vector<UploadMeta> out;
  Status st;
  while (s.Step(&st)) out.push_back(RowToUpload(s));
  PHOTON_RETURN_IF_ERROR(st);
  return out;
}

StatusOr<WriteResult> MetaStore::CompleteUpload(const std::string& upload_id, ObjectMeta object,
                                                const std::vector<int>& used_parts) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteConn& db) -> Status {
    auto u = db.Prepare("SELECT 1 FROM uploads WHERE upload_id = ?");
    u.Bind(1, upload_id);
    if (!u.Step()) return NoSuchUpload();
    WriteResult r;
    std::vector<PartMeta> parts;
    {
      auto s = db.Prepare(
          "SELECT part_number, size, etag, mtime_ms, segment FROM parts WHERE upload_id = ?");
      s.Bind(1, upload_id);
      while (s.Step()) parts.push_back(RowToPart(s));
    }
    for (const auto& p : parts) {
      if (std::find(used_parts.begin(), used_parts.end(), p.part_number) != used_parts.end())
        continue;
      PHOTON_RETURN_IF_ERROR(
          db.Prepare("DELETE FROM blobs WHERE id = ?").Bind(1, p.segment.blob_id).Run());
      r.freed_blobs.push_back(p.segment.blob_id);
    }
    PHOTON_RETURN_IF_ERROR(
        db.Prepare("DELETE FROM parts WHERE upload_id = ?").Bind(1, upload_id).Run());
    PHOTON_RETURN_IF_ERROR(
        db.Prepare("DELETE FROM uploads WHERE upload_id = ?").Bind(1, upload_id).Run());
    PHOTON_RETURN_IF_ERROR(InsertVersion(db, object, &r));
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<WriteResult> MetaStore::AbortUpload(const std::string& upload_id) {
  WriteResult result;
  PHOTON_RETURN_IF_ERROR(Write([&](SqliteConn& db) -> Status {
    auto u = db.Prepare("SELECT 1 FROM uploads WHERE upload_id = ?");
    u.Bind(1, upload_id);
    if (!u.Step()) return NoSuchUpload();
    WriteResult r;
    {
      auto s = db.Prepare(
          "SELECT part_number, size, etag, mtime_ms, segment FROM parts WHERE upload_id = ?");
      s.Bind(1, upload_id);
      while (s.Step()) r.freed_blobs.push_back(RowToPart(s).segment.blob_id);
    }
    for (const auto& b : r.freed_blobs)
      PHOTON_RETURN_IF_ERROR(db.Prepare("DELETE FROM blobs WHERE id = ?").Bind(1, b).Run());
    PHOTON_RETURN_IF_ERROR(
        db.Prepare("DELETE FROM parts WHERE upload_id = ?").Bind(1, upload_id).Run());
    PHOTON_RETURN_IF_ERROR(
        db.Prepare("DELETE FROM uploads WHERE upload_id = ?").Bind(1, upload_id).Run());
    result = std::move(r);
    return absl::OkStatus();
  }));
  return result;
}

StatusOr<std::vector<UploadMeta>> MetaStore::UploadsOlderThan(int64_t created_before_ms,
                                                              int limit) {
  PHOTON_BORROW(db);
  auto s = db->Prepare(
      "SELECT upload_id, bucket, key, created_ms, content_type, extra FROM uploads WHERE "
      "created_ms < ? LIMIT ?");
  s.Bind(1, created_before_ms).Bind(2, int64_t{limit});
  std::vector<UploadMeta> out;
  Status st;
  while (s.Step(&st)) out.push_back(RowToUpload(s));
  PHOTON_RETURN_IF_ERROR(st);
  return out;
}

StatusOr<std::vector<ObjectMeta>> MetaStore::ExpiryCandidates(const std::string& bucket,
                                                              const std::string& prefix,
                                                              int64_t mtime_before_ms, int limit) {
  PHOTON_BORROW(db);
  std::string end = PrefixEnd(prefix);
  std::string sql = std::string("SELECT ") + kObjectCols +
                    " FROM objects WHERE bucket = ?1 AND is_latest = 1 AND delete_marker = 0 AND "
                    "key >= ?2 AND mtime_ms < ?3";
  if (!end.empty()) sql += " AND key < ?4";
  sql += " ORDER BY key LIMIT ?5";
  auto s = db->Prepare(sql);
  s.Bind(1, bucket).Bind(2, prefix).Bind(3, mtime_before_ms).Bind(5, int64_t{limit});
  if (!end.empty()) s.Bind(4, end);
  std::vector<ObjectMeta> out;
  Status st;
  while (s.Step(&st)) out.push_back(RowToObject(s, false));
  PHOTON_RETURN_IF_ERROR(st);
  return out;
}

StatusOr<bool> MetaStore::BlobReferenced(const std::string& blob_id) {
  PHOTON_BORROW(db);
  auto s = db->Prepare("SELECT 1 FROM blobs WHERE id = ?");
  s.Bind(1, blob_id);
  return s.Step();
}

}  // namespace photon::lightningstor
