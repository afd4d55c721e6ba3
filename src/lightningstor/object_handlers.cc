// Object-level S3 operations of S3Service (see service.h): PUT (with body verification),
// GET/HEAD (conditions, ranges, verified streaming), DELETE, multi-object DELETE and
// server-side copy.
#include <spdlog/spdlog.h>
#include <strings.h>

#include <optional>

#include "lightningstor/body_readers.h"
#include "lightningstor/bucket_rules.h"
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

// Content-Type and the kept headers of a request, minus the transport's aws-chunked coding.
void RequestMetadata(const http::Request& req, std::string* content_type,
                     std::map<std::string, std::string>* headers) {
  *content_type = req.Header("content-type");
  if (content_type->empty()) *content_type = "binary/octet-stream";
  for (const auto& [name, value] : req.headers) {
    if (!IsStoredHeader(name)) continue;
    if (name == "content-encoding") {
      std::string v = value;
      if (v.rfind("aws-chunked", 0) == 0)
        v = v.substr(v.find(',') == std::string::npos ? v.size() : v.find(',') + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      if (v.empty()) continue;
      (*headers)[name] = v;
      continue;
    }
    (*headers)[name] = value;
  }
}

// x-amz-bypass-governance-retention: honoured for the bucket's owner (who alone has the
// bypass permission here), refused (AccessDenied at the delete) for anyone else.
bool BypassGovernance(const S3Request& r) {
  return strcasecmp(r.http.Header("x-amz-bypass-governance-retention").c_str(), "true") == 0 &&
         !r.caller.empty() && r.caller == r.bucket_owner;
}

}  // namespace

Status S3Service::ObjectAttributes(const S3Request& r,
                                   std::map<std::string, std::string>* headers) {
  const http::Request& req = r.http;
  // The writer owns what it writes (ObjectWriter), private unless asked; BucketOwnerPreferred
  // gives the bucket's owner what is written with bucket-owner-full-control;
  // BucketOwnerEnforced gives it everything and takes no ACL beyond its own FULL_CONTROL.
  bool enforced = r.ownership == "BucketOwnerEnforced";
  std::string owner = r.caller;
  if (enforced || (r.ownership == "BucketOwnerPreferred" &&
                   req.Header("x-amz-acl") == "bucket-owner-full-control"))
    owner = r.bucket_owner;
  auto user_exists = [this](const std::string& u) { return UserExists(u); };
  AclRequest asked = AclRequestOf(req, "");
  PHOTON_ASSIGN_OR_RETURN(auto acl,
                          AclFromRequest(asked, owner, r.bucket_owner, false, user_exists));
  if (acl && enforced && !TakenWithAclsDisabled(asked, *acl))
    return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs");
  if (acl) {
    PHOTON_RETURN_IF_ERROR(CheckPublicAclAllowed(r, *acl));
  } else {
    PHOTON_ASSIGN_OR_RETURN(acl, CannedAcl("private", owner, r.bucket_owner, false));
  }
  StoreObjectAcl(*acl, headers);
  if (req.HasHeader("x-amz-tagging")) {
    PHOTON_ASSIGN_OR_RETURN(TagSet tags, ParseTagQuery(req.Header("x-amz-tagging")));
    PHOTON_RETURN_IF_ERROR(CheckTags(tags, 10));
    if (tags.empty()) {
      headers->erase(kTagsHeader);
    } else {
      (*headers)[kTagsHeader] = EncodeTagQuery(tags);
    }
  }
  return absl::OkStatus();
}

StatusOr<SseRequest> S3Service::WriteSse(const S3Request& r, const BucketMeta& bucket) {
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, ParseSseRequest(r.http));
  if (sse.mode == SseRequest::Mode::kNone && !bucket.encryption.empty())
    sse.mode = SseRequest::Mode::kS3;
  return sse;
}

