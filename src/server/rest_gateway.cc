#include "server/rest_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "common/util.h"
#include "photon/service.pb.h"
#include "server/identity/identity_api.h"
#include "server/images/image_service.h"
#include "server/object_util.h"
#include "server/stream_relay.h"
#include "server/topology/topology.h"
#include "server/ui/ui_handler.h"

namespace photon::server {

namespace {

std::string JsonString(const std::string& s) { return nlohmann::json(s).dump(); }

std::string Query(const HttpRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? "" : it->second;
}

StatusOr<int> ParseLimit(const std::string& text) {
  if (text.empty()) return 0;
  if (text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError("limit: '" + text + "' is not a non-negative integer");
  }
  return std::stoi(text);
}

// An action's body: empty, or {"params":{"k":"v",...}} with string values only.
StatusOr<std::map<std::string, std::string>> ParseActionParams(const std::string& body) {
  std::map<std::string, std::string> params;
  if (body.empty()) return params;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("malformed JSON: want {\"params\":{...}}");
  }
  for (auto& [k, v] : j.items()) {
    if (k != "params") return absl::InvalidArgumentError("unknown field '" + k + "'");
    if (!v.is_object()) return absl::InvalidArgumentError("params: want an object of strings");
    for (auto& [pk, pv] : v.items()) {
      if (!pv.is_string()) return absl::InvalidArgumentError("params." + pk + ": want a string");
      params[pk] = pv.get<std::string>();
    }
  }
  return params;
}

// The audit names of a call the gateway records itself: action and target as the resource
// manager names them ("create", "computeinstances/ns/name"), else from the path.
std::pair<std::string, std::string> AuditNames(const std::string& method,
                                               const std::vector<std::string>& parts) {
  std::string verb = method;
  for (auto& c : verb) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (parts.size() >= 4 && parts[0] == "v1" && parts[1] == "namespaces") {
    std::string target = parts[3] + "/" + parts[2] + (parts.size() >= 5 ? "/" + parts[4] : "");
    std::string action = verb;
    if (parts.size() == 4 && method == "POST") action = "create";
    if (parts.size() == 5 && method == "PUT") action = "update";
    if (parts.size() == 5 && method == "DELETE") action = "delete";
    if (parts.size() == 6 && parts[5] == "status" && method == "PUT") action = "update-status";
    if (parts.size() == 7 && parts[5] == "actions" && method == "POST")
      action = "action:" + parts[6];
    return {action, target};
  }
  std::string target;
  for (size_t i = 1; i < parts.size(); ++i) target += (i > 1 ? "/" : "") + parts[i];
  if (parts.size() >= 2 && parts[1] == "join") return {"join", target};
  if (parts.size() == 3 && parts[1] == "noderevocations") {
    return {method == "POST" ? "revoke-node" : "unrevoke-node", target};
  }
  if (parts.size() >= 2 && parts[1] == "tokens") {
    if (method == "POST" && parts.size() == 2) return {"create-token", target};
    if (method == "DELETE") return {"revoke-token", target};
    if (parts.size() == 3 && parts[2] == "rotate-admin") return {"rotate-admin-token", target};
  }
  return {verb, target};
}

// Who sent the request: an agent by its client certificate, anyone else by a bearer token.
StatusOr<Principal> Identify(const Authenticator& auth, const HttpRequest& req) {
  if (!req.peer_cert.present) return auth.Authenticate(req.Header("authorization"));
  if (!req.Header("authorization").empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and a bearer token: send one of them, not both");
  }
  return auth.AuthenticateCertificate(req.peer_cert);
}

nlohmann::json CertificateJson(const NodeCertificate& c, const std::string& node) {
  return {{"certificate", c.cert_pem},   {"caCert", c.ca_pem},
          {"caHash", c.ca_hash},         {"notAfterUnix", c.not_after_unix},
          {"principal", "node:" + node}, {"namespace", "system"}};
}

}  // namespace

HttpResponse ErrorResponse(const Status& status) {
  int code = HttpStatusFromCode(status.code());
  // A refusal may name its own HTTP status (over quota: RESOURCE_EXHAUSTED, answered 403).
  if (auto p = status.GetPayload(identity::kHttpStatusPayload)) code = std::stoi(std::string(*p));
  std::string body = "{\"error\":{\"code\":" + JsonString(StatusCodeName(status.code())) +
                     ",\"status\":" + std::to_string(code) +
                     ",\"message\":" + JsonString(std::string(status.message())) + "}}";
  return HttpResponse::Json(code, body);
}

