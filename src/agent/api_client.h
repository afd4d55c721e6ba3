// The agent's REST client for the control plane: JSON in and out, HTTP errors mapped onto
// Status codes (404 NOT_FOUND, 409 ABORTED for a compare-and-swap conflict, 410 OUT_OF_RANGE
// for a compacted watch revision, 401 UNAUTHENTICATED, ...), watches as line callbacks.
// Thread-safety: thread-safe; every call opens its own connection.
#pragma once

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/http_client.h"
#include "common/status.h"

namespace photon::agent {

class ApiClient {
 public:
  // ca_file: the PEM CA an https:// server's certificate must chain to ("" = system CAs).
  explicit ApiClient(std::string base_url, std::string ca_file = "")
      : base_url_(std::move(base_url)), ca_file_(std::move(ca_file)) {}

  void SetToken(const std::string& token);
  // https with the built-in CA: every call from now on shows this client certificate and no
  // token (docs/security.md "Agent certificates"). Calls under way keep the one they had.
  void SetClientCertificate(const std::string& cert_pem, const std::string& key_pem);
  void SetCaFile(const std::string& ca_file);
  std::string ca_file();
  const std::string& base_url() const { return base_url_; }

  StatusOr<nlohmann::json> Call(const std::string& method, const std::string& path,
                                const nlohmann::json& body = nullptr);
  StatusOr<nlohmann::json> Get(const std::string& path) { return Call("GET", path); }
  // GET of raw bytes (an image's content).
  StatusOr<std::string> GetBytes(const std::string& path);
  // Calls with an explicit token (the join token).
  StatusOr<nlohmann::json> CallWithToken(const std::string& token, const std::string& method,
                                         const std::string& path, const nlohmann::json& body);

  // Streams a watch; on_event gets each parsed line and returns false to stop. Returns OK when
  // the stream ended (or was stopped), an error for a non-200 answer.
  Status Watch(const std::string& path, const std::function<bool(const nlohmann::json&)>& on_event);

 private:
  std::string Token();
  // A client for one call: with `token`, else with the client certificate if there is one.
  StatusOr<HttpClient> NewClient(const std::string& token);

  std::string base_url_;
  std::string ca_file_;
  std::mutex mu_;
  std::string token_;
  std::string cert_pem_;
  std::string key_pem_;
};

// Status for an HTTP status code and a JSON error body.
Status StatusFromHttp(int http_status, const std::string& body);

}  // namespace photon::agent
