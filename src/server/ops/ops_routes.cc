// The operations module's REST routes (docs/api.md "Operations"):
//   POST /v1/namespaces/NS/events              report an event (checks, operators, tools)
//   POST /v1/namespaces/NS/events/batch        {"items":[event, ...]}: many, answered each
//   POST /v1/namespaces/NS/alerts/NAME/close   {"comment": "..."}: an operator closes an alert
//   GET  /v1/ops/nodes/NODE/checks             the checks a node's agent runs
//   POST /api/v2/alerts, GET /v1/ops/prometheus/targets: prometheus.cc
//   GET  /v1/ops/top/nodes|instances: top.cc
//   GET  /v1/stats?period=day|month&kind=namespace|node...: stats.cc (long-term statistics)
#include <nlohmann/json.hpp>

#include "common/util.h"
#include "server/object_util.h"
#include "server/ops/ops_engine.h"
#include "server/proto_json.h"
#include "server/rest_gateway.h"

namespace photon::server::opsengine {

using nlohmann::json;

namespace {

std::string Quote(const std::string& s) { return json(s).dump(); }

json IngestJson(const IngestResult& r) {
  return json{{"filtered", r.filtered}, {"issued", r.issued}, {"rule", r.rule},
              {"event", r.event_name},  {"alert", r.alert},   {"maintenance", r.maintenance}};
}

HttpResponse IngestAnswer(const IngestResult& r) {
  return HttpResponse::Json(r.filtered ? 200 : 201, IngestJson(r).dump());
}

// The most events one batch may carry: a batch is decided holding the key stripes it uses.
constexpr size_t kMaxBatch = 1000;

// A batch's items as events; an item that does not parse is answered on its own.
StatusOr<std::vector<StatusOr<event::Event>>> ParseBatch(const std::string& body) {
  // Fast path: the whole body in one pass. Anything it refuses (an item with "kind", a bad
  // item) goes through the item-by-item path below, which says which item and why.
  event::EventBatch whole;
  if (JsonToProto(body, &whole).ok()) {
    if (whole.items().empty() || static_cast<size_t>(whole.items_size()) > kMaxBatch) {
      return absl::InvalidArgumentError("items: 1 to " + std::to_string(kMaxBatch) +
                                        " events, not " + std::to_string(whole.items_size()));
    }
    std::vector<StatusOr<event::Event>> out;
    out.reserve(whole.items_size());
    for (auto& item : *whole.mutable_items()) out.push_back(std::move(item));
    return out;
  }
  json b = json::parse(body, nullptr, false);
  if (!b.is_object() || !b.contains("items") || !b["items"].is_array()) {
    return absl::InvalidArgumentError("body: want {\"items\":[event, ...]}");
  }
  if (b.size() != 1) return absl::InvalidArgumentError("body: only \"items\" is known");
  const auto& items = b["items"];
  if (items.empty() || items.size() > kMaxBatch) {
    return absl::InvalidArgumentError("items: 1 to " + std::to_string(kMaxBatch) + " events, not " +
                                      std::to_string(items.size()));
  }
  std::vector<StatusOr<event::Event>> out;
  out.reserve(items.size());
  for (const auto& item : items) {
    if (!item.is_object()) {
      out.push_back(absl::InvalidArgumentError("an event is a JSON object"));
      continue;
    }
    auto parsed = ParseJsonObject(*FindKind("events"), item.dump());
    if (!parsed.ok()) {
      out.push_back(parsed.status());
    } else {
      out.push_back(static_cast<const event::Event&>(**parsed));
    }
  }
  return out;
}

std::string ItemError(const Status& st) {
  const std::string code = std::to_string(HttpStatusFromCode(st.code()));
  return "{\"status\":" + code + ",\"error\":{\"code\":" + Quote(StatusCodeName(st.code())) +
         ",\"status\":" + code + ",\"message\":" + Quote(std::string(st.message())) + "}}";
}

// As IngestJson, written directly: a batch answers thousands of them a second.
std::string ItemAnswer(const IngestResult& r) {
  std::string out = r.filtered ? "{\"status\":200" : "{\"status\":201";
  out += ",\"filtered\":";
  out += r.filtered ? "true" : "false";
  out += ",\"issued\":";
  out += r.issued ? "true" : "false";
  out += ",\"rule\":" + Quote(r.rule) + ",\"event\":" + Quote(r.event_name) +
         ",\"alert\":" + Quote(r.alert) + ",\"maintenance\":" + Quote(r.maintenance) + "}";
  return out;
}

}  // namespace

StatusOr<std::vector<photon::ops::Check>> OpsEngine::ChecksForNode(const Principal& who,
                                                                   const std::string& node) {
  PHOTON_RETURN_IF_ERROR(ValidateName("node", node));
  if (!who.IsAdmin() && who.AgentNode() != node) {
    return absl::PermissionDeniedError("'" + who.name + "' may not read the checks of node '" +
                                       node + "'");
  }
  auto cached = resources_->cache()->Get(RegistryKey("nodes", "system", node));
  if (!cached) return absl::NotFoundError("Node '" + node + "' not found");
  auto n = cached->Decoded();
  if (!n) return absl::DataLossError("corrupt node " + node);
  const auto& labels = GetMetadata(*n).labels();
  std::vector<photon::ops::Check> out;
  const std::string prefix = RegistryPrefix("checks");
  for (const auto& o :
       resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr).items) {
    photon::ops::Check c;
    if (!c.ParseFromString(o->value())) continue;
    auto sel = LabelSelector::Parse(c.spec().node_selector());
    if (sel.ok() && sel->Matches(labels)) out.push_back(std::move(c));
  }
  return out;
}

