// ListObjects (V1, V2) and ListObjectVersions of S3Service (see service.h).
#include "lightningstor/checksum.h"
#include "lightningstor/listing.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

StatusOr<int> MaxKeys(const http::Request& req, const char* name = "max-keys") {
  const std::string* v = req.Query(name);
  if (!v) return 1000;
  if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos || v->size() > 9) {
    return S3Error("InvalidArgument",
                   std::string("Provided ") + name + " not an integer or within integer range");
  }
  return std::min(std::stoi(*v), 1000);
}

std::string Q(const http::Request& req, const char* name) {
  const std::string* v = req.Query(name);
  return v ? *v : "";
}

}  // namespace

StatusOr<http::Response> S3Service::ListObjects(S3Request& r, bool v2) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket_meta, RequireBucket(r.bucket));
  const http::Request& req = r.http;
  std::string encoding = Q(req, "encoding-type");
  if (!encoding.empty() && encoding != "url")
    return S3Error("InvalidArgument", "Invalid Encoding Method specified in Request");
  bool url = encoding == "url";
  auto enc = [url](const std::string& s) { return url ? sigv4::UriEncode(s, false) : s; };
  ListParams params;
  params.prefix = Q(req, "prefix");
  params.delimiter = Q(req, "delimiter");
  PHOTON_ASSIGN_OR_RETURN(params.max_keys, MaxKeys(req));
  std::string token = Q(req, "continuation-token");
  if (v2) {
    if (req.HasQuery("continuation-token")) {
      std::string decoded;
      if (token.empty() || !Base64Decode(token, &decoded)) {
        return S3Error("InvalidArgument", "The continuation token provided is incorrect");
      }
      params.start_after = decoded;
    } else {
      params.start_after = Q(req, "start-after");
    }
  } else {
    params.start_after = Q(req, "marker");
  }
  std::string bucket = r.bucket;
  // V1 always names the owner, V2 when asked (FetchOwner).
  bool owners = !v2 || Q(req, "fetch-owner") == "true";
  ListFetch fetch = [this, &bucket, &params, owners](const std::string& from, bool inclusive,
                                                     int limit) {
    return meta_->ListLatest(bucket, params.prefix, from, inclusive, limit, owners);
  };
  PHOTON_ASSIGN_OR_RETURN(ListOutcome result, ListWithDelimiter(fetch, params));

  XmlWriter w;
  w.Open("ListBucketResult", kXmlns);
  w.Element("Name", r.bucket);
  w.Element("Prefix", enc(params.prefix));
  if (v2) {
    if (req.HasQuery("continuation-token")) w.Element("ContinuationToken", token);
    if (req.HasQuery("start-after")) w.Element("StartAfter", enc(Q(req, "start-after")));
    w.Element("KeyCount", std::to_string(result.contents.size() + result.common_prefixes.size()));
    if (result.truncated) w.Element("NextContinuationToken", Base64Encode(result.last));
  } else {
    w.Element("Marker", enc(params.start_after));
    if (result.truncated) w.Element("NextMarker", enc(result.last));
  }
  w.Element("MaxKeys", std::to_string(params.max_keys));
  if (!params.delimiter.empty()) w.Element("Delimiter", enc(params.delimiter));
  if (url) w.Element("EncodingType", "url");
  w.Element("IsTruncated", result.truncated ? "true" : "false");
  for (const auto& e : result.contents) {
    w.Open("Contents");
    w.Element("Key", enc(e.key));
    w.Element("LastModified", sigv4::FormatIso8601(e.mtime_ms));
    w.Element("ETag", QuoteEtag(e.etag));
    w.Element("Size", std::to_string(e.size));
    if (owners) {
      const std::string& owner = e.owner.empty() || bucket_meta.ownership == "BucketOwnerEnforced"
                                     ? bucket_meta.owner
                                     : e.owner;
      w.Open("Owner");
      w.Element("ID", owner);
      w.Element("DisplayName", owner);
      w.Close("Owner");
    }
    w.Element("StorageClass", "STANDARD");
    w.Close("Contents");
  }
  for (const auto& cp : result.common_prefixes) {
    w.Open("CommonPrefixes");
    w.Element("Prefix", enc(cp));
    w.Close("CommonPrefixes");
  }
  w.Close("ListBucketResult");
  http::Response resp;
  resp.body = w.Take();
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

