// See daemon_client.h.
#include "server/providers/daemon_client.h"

#include "common/file_util.h"
#include "common/http_client.h"

namespace photon::server {

DaemonReply DaemonClient::Call(const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  DaemonReply out;
  if (token_.empty()) {
    auto t = ReadFile(token_file_);
    if (!t.ok()) {
      out.message =
          "cannot read token_file " + token_file_ + ": " + std::string(t.status().message());
      return out;
    }
    token_ = AsciiTrim(*t);
  }
  auto client = HttpClient::Create(endpoint_, token_);
  if (!client.ok()) {
    out.message = std::string(client.status().message());
    return out;
  }
  client->set_timeout(timeout_);
  client->set_user_agent("photon-server");
  auto r = client->Do(method, path, body.is_null() ? "" : body.dump());
  if (!r.ok()) {
    out.message =
        daemon_ + " at " + endpoint_ + " unreachable: " + std::string(r.status().message());
    return out;
  }
  out.reached = true;
  out.status = r->status;
  out.body = nlohmann::json::parse(r->body, nullptr, false);
  if (out.status == 401) token_.clear();
  if (out.status >= 300) {
    out.message =
        out.body.is_object() && out.body.contains("error") && out.body["error"].is_object()
            ? out.body["error"].value("message", r->body)
            : r->body;
  }
  return out;
}

Status DaemonClient::AsStatus(const DaemonReply& r, const std::string& what) const {
  if (!r.reached) return absl::UnavailableError(r.message);
  if (r.status >= 200 && r.status < 300) return absl::OkStatus();
  std::string msg = daemon_ + " " + what + ": HTTP " + std::to_string(r.status) + ": " + r.message;
  if (r.status >= 500 || r.status == 401) return absl::UnavailableError(msg);
  if (r.status == 404) return absl::NotFoundError(msg);
  if (r.status == 409) return absl::AlreadyExistsError(msg);
  return absl::InvalidArgumentError(msg);
}

Observed ObservedFromError(const Status& st, resource::ResourceStatus::Phase waiting, Observed o) {
  o.message = std::string(st.message());
  if (st.code() == StatusCode::kUnavailable) {
    o.phase = waiting;
    o.message += "; retrying";
    o.retry = true;
  } else {
    o.phase = resource::ResourceStatus::ERROR;
  }
  return o;
}

Status ValidateDaemonConfig(const std::string& where, const std::string& endpoint,
                            const std::string& token_file, int timeout_ms) {
  if (endpoint.rfind("http://", 0) != 0)
    return absl::InvalidArgumentError(where + "endpoint: want http://HOST:PORT, got '" + endpoint +
                                      "'");
  if (auto c = HttpClient::Create(endpoint, ""); !c.ok())
    return absl::InvalidArgumentError(where + "endpoint: " + std::string(c.status().message()));
  if (token_file.empty()) return absl::InvalidArgumentError(where + "token_file: required");
  if (timeout_ms <= 0) return absl::InvalidArgumentError(where + "timeout_ms: must be > 0");
  return absl::OkStatus();
}

std::string AsciiLower(std::string s) {
  for (auto& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string AsciiTrim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace photon::server