StatusOr<WrittenBlob> S3Service::ReceiveBody(S3Request& r, bool force_file,
                                             std::map<std::string, std::string>* checksums,
                                             SegmentEncryptor* cipher, std::string* plain_md5,
                                             std::optional<ChecksumKind> always) {
  const http::Request& req = r.http;
  const std::string& mode = r.auth.payload_hash;
  bool aws_chunked = mode.rfind("STREAMING-", 0) == 0;
  std::optional<uint64_t> declared;
  if (aws_chunked) {
    const std::string& decoded = req.Header("x-amz-decoded-content-length");
    if (decoded.empty()) {
      if (!req.content_length && !req.chunked) {
        return S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.");
      }
    } else {
      declared = std::strtoull(decoded.c_str(), nullptr, 10);
    }
  } else if (req.content_length) {
    declared = *req.content_length;
  } else if (!req.chunked) {
    return S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.");
  }
  if (declared && *declared > config_.max_object_size) {
    return S3Error("EntityTooLarge",
                   "Your proposed upload exceeds the maximum allowed object size.");
  }
  http::BodyReader* reader = req.body;
  std::optional<AwsChunkedReader> chunked;
  std::optional<Sha256CheckReader> sha;
  if (aws_chunked) {
    bool signed_chunks =
        mode == sigv4::kStreamingPayload || mode == sigv4::kStreamingPayloadTrailer;
    chunked.emplace(reader, r.auth, signed_chunks);
    reader = &*chunked;
  } else if (!r.auth.anonymous && mode.size() == 64 && mode != sigv4::kUnsignedPayload) {
    sha.emplace(reader, mode);
    reader = &*sha;
  }
  PHOTON_ASSIGN_OR_RETURN(ContentChecksums sums, ContentChecksums::FromRequest(req, always));
  std::string content_md5;
  if (req.HasHeader("content-md5")) {
    if (!Base64Decode(req.Header("content-md5"), &content_md5) || content_md5.size() != 16) {
      return S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
    }
  }
  auto writer = blobs_->NewWriter(config_.inline_max_bytes, force_file);
  // Encrypted on the writer's helper thread after the MD5 (of the plaintext) is taken: one MD5
  // pass per body, and the connection thread only receives.
  if (cipher) writer->Encrypt(cipher);
  uint64_t total = 0;
  while (true) {
    // Received straight into the writer's block: no copy between socket and disk buffer.
    PHOTON_ASSIGN_OR_RETURN(auto space, writer->Buffer());
    PHOTON_ASSIGN_OR_RETURN(size_t n, reader->Read(space.first, space.second));
    if (n == 0) break;
    total += n;
    if (total > config_.max_object_size) {
      return S3Error("EntityTooLarge",
                     "Your proposed upload exceeds the maximum allowed object size.");
    }
    if (!sums.empty()) sums.Update(space.first, n);
    PHOTON_RETURN_IF_ERROR(writer->Commit(n));
  }
  r.bytes_in += total;
  if (declared && total != *declared) {
    return S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header");
  }
  static const std::map<std::string, std::string> kNoTrailers;
  PHOTON_RETURN_IF_ERROR(sums.Verify(chunked ? chunked->trailers() : kNoTrailers, checksums));
  PHOTON_ASSIGN_OR_RETURN(WrittenBlob blob, writer->Finish());
  if (plain_md5) *plain_md5 = blob.md5;
  if (!content_md5.empty() && content_md5 != blob.md5) {
    if (!blob.is_inline) blobs_->Remove(blob.segment.blob_id);
    return S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  return blob;
}

namespace {

// Bytes [first, last] of part `text` of an object (GET/HEAD ?partNumber=); *count is the
// object's number of parts when it was a multipart upload. A single-part object has part 1.
StatusOr<std::optional<std::pair<uint64_t, uint64_t>>> PartRange(const ObjectMeta& o,
                                                                 const std::string& text,
                                                                 int* count, int* index_out) {
  using Range = std::optional<std::pair<uint64_t, uint64_t>>;
  int number = 0;
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != std::string::npos || (number = std::stoi(text)) < 1 ||
      number > 10000) {
    return S3Error("InvalidArgument",
                   "Part number must be an integer between 1 and 10000, inclusive");
  }
  Status unsatisfiable =
      S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable");
  auto numbers = o.headers.find(kPartsHeader);
  if (o.etag.find('-') == std::string::npos) {
    if (number != 1 || o.size == 0) return unsatisfiable;
    return Range(std::make_pair(uint64_t{0}, o.size - 1));
  }
  if (numbers == o.headers.end()) {
    return S3Error("NotImplemented",
                   "This multipart object was completed before lightningstor kept its part "
                   "numbers; partNumber cannot be served for it");
  }
  // The stored list names the part number of each segment, in order.
  uint64_t offset = 0;
  size_t index = 0, pos = 0;
  const std::string& list = numbers->second;
  *count = static_cast<int>(o.segments.size());
  while (pos <= list.size() && index < o.segments.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    if (std::atoi(list.substr(pos, comma - pos).c_str()) == number) {
      uint64_t size = o.segments[index].size;
      if (size == 0) return unsatisfiable;
      *index_out = static_cast<int>(index);
      return Range(std::make_pair(offset, offset + size - 1));
    }
    offset += o.segments[index].size;
    ++index;
    pos = comma + 1;
  }
  return unsatisfiable;
}

}  // namespace

StatusOr<WrittenBlob> S3Service::CopyData(const ObjectMeta& source, uint64_t offset,
                                          uint64_t length, bool force_file,
                                          std::vector<Checksummer>* sums,
                                          const SseKeys::ReadKey* decrypt,
                                          SegmentEncryptor* encrypt) {
  auto writer = blobs_->NewWriter(config_.inline_max_bytes, force_file);
  // An encrypted source is decrypted as it is read (its CRCs, then its tags, checked on the
  // stored bytes first); the copy is encrypted with its own key on the writer's thread.
  std::optional<ObjectDecryptor> plain;
  if (decrypt && !decrypt->data_key.empty()) plain.emplace(decrypt->data_key, decrypt->iv, source);
  if (encrypt) writer->Encrypt(encrypt);
  PHOTON_RETURN_IF_ERROR(blobs_->Read(
      source, offset, length,
      [&](const char* p, size_t n) {
        if (sums)
          for (auto& sum : *sums) sum.Update(p, n);
        return writer->Write(p, n);
      },
      nullptr, plain ? &*plain : nullptr));
  return writer->Finish();
}

