// S3Service::GetObjectAttributes (see service.h): what S3 tells about an object without its
// bytes — ETag, stored checksums, the parts of a multipart object, storage class and size —
// each only when x-amz-object-attributes asks for it.
#include <set>

#include "lightningstor/checksum.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sse.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

// The asked attributes, trimmed; InvalidArgument for none or an unknown one.
StatusOr<std::set<std::string>> AskedAttributes(const http::Request& req) {
  static const std::set<std::string> kKnown = {"ETag", "Checksum", "ObjectParts", "StorageClass",
                                               "ObjectSize"};
  std::set<std::string> asked;
  for (const auto& [name, value] : req.headers) {
    if (name != "x-amz-object-attributes") continue;
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t comma = value.find(',', pos);
      if (comma == std::string::npos) comma = value.size();
      std::string item = value.substr(pos, comma - pos);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!item.empty()) {
        if (!kKnown.count(item))
          return S3Error("InvalidArgument", "Invalid attribute name specified: " + item);
        asked.insert(item);
      }
      pos = comma + 1;
    }
  }
  if (asked.empty()) {
    return S3Error("InvalidArgument",
                   "The x-amz-object-attributes header specifying the attributes to be retrieved "
                   "is either missing or empty");
  }
  return asked;
}

// A non-negative integer header, or `fallback` when absent; InvalidArgument when malformed.
StatusOr<uint64_t> NumberHeader(const http::Request& req, const char* name, uint64_t fallback) {
  const std::string& text = req.Header(name);
  if (text.empty()) return fallback;
  if (text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
    return S3Error("InvalidArgument", std::string(name) + " must be a non-negative integer");
  }
  return std::stoull(text);
}

// The part number of each segment of a multipart object (kPartsHeader), or 1..N when the
// object was completed before part numbers were kept.
std::vector<int> PartNumbers(const ObjectMeta& o) {
  std::vector<int> numbers;
  auto list = o.headers.find(kPartsHeader);
  if (list != o.headers.end()) {
    size_t pos = 0;
    const std::string& text = list->second;
    while (pos < text.size()) {
      size_t comma = text.find(',', pos);
      if (comma == std::string::npos) comma = text.size();
      numbers.push_back(std::atoi(text.substr(pos, comma - pos).c_str()));
      pos = comma + 1;
    }
  }
  if (numbers.size() != o.segments.size()) {
    numbers.clear();
    for (size_t i = 0; i < o.segments.size(); ++i) numbers.push_back(static_cast<int>(i) + 1);
  }
  return numbers;
}