StatusOr<http::Response> S3Service::ListObjectVersions(S3Request& r) {
  PHOTON_ASSIGN_OR_RETURN(BucketMeta bucket_meta, RequireBucket(r.bucket));
  const http::Request& req = r.http;
  std::string encoding = Q(req, "encoding-type");
  if (!encoding.empty() && encoding != "url")
    return S3Error("InvalidArgument", "Invalid Encoding Method specified in Request");
  bool url = encoding == "url";
  auto enc = [url](const std::string& s) { return url ? sigv4::UriEncode(s, false) : s; };
  std::string prefix = Q(req, "prefix"), delimiter = Q(req, "delimiter");
  std::string key_marker = Q(req, "key-marker"), version_marker = Q(req, "version-id-marker");
  PHOTON_ASSIGN_OR_RETURN(int max_keys, MaxKeys(req));
  PHOTON_ASSIGN_OR_RETURN(
      auto rows, meta_->ListVersions(r.bucket, prefix, key_marker, version_marker, max_keys + 1));

  XmlWriter w;
  w.Open("ListVersionsResult", kXmlns);
  w.Element("Name", r.bucket);
  w.Element("Prefix", enc(prefix));
  w.Element("KeyMarker", enc(key_marker));
  w.Element("VersionIdMarker", version_marker);
  w.Element("MaxKeys", std::to_string(max_keys));
  if (!delimiter.empty()) w.Element("Delimiter", enc(delimiter));
  if (url) w.Element("EncodingType", "url");
  int count = 0;
  bool truncated = false;
  std::string next_key, next_version, last_cp;
  std::string body;
  XmlWriter items;
  std::vector<std::string> prefixes;
  for (const auto& o : rows) {
    if (count == max_keys) {
      truncated = true;
      break;
    }
    if (!delimiter.empty()) {
      size_t pos = o.key.find(delimiter, prefix.size());
      if (pos != std::string::npos) {
        std::string cp = o.key.substr(0, pos + delimiter.size());
        if (cp != last_cp) {
          prefixes.push_back(cp);
          last_cp = cp;
          ++count;
        }
        next_key = o.key;
        next_version = o.version_id;
        continue;
      }
    }
    const char* tag = o.delete_marker ? "DeleteMarker" : "Version";
    items.Open(tag);
    items.Element("Key", enc(o.key));
    items.Element("VersionId", o.version_id);
    items.Element("IsLatest", o.is_latest ? "true" : "false");
    items.Element("LastModified", sigv4::FormatIso8601(o.mtime_ms));
    if (!o.delete_marker) {
      items.Element("ETag", QuoteEtag(o.etag));
      items.Element("Size", std::to_string(o.size));
      items.Element("StorageClass", "STANDARD");
    }
    const std::string owner = ObjectAcl(o.headers, bucket_meta.owner, bucket_meta.ownership).owner;
    items.Open("Owner");
    items.Element("ID", owner);
    items.Element("DisplayName", owner);
    items.Close("Owner");
    items.Close(tag);
    next_key = o.key;
    next_version = o.version_id;
    ++count;
  }
  w.Element("IsTruncated", truncated ? "true" : "false");
  if (truncated) {
    w.Element("NextKeyMarker", enc(next_key));
    w.Element("NextVersionIdMarker", next_version);
  }
  std::string out = w.Take();
  std::string item_xml = items.Take();
  // Drop the declaration the item writer started with.
  out += item_xml.substr(item_xml.find('\n') + 1);
  for (const auto& cp : prefixes) {
    out += "<CommonPrefixes><Prefix>" + XmlEscape(enc(cp)) + "</Prefix></CommonPrefixes>";
  }
  out += "</ListVersionsResult>";
  http::Response resp;
  resp.body = std::move(out);
  resp.AddHeader("Content-Type", "application/xml");
  return resp;
}

}  // namespace photon::lightningstor
