// Multipart uploads of S3Service (see service.h): initiate, upload part (and part copy),
// complete (order, ETag and size checks; the S3 "md5-of-md5s-N" ETag), abort, list parts and
// list uploads. Parts are always files; completing an upload stitches the parts' files into
// one object without copying bytes.
#include "common/util.h"
#include "lightningstor/checksum.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/object_conditions.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr uint64_t kMinPartSize = 5ull << 20;
constexpr int kMaxPartNumber = 10000;

http::Response Xml(std::string body) {
  http::Response resp;
  resp.body = std::move(body);
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

std::string Q(const http::Request& req, const char* name) {
  const std::string* v = req.Query(name);
  return v ? *v : "";
}

StatusOr<int> PartNumber(const std::string& text) {
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return S3Error("InvalidArgument",
                   "Part number must be an integer between 1 and 10000, inclusive");
  }
  int n = std::stoi(text);
  if (n < 1 || n > kMaxPartNumber) {
    return S3Error("InvalidArgument",
                   "Part number must be an integer between 1 and 10000, inclusive");
  }
  return n;
}

}  // namespace

StatusOr<http::Response> S3Service::CreateMultipartUpload(S3Request& r) {
  if (r.key.size() > 1024) return S3Error("KeyTooLongError", "Your key is too long");
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  UploadMeta u;
  u.upload_id = RandomHex(16);
  u.bucket = r.bucket;
  u.key = r.key;
  u.created_ms = clock_->NowMillis();
  u.content_type = r.http.Header("content-type");
  if (u.content_type.empty()) u.content_type = "binary/octet-stream";
  for (const auto& [name, value] : r.http.headers)
    if (IsStoredHeader(name)) u.headers[name] = value;
  PHOTON_RETURN_IF_ERROR(ObjectAttributes(r, &u.headers));
  const std::string& algorithm = r.http.Header("x-amz-checksum-algorithm");
  if (!algorithm.empty()) u.headers[kChecksumAlgorithmHeader] = algorithm;
  // x-amz-object-lock-* checked now and kept with the upload; the bucket's default retention,
  // counted from the completion, is added then when none was asked.
  PHOTON_RETURN_IF_ERROR(ApplyObjectLock(r, bucket, &u.headers, true, false));
  PHOTON_RETURN_IF_ERROR(meta_->CreateUpload(u));
  XmlWriter w;
  w.Open("InitiateMultipartUploadResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("Key", r.key);
  w.Element("UploadId", u.upload_id);
  w.Close("InitiateMultipartUploadResult");
  return Xml(w.Take());
}

StatusOr<http::Response> S3Service::UploadPart(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(int number, PartNumber(Q(r.http, "partNumber")));
  std::string upload_id = Q(r.http, "uploadId");
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_RETURN_IF_ERROR(meta_->GetUpload(r.bucket, r.key, upload_id).status());
  bool copy = r.http.HasHeader("x-amz-copy-source");
  WrittenBlob blob;
  std::map<std::string, std::string> checksums;
  if (copy) {
    PHOTON_ASSIGN_OR_RETURN(ObjectMeta source, CopySource(r));
    uint64_t start = 0, length = source.size;
    const std::string& range = r.http.Header("x-amz-copy-source-range");
    if (!range.empty()) {
      unsigned long long a = 0, b = 0;
      if (sscanf(range.c_str(), "bytes=%llu-%llu", &a, &b) != 2 || b < a || b >= source.size) {
        return S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
            "and last are the zero-based offsets of the first and last bytes to copy");
      }
      start = a;
      length = b - a + 1;
    }
    if (length > config_.max_object_size) {
      return S3Error("EntityTooLarge",
                     "Your proposed upload exceeds the maximum allowed object size.");
    }
    PHOTON_ASSIGN_OR_RETURN(blob, CopyData(source, start, length, true));
  } else {
    PHOTON_ASSIGN_OR_RETURN(blob, ReceiveBody(r, true, &checksums));
  }
  PartMeta part;
  part.part_number = number;
  part.size = blob.size;
  part.etag = HexEncode(blob.md5);
  part.mtime_ms = clock_->NowMillis();
  part.segment = blob.segment;
  auto result = meta_->PutPart(upload_id, part);
  if (!result.ok()) {
    blobs_->Remove(blob.segment.blob_id);
    return result.status();
  }
  FreeBlobs(result->freed_blobs);
  if (copy) {
    XmlWriter w;
    w.Open("CopyPartResult", kXmlns);
    w.Element("LastModified", sigv4::FormatIso8601(part.mtime_ms));
    w.Element("ETag", QuoteEtag(part.etag));
    w.Close("CopyPartResult");
    return Xml(w.Take());
  }
  http::Response resp;
  resp.AddHeader("ETag", QuoteEtag(part.etag));
  for (const auto& [k, v] : checksums) resp.AddHeader(k, v);
  return resp;
}

