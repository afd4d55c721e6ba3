// What the drivers of standalone daemons (flashdns, fiberlb) share: a JSON call to the daemon's
// REST API with its bearer token, how an answer becomes a Status, and how a failed call becomes
// the object's observed state (retry while the daemon is away, ERROR when it refuses).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "server/providers/service_provider.h"

namespace photon::server {

// An answer from the daemon, or why there was none.
struct DaemonReply {
  bool reached = false;  // false: no answer (message says why)
  int status = 0;
  nlohmann::json body;  // discarded (is_discarded()) when not JSON
  std::string message;  // the daemon's error message for status >= 300, or the transport error
};

class DaemonClient {
 public:
  // `daemon` names it in messages ("flashdns"). The token is read from `token_file` at the
  // first call, not here: the daemon may write it after photon-server starts.
  DaemonClient(std::string daemon, std::string endpoint, std::string token_file,
               std::chrono::milliseconds timeout)
      : daemon_(std::move(daemon)),
        endpoint_(std::move(endpoint)),
        token_file_(std::move(token_file)),
        timeout_(timeout) {}

  // One request; a 401 makes the next call read the token file again (it may be rewritten).
  DaemonReply Call(const std::string& method, const std::string& path,
                   const nlohmann::json& body = nullptr);

  // OK for 2xx. UNAVAILABLE (retry) when the daemon was not reached, failed (5xx) or refused
  // the token (401); NOT_FOUND for 404, ALREADY_EXISTS for 409, INVALID_ARGUMENT for any other
  // refusal. The message reads "<daemon> <what>: HTTP <status>: <the daemon's message>".
  Status AsStatus(const DaemonReply& r, const std::string& what) const;

 private:
  const std::string daemon_;
  const std::string endpoint_;
  const std::string token_file_;
  const std::chrono::milliseconds timeout_;
  std::string token_;
};

// A failed call as the object's state: UNAVAILABLE → `waiting` with "; retrying" and a retry;
// anything else ERROR with the reason. `o`'s details and addresses are kept.
Observed ObservedFromError(const Status& st, resource::ResourceStatus::Phase waiting,
                           Observed o = {});

// The config checks every such driver makes: endpoint http://HOST:PORT, token_file given,
// timeout_ms > 0. `where` prefixes the message ("providers (flashdns): ").
Status ValidateDaemonConfig(const std::string& where, const std::string& endpoint,
                            const std::string& token_file, int timeout_ms);

std::string AsciiLower(std::string s);
std::string AsciiTrim(std::string s);

}  // namespace photon::server
