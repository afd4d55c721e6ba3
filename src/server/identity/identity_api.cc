#include "server/identity/identity_api.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "common/util.h"
#include "server/identity/password.h"
#include "server/object_util.h"
#include "server/rest_gateway.h"

namespace photon::server::identity {

namespace {

std::string Rfc3339In(std::chrono::seconds ttl) {
  time_t t = std::time(nullptr) + ttl.count();
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

StatusOr<json> ParseBody(const std::string& body, const std::vector<std::string>& allowed) {
  auto j = json::parse(body.empty() ? "{}" : body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("want a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return absl::InvalidArgumentError("unknown field '" + k + "'");
    }
  }
  return j;
}

StatusOr<std::string> StringField(const json& j, const std::string& field) {
  if (!j.contains(field) || !j[field].is_string() || j[field].get<std::string>().empty()) {
    return absl::InvalidArgumentError(field + ": required (a string)");
  }
  return j[field].get<std::string>();
}

// ttlSeconds: absent → `fallback`; else 1 ≤ n ≤ `max`.
StatusOr<std::chrono::seconds> Ttl(const json& j, std::chrono::seconds fallback,
                                   std::chrono::seconds max) {
  if (!j.contains("ttlSeconds")) return fallback;
  if (!j["ttlSeconds"].is_number_integer() || j["ttlSeconds"].get<int64_t>() < 1 ||
      j["ttlSeconds"].get<int64_t>() > max.count()) {
    return absl::InvalidArgumentError("ttlSeconds: want 1 to " + std::to_string(max.count()));
  }
  return std::chrono::seconds(j["ttlSeconds"].get<int64_t>());
}

HttpResponse JsonResponse(int code, const json& j) { return HttpResponse::Json(code, j.dump()); }

Status Authorize(const Principal& who, Verb verb, const std::string& kind, const std::string& ns) {
  if (who.Allowed(verb, kind, ns)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "'" + who.name + "' may not " + VerbName(verb) + " " + kind +
      (ns == "*" ? std::string(" (cluster-wide)") : " in namespace '" + ns + "'"));
}

Verb VerbOf(const std::string& method, bool one) {
  if (method == "POST") return Verb::kCreate;
  if (method == "PUT") return Verb::kUpdate;
  if (method == "DELETE") return Verb::kDelete;
  return one ? Verb::kGet : Verb::kList;
}

}  // namespace

std::optional<HttpResponse> IdentityApi::HandlePublic(HttpRequest& req) {
  if (req.method != "POST") return std::nullopt;
  try {
    if (req.path == "/v1/login" || req.path == "/v1/auth/login") return Login(req);
    if (req.path == "/v1/auth/refresh") return Refresh(req);
    if (req.path == "/v1/auth/logout") return Logout(req);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    return ErrorResponse(absl::InvalidArgumentError(std::string("malformed request: ") + e.what()));
  }
  return std::nullopt;
}

Status IdentityApi::CheckLockout(const std::string& user) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(user);
  if (it == failures_.end()) return absl::OkStatus();
  auto now = std::chrono::steady_clock::now();
  if (it->second.locked_until > now) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(it->second.locked_until - now);
    return absl::ResourceExhaustedError("too many failed logins for '" + user + "': retry in " +
                                        std::to_string(left.count() + 1) + " s");
  }
  return absl::OkStatus();
}

void IdentityApi::RecordLogin(const std::string& user, bool ok) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (ok) {
    failures_.erase(user);
    return;
  }
  if (failures_.size() > 4096) {  // names an attacker makes up must not grow this for ever
    std::erase_if(failures_, [&](const auto& kv) {
      return kv.second.locked_until < now && now - kv.second.first > options_.failure_window;
    });
  }
  Failures& f = failures_[user];
  if (f.count == 0 || now - f.first > options_.failure_window) f = Failures{0, now, {}};
  if (++f.count >= options_.max_failures) {
    f.locked_until = now + options_.lockout;
    f.count = 0;
    spdlog::warn("login: '{}' locked for {} s after {} failed logins", user,
                 options_.lockout.count(), options_.max_failures);
  }
}

