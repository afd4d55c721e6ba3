// The REST routes of identity (docs/api.md "Identity"): password login, refresh and logout
// (no bearer token needed), who-am-I and can-i, and the directory's objects — users, groups,
// roles and role bindings (cluster-wide), service accounts and their tokens (per namespace).
// Every call is authorized by Principal::Allowed, the one authorizer of the API.
// Failed logins are answered 401 and audited like refused credentials; five within five
// minutes lock the user's logins for a minute (429).
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "common/http_server.h"
#include "server/auth.h"
#include "server/identity/directory.h"
#include "server/identity/quota.h"
#include "server/resource_manager.h"

namespace photon::server::identity {

struct LoginOptions {
  std::chrono::seconds access_ttl{900};                  // the most a login's access token lives
  std::chrono::seconds refresh_ttl{7 * 86400};           // a refresh token's life
  std::chrono::seconds service_account_ttl{30 * 86400};  // default of a service account token
  int max_failures = 5;                                  // failed logins before a lock
  std::chrono::seconds failure_window{300};
  std::chrono::seconds lockout{60};
};

class IdentityApi {
 public:
  IdentityApi(Directory* directory, Quotas* quotas, Authenticator* auth, ResourceManager* resources,
              LoginOptions options = {})
      : directory_(directory),
        quotas_(quotas),
        auth_(auth),
        resources_(resources),
        options_(options) {}

  // Routes taken before authentication (login, refresh, logout); nullopt for other paths.
  std::optional<HttpResponse> HandlePublic(HttpRequest& req);
  // Authenticated routes; nullopt for paths that are not identity's.
  std::optional<HttpResponse> Handle(HttpRequest& req, const Principal& who,
                                     const std::vector<std::string>& parts);

 private:
  std::optional<HttpResponse> Route(HttpRequest& req, const Principal& who,
                                    const std::vector<std::string>& parts);
  HttpResponse Login(HttpRequest& req);
  HttpResponse Refresh(HttpRequest& req);
  HttpResponse Logout(HttpRequest& req);
  // Access and refresh token for `principal` (a user), as the login answer.
  HttpResponse Session(const std::string& principal, std::chrono::seconds access_ttl);
  HttpResponse CanI(HttpRequest& req, const Principal& who);
  HttpResponse WhoAmI(const Principal& who);
  HttpResponse Objects(HttpRequest& req, const Principal& who, const IdentityKind& kind,
                       const std::string& ns, const std::string& name);
  HttpResponse ListObjects(const Principal& who, const IdentityKind& kind, const std::string& ns);
  // /v1/quotas and /v1/namespaces/NS/quotas[/NAME].
  HttpResponse QuotaObjects(HttpRequest& req, const Principal& who, const std::string& ns,
                            const std::string& name);
  HttpResponse ServiceAccountToken(HttpRequest& req, const Principal& who, const std::string& ns,
                                   const std::string& name);
  // 429 while `user` is locked out; records a failure when `failed`.
  Status CheckLockout(const std::string& user);
  void RecordLogin(const std::string& user, bool ok);

  Directory* directory_;
  Quotas* quotas_;
  Authenticator* auth_;
  ResourceManager* resources_;
  LoginOptions options_;
  struct Failures {
    int count = 0;
    std::chrono::steady_clock::time_point first, locked_until;
  };
  std::mutex mu_;
  std::map<std::string, Failures> failures_;  // by user name
};

}  // namespace photon::server::identity