RestGateway::RestGateway(ResourceManager* resources, Authenticator* auth, MetricsRegistry* metrics)
    : resources_(resources), auth_(auth), metrics_(metrics) {}

HttpResponse RestGateway::Handle(HttpRequest& req) {
  int64_t t0 = MonotonicNanos();
  HttpResponse resp;
  if (req.path == "/healthz") {
    resp = HttpResponse::Text(200, "ok\n");
  } else if (req.path == "/metrics") {
    resp = HttpResponse::Text(200, metrics_->Render());
    resp.content_type = "text/plain; version=0.0.4";
  } else if (req.path == "/v1/ca" && req.method == "GET" && auth_->HasNodeCa()) {
    // The trust anchor, public: a joining agent checks it against its pinned hash.
    resp = HttpResponse::Text(200, auth_->CaPem());
    resp.content_type = "application/x-pem-file";
    resp.headers.push_back({"Photon-Ca-Hash", auth_->CaHash()});
  } else if (ui::Owns(req.path)) {
    resp = ui::Serve(req);  // the dashboard's files: public, its API calls carry the token
  } else if (auto pub = identity_ ? identity_->HandlePublic(req) : std::nullopt) {
    resp = std::move(*pub);  // login, refresh, logout: no bearer token yet
  } else {
    auto who = Identify(*auth_, req);
    if (!who.ok()) {
      resp = ErrorResponse(who.status());
      resp.headers.push_back({"WWW-Authenticate", "Bearer"});
      resources_->AuditUnauthenticated(req.remote_address, req.method + " " + req.path);
    } else if (relay_ && StreamRelay::Owns(req.path)) {
      resp = relay_->Handle(req, *who);  // audits a session's opening, not each chunk
    } else if (images_ && images::ImageService::Owns(req.path)) {
      resp = images_->Handle(req, *who);  // audits an upload's opening, not each chunk
    } else {
      resp = RouteAudited(req, *who);
    }
  }
  if (resp.later) {
    // Counted when the answer is known.
    resp.later = [this, t0, method = req.method, start = std::move(resp.later)](HttpReply reply) {
      start([this, t0, method, reply = std::move(reply)](HttpResponse r) {
        Record(method, r.status, t0, true);
        reply(std::move(r));
      });
    };
    return resp;
  }
  Record(req.method, resp.status, t0, !resp.start_stream);
  return resp;
}

void RestGateway::Record(const std::string& method, int status, int64_t t0, bool timed) {
  metrics_
      ->GetCounter("photon_http_requests_total", "API requests by method and status code",
                   {{"method", method}, {"code", std::to_string(status)}})
      ->Inc();
  if (timed) {
    metrics_
        ->GetHistogram("photon_http_request_duration_seconds", "API request latency by method",
                       {{"method", method}})
        ->Observe((MonotonicNanos() - t0) / 1e9);
  }
}

HttpResponse RestGateway::RouteAudited(HttpRequest& req, const Principal& who) {
  const bool mutating = req.method != "GET" && req.method != "HEAD";
  const uint64_t before = AuditDecisionsOnThisThread();
  HttpResponse resp = Route(req, who);
  // A deferred answer (a create) comes from the resource manager, which records it.
  if (mutating && !resp.later && AuditDecisionsOnThisThread() == before) {
    auto [action, target] = AuditNames(req.method, SplitPath(req.path));
    resources_->AuditCall(who, action, target, resp.status);
  }
  return resp;
}

using Parts = std::vector<std::string>;

HttpResponse RestGateway::Route(HttpRequest& req, const Principal& who) {
  auto parts = SplitPath(req.path);
  if (parts.empty() || parts[0] != "v1")
    return ErrorResponse(absl::NotFoundError("no route for " + req.path));
  if (auto r = identity_ ? identity_->Handle(req, who, parts) : std::nullopt) return *r;
  if (parts.size() >= 4 && parts[1] == "namespaces") return Namespaced(req, who, parts);
  // Nodes are cluster-scoped: /v1/nodes/NAME[/...] is /v1/namespaces/system/nodes/NAME[/...];
  // so are the physical topology kinds, including their collection (/v1/racks: list, create).
  if ((parts.size() >= 3 && parts[1] == "nodes") ||
      (parts.size() >= 2 && topology::IsTopologyPlural(parts[1]))) {
    Parts in_system = {"v1", "namespaces", "system", parts[1]};
    in_system.insert(in_system.end(), parts.begin() + 2, parts.end());
    return Namespaced(req, who, in_system);
  }
  return Cluster(req, who, parts);
}

