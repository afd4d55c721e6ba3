#include "agent/node_cert.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include "common/file_util.h"
#include "common/http_client.h"
#include "common/tls.h"

namespace photon::agent {

namespace {

int64_t NowUnix() { return static_cast<int64_t>(time(nullptr)); }

// HOST and PORT of the first server of "https://HOST:PORT[,...]" ("[v6]:PORT" too).
Status FirstServer(const std::string& server, std::string* host, std::string* port) {
  std::string url = server.substr(0, server.find(','));
  if (url.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError("ca-hash: only used with an https:// server");
  }
  url = url.substr(8);
  url = url.substr(0, url.find('/'));
  const size_t colon = url.rfind(':');
  if (colon == std::string::npos || colon + 1 == url.size()) {
    return absl::InvalidArgumentError("server '" + server + "': want https://HOST:PORT");
  }
  *host = url.substr(0, colon);
  *port = url.substr(colon + 1);
  if (host->size() > 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::string> ResolvePinnedCa(const std::string& server, const std::string& ca_file,
                                      const std::string& ca_hash, const std::string& data_dir) {
  if (ca_hash.empty()) return ca_file;
  if (!ca_file.empty()) {
    PHOTON_ASSIGN_OR_RETURN(std::string pem, ReadFile(ca_file));
    PHOTON_ASSIGN_OR_RETURN(std::string hash, PublicKeyHash(pem));
    if (hash != ca_hash) {
      return absl::PermissionDeniedError("CA file " + ca_file + " has hash " + hash +
                                         ", not the pinned " + ca_hash + ": refusing to join");
    }
    return ca_file;
  }
  std::string host, port;
  PHOTON_RETURN_IF_ERROR(FirstServer(server, &host, &port));
  auto pem = FetchPinnedCa(host, port, ca_hash);
  if (!pem.ok()) {
    return Status(
        pem.status().code(),
        std::string(pem.status().message()) +
            (pem.status().code() == absl::StatusCode::kPermissionDenied ? " (refusing to join)"
                                                                        : ""));
  }
  const std::string path = data_dir + "/ca.crt";
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path, *pem, 0644));
  spdlog::info("trusting the control plane's CA {} (pinned), saved in {}", ca_hash, path);
  return path;
}

bool ServerIssuesCertificates(ApiClient* api) {
  auto client = HttpClient::Create(api->base_url(), "", api->ca_file());
  if (!client.ok()) return false;
  auto r = client->Do("GET", "/v1/ca");
  return r.ok() && r->status == 200;
}

NodeCertificates::NodeCertificates(ApiClient* api, std::string data_dir, std::string node)
    : api_(api),
      key_path_(data_dir + "/node.key"),
      cert_path_(data_dir + "/node.crt"),
      node_(std::move(node)) {}

void NodeCertificates::ScheduleRenewal(int64_t issued_unix, int64_t not_after_unix) {
  const int64_t at = issued_unix + (not_after_unix - issued_unix) * 2 / 3;
  renew_at_ = std::chrono::system_clock::from_time_t(static_cast<time_t>(at));
}

bool NodeCertificates::LoadStored() {
  auto cert = ReadFile(cert_path_);
  auto key = ReadFile(key_path_);
  if (!cert.ok() || !key.ok() || !KeyMatchesCertificate(*cert, *key)) return false;
  auto info = InspectCertificate(*cert);
  if (!info.ok() || info->common_name != "node:" + node_ || info->not_after_unix <= NowUnix()) {
    return false;
  }
  // Issued when it was written: renewal stays at two thirds of its life across restarts.
  struct stat st {};
  const int64_t issued = stat(cert_path_.c_str(), &st) == 0 ? st.st_mtime : NowUnix();
  ScheduleRenewal(issued, info->not_after_unix);
  api_->SetClientCertificate(*cert, *key);
  return true;
}

Status NodeCertificates::Install(const nlohmann::json& answer, const std::string& key_pem) {
  const std::string cert = answer.value("certificate", "");
  if (cert.empty()) return absl::DataLossError("the server answered without a certificate");
  if (!KeyMatchesCertificate(cert, key_pem)) {
    return absl::DataLossError("the certificate the server signed is not for this node's key");
  }
  PHOTON_ASSIGN_OR_RETURN(CertificateInfo info, InspectCertificate(cert));
  // Key first: a crash in between leaves a pair that does not match, which joins again.
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(key_path_, key_pem, 0600));
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(cert_path_, cert, 0644));
  ScheduleRenewal(NowUnix(), info.not_after_unix);
  api_->SetClientCertificate(cert, key_pem);
  spdlog::info("certificate of node:{} (serial {}) valid until unix {}; renewing at unix {}", node_,
               info.serial_hex.substr(0, 16), info.not_after_unix,
               std::chrono::system_clock::to_time_t(renew_at_));
  return absl::OkStatus();
}

Status NodeCertificates::Join(const std::string& join_token) {
  PHOTON_ASSIGN_OR_RETURN(KeyAndCsr kc, NewKeyAndCsr("node:" + node_));
  PHOTON_ASSIGN_OR_RETURN(
      nlohmann::json r,
      api_->CallWithToken(join_token, "POST", "/v1/join", {{"node", node_}, {"csr", kc.csr_pem}}));
  PHOTON_RETURN_IF_ERROR(Install(r, kc.key_pem));
  spdlog::info("joined as {} with a client certificate", r.value("principal", ""));
  return absl::OkStatus();
}

Status NodeCertificates::RenewIfDue() {
  if (std::chrono::system_clock::now() < renew_at_) return absl::OkStatus();
  // A new key each time: a key that leaked stops being useful at the next renewal.
  PHOTON_ASSIGN_OR_RETURN(KeyAndCsr kc, NewKeyAndCsr("node:" + node_));
  PHOTON_ASSIGN_OR_RETURN(nlohmann::json r,
                          api_->Call("POST", "/v1/nodecertificates", {{"csr", kc.csr_pem}}));
  return Install(r, kc.key_pem);
}

}  // namespace photon::agent
