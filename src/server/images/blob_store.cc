// See blob_store.h.
#include "server/images/blob_store.h"

#include <ctime>

#include "common/hex.h"
#include "common/http_client.h"
#include "common/sigv4.h"
#include "common/xml.h"

namespace photon::server::images {

namespace {

std::string AmzDate() {
  char buf[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// An S3 error answer as a Status naming the call, S3's code and message.
Status S3Failure(const std::string& what, int status, const std::string& body) {
  std::string code, message;
  if (auto xml = ParseXml(body); xml.ok()) {
    code = (*xml)->DescendantText("Code");
    message = (*xml)->DescendantText("Message");
  }
  if (message.empty()) message = body.substr(0, 200);
  return absl::UnavailableError("image store: " + what + ": HTTP " + std::to_string(status) + " " +
                                code + " " + message);
}

}  // namespace

StatusOr<BlobStore::Answer> BlobStore::Call(
    const std::string& method, const std::string& key,
    const std::vector<std::pair<std::string, std::string>>& query, const std::string& body,
    const std::string& range) {
  PHOTON_ASSIGN_OR_RETURN(HttpClient client, HttpClient::Create(o_.endpoint, ""));
  client.set_timeout(o_.timeout);
  client.set_user_agent("photon-server images");
  std::string host = o_.endpoint.substr(o_.endpoint.find("://") + 3);
  while (!host.empty() && host.back() == '/') host.pop_back();
  const std::string path = "/" + o_.bucket + (key.empty() ? "" : "/" + key);
  const std::string amz_date = AmzDate();
  const std::string payload(sigv4::kUnsignedPayload);
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"host", host}, {"x-amz-content-sha256", payload}, {"x-amz-date", amz_date}};
  const std::vector<std::string> names = {"host", "x-amz-content-sha256", "x-amz-date"};
  const std::string signed_names = "host;x-amz-content-sha256;x-amz-date";
  sigv4::Credential cred{.access_key = o_.access_key_id,
                         .date = amz_date.substr(0, 8),
                         .region = o_.region,
                         .service = "s3"};
  const std::string canonical =
      sigv4::CanonicalRequest(method, sigv4::UriEncode(path, false), sigv4::CanonicalQuery(query),
                              sigv4::CanonicalHeaders(headers, names), signed_names, payload);
  const std::string signature =
      sigv4::Sign(sigv4::SigningKey(o_.secret_access_key, cred.date, o_.region, "s3"),
                  sigv4::StringToSign(amz_date, cred.Scope(), canonical));
  std::map<std::string, std::string> out = {
      {"Host", host},
      {"x-amz-content-sha256", payload},
      {"x-amz-date", amz_date},
      {"Authorization", std::string(sigv4::kAlgorithm) + " Credential=" + o_.access_key_id + "/" +
                            cred.Scope() + ", SignedHeaders=" + signed_names +
                            ", Signature=" + signature}};
  if (!range.empty()) out["Range"] = range;
  std::string target = PercentEncode(path, false);
  for (size_t i = 0; i < query.size(); ++i) {
    target += (i == 0 ? "?" : "&") + PercentEncode(query[i].first);
    if (!query[i].second.empty()) target += "=" + PercentEncode(query[i].second);
  }
  auto r = client.Do(method, target, body, "application/octet-stream", out);
  if (!r.ok()) {
    return absl::UnavailableError("image store " + o_.endpoint + ": " +
                                  std::string(r.status().message()));
  }
  Answer a;
  a.status = r->status;
  a.body = std::move(r->body);
  if (auto e = r->headers.find("etag"); e != r->headers.end()) a.etag = e->second;
  return a;
}

Status BlobStore::EnsureBucket() {
  PHOTON_ASSIGN_OR_RETURN(Answer a, Call("PUT", "", {}, ""));
  if (a.status < 300 || a.body.find("BucketAlreadyOwnedByYou") != std::string::npos) {
    return absl::OkStatus();
  }
  return S3Failure("create bucket " + o_.bucket, a.status, a.body);
}

StatusOr<std::string> BlobStore::BeginUpload(const std::string& key) {
  PHOTON_ASSIGN_OR_RETURN(Answer a, Call("POST", key, {{"uploads", ""}}, ""));
  if (a.status >= 300) return S3Failure("create multipart upload", a.status, a.body);
  auto xml = ParseXml(a.body);
  std::string id = xml.ok() ? (*xml)->DescendantText("UploadId") : "";
  if (id.empty()) return absl::UnavailableError("image store: no UploadId in its answer");
  return id;
}

StatusOr<std::string> BlobStore::UploadPart(const std::string& key, const std::string& upload_id,
                                            int number, const std::string& data) {
  PHOTON_ASSIGN_OR_RETURN(
      Answer a,
      Call("PUT", key, {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}, data));
  if (a.status >= 300) return S3Failure("upload part", a.status, a.body);
  if (a.etag.empty()) return absl::UnavailableError("image store: a part without an ETag");
  return a.etag;
}

Status BlobStore::CompleteUpload(const std::string& key, const std::string& upload_id,
                                 const std::vector<std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + etags[i] +
           "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  PHOTON_ASSIGN_OR_RETURN(Answer a, Call("POST", key, {{"uploadId", upload_id}}, xml));
  // S3 may answer 200 and still report an error in the body.
  if (a.status >= 300 || a.body.find("<Error>") != std::string::npos) {
    return S3Failure("complete multipart upload", a.status, a.body);
  }
  return absl::OkStatus();
}

void BlobStore::AbortUpload(const std::string& key, const std::string& upload_id) {
  (void)Call("DELETE", key, {{"uploadId", upload_id}}, "");
}

StatusOr<std::string> BlobStore::Read(const std::string& key, int64_t offset, int64_t length) {
  PHOTON_ASSIGN_OR_RETURN(Answer a, Call("GET", key, {}, "",
                                         "bytes=" + std::to_string(offset) + "-" +
                                             std::to_string(offset + length - 1)));
  if (a.status >= 300) return S3Failure("read " + key, a.status, a.body);
  if (static_cast<int64_t>(a.body.size()) != length) {
    return absl::UnavailableError("image store: read " + key + " returned " +
                                  std::to_string(a.body.size()) + " bytes, not " +
                                  std::to_string(length));
  }
  return std::move(a.body);
}

Status BlobStore::Delete(const std::string& key) {
  PHOTON_ASSIGN_OR_RETURN(Answer a, Call("DELETE", key, {}, ""));
  if (a.status >= 300 && a.status != 404) return S3Failure("delete " + key, a.status, a.body);
  return absl::OkStatus();
}

}  // namespace photon::server::images