// /v1/operations/{id}, /v1/auditevents, /v1/tokens..., /v1/join, /v1/{kind}.
HttpResponse RestGateway::Cluster(HttpRequest& req, const Principal& who, const Parts& parts) {
  const std::string& m = req.method;
  if (parts.size() == 3 && parts[1] == "operations" && m == "GET") {
    auto op = resources_->GetOperation(who, parts[2]);
    if (!op.ok()) return ErrorResponse(op.status());
    return HttpResponse::Json(200, ToJson(*FindKind("operations"), *op));
  }
  if (parts.size() == 2 && parts[1] == "auditevents" && m == "GET") return AuditEvents(req, who);
  if (parts.size() >= 2 && parts[1] == "tokens") return Tokens(req, who, parts);
  if (parts.size() == 2 && parts[1] == "join" && m == "POST") return Join(req, who);
  if (parts.size() == 2 && parts[1] == "nodecertificates" && m == "POST") {
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("csr") || !j["csr"].is_string()) {
      return ErrorResponse(absl::InvalidArgumentError("csr: required (body {\"csr\":PEM})"));
    }
    auto cert = auth_->RenewCertificate(who, j["csr"].get<std::string>());
    if (!cert.ok()) return ErrorResponse(cert.status());
    return HttpResponse::Json(201, CertificateJson(*cert, who.AgentNode()).dump());
  }
  if (parts.size() >= 2 && parts.size() <= 3 && parts[1] == "noderevocations") {
    return NodeRevocations(req, who, parts);
  }
  // POST /v1/ca/export: the CA key for a server joining the control plane (docs/ha.md).
  if (parts.size() == 3 && parts[1] == "ca" && parts[2] == "export" && m == "POST") {
    auto ca = auth_->ExportCa(who);
    if (!ca.ok()) return ErrorResponse(ca.status());
    return HttpResponse::Json(
        200,
        nlohmann::json{{"caCert", ca->first}, {"caKey", ca->second}, {"caHash", auth_->CaHash()}}
            .dump());
  }
  if (parts.size() != 2) return ErrorResponse(absl::NotFoundError("no route for " + req.path));
  // /v1/{kind}: list across namespaces
  const KindInfo* kind = FindKind(parts[1]);
  if (!kind)
    return ErrorResponse(
        absl::NotFoundError("unknown kind '" + parts[1] + "' (known: " + KnownKindNames() + ")"));
  if (m != "GET")
    return ErrorResponse(absl::UnimplementedError(m + " is not supported on " + req.path));
  return ListOrWatch(req, who, *kind, "");
}

HttpResponse RestGateway::AuditEvents(HttpRequest& req, const Principal& who) {
  auto limit = ParseLimit(Query(req, "limit"));
  if (!limit.ok()) return ErrorResponse(limit.status());
  auto page = resources_->ListAudit(who, *limit, Query(req, "continue"));
  if (!page.ok()) return ErrorResponse(page.status());
  std::string body = "{\"items\":[";
  for (size_t i = 0; i < page->items.size(); ++i) {
    if (i) body += ',';
    body += MessageToJson(page->items[i]);
  }
  body += "],\"continue\":" + JsonString(page->continue_token) + "}";
  return HttpResponse::Json(200, std::move(body));
}

// A node exchanges the join token for its own agent credential.
HttpResponse RestGateway::Join(HttpRequest& req, const Principal& who) {
  auto j = nlohmann::json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("node") || !j["node"].is_string()) {
    return ErrorResponse(absl::InvalidArgumentError("node: required (body {\"node\":\"NAME\"})"));
  }
  std::string node = j["node"].get<std::string>();
  if (auto st = ValidateName("node", node); !st.ok()) return ErrorResponse(st);
  if (j.contains("csr")) {
    if (!j["csr"].is_string()) return ErrorResponse(absl::InvalidArgumentError("csr: want PEM"));
    auto cert = auth_->JoinWithCsr(who, node, j["csr"].get<std::string>());
    if (!cert.ok()) return ErrorResponse(cert.status());
    return HttpResponse::Json(201, CertificateJson(*cert, node).dump());
  }
  auto token = auth_->Join(who, node);
  if (!token.ok()) return ErrorResponse(token.status());
  return HttpResponse::Json(201, "{\"token\":" + JsonString(*token) + ",\"principal\":" +
                                     JsonString("node:" + node) + ",\"namespace\":\"system\"}");
}