namespace {

// The parts a CompleteMultipartUpload names, as "number:etag,..." (how a retry is recognised).
StatusOr<std::string> RequestedParts(const std::vector<const XmlNode*>& requested) {
  std::string out;
  for (const XmlNode* p : requested) {
    PHOTON_ASSIGN_OR_RETURN(int number, PartNumber(p->ChildText("PartNumber")));
    if (!out.empty()) out += ',';
    out += std::to_string(number) + ":" + UnquoteEtag(p->ChildText("ETag"));
  }
  return out;
}

http::Response CompleteAnswer(const std::string& bucket, const std::string& key,
                              const std::string& etag, const std::string& version_id) {
  XmlWriter w;
  w.Open("CompleteMultipartUploadResult", kXmlns);
  w.Element("Location", "/" + bucket + "/" + key);
  w.Element("Bucket", bucket);
  w.Element("Key", key);
  w.Element("ETag", QuoteEtag(etag));
  w.Close("CompleteMultipartUploadResult");
  http::Response resp = Xml(w.Take());
  if (version_id != "null") resp.AddHeader("x-amz-version-id", version_id);
  return resp;
}

}  // namespace

StatusOr<http::Response> S3Service::CompleteMultipartUpload(S3Request& r) {
  std::string upload_id = Q(r.http, "uploadId");
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket_meta, RequireBucket(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 4 << 20));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "CompleteMultipartUpload")
    return S3Error("MalformedXML", "expected CompleteMultipartUpload");
  auto requested = doc->Children("Part");
  if (requested.empty()) {
    return S3Error("MalformedXML", "You must specify at least one part");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string parts_text, RequestedParts(requested));
  auto found = meta_->GetUpload(r.bucket, r.key, upload_id);
  if (!found.ok() && S3Code(found.status()) == "NoSuchUpload") {
    // A retry of a completion whose answer was lost gets that answer again (as S3 does).
    auto done = meta_->FindCompleted(upload_id);
    if (done.ok() && done->bucket == r.bucket && done->key == r.key && done->parts == parts_text)
      return CompleteAnswer(r.bucket, r.key, done->etag, done->version_id);
  }
  PHOTON_ASSIGN_OR_RETURN(UploadMeta upload, std::move(found));
  PHOTON_ASSIGN_OR_RETURN(auto stored, meta_->ListParts(upload_id, 0, kMaxPartNumber + 1));
  std::map<int, const PartMeta*> by_number;
  for (const auto& p : stored) by_number[p.part_number] = &p;

  ObjectMeta o;
  o.bucket = r.bucket;
  o.key = r.key;
  o.mtime_ms = clock_->NowMillis();
  o.content_type = upload.content_type;
  o.headers = upload.headers;
  PHOTON_RETURN_IF_ERROR(ApplyObjectLock(r, bucket_meta, &o.headers, false));
  std::string md5s;
  std::vector<int> used;
  int previous = 0;
  for (size_t i = 0; i < requested.size(); ++i) {
    PHOTON_ASSIGN_OR_RETURN(int number, PartNumber(requested[i]->ChildText("PartNumber")));
    if (number <= previous) {
      return S3Error(
          "InvalidPartOrder",
          "The list of parts was not in ascending order. Parts must be ordered by part number.");
    }
    previous = number;
    auto it = by_number.find(number);
    if (it == by_number.end() || UnquoteEtag(requested[i]->ChildText("ETag")) != it->second->etag) {
      return S3Error(
          "InvalidPart",
          "One or more of the specified parts could not be found. The part may not have "
          "been uploaded, or the specified entity tag may not match the part's entity tag.");
    }
    const PartMeta& part = *it->second;
    std::string raw;
    for (size_t k = 0; k + 1 < part.etag.size(); k += 2) {
      raw += static_cast<char>(std::stoi(part.etag.substr(k, 2), nullptr, 16));
    }
    md5s += raw;
    o.size += part.size;
    o.segments.push_back(part.segment);
    used.push_back(number);
  }
  // Sizes only after every part is known to exist, as S3 reports InvalidPart first.
  for (size_t i = 0; i + 1 < used.size(); ++i) {
    if (by_number[used[i]]->size < kMinPartSize) {
      return S3Error("EntityTooSmall",
                     "Your proposed upload is smaller than the minimum allowed object size.");
    }
  }
  o.etag = HexEncode(Md5Raw(md5s)) + "-" + std::to_string(requested.size());
  std::string numbers;
  for (int n : used) numbers += (numbers.empty() ? "" : ",") + std::to_string(n);
  o.headers[kPartsHeader] = numbers;
  std::string etag = o.etag;
  CompletedUpload done{r.bucket, r.key, parts_text, etag, ""};
  PHOTON_ASSIGN_OR_RETURN(
      WriteResult result,
      meta_->CompleteUpload(upload_id, std::move(o), used, done, WriteConditions(r.http, false)));
  FreeBlobs(result.freed_blobs);
  return CompleteAnswer(r.bucket, r.key, etag, result.version_id);
}

