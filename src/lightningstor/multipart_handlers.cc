// Multipart uploads of S3Service (see service.h): initiate, upload part (and part copy),
// complete (order, ETag and size checks; the S3 "md5-of-md5s-N" ETag), abort, list parts and
// list uploads. Parts are always files; completing an upload stitches the parts' files into
// one object without copying bytes.
#include <functional>
#include <optional>

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

// encoding-type=url: keys in a listing URL-encoded (any other value is InvalidArgument).
StatusOr<std::function<std::string(const std::string&)>> KeyEncoding(const http::Request& req) {
  const std::string* encoding = req.Query("encoding-type");
  if (!encoding)
    return std::function<std::string(const std::string&)>([](const std::string& s) { return s; });
  if (*encoding != "url")
    return S3Error("InvalidArgument", "Invalid Encoding Method specified in Request");
  return std::function<std::string(const std::string&)>(
      [](const std::string& s) { return sigv4::UriEncode(s, false); });
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

// x-amz-checksum-algorithm and x-amz-checksum-type of a new upload, kept in its headers. The
// type defaults as in S3: FULL_OBJECT for CRC64NVME, COMPOSITE for the others.
Status UploadChecksum(const http::Request& req, std::map<std::string, std::string>* headers) {
  const std::string& algorithm = req.Header("x-amz-checksum-algorithm");
  std::string type = req.Header("x-amz-checksum-type");
  if (algorithm.empty()) {
    if (type.empty()) return absl::OkStatus();
    return S3Error("InvalidRequest",
                   "The x-amz-checksum-type header can only be used with the "
                   "x-amz-checksum-algorithm header.");
  }
  std::optional<ChecksumKind> kind = ChecksumKindOf(algorithm);
  if (!kind) {
    return S3Error("InvalidRequest",
                   "Checksum algorithm provided is unsupported. Please try again with any of the "
                   "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]");
  }
  if (type.empty()) type = *kind == ChecksumKind::kCrc64Nvme ? "FULL_OBJECT" : "COMPOSITE";
  if (type != "COMPOSITE" && type != "FULL_OBJECT")
    return S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.");
  if ((type == "COMPOSITE" && *kind == ChecksumKind::kCrc64Nvme) ||
      (type == "FULL_OBJECT" && !IsCrc(*kind))) {
    return S3Error("InvalidRequest", "The " + type + " checksum type cannot be used with the " +
                                         ChecksumName(*kind) + " checksum algorithm.");
  }
  (*headers)[kChecksumAlgorithmHeader] = ChecksumName(*kind);
  (*headers)[kChecksumTypeHeader] = type;
  return absl::OkStatus();
}

// The checksum algorithm an upload (or a multipart object) was made with.
std::optional<ChecksumKind> AlgorithmOf(const std::map<std::string, std::string>& headers) {
  auto it = headers.find(kChecksumAlgorithmHeader);
  return it == headers.end() ? std::nullopt : ChecksumKindOf(it->second);
}

std::string TypeOf(const std::map<std::string, std::string>& headers) {
  auto it = headers.find(kChecksumTypeHeader);
  return it == headers.end() ? "COMPOSITE" : it->second;
}

// InvalidRequest when a part of an upload made with `algorithm` comes with a checksum of
// another algorithm (S3 takes only the upload's), header, trailer or SDK announcement.
Status CheckPartAlgorithm(const http::Request& req, ChecksumKind algorithm) {
  std::string trailer = req.Header("x-amz-trailer");
  for (auto& c : trailer) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  std::optional<ChecksumKind> sdk = ChecksumKindOf(req.Header("x-amz-sdk-checksum-algorithm"));
  for (ChecksumKind kind : kChecksumKinds) {
    if (kind == algorithm) continue;
    std::string header = ChecksumHeader(kind);
    size_t at = trailer.find(header);
    bool in_trailer = at != std::string::npos &&
                      (at + header.size() == trailer.size() || trailer[at + header.size()] == ',' ||
                       trailer[at + header.size()] == ' ');
    if (req.HasHeader(header) || in_trailer || sdk == kind) {
      return S3Error("InvalidRequest",
                     std::string("Checksum Type mismatch occurred, expected checksum Type: ") +
                         ChecksumName(algorithm) + ", actual checksum Type: " + ChecksumName(kind));
    }
  }
  return absl::OkStatus();
}

// x-amz-server-side-encryption (SSE-S3), or -customer-algorithm and -customer-key-MD5 (SSE-C,
// the key the request carried), as S3 answers an upload's requests.
void AddSseHeaders(const std::map<std::string, std::string>& stored, const SseRequest& sse,
                   http::Response& resp) {
  for (const auto& [k, v] : SseKeys::ResponseHeaders(stored)) resp.AddHeader(k, v);
  if (sse.mode == SseRequest::Mode::kCustomer)
    resp.AddHeader("x-amz-server-side-encryption-customer-key-MD5", sse.key_md5_b64);
}

// The key of an encrypted upload for a part request (sse.h ForPart); x-amz-server-side-
// encryption itself belongs to the initiation only.
StatusOr<SseKeys::ReadKey> PartKey(SseKeys& keys, const http::Request& req,
                                   const std::map<std::string, std::string>& upload,
                                   SseRequest* sse) {
  PHOTON_ASSIGN_OR_RETURN(*sse, ParseSseRequest(req));
  if (sse->mode == SseRequest::Mode::kS3) {
    return S3Error("InvalidArgument",
                   "x-amz-server-side-encryption is given when the multipart upload is "
                   "initiated, not on its parts or its completion");
  }
  return keys.ForPart(upload, *sse);
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
  PHOTON_RETURN_IF_ERROR(UploadChecksum(r.http, &u.headers));
  // x-amz-object-lock-* checked now and kept with the upload; the bucket's default retention,
  // counted from the completion, is added then when none was asked.
  PHOTON_RETURN_IF_ERROR(ApplyObjectLock(r, bucket, &u.headers, true, false));
  // The object's data key is made now and kept (wrapped, or as the SSE-C key's salted HMAC)
  // with the upload; every part is encrypted under it with its own IV.
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, WriteSse(r, bucket));
  PHOTON_ASSIGN_OR_RETURN(SseKeys::NewKey key, sse_.ForWrite(sse));
  for (const auto& [k, v] : key.headers) u.headers[k] = v;
  PHOTON_RETURN_IF_ERROR(meta_->CreateUpload(u));
  XmlWriter w;
  w.Open("InitiateMultipartUploadResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("Key", r.key);
  w.Element("UploadId", u.upload_id);
  w.Close("InitiateMultipartUploadResult");
  http::Response resp = Xml(w.Take());
  if (std::optional<ChecksumKind> kind = AlgorithmOf(u.headers)) {
    resp.AddHeader("x-amz-checksum-algorithm", Upper(ChecksumName(*kind)));
    resp.AddHeader("x-amz-checksum-type", TypeOf(u.headers));
  }
  AddSseHeaders(u.headers, sse, resp);
  return resp;
}

StatusOr<http::Response> S3Service::UploadPart(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(int number, PartNumber(Q(r.http, "partNumber")));
  std::string upload_id = Q(r.http, "uploadId");
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(UploadMeta upload, meta_->GetUpload(r.bucket, r.key, upload_id));
  // An upload made with a checksum algorithm keeps that checksum of every part (computed when
  // the part brings none), which completion compares and combines.
  std::optional<ChecksumKind> algorithm = AlgorithmOf(upload.headers);
  if (algorithm) PHOTON_RETURN_IF_ERROR(CheckPartAlgorithm(r.http, *algorithm));
  bool copy = r.http.HasHeader("x-amz-copy-source");
  // A part of an encrypted upload: encrypted under the upload's data key from its own offset 0
  // with a fresh IV (a part sent again never reuses a keystream).
  SseRequest sse;
  PHOTON_ASSIGN_OR_RETURN(SseKeys::ReadKey key, PartKey(sse_, r.http, upload.headers, &sse));
  std::string iv = key.data_key.empty() ? "" : NewSseIv();
  std::optional<SegmentEncryptor> cipher;
  if (!iv.empty()) cipher.emplace(key.data_key, iv, sse_.write_format());
  SegmentEncryptor* encrypt = cipher ? &*cipher : nullptr;
  WrittenBlob blob;
  std::map<std::string, std::string> checksums;
  if (copy) {
    PHOTON_ASSIGN_OR_RETURN(ObjectMeta source, CopySource(r));
    // An encrypted source is decrypted as it is copied (an SSE-C one with the key in
    // x-amz-copy-source-server-side-encryption-customer-*).
    PHOTON_ASSIGN_OR_RETURN(SseRequest source_sse, ParseCopySourceSse(r.http));
    PHOTON_ASSIGN_OR_RETURN(SseKeys::ReadKey source_key, sse_.ForRead(source.headers, source_sse));
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
    std::vector<Checksummer> sums;
    if (algorithm) sums.emplace_back(*algorithm);
    PHOTON_ASSIGN_OR_RETURN(blob,
                            CopyData(source, start, length, true, &sums, &source_key, encrypt));
    for (auto& sum : sums) checksums[ChecksumHeader(sum.kind())] = Base64Encode(sum.Finish());
  } else {
    PHOTON_ASSIGN_OR_RETURN(blob, ReceiveBody(r, true, &checksums, encrypt, nullptr, algorithm));
  }
  PartMeta part;
  part.part_number = number;
  part.size = blob.size;
  // As for a single PUT: an SSE-C part's ETag does not tell its plaintext's MD5.
  part.etag = HexEncode(sse.mode == SseRequest::Mode::kCustomer ? Md5Raw(iv + blob.md5) : blob.md5);
  part.mtime_ms = clock_->NowMillis();
  part.segment = blob.segment;
  part.segment.iv = iv;
  part.checksums = checksums;
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
    for (ChecksumKind kind : kChecksumKinds) {
      auto sum = checksums.find(ChecksumHeader(kind));
      if (sum != checksums.end()) w.Element(ChecksumElement(kind), sum->second);
    }
    w.Close("CopyPartResult");
    http::Response resp = Xml(w.Take());
    AddSseHeaders(upload.headers, sse, resp);
    return resp;
  }
  http::Response resp;
  resp.AddHeader("ETag", QuoteEtag(part.etag));
  for (const auto& [k, v] : checksums) resp.AddHeader(k, v);
  AddSseHeaders(upload.headers, sse, resp);
  return resp;
}