namespace {

void FillData(ObjectMeta& o, WrittenBlob& blob) {
  o.size = blob.size;
  o.etag = HexEncode(blob.md5);
  o.has_inline = blob.is_inline;
  if (blob.is_inline) {
    o.inline_data = std::move(blob.inline_data);
    o.inline_crc = blob.inline_crc;
  } else {
    o.segments = {std::move(blob.segment)};
  }
}

}  // namespace

StatusOr<http::Response> S3Service::PutObject(S3Request& r) {
  if (r.key.size() > 1024) return S3Error("KeyTooLongError", "Your key is too long");
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  ObjectMeta o;
  RequestMetadata(r.http, &o.content_type, &o.headers);
  PHOTON_RETURN_IF_ERROR(ObjectAttributes(r, &o.headers));
  PHOTON_RETURN_IF_ERROR(ApplyObjectLock(r, bucket, &o.headers, true));
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, WriteSse(r, bucket));
  PHOTON_ASSIGN_OR_RETURN(SseKeys::NewKey key, sse_.ForWrite(sse));
  std::optional<SegmentEncryptor> cipher;
  if (!key.data_key.empty()) cipher.emplace(key.data_key, key.iv, sse_.write_format());
  std::map<std::string, std::string> checksums;
  std::string plain_md5;
  PHOTON_ASSIGN_OR_RETURN(
      WrittenBlob blob, ReceiveBody(r, false, &checksums, cipher ? &*cipher : nullptr, &plain_md5));
  o.bucket = r.bucket;
  o.key = r.key;
  o.mtime_ms = clock_->NowMillis();
  for (const auto& [k, v] : checksums) o.headers[k] = v;
  for (const auto& [k, v] : key.headers) o.headers[k] = v;
  FillData(o, blob);
  // As S3: an SSE-S3 object's ETag is its plaintext's MD5; an SSE-C object's is not (it would
  // tell the plaintext to anyone who may list): the MD5 of the object's random IV and that MD5.
  if (sse.mode == SseRequest::Mode::kCustomer) o.etag = HexEncode(Md5Raw(key.iv + plain_md5));
  std::string etag = o.etag;
  std::string blob_id = o.segments.empty() ? "" : o.segments[0].blob_id;
  auto result = meta_->PutObject(std::move(o), WriteConditions(r.http, false));
  if (!result.ok()) {
    if (!blob_id.empty()) blobs_->Remove(blob_id);
    return result.status();
  }
  FreeBlobs(result->freed_blobs);
  http::Response resp;
  resp.AddHeader("ETag", QuoteEtag(etag));
  if (result->version_id != "null") resp.AddHeader("x-amz-version-id", result->version_id);
  for (const auto& [k, v] : checksums) resp.AddHeader(k, v);
  for (const auto& [k, v] : SseKeys::ResponseHeaders(key.headers)) resp.AddHeader(k, v);
  if (sse.mode == SseRequest::Mode::kCustomer)
    resp.AddHeader("x-amz-server-side-encryption-customer-key-MD5", sse.key_md5_b64);
  return resp;
}

StatusOr<ObjectMeta> S3Service::CopySource(S3Request& r) {
  std::string source = http::PercentDecode(r.http.Header("x-amz-copy-source"), false);
  std::string version_id;
  size_t q = source.find("?versionId=");
  if (q != std::string::npos) {
    version_id = source.substr(q + 11);
    source = source.substr(0, q);
  }
  if (!source.empty() && source.front() == '/') source.erase(0, 1);
  size_t slash = source.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == source.size()) {
    return S3Error("InvalidArgument",
                   "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
  }
  std::string bucket = source.substr(0, slash), key = source.substr(slash + 1);
  PHOTON_ASSIGN_OR_RETURN(BucketMeta source_bucket, RequireBucket(bucket));
  if (r.http.HasHeader("x-amz-source-expected-bucket-owner") &&
      r.http.Header("x-amz-source-expected-bucket-owner") != source_bucket.owner)
    return S3Error("AccessDenied", "Access Denied");
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta o, meta_->GetObject(bucket, key, version_id));
  // The caller must be able to read the source: the source bucket's policy (a Deny wins),
  // else the source's ACL.
  PolicyDecision policy = DecideStoredPolicy(
      r, source_bucket, version_id.empty() ? "s3:GetObject" : "s3:GetObjectVersion", key);
  PublicAccessBlock pab = EffectivePublicAccessBlock(source_bucket.public_access_block,
                                                     source_bucket.account_public_access_block);
  Acl source_acl = ObjectAcl(o.headers, source_bucket.owner, source_bucket.ownership);
  if (pab.ignore_public_acls) source_acl = WithoutPublicGrants(std::move(source_acl));
  if (policy == PolicyDecision::kDeny ||
      (policy != PolicyDecision::kAllow && !(Permissions(source_acl, r.caller) & kPermRead))) {
    return S3Error("AccessDenied", "Access Denied");
  }
  PHOTON_RETURN_IF_ERROR(CheckConditions(r.http, o, "x-amz-copy-source-", true));
  return o;
}