// 200 {"items":[answer, ...]} in the request's order: an answer is that of a single report plus
// its "status" (201 stored, 200 filtered), or {"status", "error"} for an event refused.
HttpResponse OpsEngine::IngestBatchAnswer(const HttpRequest& req, const Principal& who,
                                          const std::string& ns) {
  auto parsed = ParseBatch(req.body);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  std::vector<event::Event> events;
  std::vector<size_t> at;  // batch index of each parsed event
  for (size_t i = 0; i < parsed->size(); ++i) {
    if (!(*parsed)[i].ok()) continue;
    events.push_back(std::move(*(*parsed)[i]));
    at.push_back(i);
  }
  auto results = IngestBatch(who, ns, std::move(events));
  if (!results.ok()) return ErrorResponse(results.status());
  std::vector<std::string> items(parsed->size());
  for (size_t i = 0; i < parsed->size(); ++i) {
    if (!(*parsed)[i].ok()) items[i] = ItemError((*parsed)[i].status());
  }
  for (size_t j = 0; j < results->size(); ++j) {
    const auto& r = (*results)[j];
    items[at[j]] = r.ok() ? ItemAnswer(*r) : ItemError(r.status());
  }
  std::string body = "{\"items\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) body += ',';
    body += items[i];
  }
  return HttpResponse::Json(200, body + "]}");
}

static bool IsOpsRoute(const HttpRequest& req) {
  if (req.path == "/api/v2/alerts") return true;  // Prometheus's Alertmanager client
  const auto p = SplitPath(req.path);
  if (req.method == "GET" && req.path == "/v1/ops/prometheus/targets") return true;
  if (req.method == "GET" && req.path.rfind("/v1/ops/top/", 0) == 0) return true;
  if (req.method == "GET" && req.path == "/v1/stats") return true;
  if (p.size() < 4 || p[0] != "v1") return false;
  if (req.method == "POST" && p.size() == 4 && p[1] == "namespaces" && p[3] == "events") {
    return true;
  }
  if (req.method == "POST" && p.size() == 5 && p[1] == "namespaces" && p[3] == "events" &&
      p[4] == "batch") {
    return true;
  }
  if (req.method == "POST" && p.size() == 6 && p[1] == "namespaces" && p[3] == "alerts" &&
      p[5] == "close") {
    return true;
  }
  return req.method == "GET" && p.size() == 5 && p[1] == "ops" && p[2] == "nodes" &&
         p[4] == "checks";
}