// GET /v1/noderevocations; POST (revoke) and DELETE (lift) /v1/noderevocations/{node}. Admins.
HttpResponse RestGateway::NodeRevocations(HttpRequest& req, const Principal& who,
                                          const Parts& parts) {
  if (!who.IsAdmin()) {
    return ErrorResponse(absl::PermissionDeniedError("node revocations are a cluster admin's"));
  }
  if (parts.size() == 2) {
    if (req.method != "GET") {
      return ErrorResponse(
          absl::UnimplementedError(req.method + " is not supported on " + req.path));
    }
    nlohmann::json items = nlohmann::json::array();
    for (const auto& [node, at] : auth_->NodeRevocations())
      items.push_back({{"node", node}, {"revokedAt", at}});
    return HttpResponse::Json(200, nlohmann::json{{"items", items}}.dump());
  }
  const std::string& node = parts[2];
  if (auto st = ValidateName("node", node); !st.ok()) return ErrorResponse(st);
  if (req.method == "POST") {
    auto at = auth_->RevokeNode(node);
    if (!at.ok()) return ErrorResponse(at.status());
    return HttpResponse::Json(201, nlohmann::json{{"node", node}, {"revokedAt", *at}}.dump());
  }
  if (req.method == "DELETE") {
    if (auto st = auth_->UnrevokeNode(node); !st.ok()) return ErrorResponse(st);
    return HttpResponse::Json(200, nlohmann::json{{"node", node}}.dump());
  }
  return ErrorResponse(absl::UnimplementedError(req.method + " is not supported on " + req.path));
}

// /v1/namespaces/{ns}/{kind}[/{name}[/status | /actions/{action}]]
HttpResponse RestGateway::Namespaced(HttpRequest& req, const Principal& who, const Parts& parts) {
  const std::string& m = req.method;
  const std::string& ns = parts[2];
  if (auto st = ValidateName("namespace", ns); !st.ok()) return ErrorResponse(st);
  const KindInfo* kind = FindKind(parts[3]);
  if (!kind) {
    return ErrorResponse(
        absl::NotFoundError("unknown kind '" + parts[3] + "' (known: " + KnownKindNames() + ")"));
  }
  if (parts.size() == 4) {
    if (m == "POST") return Create(req, who, *kind, ns);
    if (m == "GET") return ListOrWatch(req, who, *kind, ns);
    return ErrorResponse(absl::UnimplementedError(m + " is not supported on " + req.path));
  }
  const std::string& name = parts[4];
  if (auto st = ValidateName("name", name); !st.ok()) return ErrorResponse(st);
  if (parts.size() == 5) return Object(req, who, *kind, ns, name);
  if (parts.size() == 6 && parts[5] == "status" && m == "PUT") {
    return Update(req, who, *kind, ns, name, /*status_only=*/true);
  }
  if (parts.size() == 7 && parts[5] == "actions" && m == "POST") {
    auto params = ParseActionParams(req.body);
    if (!params.ok()) return ErrorResponse(params.status());
    auto r = resources_->ExecuteAction(who, *kind, ns, name, parts[6], *params);
    if (!r.ok()) return ErrorResponse(r.status());
    return HttpResponse::Json(202, "{\"operation\":" + ToJson(*FindKind("operations"), *r) + "}");
  }
  return ErrorResponse(absl::NotFoundError("no route for " + m + " " + req.path));
}

HttpResponse RestGateway::Create(HttpRequest& req, const Principal& who, const KindInfo& kind,
                                 const std::string& ns) {
  auto obj = ParseJsonObject(kind, req.body);
  if (!obj.ok()) return ErrorResponse(obj.status());
  // Answered from the store's completion, not from a handler thread parked on the commit.
  return HttpResponse::Later([this, who, kind = &kind, ns,
                              object = MessagePtr(std::move(*obj))](HttpReply reply) mutable {
    resources_->CreateAsync(
        who, *kind, ns, std::move(object),
        [kind, reply = std::move(reply)](StatusOr<CreateResult> r) {
          if (!r.ok()) {
            reply(ErrorResponse(r.status()));
            return;
          }
          HttpResponse resp = HttpResponse::Json(
              202, "{\"operation\":" + ToJson(*FindKind("operations"), r->operation) +
                       ",\"object\":" + ToJson(*kind, *r->object) + "}");
          resp.headers.push_back({"Location", "/v1/operations/" + r->operation.metadata().id()});
          reply(std::move(resp));
        });
  });
}