namespace {

// The checksums a copy takes of the bytes it copies: x-amz-checksum-algorithm's when asked,
// else every algorithm the source has one of.
StatusOr<std::vector<Checksummer>> CopyChecksums(const http::Request& req,
                                                 const std::map<std::string, std::string>& source) {
  std::vector<Checksummer> sums;
  const std::string& asked = req.Header("x-amz-checksum-algorithm");
  if (!asked.empty()) {
    std::optional<ChecksumKind> kind = ChecksumKindOf(asked);
    if (!kind) {
      return S3Error("InvalidRequest",
                     "Checksum algorithm provided is unsupported. Please try again with any of "
                     "the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]");
    }
    sums.emplace_back(*kind);
    return sums;
  }
  for (ChecksumKind kind : kChecksumKinds)
    if (source.count(ChecksumHeader(kind))) sums.emplace_back(kind);
  return sums;
}

}  // namespace

StatusOr<http::Response> S3Service::CopyObject(S3Request& r) {
  if (r.key.size() > 1024) return S3Error("KeyTooLongError", "Your key is too long");
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket, RequireBucket(r.bucket));
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta source, CopySource(r));
  std::string directive = r.http.Header("x-amz-metadata-directive");
  if (directive.empty()) directive = "COPY";
  if (directive != "COPY" && directive != "REPLACE") {
    return S3Error("InvalidArgument", "Unknown metadata directive.");
  }
  std::string tagging = r.http.Header("x-amz-tagging-directive");
  if (tagging.empty()) tagging = "COPY";
  if (tagging != "COPY" && tagging != "REPLACE") {
    return S3Error("InvalidArgument", "Unknown tagging directive.");
  }
  // The source's key (SSE-C: x-amz-copy-source-server-side-encryption-customer-*) and the
  // copy's own encryption (x-amz-server-side-encryption*), as on a PUT.
  PHOTON_ASSIGN_OR_RETURN(SseRequest source_sse, ParseCopySourceSse(r.http));
  PHOTON_ASSIGN_OR_RETURN(SseKeys::ReadKey source_key, sse_.ForRead(source.headers, source_sse));
  PHOTON_ASSIGN_OR_RETURN(SseRequest asked, ParseSseRequest(r.http));
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, WriteSse(r, bucket));
  PHOTON_ASSIGN_OR_RETURN(SseKeys::NewKey key, sse_.ForWrite(sse));
  std::optional<SegmentEncryptor> cipher;
  if (!key.data_key.empty()) cipher.emplace(key.data_key, key.iv, sse_.write_format());
  // (The bucket's default encryption does not make a copy onto itself a change.)
  if (source.bucket == r.bucket && source.key == r.key && directive == "COPY" &&
      asked.mode == SseRequest::Mode::kNone) {
    return S3Error("InvalidRequest",
                   "This copy request is illegal because it is trying to copy an object to itself "
                   "without changing the object's metadata, storage class, website redirect "
                   "location or encryption attributes.");
  }
  PHOTON_ASSIGN_OR_RETURN(std::vector<Checksummer> sums, CopyChecksums(r.http, source.headers));
  // Everything that can refuse the copy is decided before its bytes are written: a refusal
  // after the copy would leave a blob file that nothing references.
  ObjectMeta o;
  o.bucket = r.bucket;
  o.key = r.key;
  if (directive == "COPY") {
    o.content_type = source.content_type;
    o.headers = source.headers;
  } else {
    RequestMetadata(r.http, &o.content_type, &o.headers);
  }
  // The copy is one part: its checksums are those taken of its bytes below, never a multipart
  // source's composite or part checksums.
  std::erase_if(o.headers, [](const auto& h) {
    return h.first.rfind("x-amz-checksum-", 0) == 0 || h.first == kChecksumAlgorithmHeader ||
           h.first == kChecksumTypeHeader || h.first == kPartChecksumsHeader;
  });
  // Never the source's encryption: the copy's own key (or none).
  SseKeys::Strip(&o.headers);
  for (const auto& [k, v] : key.headers) o.headers[k] = v;
  // As in S3: tags are copied unless replaced; the ACL is never copied (private unless given).
  o.headers.erase(kAclHeader);
  o.headers.erase(kTagsHeader);
  o.headers.erase(kPartsHeader);
  auto source_tags = source.headers.find(kTagsHeader);
  if (tagging == "COPY" && source_tags != source.headers.end())
    o.headers[kTagsHeader] = source_tags->second;
  if (tagging == "COPY" && r.http.HasHeader("x-amz-tagging")) {
    return S3Error("InvalidArgument",
                   "x-amz-tagging is taken only with x-amz-tagging-directive: REPLACE");
  }
  PHOTON_RETURN_IF_ERROR(ObjectAttributes(r, &o.headers));
  // The copy's lock is the request's x-amz-object-lock-* or the bucket's default, never the
  // source's.
  StoreLock(ObjectLock{}, &o.headers);
  PHOTON_RETURN_IF_ERROR(ApplyObjectLock(r, bucket, &o.headers, true));
  PHOTON_ASSIGN_OR_RETURN(WrittenBlob blob, CopyData(source, 0, source.size, false, &sums,
                                                     &source_key, cipher ? &*cipher : nullptr));
  o.mtime_ms = clock_->NowMillis();
  std::map<std::string, std::string> checksums;
  for (auto& sum : sums) checksums[ChecksumHeader(sum.kind())] = Base64Encode(sum.Finish());
  for (const auto& [k, v] : checksums) o.headers[k] = v;
  FillData(o, blob);
  if (sse.mode == SseRequest::Mode::kCustomer) o.etag = HexEncode(Md5Raw(key.iv + blob.md5));
  std::string etag = o.etag;
  int64_t mtime = o.mtime_ms;
  std::string blob_id = o.segments.empty() ? "" : o.segments[0].blob_id;
  auto result = meta_->PutObject(std::move(o), WriteConditions(r.http, false));
  if (!result.ok()) {
    if (!blob_id.empty()) blobs_->Remove(blob_id);
    return result.status();
  }
  FreeBlobs(result->freed_blobs);
  XmlWriter w;
  w.Open("CopyObjectResult", kXmlns);
  w.Element("LastModified", sigv4::FormatIso8601(mtime));
  w.Element("ETag", QuoteEtag(etag));
  for (ChecksumKind kind : kChecksumKinds) {
    auto sum = checksums.find(ChecksumHeader(kind));
    if (sum != checksums.end()) w.Element(ChecksumElement(kind), sum->second);
  }
  w.Close("CopyObjectResult");
  http::Response resp;
  resp.body = w.Take();
  resp.AddHeader("Content-Type", "application/xml");
  if (result->version_id != "null") resp.AddHeader("x-amz-version-id", result->version_id);
  if (source.version_id != "null")
    resp.AddHeader("x-amz-copy-source-version-id", source.version_id);
  for (const auto& [k, v] : SseKeys::ResponseHeaders(key.headers)) resp.AddHeader(k, v);
  if (sse.mode == SseRequest::Mode::kCustomer)
    resp.AddHeader("x-amz-server-side-encryption-customer-key-MD5", sse.key_md5_b64);
  return resp;
}