HttpResponse IdentityApi::Login(HttpRequest& req) {
  auto body = ParseBody(req.body, {"user", "password", "ttlSeconds"});
  if (!body.ok()) return ErrorResponse(body.status());
  auto user = StringField(*body, "user");
  if (!user.ok()) return ErrorResponse(user.status());
  auto password = StringField(*body, "password");
  if (!password.ok()) return ErrorResponse(password.status());
  auto ttl = Ttl(*body, options_.access_ttl, options_.access_ttl);
  if (!ttl.ok()) return ErrorResponse(ttl.status());
  const std::string request = "POST /v1/login user=" + user->substr(0, 64);
  if (Status locked = CheckLockout(*user); !locked.ok()) {
    resources_->AuditUnauthenticated(req.remote_address, request);
    return ErrorResponse(locked);
  }
  auto hash = directory_->PasswordHash(*user);
  bool ok = false;
  if (hash.ok()) {
    ok = VerifyPassword(*hash, *password);
  } else {
    VerifyNothing(*password);
  }
  RecordLogin(*user, ok);
  if (!ok) {
    resources_->AuditUnauthenticated(req.remote_address, request);
    HttpResponse resp = ErrorResponse(absl::UnauthenticatedError("invalid user or password"));
    resp.headers.push_back({"WWW-Authenticate", "Bearer"});
    return resp;
  }
  Principal who;
  who.name = "user:" + *user;
  resources_->AuditCall(who, "login", "users/" + *user, 200);
  return Session(who.name, *ttl);
}

HttpResponse IdentityApi::Session(const std::string& principal, std::chrono::seconds access_ttl) {
  auto access = auth_->MintSession(principal, "access", access_ttl);
  if (!access.ok()) return ErrorResponse(access.status());
  auto refresh = auth_->MintSession(principal, "refresh", options_.refresh_ttl);
  if (!refresh.ok()) return ErrorResponse(refresh.status());
  return JsonResponse(200, {{"accessToken", *access},
                            {"refreshToken", *refresh},
                            {"tokenType", "Bearer"},
                            {"principal", principal},
                            {"expiresAt", Rfc3339In(access_ttl)},
                            {"refreshTokenId", refresh->substr(4, 16)},
                            {"refreshExpiresAt", Rfc3339In(options_.refresh_ttl)}});
}

// A refresh token is used once: the answer carries its successor, and it is revoked.
HttpResponse IdentityApi::Refresh(HttpRequest& req) {
  auto body = ParseBody(req.body, {"refreshToken", "ttlSeconds"});
  if (!body.ok()) return ErrorResponse(body.status());
  auto token = StringField(*body, "refreshToken");
  if (!token.ok()) return ErrorResponse(token.status());
  auto ttl = Ttl(*body, options_.access_ttl, options_.access_ttl);
  if (!ttl.ok()) return ErrorResponse(ttl.status());
  auto who = auth_->VerifyRefresh(*token);
  if (who.ok()) {
    Principal check = *who;  // the user must still exist and be enabled
    if (Status st = directory_->Resolve(&check); !st.ok()) who = st;
  }
  if (!who.ok()) {
    resources_->AuditUnauthenticated(req.remote_address, "POST /v1/auth/refresh");
    return ErrorResponse(who.status());
  }
  if (auto st = auth_->Revoke(who->token_id); !st.ok()) return ErrorResponse(st.status());
  resources_->AuditCall(*who, "refresh", "tokens/" + who->token_id, 200);
  return Session(who->name, *ttl);
}

HttpResponse IdentityApi::Logout(HttpRequest& req) {
  auto body = ParseBody(req.body, {"refreshToken"});
  if (!body.ok()) return ErrorResponse(body.status());
  auto token = StringField(*body, "refreshToken");
  if (!token.ok()) return ErrorResponse(token.status());
  auto who = auth_->VerifyRefresh(*token);
  if (!who.ok()) {
    resources_->AuditUnauthenticated(req.remote_address, "POST /v1/auth/logout");
    return ErrorResponse(who.status());
  }
  auto info = auth_->Revoke(who->token_id);
  if (!info.ok()) return ErrorResponse(info.status());
  resources_->AuditCall(*who, "logout", "tokens/" + who->token_id, 200);
  return JsonResponse(200, {{"revoked", who->token_id}});
}

std::optional<HttpResponse> IdentityApi::Handle(HttpRequest& req, const Principal& who,
                                                const std::vector<std::string>& parts) {
  try {
    return Route(req, who, parts);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    return ErrorResponse(absl::InvalidArgumentError(std::string("malformed request: ") + e.what()));
  }
}

