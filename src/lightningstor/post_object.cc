// S3Service::PostObject (see service.h): a browser's POST upload. The form's fields become the
// headers of a PutObject, whose code path then does everything else (ACL, tagging, SSE, lock,
// checksums, access check); fields lightningstor does not honour are refused, never dropped.
#include <set>

#include "lightningstor/object_attrs.h"
#include "lightningstor/post_policy.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/service.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

// S3 allows 20 KB of fields before the file.
constexpr size_t kMaxFieldBytes = 20 * 1024;

// Fields the POST handling itself consumes.
bool ControlField(const std::string& name) {
  static const auto* names = new std::set<std::string>{"key",
                                                       "policy",
                                                       "x-amz-signature",
                                                       "x-amz-algorithm",
                                                       "x-amz-credential",
                                                       "x-amz-date",
                                                       "success_action_status",
                                                       "success_action_redirect",
                                                       "redirect",
                                                       "bucket"};
  return names->count(name) > 0 || name.rfind("x-ignore-", 0) == 0;
}

// The request header a form field stands for ("" when it has none here).
std::string HeaderOfField(const std::string& name) {
  static const auto* same = new std::set<std::string>{
      "content-type",         "cache-control",         "content-disposition",
      "content-encoding",     "content-language",      "expires",
      "content-md5",          "x-amz-storage-class",   "x-amz-website-redirect-location",
      "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha1",
      "x-amz-checksum-sha256"};
  if (same->count(name)) return name;
  for (const char* prefix :
       {"x-amz-meta-", "x-amz-server-side-encryption", "x-amz-object-lock-", "x-amz-grant-"}) {
    if (name.rfind(prefix, 0) == 0) return name;
  }
  if (name == "acl") return "x-amz-acl";
  if (name == "tagging") return "x-amz-tagging";
  return "";
}

// The form's tagging field is a Tagging XML document; PutObject takes the header's query form.
StatusOr<std::string> TaggingQuery(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "Tagging") return S3Error("MalformedXML", "tagging must be a Tagging document");
  PHOTON_ASSIGN_OR_RETURN(TagSet tags, ParseTagSet(doc->Child("TagSet")));
  return EncodeTagQuery(tags);
}

// The PutObject request a form stands for: its headers from the fields, its body the file.
StatusOr<std::vector<std::pair<std::string, std::string>>> FormHeaders(
    const http::Request& req, const std::map<std::string, std::string>& fields) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("host", req.Header("host"));
  for (const auto& [name, value] : fields) {
    if (ControlField(name)) continue;
    std::string header = HeaderOfField(name);
    if (header.empty()) {
      return S3Error("NotImplemented", "lightningstor does not implement the form field " + name);
    }
    if (header == "x-amz-tagging") {
      PHOTON_ASSIGN_OR_RETURN(std::string query, TaggingQuery(value));
      headers.emplace_back(header, query);
      continue;
    }
    headers.emplace_back(header, value);
  }
  return headers;
}

// "${filename}" in the key stands for the uploaded file's name.
std::string ExpandKey(std::string key, const std::string& filename) {
  size_t at = key.find("${filename}");
  if (at != std::string::npos) key.replace(at, 11, filename);
  return key;
}

std::string QueryEncode(const std::string& s) { return sigv4::UriEncode(s, true); }

}  // namespace

StatusOr<http::Response> S3Service::PostObject(S3Request& r) {
  http::Request& req = r.http;
  PHOTON_ASSIGN_OR_RETURN(std::string boundary, FormBoundary(req.Header("content-type")));
  if (!req.body) return S3Error("MalformedPOSTRequest", "The POST request has no body.");
  FormDataReader form(req.body, boundary);
  PHOTON_RETURN_IF_ERROR(form.ReadFields(kMaxFieldBytes));
  const auto& fields = form.fields();
  PHOTON_ASSIGN_OR_RETURN(r.auth, auth_.FromPostForm(fields));
  PHOTON_ASSIGN_OR_RETURN(PostPolicy policy, ParsePostPolicy(fields.at("policy")));
  PHOTON_RETURN_IF_ERROR(CheckPostPolicy(policy, fields, r.bucket, clock_->NowMillis() / 1000));
  auto key_field = fields.find("key");
  if (key_field == fields.end() || key_field->second.empty()) {
    return S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.");
  }
  LengthRangeReader body(&form, policy.min_length, policy.max_length);
  http::Request put;
  put.method = "POST";
  put.target = req.target;
  put.tls = req.tls;
  put.remote = req.remote;
  put.chunked = true;  // the file's length is known only at its closing boundary
  put.body = &body;
  PHOTON_ASSIGN_OR_RETURN(put.headers, FormHeaders(req, fields));
  std::string key = ExpandKey(key_field->second, form.filename());
  S3Request sub{put, r.bucket, key, "PutObject", r.auth, r.request_id};
  auto stored = AuthorizedPut(sub);
  r.key = key;
  r.caller = sub.caller;
  r.bucket_owner = sub.bucket_owner;
  r.ownership = sub.ownership;
  r.logging = sub.logging;
  r.bytes_in = sub.bytes_in;
  if (!stored.ok()) return stored.status();

  http::Response resp = std::move(*stored);
  std::string etag;
  for (const auto& [name, value] : resp.headers)
    if (name == "ETag") etag = value;
  std::string location = std::string(req.tls ? "https" : "http") + "://" + req.Header("host") +
                         "/" + sigv4::UriEncode(r.bucket, true) + "/" +
                         sigv4::UriEncode(key, false);
  resp.AddHeader("Location", location);
  std::string redirect = fields.count("success_action_redirect")
                             ? fields.at("success_action_redirect")
                             : (fields.count("redirect") ? fields.at("redirect") : "");
  if (!redirect.empty()) {
    resp.status = 303;
    resp.headers.pop_back();
    resp.AddHeader("Location", redirect + (redirect.find('?') == std::string::npos ? "?" : "&") +
                                   "bucket=" + QueryEncode(r.bucket) + "&key=" + QueryEncode(key) +
                                   "&etag=" + QueryEncode(etag));
    return resp;
  }
  std::string status =
      fields.count("success_action_status") ? fields.at("success_action_status") : "";
  // As S3: 200 and 201 when asked, 204 otherwise; 201 says where the object went.
  resp.status = status == "200" ? 200 : status == "201" ? 201 : 204;
  if (resp.status == 201) {
    XmlWriter w;
    w.Open("PostResponse");
    w.Element("Location", location);
    w.Element("Bucket", r.bucket);
    w.Element("Key", key);
    w.Element("ETag", etag);
    w.Close("PostResponse");
    resp.body = w.Take();
    resp.AddHeader("Content-Type", "application/xml");
  }
  return resp;
}

}  // namespace photon::lightningstor