namespace {

// x-amz-checksum-<alg> of part `index` (segment order) of a multipart object made with a
// checksum algorithm.
void AddPartChecksum(const ObjectMeta& o, int index, http::Response& resp) {
  auto algorithm = o.headers.find(kChecksumAlgorithmHeader);
  auto sums = o.headers.find(kPartChecksumsHeader);
  if (algorithm == o.headers.end() || sums == o.headers.end()) return;
  std::optional<ChecksumKind> kind = ChecksumKindOf(algorithm->second);
  size_t pos = 0;
  for (int i = 0; i < index && pos != std::string::npos; ++i) {
    pos = sums->second.find(',', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (!kind || pos == std::string::npos) return;
  size_t end = sums->second.find(',', pos);
  resp.AddHeader(ChecksumHeader(*kind), sums->second.substr(pos, end - pos));
  resp.AddHeader("x-amz-checksum-type", "FULL_OBJECT");
}

}  // namespace

StatusOr<http::Response> S3Service::GetObject(S3Request& r, bool head) {
  const std::string* version = r.http.Query("versionId");
  bool is_marker = false;
  auto found = meta_->GetObjectShared(r.bucket, r.key, version ? *version : "", &is_marker);
  if (!found.ok()) {
    // A caller who may not list is not told which keys exist.
    if (!r.may_list && r.object_need) return S3Error("AccessDenied", "Access Denied");
    // Distinguish a missing bucket from a missing key.
    if (S3Code(found.status()) == "NoSuchKey")
      PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
    if (!is_marker) return found.status();
    // S3 tells the client the key is hidden behind a delete marker.
    http::Response resp;
    resp.status = S3HttpStatus(S3Code(found.status()));
    resp.AddHeader("x-amz-delete-marker", "true");
    resp.AddHeader("Content-Type", "application/xml");
    resp.body = S3ErrorXml(found.status(), r.http.path, r.request_id);
    if (head) {
      resp.head_only = true;
      resp.body.clear();
    }
    return resp;
  }
  // Shared with the read cache, never changed: a GET copies no row.
  std::shared_ptr<const ObjectMeta> row = std::move(*found);
  const ObjectMeta& o = *row;
  PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, o.headers));
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, ParseSseRequest(r.http));
  if (sse.mode == SseRequest::Mode::kS3) {
    return S3Error("InvalidArgument",
                   "x-amz-server-side-encryption is not taken by GET or HEAD requests");
  }
  PHOTON_ASSIGN_OR_RETURN(SseKeys::ReadKey key, sse_.ForRead(o.headers, sse));
  Status conditions = CheckConditions(r.http, o, "", false);
  if (S3Code(conditions) == "NotModified") {
    http::Response resp;
    resp.status = 304;
    resp.AddHeader("ETag", QuoteEtag(o.etag));
    resp.AddHeader("Last-Modified", HttpDate(o.mtime_ms));
    if (head) resp.head_only = true;
    return resp;
  }
  PHOTON_RETURN_IF_ERROR(conditions);
  std::optional<std::pair<uint64_t, uint64_t>> range;
  int parts_count = 0, part_index = -1;
  if (const std::string* part = r.http.Query("partNumber")) {
    if (r.http.HasHeader("range")) {
      return S3Error("InvalidRequest",
                     "Cannot specify both Range header and partNumber query parameter");
    }
    PHOTON_ASSIGN_OR_RETURN(range, PartRange(o, *part, &parts_count, &part_index));
  } else {
    PHOTON_ASSIGN_OR_RETURN(range, ParseRange(r.http.Header("range"), o.size));
  }
  uint64_t start = range ? range->first : 0;
  uint64_t length = range ? range->second - range->first + 1 : o.size;

  http::Response resp;
  if (parts_count > 0) resp.AddHeader("x-amz-mp-parts-count", std::to_string(parts_count));
  resp.status = range ? 206 : 200;
  resp.AddHeader("Last-Modified", HttpDate(o.mtime_ms));
  resp.AddHeader("ETag", QuoteEtag(o.etag));
  resp.AddHeader("Accept-Ranges", "bytes");
  if (o.version_id != "null") resp.AddHeader("x-amz-version-id", o.version_id);
  if (range) {
    resp.AddHeader("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                        std::to_string(range->second) + "/" +
                                        std::to_string(o.size));
  }
  std::map<std::string, std::string> out_headers;
  out_headers["content-type"] = o.content_type;
  const std::string& checksum_mode = r.http.Header("x-amz-checksum-mode");
  if (!checksum_mode.empty() && checksum_mode != "ENABLED")
    return S3Error("InvalidArgument", "x-amz-checksum-mode must be ENABLED");
  // The object's checksums answer a whole-object read; a part's read answers that part's (a
  // single-part object's part 1 is the object); a Range read none, as in S3.
  bool whole = !range || (r.http.HasQuery("partNumber") && part_index < 0);
  bool want_checksums = !checksum_mode.empty() && whole;
  if (!checksum_mode.empty() && part_index >= 0) AddPartChecksum(o, part_index, resp);
  if (want_checksums) {
    for (ChecksumKind kind : kChecksumKinds) {
      auto sum = o.headers.find(ChecksumHeader(kind));
      if (sum == o.headers.end()) continue;
      bool composite = sum->second.find('-') != std::string::npos;
      resp.AddHeader("x-amz-checksum-type", composite ? "COMPOSITE" : "FULL_OBJECT");
      break;
    }
  }
  for (const auto& [k, v] : o.headers) {
    if (k.rfind("x-amz-checksum-", 0) == 0 && !want_checksums) continue;
    if (k == kTagsHeader) {
      auto tags = ParseTagQuery(v);
      if (tags.ok() && !tags->empty())
        out_headers["x-amz-tagging-count"] = std::to_string(tags->size());
    }
    if (IsInternalHeader(k)) continue;
    out_headers[k] = v;
  }
  for (const auto& [name, value] : r.http.query) {
    if (name.rfind("response-", 0) != 0) continue;
    std::string h = name.substr(9);
    if (h == "content-type" || h == "content-language" || h == "expires" || h == "cache-control" ||
        h == "content-disposition" || h == "content-encoding") {
      out_headers[h] = value;
    }
  }
  for (const auto& [k, v] : SseKeys::ResponseHeaders(o.headers)) out_headers[k] = v;
  if (sse.mode == SseRequest::Mode::kCustomer)
    out_headers["x-amz-server-side-encryption-customer-key-MD5"] = sse.key_md5_b64;
  for (auto& [k, v] : out_headers) resp.AddHeader(k, v);
  AddLockHeaders(o.headers, resp);
  if (head) {
    resp.head_only = true;
    resp.head_length = length;
    return resp;
  }
  r.bytes_out += length;
  if (!key.data_key.empty()) return EncryptedBody(std::move(resp), o, key, start, length);
  if (length <= kBlockSize) {
    // Small: read (and verify) before the head goes out, so bit rot is a clean 500.
    resp.body.reserve(length);
    PHOTON_RETURN_IF_ERROR(blobs_->Read(o, start, length, [&](const char* p, size_t n) {
      resp.body.append(p, n);
      return absl::OkStatus();
    }));
    return resp;
  }
  resp.stream_length = length;
  const BlobStore* blobs = blobs_;
  resp.stream = [blobs, row, start, length](const http::BodySink& sink,
                                            const http::FileSink* file) {
    Status st = blobs->Read(*row, start, length, sink, file);
    if (!st.ok())
      spdlog::warn("GET {}/{} aborted: {}", row->bucket, row->key, std::string(st.message()));
    return st;
  };
  return resp;
}