HttpResponse RestGateway::Update(HttpRequest& req, const Principal& who, const KindInfo& kind,
                                 const std::string& ns, const std::string& name, bool status_only) {
  auto obj = ParseJsonObject(kind, req.body);
  if (!obj.ok()) return ErrorResponse(obj.status());
  // Answered from the store's completion, as a create is: no handler thread waits for the
  // commit, so the number of updates one group commit carries is not the thread count.
  return HttpResponse::Later([this, who, kind = &kind, ns, name, status_only,
                              object = MessagePtr(std::move(*obj))](HttpReply reply) mutable {
    resources_->UpdateAsync(
        who, *kind, ns, name, std::move(object), status_only,
        [kind, reply = std::move(reply)](StatusOr<MessagePtr> r) {
          reply(r.ok() ? HttpResponse::Json(200, ToJson(*kind, **r)) : ErrorResponse(r.status()));
        });
  });
}

// GET, PUT (spec, labels, annotations) and DELETE of one object.
HttpResponse RestGateway::Object(HttpRequest& req, const Principal& who, const KindInfo& kind,
                                 const std::string& ns, const std::string& name) {
  const std::string& m = req.method;
  if (m == "GET") {
    auto r = resources_->Get(who, kind, ns, name);
    if (!r.ok()) return ErrorResponse(r.status());
    return HttpResponse::Json(200, ToJson(kind, **r));
  }
  if (m == "PUT") return Update(req, who, kind, ns, name, /*status_only=*/false);
  if (m == "DELETE") {
    // Answered from the store's completion, as creates and updates are.
    return HttpResponse::Later([this, who, kind = &kind, ns, name,
                                rv = Query(req, "resourceVersion")](HttpReply reply) mutable {
      resources_->DeleteAsync(
          who, *kind, ns, name, rv, [reply = std::move(reply)](StatusOr<operation::Operation> r) {
            reply(r.ok() ? HttpResponse::Json(
                               202, "{\"operation\":" + ToJson(*FindKind("operations"), *r) + "}")
                         : ErrorResponse(r.status()));
          });
    });
  }
  return ErrorResponse(absl::UnimplementedError(m + " is not supported on " + req.path));
}

HttpResponse RestGateway::Tokens(HttpRequest& req, const Principal& who,
                                 const std::vector<std::string>& parts) {
  const std::string& m = req.method;
  if (!who.IsAdmin())
    return ErrorResponse(absl::PermissionDeniedError("tokens are for admins only"));
  if (parts.size() == 2 && m == "GET") {
    std::string body = "{\"items\":[";
    auto tokens = auth_->List();
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) body += ',';
      body += MessageToJson(tokens[i]);
    }
    return HttpResponse::Json(200, body + "]}");
  }
  if (parts.size() == 2 && m == "POST") {
    api::CreateTokenRequest in;
    google::protobuf::util::JsonParseOptions opts;
    auto st = google::protobuf::util::JsonStringToMessage(req.body, &in, opts);
    if (!st.ok())
      return ErrorResponse(
          absl::InvalidArgumentError("invalid token request: " + std::string(st.message())));
    std::vector<auth::RoleBinding> bindings(in.bindings().begin(), in.bindings().end());
    auto token =
        auth_->CreateToken(in.principal(), bindings, std::chrono::seconds(in.ttl_seconds()));
    if (!token.ok()) return ErrorResponse(token.status());
    return HttpResponse::Json(201, "{\"token\":" + JsonString(*token) +
                                       ",\"id\":" + JsonString(token->substr(4, 16)) +
                                       ",\"principal\":" + JsonString(in.principal()) + "}");
  }
  // POST /v1/tokens/rotate-admin: a new DATA_DIR/admin.token; the old one stops working.
  if (parts.size() == 3 && parts[2] == "rotate-admin" && m == "POST") {
    auto token = auth_->RotateAdmin();
    if (!token.ok()) return ErrorResponse(token.status());
    return HttpResponse::Json(201, "{\"token\":" + JsonString(*token) +
                                       ",\"id\":" + JsonString(token->substr(4, 16)) + "}");
  }
  if (parts.size() == 3 && m == "DELETE") {
    auto info = auth_->Revoke(parts[2]);
    if (!info.ok()) return ErrorResponse(info.status());
    return HttpResponse::Json(200, MessageToJson(*info));
  }
  return ErrorResponse(absl::NotFoundError("no route for " + m + " " + req.path));
}