std::optional<HttpResponse> IdentityApi::Route(HttpRequest& req, const Principal& who,
                                               const std::vector<std::string>& parts) {
  if (parts.size() == 3 && parts[1] == "auth" && parts[2] == "can-i" && req.method == "GET") {
    return CanI(req, who);
  }
  if (parts.size() == 3 && parts[1] == "auth" && parts[2] == "whoami" && req.method == "GET") {
    return WhoAmI(who);
  }
  if (parts.size() == 2 && parts[1] == "quotas") return QuotaObjects(req, who, "", "");
  if (parts.size() >= 4 && parts.size() <= 5 && parts[1] == "namespaces" && parts[3] == "quotas") {
    if (auto st = ValidateName("namespace", parts[2]); !st.ok()) return ErrorResponse(st);
    return QuotaObjects(req, who, parts[2], parts.size() == 5 ? parts[4] : "");
  }
  // /v1/{users|groups|roles|rolebindings}[/{name}]
  if (parts.size() >= 2 && parts.size() <= 3) {
    const IdentityKind* kind = FindIdentityKind(parts[1]);
    if (kind && !kind->namespaced) {
      return Objects(req, who, *kind, "", parts.size() == 3 ? parts[2] : "");
    }
    if (kind && parts.size() == 2 && req.method == "GET") return ListObjects(who, *kind, "");
  }
  // /v1/namespaces/{ns}/serviceaccounts[/{name}[/tokens]]
  if (parts.size() >= 4 && parts.size() <= 6 && parts[1] == "namespaces" &&
      parts[3] == "serviceaccounts") {
    if (auto st = ValidateName("namespace", parts[2]); !st.ok()) return ErrorResponse(st);
    if (parts.size() == 6) {
      if (parts[5] != "tokens" || req.method != "POST") {
        return ErrorResponse(absl::NotFoundError("no route for " + req.method + " " + req.path));
      }
      return ServiceAccountToken(req, who, parts[2], parts[4]);
    }
    return Objects(req, who, *FindIdentityKind("serviceaccounts"), parts[2],
                   parts.size() == 5 ? parts[4] : "");
  }
  return std::nullopt;
}