StatusOr<http::Response> S3Service::EncryptedBody(http::Response resp, ObjectMeta o,
                                                  const SseKeys::ReadKey& key, uint64_t start,
                                                  uint64_t length) {
  // Decrypted as it is read: each stored block is verified (CRC, then its GCM tag) before any
  // of its bytes leave; never sendfile, the page cache holds ciphertext.
  auto plain = std::make_shared<ObjectDecryptor>(key.data_key, key.iv, o);
  if (length <= kBlockSize) {
    // Small: read (and verify) before the head goes out, so a failure is a clean 500.
    resp.body.reserve(length);
    PHOTON_RETURN_IF_ERROR(blobs_->Read(
        o, start, length,
        [&](const char* p, size_t n) {
          resp.body.append(p, n);
          return absl::OkStatus();
        },
        nullptr, plain.get()));
    return resp;
  }
  resp.stream_length = length;
  const BlobStore* blobs = blobs_;
  resp.stream = [blobs, o = std::move(o), start, length, plain](const http::BodySink& sink,
                                                                const http::FileSink*) {
    Status st = blobs->Read(o, start, length, sink, nullptr, plain.get());
    if (!st.ok()) spdlog::warn("GET {}/{} aborted: {}", o.bucket, o.key, std::string(st.message()));
    return st;
  };
  return resp;
}