std::optional<HttpResponse> OpsEngine::Handle(HttpRequest& req, const Authenticator& auth) {
  if (!IsOpsRoute(req)) return std::nullopt;
  auto who = auth.Authenticate(req.Header("authorization"));
  if (!who.ok()) {
    HttpResponse resp = ErrorResponse(who.status());
    resp.headers.push_back({"WWW-Authenticate", "Bearer"});
    resources_->AuditUnauthenticated(req.remote_address, req.method + " " + req.path);
    return resp;
  }
  HttpResponse resp = Route(req, *who);
  // Refusals are audited like every other call's; accepted events are not (a node reports
  // them every interval, as it heartbeats), closes record themselves.
  if (req.method == "POST" && resp.status >= 400 && req.path != "/api/v2/alerts") {
    const auto p = SplitPath(req.path);
    resources_->AuditCall(*who, p[3] == "events" ? "report-event" : "action:close",
                          p[3] + "/" + p[2] + (p.size() > 4 ? "/" + p[4] : ""), resp.status);
  }
  return resp;
}

HttpResponse OpsEngine::Route(HttpRequest& req, const Principal& who) {
  if (req.path == "/api/v2/alerts") {
    if (req.method != "POST") {
      return ErrorResponse(absl::UnimplementedError("only POST /api/v2/alerts is served here"));
    }
    return PrometheusAlerts(req, who);
  }
  if (req.path == "/v1/ops/prometheus/targets") return PrometheusTargets(req, who);
  if (req.path.rfind("/v1/ops/top/", 0) == 0) return Top(req, who);
  if (req.path == "/v1/stats") return stats_.Serve(req, who);
  const auto p = SplitPath(req.path);
  if (req.method == "POST" && p.size() == 4 && p[0] == "v1" && p[1] == "namespaces" &&
      p[3] == "events") {
    auto parsed = ParseJsonObject(*FindKind("events"), req.body);
    if (!parsed.ok()) return ErrorResponse(parsed.status());
    event::Event ev = static_cast<const event::Event&>(**parsed);
    auto r = Ingest(who, p[2], std::move(ev));
    if (!r.ok()) return ErrorResponse(r.status());
    return IngestAnswer(*r);
  }
  if (req.method == "POST" && p.size() == 5 && p[0] == "v1" && p[1] == "namespaces" &&
      p[3] == "events" && p[4] == "batch") {
    return IngestBatchAnswer(req, who, p[2]);
  }
  if (req.method == "POST" && p.size() == 6 && p[0] == "v1" && p[1] == "namespaces" &&
      p[3] == "alerts" && p[5] == "close") {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("comment") || !body["comment"].is_string()) {
      return ErrorResponse(
          absl::InvalidArgumentError("comment: required (body {\"comment\":\"...\"})"));
    }
    auto a = CloseAlert(who, p[2], p[4], body["comment"].get<std::string>());
    if (!a.ok()) return ErrorResponse(a.status());
    return HttpResponse::Json(200, ToJson(*FindKind("alerts"), *a));
  }
  if (req.method == "GET" && p.size() == 5 && p[0] == "v1" && p[1] == "ops" && p[2] == "nodes" &&
      p[4] == "checks") {
    auto checks = ChecksForNode(who, p[3]);
    if (!checks.ok()) return ErrorResponse(checks.status());
    std::string body = "{\"items\":[";
    for (size_t i = 0; i < checks->size(); ++i) {
      if (i) body += ',';
      body += ToJson(*FindKind("checks"), (*checks)[i]);
    }
    return HttpResponse::Json(200, body + "]}");
  }
  return ErrorResponse(absl::NotFoundError("no route for " + req.path));
}

}  // namespace photon::server::opsengine