// Each part's checksum ("" when the object keeps none), in segment order.
std::vector<std::string> PartChecksums(const ObjectMeta& o) {
  std::vector<std::string> sums;
  auto list = o.headers.find(kPartChecksumsHeader);
  if (list != o.headers.end()) {
    size_t pos = 0;
    const std::string& text = list->second;
    while (pos <= text.size()) {
      size_t comma = text.find(',', pos);
      if (comma == std::string::npos) comma = text.size();
      sums.push_back(text.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  sums.resize(o.segments.size());
  return sums;
}

void WriteParts(const ObjectMeta& o, uint64_t max_parts, uint64_t marker, XmlWriter& w) {
  std::vector<int> numbers = PartNumbers(o);
  std::vector<std::string> sums = PartChecksums(o);
  auto algorithm = o.headers.find(kChecksumAlgorithmHeader);
  std::optional<ChecksumKind> kind;
  if (algorithm != o.headers.end()) kind = ChecksumKindOf(algorithm->second);
  w.Open("ObjectParts");
  w.Element("PartsCount", std::to_string(numbers.size()));
  w.Element("PartNumberMarker", std::to_string(marker));
  w.Element("MaxParts", std::to_string(max_parts));
  uint64_t listed = 0;
  int last = 0;
  bool truncated = false;
  for (size_t i = 0; i < numbers.size(); ++i) {
    if (numbers[i] <= static_cast<int64_t>(marker)) continue;
    if (listed == max_parts) {
      truncated = true;
      break;
    }
    w.Open("Part");
    w.Element("PartNumber", std::to_string(numbers[i]));
    w.Element("Size", std::to_string(o.segments[i].size));
    if (kind && !sums[i].empty()) w.Element(ChecksumElement(*kind), sums[i]);
    w.Close("Part");
    last = numbers[i];
    ++listed;
  }
  w.Element("IsTruncated", truncated ? "true" : "false");
  if (truncated) w.Element("NextPartNumberMarker", std::to_string(last));
  w.Close("ObjectParts");
}

}  // namespace

StatusOr<http::Response> S3Service::GetObjectAttributes(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(auto asked, AskedAttributes(r.http));
  PHOTON_ASSIGN_OR_RETURN(uint64_t max_parts, NumberHeader(r.http, "x-amz-max-parts", 1000));
  PHOTON_ASSIGN_OR_RETURN(uint64_t marker, NumberHeader(r.http, "x-amz-part-number-marker", 0));
  const std::string* version = r.http.Query("versionId");
  bool is_marker = false;
  auto found = meta_->GetObject(r.bucket, r.key, version ? *version : "", &is_marker);
  if (!found.ok()) {
    if (!r.may_list && r.object_need) return S3Error("AccessDenied", "Access Denied");
    if (S3Code(found.status()) == "NoSuchKey")
      PHOTON_RETURN_IF_ERROR(RequireBucket(r.bucket).status());
    if (!is_marker) return found.status();
    http::Response resp;
    resp.status = S3HttpStatus(S3Code(found.status()));
    resp.AddHeader("x-amz-delete-marker", "true");
    resp.AddHeader("Content-Type", "application/xml");
    resp.body = S3ErrorXml(found.status(), r.http.path, r.request_id);
    return resp;
  }
  const ObjectMeta& o = *found;
  PHOTON_RETURN_IF_ERROR(CheckObjectAccess(r, o.headers));
  // An SSE-C object tells its attributes only to a caller with its key, as S3.
  PHOTON_ASSIGN_OR_RETURN(SseRequest sse, ParseSseRequest(r.http));
  if (sse.mode == SseRequest::Mode::kS3) {
    return S3Error("InvalidArgument",
                   "x-amz-server-side-encryption is not taken by GetObjectAttributes");
  }
  PHOTON_RETURN_IF_ERROR(sse_.ForRead(o.headers, sse).status());

  // A multipart object made with a checksum algorithm before its part checksums were kept:
  // S3 would answer its checksums, which lightningstor does not have.
  auto algorithm = o.headers.find(kChecksumAlgorithmHeader);
  if (algorithm != o.headers.end() && !o.headers.count(kPartChecksumsHeader) &&
      (asked.count("Checksum") || asked.count("ObjectParts"))) {
    return S3Error("NotImplemented",
                   "this multipart object was completed before lightningstor kept composite and "
                   "per-part checksums (uploaded with x-amz-checksum-algorithm " +
                       algorithm->second + "); ask for ETag, StorageClass or ObjectSize");
  }
  XmlWriter w;
  w.Open("GetObjectAttributesResponse", kXmlns);
  if (asked.count("ETag")) w.Element("ETag", o.etag);
  if (asked.count("Checksum")) {
    // Only what was verified and stored at upload; a multipart object uploaded without a
    // checksum algorithm has none, and S3 leaves the element out then too.
    // (COMPOSITE: "BASE64-N", the checksum of the parts' checksums.)
    std::vector<std::pair<const char*, std::string>> present;
    for (ChecksumKind kind : kChecksumKinds) {
      auto it = o.headers.find(ChecksumHeader(kind));
      if (it != o.headers.end()) present.emplace_back(ChecksumElement(kind), it->second);
    }
    if (!present.empty()) {
      w.Open("Checksum");
      for (const auto& [element, value] : present) w.Element(element, value);
      bool composite = present[0].second.find('-') != std::string::npos;
      w.Element("ChecksumType", composite ? "COMPOSITE" : "FULL_OBJECT");
      w.Close("Checksum");
    }
  }
  bool multipart = o.etag.find('-') != std::string::npos;
  if (asked.count("ObjectParts") && multipart) WriteParts(o, max_parts, marker, w);
  if (asked.count("StorageClass")) w.Element("StorageClass", "STANDARD");
  if (asked.count("ObjectSize")) w.Element("ObjectSize", std::to_string(o.size));
  w.Close("GetObjectAttributesResponse");

  http::Response resp;
  resp.body = w.Take();
  resp.AddHeader("Content-Type", "application/xml");
  resp.AddHeader("Last-Modified", HttpDate(o.mtime_ms));
  if (o.version_id != "null") resp.AddHeader("x-amz-version-id", o.version_id);
  return resp;
}

}  // namespace photon::lightningstor