StatusOr<http::Response> S3Service::DeleteObject(S3Request& r) {
  const std::string* version = r.http.Query("versionId");
  PHOTON_ASSIGN_OR_RETURN(
      WriteResult result,
      meta_->DeleteObject(r.bucket, r.key, version ? *version : "", clock_->NowMillis(),
                          WriteConditions(r.http, true), BypassGovernance(r)));
  FreeBlobs(result.freed_blobs);
  http::Response resp;
  resp.status = 204;
  if (result.delete_marker) resp.AddHeader("x-amz-delete-marker", "true");
  if (!result.version_id.empty() && (version || result.version_id != "null")) {
    resp.AddHeader("x-amz-version-id", result.version_id);
  }
  return resp;
}

StatusOr<http::Response> S3Service::DeleteObjects(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 2 << 20));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "Delete") return S3Error("MalformedXML", "expected a Delete document");
  bool quiet = doc->ChildText("Quiet") == "true";
  auto objects = doc->Children("Object");
  if (objects.empty() || objects.size() > 1000) {
    return S3Error("MalformedXML", "a Delete request names 1 to 1000 objects");
  }
  XmlWriter w;
  w.Open("DeleteResult", kXmlns);
  for (const XmlNode* obj : objects) {
    std::string key = obj->ChildText("Key");
    std::string version = obj->ChildText("VersionId");
    // Each key as its own DeleteObject: the policy's word on it, else the bucket ACL.
    PolicyDecision policy =
        DecidePolicy(r, version.empty() ? "s3:DeleteObject" : "s3:DeleteObjectVersion", key);
    if (policy == PolicyDecision::kDeny || (policy == PolicyDecision::kNone && !r.acl_write)) {
      w.Open("Error");
      w.Element("Key", key);
      if (!version.empty()) w.Element("VersionId", version);
      w.Element("Code", "AccessDenied");
      w.Element("Message", "Access Denied");
      w.Close("Error");
      continue;
    }
    Precondition pre;
    if (obj->Child("ETag") || obj->Child("Size") || obj->Child("LastModifiedTime")) {
      std::string etag = obj->ChildText("ETag"), size = obj->ChildText("Size");
      std::string mtime = obj->ChildText("LastModifiedTime");
      bool has_etag = obj->Child("ETag") != nullptr;
      pre = [etag, size, mtime, has_etag](const ObjectMeta* target) -> Status {
        if (!target) return S3Error("NoSuchKey", "The specified key does not exist.");
        if (has_etag && !EtagMatches(etag, target->etag)) return PreconditionFailed();
        if (!size.empty() && size != std::to_string(target->size)) return PreconditionFailed();
        if (!mtime.empty() && mtime != sigv4::FormatIso8601(target->mtime_ms / 1000 * 1000) &&
            mtime != sigv4::FormatIso8601(target->mtime_ms))
          return PreconditionFailed();
        return absl::OkStatus();
      };
    }
    auto result =
        meta_->DeleteObject(r.bucket, key, version, clock_->NowMillis(), pre, BypassGovernance(r));
    if (!result.ok()) {
      w.Open("Error");
      w.Element("Key", key);
      if (!version.empty()) w.Element("VersionId", version);
      w.Element("Code", S3Code(result.status()));
      w.Element("Message", std::string(result.status().message()));
      w.Close("Error");
      continue;
    }
    FreeBlobs(result->freed_blobs);
    if (quiet) continue;
    w.Open("Deleted");
    w.Element("Key", key);
    if (!version.empty()) w.Element("VersionId", version);
    if (result->delete_marker) {
      w.Element("DeleteMarker", "true");
      if (version.empty()) w.Element("DeleteMarkerVersionId", result->version_id);
    }
    w.Close("Deleted");
  }
  w.Close("DeleteResult");
  http::Response resp;
  resp.body = w.Take();
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

