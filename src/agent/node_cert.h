// The agent's identity on an https control plane with the built-in CA (docs/security.md
// "Agent certificates"): a key made on the node (DATA_DIR/node.key, 0600, never sent) and a
// client certificate the server signs for "node:NAME" (DATA_DIR/node.crt). The certificate
// is renewed over mTLS at two thirds of its life and swapped in for new connections.
// Thread-safety: Join/LoadStored before the agent's threads start; RenewIfDue from one thread.
#pragma once

#include <chrono>
#include <string>

#include "agent/api_client.h"
#include "common/status.h"

namespace photon::agent {

// The CA to trust for `server` (https://HOST:PORT[,...]) given --ca-file and --ca-hash:
// with a hash, the file must match it, or without a file the CA is fetched from the first
// server and pinned (written to DATA_DIR/ca.crt). PERMISSION_DENIED on a mismatch.
StatusOr<std::string> ResolvePinnedCa(const std::string& server, const std::string& ca_file,
                                      const std::string& ca_hash, const std::string& data_dir);

// True if the https server signs agent certificates (it serves GET /v1/ca).
bool ServerIssuesCertificates(ApiClient* api);

class NodeCertificates {
 public:
  NodeCertificates(ApiClient* api, std::string data_dir, std::string node);

  // Installs the stored key and certificate if they belong together, name this node and are
  // not expired; false otherwise.
  bool LoadStored();
  // Joins with the join token: a new key and a certificate request, answered by the
  // certificate, which is stored and installed.
  Status Join(const std::string& join_token);
  // Renews once the certificate is two thirds through its life (at once when already past).
  Status RenewIfDue();
  std::chrono::system_clock::time_point renew_at() const { return renew_at_; }

 private:
  // Stores and installs the certificate in `answer` (of a join or a renewal) with `key_pem`.
  Status Install(const nlohmann::json& answer, const std::string& key_pem);
  void ScheduleRenewal(int64_t issued_unix, int64_t not_after_unix);

  ApiClient* api_;
  std::string key_path_;
  std::string cert_path_;
  std::string node_;
  std::chrono::system_clock::time_point renew_at_{};
};

}  // namespace photon::agent