HttpResponse RestGateway::ListOrWatch(HttpRequest& req, const Principal& who, const KindInfo& kind,
                                      const std::string& ns) {
  if (Query(req, "watch") == "true" || Query(req, "watch") == "1") return Watch(req, who, kind, ns);
  auto limit = ParseLimit(Query(req, "limit"));
  if (!limit.ok()) return ErrorResponse(limit.status());
  auto r = resources_->List(who, kind, ns, Query(req, "labelSelector"), Query(req, "fieldSelector"),
                            *limit, Query(req, "continue"));
  if (!r.ok()) return ErrorResponse(r.status());
  std::string body = "{\"kind\":\"" + kind.kind + "List\",\"resourceVersion\":\"" +
                     r->resource_version + "\",\"continue\":" + JsonString(r->continue_token) +
                     ",\"items\":[";
  body.reserve(body.size() + r->items.size() * 1024);
  google::protobuf::Arena arena;
  for (size_t i = 0; i < r->items.size(); ++i) {
    if (i) body += ',';
    r->items[i]->AppendJson(&body, &arena);
    if (i % 256 == 255) arena.Reset();  // bounded: a page may hold thousands
  }
  body += "]}";
  return HttpResponse::Json(200, std::move(body));
}

HttpResponse RestGateway::Watch(HttpRequest& req, const Principal& who, const KindInfo& kind,
                                const std::string& ns) {
  // Validate everything that can fail before the 200 goes out.
  struct State {
    std::mutex mu;
    std::shared_ptr<ResponseStream> stream;
    std::vector<std::vector<std::shared_ptr<const std::string>>>
        early;  // before the stream is attached
    uint64_t id = 0;
  };
  auto state = std::make_shared<State>();
  auto on_events = [state](const std::vector<CacheEvent>& events) {
    // Lines are rendered once per event and shared by every watcher: no per-watcher copies.
    std::vector<std::shared_ptr<const std::string>> lines;
    lines.reserve(events.size());
    for (const auto& e : events) lines.push_back(e.Line());
    std::lock_guard lock(state->mu);
    if (state->stream) {
      state->stream->WriteShared(std::move(lines));
    } else {
      state->early.push_back(std::move(lines));
    }
  };
  auto id =
      resources_->Watch(who, kind, ns, Query(req, "labelSelector"), Query(req, "fieldSelector"),
                        Query(req, "resourceVersion"), WatchSink{on_events});
  if (!id.ok()) return ErrorResponse(id.status());
  state->id = *id;
  HttpResponse resp;
  resp.status = 200;
  resp.content_type = "application/x-ndjson";
  // Clients drop a watch on which nothing, not even a bookmark, arrived for a few intervals.
  if (auto every = resources_->cache()->bookmark_interval(); every.count() > 0) {
    resp.headers.push_back({"Photon-Bookmark-Interval-Ms", std::to_string(every.count())});
  }
  ResourceManager* resources = resources_;
  Authenticator* auth = auth_;
  resp.start_stream = [state, resources, auth, who](std::shared_ptr<ResponseStream> stream) {
    {
      std::lock_guard lock(state->mu);
      state->stream = stream;
      for (auto& lines : state->early) stream->WriteShared(std::move(lines));
      state->early.clear();
    }
    // Revoking the credential ends the stream at once, with a last line saying why.
    const uint64_t cut = auth->CutOnRevocation(who, [stream](const std::string& why) {
      stream->Write(nlohmann::json{{"type", "ERROR"},
                                   {"error", {{"code", "UNAUTHENTICATED"}, {"message", why}}}}
                        .dump() +
                    "\n");
      stream->Close();
    });
    stream->SetOnClose([state, resources, auth, cut] {
      auth->ForgetStream(cut);
      resources->Unwatch(state->id);
      std::lock_guard lock(state->mu);
      state->stream.reset();
    });
  };
  return resp;
}

}  // namespace photon::server