StatusOr<http::Response> S3Service::GetObjectAcl(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  const std::string* version = r.http.Query("versionId");
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta o, meta_->GetObject(r.bucket, r.key, version ? *version : ""));
  PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, o.headers));
  http::Response resp;
  resp.body = AclXml(ObjectAcl(o.headers, r.bucket_owner, r.ownership));
  resp.AddHeader("Content-Type", "application/xml");
  if (o.version_id != "null") resp.AddHeader("x-amz-version-id", o.version_id);
  return resp;
}

StatusOr<http::Response> S3Service::PutObjectAcl(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  AclRequest asked = AclRequestOf(r.http, std::move(body));
  const std::string* version = r.http.Query("versionId");
  // Checked and changed inside the commit: the ACL replaced is the one the caller could change.
  auto change = [&](std::map<std::string, std::string>& headers) -> Status {
    PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, headers));
    std::string owner = ObjectAcl(headers, r.bucket_owner, r.ownership).owner;
    auto user_exists = [this](const std::string& u) { return UserExists(u); };
    PHOTON_ASSIGN_OR_RETURN(auto acl,
                            AclFromRequest(asked, owner, r.bucket_owner, false, user_exists));
    if (!acl) return S3Error("MissingSecurityHeader", "Your request was missing a required header");
    if (r.ownership == "BucketOwnerEnforced" && !TakenWithAclsDisabled(asked, *acl))
      return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs");
    PHOTON_RETURN_IF_ERROR(CheckPublicAclAllowed(r, *acl));
    StoreObjectAcl(*acl, &headers);
    return absl::OkStatus();
  };
  PHOTON_ASSIGN_OR_RETURN(
      std::string changed,
      meta_->UpdateObjectHeaders(r.bucket, r.key, version ? *version : "", change));
  http::Response resp;
  if (changed != "null") resp.AddHeader("x-amz-version-id", changed);
  return resp;
}

StatusOr<http::Response> S3Service::GetObjectTagging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  const std::string* version = r.http.Query("versionId");
  PHOTON_ASSIGN_OR_RETURN(ObjectMeta o, meta_->GetObject(r.bucket, r.key, version ? *version : ""));
  PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, o.headers));
  TagSet tags;
  auto stored = o.headers.find(kTagsHeader);
  if (stored != o.headers.end()) {
    PHOTON_ASSIGN_OR_RETURN(tags, ParseTagQuery(stored->second));
  }
  http::Response resp;
  resp.body = TaggingXml(tags);
  resp.AddHeader("Content-Type", "application/xml");
  if (o.version_id != "null") resp.AddHeader("x-amz-version-id", o.version_id);
  return resp;
}

StatusOr<http::Response> S3Service::PutObjectTagging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  PHOTON_ASSIGN_OR_RETURN(std::string body, ReadSmallBody(r, 64 << 10));
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  if (doc->name != "Tagging")
    return S3Error("MalformedXML", "want <Tagging><TagSet>...</TagSet></Tagging>");
  PHOTON_ASSIGN_OR_RETURN(TagSet tags, ParseTagSet(doc->Child("TagSet")));
  PHOTON_RETURN_IF_ERROR(CheckTags(tags, 10));
  const std::string* version = r.http.Query("versionId");
  PHOTON_ASSIGN_OR_RETURN(
      std::string changed,
      meta_->UpdateObjectHeaders(r.bucket, r.key, version ? *version : "",
                                 [&](std::map<std::string, std::string>& headers) {
                                   PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, headers));
                                   if (tags.empty()) {
                                     headers.erase(kTagsHeader);
                                   } else {
                                     headers[kTagsHeader] = EncodeTagQuery(tags);
                                   }
                                   return absl::OkStatus();
                                 }));
  http::Response resp;
  if (changed != "null") resp.AddHeader("x-amz-version-id", changed);
  return resp;
}

StatusOr<http::Response> S3Service::DeleteObjectTagging(S3Request& r) {
  PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
  const std::string* version = r.http.Query("versionId");
  PHOTON_ASSIGN_OR_RETURN(
      std::string changed,
      meta_->UpdateObjectHeaders(r.bucket, r.key, version ? *version : "",
                                 [&](std::map<std::string, std::string>& headers) {
                                   PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, headers));
                                   headers.erase(kTagsHeader);
                                   return absl::OkStatus();
                                 }));
  http::Response resp;
  resp.status = 204;
  if (changed != "null") resp.AddHeader("x-amz-version-id", changed);
  return resp;
}

}  // namespace photon::lightningstor