HttpResponse IdentityApi::CanI(HttpRequest& req, const Principal& who) {
  auto q = [&](const std::string& k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  auto verb = ParseVerb(q("verb"));
  if (!verb.ok()) return ErrorResponse(verb.status());
  auto kind = CanonicalKind(q("kind"));
  if (!kind.ok()) return ErrorResponse(kind.status());
  std::string ns = q("namespace").empty() ? "default" : q("namespace");
  if (ns != "*") {
    if (auto st = ValidateName("namespace", ns); !st.ok()) return ErrorResponse(st);
  }
  return JsonResponse(200, {{"allowed", who.Allowed(*verb, *kind, ns)},
                            {"principal", who.name},
                            {"verb", VerbName(*verb)},
                            {"kind", *kind},
                            {"namespace", ns}});
}

HttpResponse IdentityApi::WhoAmI(const Principal& who) {
  json bindings = json::array();
  for (const auto& b : who.bindings) {
    bindings.push_back({{"namespace", b.namespace_()}, {"role", b.role()}});
  }
  for (const auto& g : who.custom) bindings.push_back({{"namespace", g.ns}, {"role", g.role}});
  return JsonResponse(200, {{"principal", who.name},
                            {"tokenId", who.token_id},
                            {"groups", who.groups},
                            {"bindings", bindings}});
}

HttpResponse IdentityApi::ListObjects(const Principal& who, const IdentityKind& kind,
                                      const std::string& ns) {
  // Cluster-scoped kinds need the right cluster-wide; role bindings show those of namespaces
  // the caller may read them in; service accounts, those of the namespace.
  if (kind.plural != "rolebindings") {
    if (auto st = Authorize(who, Verb::kList, kind.plural, kind.namespaced ? ns : "*"); !st.ok()) {
      return ErrorResponse(st);
    }
  }
  json items = json::array();
  for (auto& o : directory_->List(kind, ns)) {
    if (!who.Allowed(Verb::kList, kind.plural, Directory::AuthzNamespace(kind, o))) continue;
    items.push_back(Directory::Public(kind, std::move(o)));
  }
  return JsonResponse(200, {{"items", items}});
}

HttpResponse IdentityApi::Objects(HttpRequest& req, const Principal& who, const IdentityKind& kind,
                                  const std::string& ns, const std::string& name) {
  const std::string& m = req.method;
  if (name.empty() && m == "GET") return ListObjects(who, kind, ns);
  if (name.empty() && m != "POST") {
    return ErrorResponse(absl::UnimplementedError(m + " is not supported on " + req.path));
  }
  if (!name.empty() && m == "POST") {
    return ErrorResponse(absl::UnimplementedError("POST is not supported on " + req.path));
  }
  if (!name.empty()) {
    if (auto st = ValidateName("name", name); !st.ok()) return ErrorResponse(st);
  }
  const Verb verb = VerbOf(m, true);
  if (!name.empty()) {
    // The stored object decides where it is authorized (a role binding's namespace).
    auto cur = directory_->Get(kind, ns, name);
    const std::string where =
        cur.ok() ? Directory::AuthzNamespace(kind, *cur) : (kind.namespaced ? ns : "*");
    if (auto st = Authorize(who, verb, kind.plural, where); !st.ok()) return ErrorResponse(st);
    if (!cur.ok()) return ErrorResponse(cur.status());
    if (m == "GET") return JsonResponse(200, Directory::Public(kind, *cur));
    if (m == "DELETE") {
      if (auto st = directory_->Delete(kind, ns, name); !st.ok()) return ErrorResponse(st);
      return JsonResponse(200, {{"deleted", kind.plural + "/" + name}});
    }
  }
  auto obj = json::parse(req.body, nullptr, false);
  if (obj.is_discarded() || !obj.is_object()) {
    return ErrorResponse(absl::InvalidArgumentError("malformed JSON: want an object"));
  }
  if (!name.empty()) {
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    if (obj["metadata"].value("name", name) != name) {
      return ErrorResponse(absl::InvalidArgumentError("metadata.name: does not match the URL"));
    }
    obj["metadata"]["name"] = name;
  }
  // The object's own namespace too: a role binding may not be moved where the caller has none.
  std::string where = kind.namespaced ? ns : "*";
  if (kind.plural == "rolebindings" && obj.contains("spec") && obj["spec"].is_object() &&
      obj["spec"].contains("namespace") && obj["spec"]["namespace"].is_string()) {
    where = obj["spec"]["namespace"].get<std::string>();
  }
  if (auto st = Authorize(who, verb, kind.plural, where); !st.ok()) return ErrorResponse(st);
  auto put = directory_->Put(who, kind, ns, std::move(obj), m == "PUT");
  if (!put.ok()) return ErrorResponse(put.status());
  return JsonResponse(m == "PUT" ? 200 : 201, Directory::Public(kind, *put));
}

HttpResponse IdentityApi::QuotaObjects(HttpRequest& req, const Principal& who,
                                       const std::string& ns, const std::string& name) {
  const std::string& m = req.method;
  if (name.empty() && m == "GET") {
    if (!ns.empty()) {
      if (auto st = Authorize(who, Verb::kList, "quotas", ns); !st.ok()) return ErrorResponse(st);
    }
    auto items = quotas_->List(ns);
    if (!items.ok()) return ErrorResponse(items.status());
    json out = json::array();
    for (auto& q : *items) {
      if (who.Allowed(Verb::kList, "quotas", q["metadata"].value("namespace", ""))) {
        out.push_back(std::move(q));
      }
    }
    return JsonResponse(200, {{"items", out}});
  }
  if (ns.empty() || (name.empty() && m != "POST") || (!name.empty() && m == "POST")) {
    return ErrorResponse(absl::UnimplementedError(m + " is not supported on " + req.path));
  }
  if (auto st = Authorize(who, VerbOf(m, true), "quotas", ns); !st.ok()) return ErrorResponse(st);
  if (m == "GET") {
    auto q = quotas_->Get(ns, name);
    return q.ok() ? JsonResponse(200, *q) : ErrorResponse(q.status());
  }
  if (m == "DELETE") {
    if (auto st = quotas_->Delete(ns, name); !st.ok()) return ErrorResponse(st);
    return JsonResponse(200, {{"deleted", "quotas/" + ns + "/" + name}});
  }
  auto obj = json::parse(req.body, nullptr, false);
  if (obj.is_discarded() || !obj.is_object()) {
    return ErrorResponse(absl::InvalidArgumentError("malformed JSON: want an object"));
  }
  if (!name.empty()) {
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    if (obj["metadata"].value("name", name) != name) {
      return ErrorResponse(absl::InvalidArgumentError("metadata.name: does not match the URL"));
    }
    obj["metadata"]["name"] = name;
  }
  auto put = quotas_->Put(who, ns, std::move(obj), m == "PUT");
  if (!put.ok()) return ErrorResponse(put.status());
  return JsonResponse(m == "PUT" ? 200 : 201, *put);
}

HttpResponse IdentityApi::ServiceAccountToken(HttpRequest& req, const Principal& who,
                                              const std::string& ns, const std::string& name) {
  // Minting a token acts as the account: as much as changing it.
  if (auto st = Authorize(who, Verb::kUpdate, "serviceaccounts", ns); !st.ok()) {
    return ErrorResponse(st);
  }
  if (auto st = ValidateName("name", name); !st.ok()) return ErrorResponse(st);
  if (!directory_->ServiceAccountExists(ns, name)) {
    return ErrorResponse(
        absl::NotFoundError("serviceaccounts '" + name + "' not found in namespace '" + ns + "'"));
  }
  auto body = ParseBody(req.body, {"ttlSeconds"});
  if (!body.ok()) return ErrorResponse(body.status());
  auto ttl = Ttl(*body, options_.service_account_ttl, std::chrono::seconds(10LL * 365 * 86400));
  if (!ttl.ok()) return ErrorResponse(ttl.status());
  const std::string principal = "serviceaccount:" + ns + "/" + name;
  auto token = auth_->MintSession(principal, "serviceaccount", *ttl);
  if (!token.ok()) return ErrorResponse(token.status());
  return JsonResponse(201, {{"token", *token},
                            {"id", token->substr(4, 16)},
                            {"principal", principal},
                            {"expiresAt", Rfc3339In(*ttl)}});
}

}  // namespace photon::server::identity