StatusOr<http::Response> S3Service::AbortMultipartUpload(S3Request& r) {
  std::string upload_id = Q(r.http, "uploadId");
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_RETURN_IF_ERROR(meta_->GetUpload(r.bucket, r.key, upload_id).status());
  PHOTON_ASSIGN_OR_RETURN(WriteResult result, meta_->AbortUpload(upload_id));
  FreeBlobs(result.freed_blobs);
  http::Response resp;
  resp.status = 204;
  return resp;
}

StatusOr<http::Response> S3Service::ListParts(S3Request& r) {
  std::string upload_id = Q(r.http, "uploadId");
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_RETURN_IF_ERROR(meta_->GetUpload(r.bucket, r.key, upload_id).status());
  int max_parts = 1000;
  if (r.http.HasQuery("max-parts"))
    max_parts = std::clamp(std::atoi(Q(r.http, "max-parts").c_str()), 0, 1000);
  int marker = std::atoi(Q(r.http, "part-number-marker").c_str());
  PHOTON_ASSIGN_OR_RETURN(auto parts, meta_->ListParts(upload_id, marker, max_parts + 1));
  bool truncated = static_cast<int>(parts.size()) > max_parts;
  if (truncated) parts.resize(max_parts);
  XmlWriter w;
  w.Open("ListPartsResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("Key", r.key);
  w.Element("UploadId", upload_id);
  w.Element("PartNumberMarker", std::to_string(marker));
  if (!parts.empty()) w.Element("NextPartNumberMarker", std::to_string(parts.back().part_number));
  w.Element("MaxParts", std::to_string(max_parts));
  w.Element("IsTruncated", truncated ? "true" : "false");
  w.Element("StorageClass", "STANDARD");
  for (const auto& p : parts) {
    w.Open("Part");
    w.Element("PartNumber", std::to_string(p.part_number));
    w.Element("LastModified", sigv4::FormatIso8601(p.mtime_ms));
    w.Element("ETag", QuoteEtag(p.etag));
    w.Element("Size", std::to_string(p.size));
    w.Close("Part");
  }
  w.Close("ListPartsResult");
  return Xml(w.Take());
}

StatusOr<http::Response> S3Service::ListMultipartUploads(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  std::string prefix = Q(r.http, "prefix");
  std::string key_marker = Q(r.http, "key-marker"), upload_marker = Q(r.http, "upload-id-marker");
  int max_uploads = 1000;
  if (r.http.HasQuery("max-uploads"))
    max_uploads = std::clamp(std::atoi(Q(r.http, "max-uploads").c_str()), 0, 1000);
  PHOTON_ASSIGN_OR_RETURN(auto uploads, meta_->ListUploads(r.bucket, prefix, key_marker,
                                                           upload_marker, max_uploads + 1));
  bool truncated = static_cast<int>(uploads.size()) > max_uploads;
  if (truncated) uploads.resize(max_uploads);
  XmlWriter w;
  w.Open("ListMultipartUploadsResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("KeyMarker", key_marker);
  w.Element("UploadIdMarker", upload_marker);
  if (truncated && !uploads.empty()) {
    w.Element("NextKeyMarker", uploads.back().key);
    w.Element("NextUploadIdMarker", uploads.back().upload_id);
  }
  w.Element("Prefix", prefix);
  w.Element("MaxUploads", std::to_string(max_uploads));
  w.Element("IsTruncated", truncated ? "true" : "false");
  for (const auto& u : uploads) {
    w.Open("Upload");
    w.Element("Key", u.key);
    w.Element("UploadId", u.upload_id);
    w.Element("Initiated", sigv4::FormatIso8601(u.created_ms));
    w.Element("StorageClass", "STANDARD");
    w.Close("Upload");
  }
  w.Close("ListMultipartUploadsResult");
  return Xml(w.Take());
}

}  // namespace photon::lightningstor
