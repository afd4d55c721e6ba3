// See s3_client.h.
#include "server/providers/lightningstor/s3_client.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <ctime>

#include "common/file_util.h"
#include "common/hex.h"
#include "common/http_client.h"
#include "common/sigv4.h"
#include "common/util.h"

namespace photon::server::s3 {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

StatusOr<Credentials> ReadCredentialsFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return absl::FailedPreconditionError("credentials_file " + path + ": cannot stat it");
  if (st.st_mode & 077) {
    return absl::FailedPreconditionError("credentials_file " + path +
                                         ": readable by group or others; chmod 600 it");
  }
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::FailedPreconditionError("credentials_file " + path + ": " +
                                         std::string(text.status().message()));
  }
  Credentials c;
  try {
    YAML::Node doc = YAML::Load(*text);
    if (doc.IsMap()) {
      for (const auto& kv : doc) {
        const std::string key = kv.first.as<std::string>();
        if (key == "access_key_id") {
          c.access_key_id = Trim(kv.second.as<std::string>());
        } else if (key == "secret_access_key") {
          c.secret_access_key = Trim(kv.second.as<std::string>());
        } else {
          return absl::FailedPreconditionError("credentials_file " + path + ": unknown key '" +
                                               key + "'");
        }
      }
    }
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError("credentials_file " + path + ": " + e.what());
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return absl::FailedPreconditionError(
        "credentials_file " + path +
        ": want 'access_key_id: ...' and 'secret_access_key: ...' (what `lightningstor keys "
        "create NAME` prints)");
  }
  return c;
}

std::map<std::string, std::string> SignV4(
    const Credentials& creds, const std::string& region, const std::string& method,
    const std::string& host, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& query, const std::string& body,
    const std::string& amz_date) {
  return sigv4::SignRequestHeaders(
      {.access_key = creds.access_key_id, .region = region, .service = "s3"},
      creds.secret_access_key,
      {.method = method,
       .host = host,
       .path = path,
       .query = query,
       .body = body,
       .amz_date = amz_date});
}

Reply Client::Call(const Credentials& creds, const std::string& method, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& query,
                   const std::string& body) {
  Reply out;
  auto client = HttpClient::Create(endpoint_, "");
  if (!client.ok()) {
    out.message = std::string(client.status().message());
    return out;
  }
  client->set_timeout(timeout_);
  client->set_user_agent("photon-server");
  char amz_date[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  // The Host header is the endpoint's host:port, as any S3 client sends it.
  std::string host = endpoint_.substr(endpoint_.find("://") + 3);
  while (!host.empty() && host.back() == '/') host.pop_back();
  auto headers = SignV4(creds, region_, method, host, path, query, body, amz_date);
  std::string target = PercentEncode(path, false);
  for (size_t i = 0; i < query.size(); ++i) {
    target += (i == 0 ? "?" : "&") + PercentEncode(query[i].first);
    if (!query[i].second.empty()) target += "=" + PercentEncode(query[i].second);
  }
  auto r = client->Do(method, target, body, "application/xml", headers);
  if (!r.ok()) {
    out.message = std::string(r.status().message());
    return out;
  }
  return ReadAnswer(r->status, std::move(r->body));
}

Reply ReadAnswer(int status, std::string body) {
  Reply out;
  out.reached = true;
  out.status = status;
  out.body = std::move(body);
  if (!out.body.empty()) {
    auto xml = ParseXml(out.body);
    if (xml.ok()) {
      out.xml = std::move(*xml);
    } else if (status < 300) {
      out.xml_error = std::string(xml.status().message());
    }
  }
  if (out.status >= 300) {
    out.code = out.xml->DescendantText("Code");
    out.message = out.xml->DescendantText("Message");
    if (out.message.empty()) out.message = out.body.substr(0, 200);
  }
  return out;
}

}  // namespace photon::server::s3
