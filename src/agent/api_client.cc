#include "agent/api_client.h"

namespace photon::agent {

void ApiClient::SetToken(const std::string& token) {
  std::lock_guard<std::mutex> l(mu_);
  token_ = token;
}

std::string ApiClient::Token() {
  std::lock_guard<std::mutex> l(mu_);
  return token_;
}

void ApiClient::SetClientCertificate(const std::string& cert_pem, const std::string& key_pem) {
  std::lock_guard<std::mutex> l(mu_);
  cert_pem_ = cert_pem;
  key_pem_ = key_pem;
  token_.clear();
}

void ApiClient::SetCaFile(const std::string& ca_file) {
  std::lock_guard<std::mutex> l(mu_);
  ca_file_ = ca_file;
}

std::string ApiClient::ca_file() {
  std::lock_guard<std::mutex> l(mu_);
  return ca_file_;
}

StatusOr<HttpClient> ApiClient::NewClient(const std::string& token) {
  std::string ca, cert, key;
  {
    std::lock_guard<std::mutex> l(mu_);
    ca = ca_file_;
    cert = cert_pem_;
    key = key_pem_;
  }
  PHOTON_ASSIGN_OR_RETURN(auto client, HttpClient::Create(base_url_, token, ca));
  if (token.empty() && !cert.empty()) {
    PHOTON_RETURN_IF_ERROR(client.SetClientCertificate(cert, key));
  }
  return client;
}

Status StatusFromHttp(int http_status, const std::string& body) {
  std::string msg = body;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (j.contains("error") && j["error"].is_object()) {
      msg = j["error"].value("message", body);
    } else if (j.contains("message") && j["message"].is_string()) {
      msg = j["message"].get<std::string>();
    }
  }
  msg = "HTTP " + std::to_string(http_status) + ": " + msg;
  switch (http_status) {
    case 400:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 409:
      return absl::AbortedError(msg);
    case 410:
      return absl::OutOfRangeError(msg);
    case 412:
      return absl::FailedPreconditionError(msg);
    case 429:
      return absl::ResourceExhaustedError(msg);
    case 503:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

StatusOr<nlohmann::json> ApiClient::CallWithToken(const std::string& token,
                                                  const std::string& method,
                                                  const std::string& path,
                                                  const nlohmann::json& body) {
  PHOTON_ASSIGN_OR_RETURN(auto client, NewClient(token));
  std::string payload = body.is_null() ? "" : body.dump();
  PHOTON_ASSIGN_OR_RETURN(HttpResult r, client.Do(method, path, payload));
  if (r.status < 200 || r.status >= 300) return StatusFromHttp(r.status, r.body);
  if (r.body.empty()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError("bad JSON from " + path);
  return j;
}

StatusOr<std::string> ApiClient::GetBytes(const std::string& path) {
  PHOTON_ASSIGN_OR_RETURN(auto client, NewClient(Token()));
  PHOTON_ASSIGN_OR_RETURN(HttpResult r, client.Do("GET", path));
  if (r.status < 200 || r.status >= 300) return StatusFromHttp(r.status, r.body);
  return std::move(r.body);
}

StatusOr<nlohmann::json> ApiClient::Call(const std::string& method, const std::string& path,
                                         const nlohmann::json& body) {
  return CallWithToken(Token(), method, path, body);
}

Status ApiClient::Watch(const std::string& path,
                        const std::function<bool(const nlohmann::json&)>& on_event) {
  PHOTON_ASSIGN_OR_RETURN(auto client, NewClient(Token()));
  PHOTON_ASSIGN_OR_RETURN(HttpResult r, client.Stream(path, [&](const std::string& line) {
    if (line.empty()) return true;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return true;
    return on_event(j);
  }));
  if (r.status != 200) return StatusFromHttp(r.status, r.body);
  return absl::OkStatus();
}

}  // namespace photon::agent