namespace {

// The parts a CompleteMultipartUpload names, as "number:etag[:checksum],..." (how a retry is
// recognised).
StatusOr<std::string> RequestedParts(const std::vector<const XmlNode*>& requested) {
  std::string out;
  for (const XmlNode* p : requested) {
    PHOTON_ASSIGN_OR_RETURN(int number, PartNumber(p->ChildText("PartNumber")));
    if (!out.empty()) out += ',';
    out += std::to_string(number) + ":" + UnquoteEtag(p->ChildText("ETag"));
    for (ChecksumKind kind : kChecksumKinds)
      if (p->Child(ChecksumElement(kind))) out += ":" + p->ChildText(ChecksumElement(kind));
  }
  return out;
}

// The object's checksum a completion answers with, from its stored headers.
std::optional<std::pair<ChecksumKind, std::string>> ObjectChecksum(
    const std::map<std::string, std::string>& headers) {
  std::optional<ChecksumKind> kind = AlgorithmOf(headers);
  if (!kind) return std::nullopt;
  auto it = headers.find(ChecksumHeader(*kind));
  if (it == headers.end()) return std::nullopt;
  return std::make_pair(*kind, it->second);
}

http::Response CompleteAnswer(const std::string& bucket, const std::string& key,
                              const std::string& etag, const std::string& version_id,
                              const std::map<std::string, std::string>& headers) {
  XmlWriter w;
  w.Open("CompleteMultipartUploadResult", kXmlns);
  w.Element("Location", "/" + bucket + "/" + key);
  w.Element("Bucket", bucket);
  w.Element("Key", key);
  w.Element("ETag", QuoteEtag(etag));
  auto checksum = ObjectChecksum(headers);
  if (checksum) {
    w.Element(ChecksumElement(checksum->first), checksum->second);
    w.Element("ChecksumType", TypeOf(headers));
  }
  w.Close("CompleteMultipartUploadResult");
  http::Response resp = Xml(w.Take());
  if (version_id != "null") resp.AddHeader("x-amz-version-id", version_id);
  if (checksum) resp.AddHeader("x-amz-checksum-type", TypeOf(headers));
  // S3 answers a completion with x-amz-server-side-encryption only (no SSE-C headers).
  for (const auto& [k, v] : SseKeys::ResponseHeaders(headers))
    if (k == "x-amz-server-side-encryption") resp.AddHeader(k, v);
  return resp;
}

// What a CompleteMultipartUpload's part entry says of a part's checksum, against the stored
// part: InvalidRequest for an algorithm the upload was not made with (or a COMPOSITE upload's
// part named without its checksum), InvalidPart when it differs from the part's.
Status CheckPartChecksum(const XmlNode& entry, const PartMeta& part,
                         std::optional<ChecksumKind> algorithm, const std::string& type) {
  bool named = false;
  for (ChecksumKind kind : kChecksumKinds) {
    const XmlNode* given = entry.Child(ChecksumElement(kind));
    if (!given) continue;
    if (kind != algorithm) {
      return S3Error("InvalidRequest",
                     std::string("The upload was created using ") +
                         (algorithm ? std::string("a ") + ChecksumName(*algorithm) : "no") +
                         " checksum. The complete request specified a " + ChecksumName(kind) +
                         " checksum for part " + std::to_string(part.part_number) + ".");
    }
    std::string value = given->text;
    value.erase(0, value.find_first_not_of(" \t\r\n"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    auto stored = part.checksums.find(ChecksumHeader(kind));
    if (stored == part.checksums.end() || stored->second != value) {
      return S3Error("InvalidPart",
                     "One or more of the specified parts could not be found. The part may not "
                     "have been uploaded, or the specified entity tag or checksum may not match "
                     "the part's.");
    }
    named = true;
  }
  if (algorithm && type == "COMPOSITE" && !named) {
    return S3Error("InvalidRequest", std::string("The upload was created using a ") +
                                         ChecksumName(*algorithm) +
                                         " checksum. The complete request must include the "
                                         "checksum for each part. It was missing for part " +
                                         std::to_string(part.part_number) + " in the request.");
  }
  return absl::OkStatus();
}

// The object checksum of a multipart upload made with `kind`: COMPOSITE is the checksum of
// the parts' raw checksums, "-N"; FULL_OBJECT is the CRC of the whole object, combined from
// the parts' CRCs and sizes. *part_sums gets the parts' checksums ("B64,B64,...").
StatusOr<std::string> MultipartChecksum(ChecksumKind kind, const std::string& type,
                                        const std::vector<const PartMeta*>& parts,
                                        std::string* part_sums) {
  std::string concat, combined;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto stored = parts[i]->checksums.find(ChecksumHeader(kind));
    std::string raw;
    if (stored == parts[i]->checksums.end() || !Base64Decode(stored->second, &raw)) {
      return S3Error("InvalidPart", "Part " + std::to_string(parts[i]->part_number) +
                                        " was stored without its " + ChecksumName(kind) +
                                        " checksum; upload it again.");
    }
    *part_sums += (i ? "," : "") + stored->second;
    concat += raw;
    combined = i == 0 ? raw : CombineCrc(kind, combined, raw, parts[i]->size);
  }
  if (type == "FULL_OBJECT") return Base64Encode(combined);
  return Base64Encode(ChecksumOf(kind, concat)) + "-" + std::to_string(parts.size());
}

// The whole-object checks a CompleteMultipartUpload may carry in headers: x-amz-checksum-type
// (the upload's), x-amz-checksum-<alg> (BadDigest unless it is the object's checksum) and
// x-amz-mp-object-size.
Status CheckCompleteHeaders(const http::Request& req, const std::map<std::string, std::string>& o,
                            uint64_t size) {
  std::optional<ChecksumKind> algorithm = AlgorithmOf(o);
  const std::string& type = req.Header("x-amz-checksum-type");
  if (!type.empty() && (!algorithm || type != TypeOf(o))) {
    return S3Error("InvalidRequest", "The upload was created using the " +
                                         (algorithm ? TypeOf(o) : std::string("no")) +
                                         " checksum type; the request asks for " + type + ".");
  }
  for (ChecksumKind kind : kChecksumKinds) {
    const std::string& value = req.Header(ChecksumHeader(kind));
    if (value.empty()) continue;
    if (kind != algorithm) {
      return S3Error("InvalidRequest",
                     std::string("The upload was created using ") +
                         (algorithm ? std::string("a ") + ChecksumName(*algorithm) : "no") +
                         " checksum; the request carries " + ChecksumHeader(kind) + ".");
    }
    const std::string& computed = o.at(ChecksumHeader(kind));
    if (value != computed && value != computed.substr(0, computed.rfind('-'))) {
      return S3Error("BadDigest", "The " + Upper(ChecksumName(kind)) +
                                      " you specified did not match the calculated checksum.");
    }
  }
  if (req.HasHeader("x-amz-mp-object-size")) {
    const std::string& text = req.Header("x-amz-mp-object-size");
    if (text.empty() || text.size() > 19 ||
        text.find_first_not_of("0123456789") != std::string::npos || std::stoull(text) != size) {
      return S3Error("InvalidRequest",
                     "The provided 'x-amz-mp-object-size' header value " + text +
                         " does not match what was computed: " + std::to_string(size));
    }
  }
  return absl::OkStatus();
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
    if (done.ok() && done->bucket == r.bucket && done->key == r.key && done->parts == parts_text) {
      // Its checksum from the version it made, while that version is there.
      auto made = meta_->GetObject(r.bucket, r.key, done->version_id);
      std::map<std::string, std::string> headers;
      if (made.ok() && made->etag == done->etag) headers = made->headers;
      return CompleteAnswer(r.bucket, r.key, done->etag, done->version_id, headers);
    }
  }
  PHOTON_ASSIGN_OR_RETURN(UploadMeta upload, std::move(found));
  // SSE-C headers are optional on a completion; when sent they must be the upload's key.
  SseRequest sse;
  PHOTON_ASSIGN_OR_RETURN(SseRequest given, ParseSseRequest(r.http));
  if (given.mode != SseRequest::Mode::kNone)
    PHOTON_RETURN_IF_ERROR(PartKey(sse_, r.http, upload.headers, &sse).status());
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
  std::optional<ChecksumKind> algorithm = AlgorithmOf(upload.headers);
  std::string type = TypeOf(upload.headers);
  std::string md5s;
  std::vector<int> used;
  std::vector<const PartMeta*> used_parts;
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
    PHOTON_RETURN_IF_ERROR(CheckPartChecksum(*requested[i], part, algorithm, type));
    used_parts.push_back(&part);
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
  if (algorithm) {
    std::string part_sums;
    PHOTON_ASSIGN_OR_RETURN(o.headers[ChecksumHeader(*algorithm)],
                            MultipartChecksum(*algorithm, type, used_parts, &part_sums));
    o.headers[kPartChecksumsHeader] = part_sums;
  }
  PHOTON_RETURN_IF_ERROR(CheckCompleteHeaders(r.http, o.headers, o.size));
  std::map<std::string, std::string> answer_headers = o.headers;
  std::string etag = o.etag;
  CompletedUpload done{r.bucket, r.key, parts_text, etag, ""};
  PHOTON_ASSIGN_OR_RETURN(
      WriteResult result,
      meta_->CompleteUpload(upload_id, std::move(o), used, done, WriteConditions(r.http, false)));
  FreeBlobs(result.freed_blobs);
  return CompleteAnswer(r.bucket, r.key, etag, result.version_id, answer_headers);
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
  PHOTON_ASSIGN_OR_RETURN(UploadMeta upload, meta_->GetUpload(r.bucket, r.key, upload_id));
  int max_parts = 1000;
  if (r.http.HasQuery("max-parts"))
    max_parts = std::clamp(std::atoi(Q(r.http, "max-parts").c_str()), 0, 1000);
  int marker = std::atoi(Q(r.http, "part-number-marker").c_str());
  PHOTON_ASSIGN_OR_RETURN(auto parts, meta_->ListParts(upload_id, marker, max_parts + 1));
  bool truncated = static_cast<int>(parts.size()) > max_parts;
  if (truncated) parts.resize(max_parts);
  PHOTON_ASSIGN_OR_RETURN(auto enc, KeyEncoding(r.http));
  XmlWriter w;
  w.Open("ListPartsResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("Key", enc(r.key));
  w.Element("UploadId", upload_id);
  w.Element("PartNumberMarker", std::to_string(marker));
  if (!parts.empty()) w.Element("NextPartNumberMarker", std::to_string(parts.back().part_number));
  w.Element("MaxParts", std::to_string(max_parts));
  w.Element("IsTruncated", truncated ? "true" : "false");
  w.Element("StorageClass", "STANDARD");
  if (std::optional<ChecksumKind> kind = AlgorithmOf(upload.headers)) {
    w.Element("ChecksumAlgorithm", Upper(ChecksumName(*kind)));
    w.Element("ChecksumType", TypeOf(upload.headers));
  }
  for (const auto& p : parts) {
    w.Open("Part");
    w.Element("PartNumber", std::to_string(p.part_number));
    w.Element("LastModified", sigv4::FormatIso8601(p.mtime_ms));
    w.Element("ETag", QuoteEtag(p.etag));
    w.Element("Size", std::to_string(p.size));
    for (ChecksumKind kind : kChecksumKinds) {
      auto sum = p.checksums.find(ChecksumHeader(kind));
      if (sum != p.checksums.end()) w.Element(ChecksumElement(kind), sum->second);
    }
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
  PHOTON_ASSIGN_OR_RETURN(auto enc, KeyEncoding(r.http));
  XmlWriter w;
  w.Open("ListMultipartUploadsResult", kXmlns);
  w.Element("Bucket", r.bucket);
  w.Element("KeyMarker", enc(key_marker));
  w.Element("UploadIdMarker", upload_marker);
  if (truncated && !uploads.empty()) {
    w.Element("NextKeyMarker", enc(uploads.back().key));
    w.Element("NextUploadIdMarker", uploads.back().upload_id);
  }
  w.Element("Prefix", enc(prefix));
  w.Element("MaxUploads", std::to_string(max_uploads));
  if (r.http.HasQuery("encoding-type")) w.Element("EncodingType", "url");
  w.Element("IsTruncated", truncated ? "true" : "false");
  for (const auto& u : uploads) {
    w.Open("Upload");
    w.Element("Key", enc(u.key));
    w.Element("UploadId", u.upload_id);
    w.Element("Initiated", sigv4::FormatIso8601(u.created_ms));
    w.Element("StorageClass", "STANDARD");
    if (std::optional<ChecksumKind> kind = AlgorithmOf(u.headers)) {
      w.Element("ChecksumAlgorithm", Upper(ChecksumName(*kind)));
      w.Element("ChecksumType", TypeOf(u.headers));
    }
    w.Close("Upload");
  }
  w.Close("ListMultipartUploadsResult");
  return Xml(w.Take());
}

}  // namespace photon::lightningstor
