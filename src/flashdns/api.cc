// REST API handlers; see api.h. nlohmann::json throws on bad input: caught in Handle().
#include "flashdns/api.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <future>
#include <map>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/secret_file.h"
#include "common/tcp_probe.h"
#include "common/util.h"

namespace photon::flashdns {
namespace {

using nlohmann::json;

HttpResponse Error(const Status& s) {
  json body = {
      {"error", {{"code", StatusCodeName(s.code())}, {"message", std::string(s.message())}}}};
  return HttpResponse::Json(HttpStatusFromCode(s.code()), body.dump());
}

HttpResponse Error(int http, const std::string& code, const std::string& message) {
  json body = {{"error", {{"code", code}, {"message", message}}}};
  return HttpResponse::Json(http, body.dump());
}

// The owner tag is stored in every zone file and listed back: keep it a short printable tag.
std::string OwnerFrom(const json& body) {
  std::string owner = body.value("owner", "");
  if (owner.size() > 256) throw std::invalid_argument("owner: at most 256 characters");
  for (unsigned char c : owner) {
    if (c < 0x20 || c > 0x7e) throw std::invalid_argument("owner: printable ASCII only");
  }
  return owner;
}

// A record's GSLB check: {"type": "tcp", "port", "interval_ms", "timeout_ms", "rise", "fall"}.
StatusOr<RecordCheck> CheckFrom(const json& j) {
  auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError("health_check." + field + ": " + why);
  };
  if (!j.is_object()) return absl::InvalidArgumentError("health_check: must be an object");
  RecordCheck c;
  const std::map<std::string, std::pair<int*, std::pair<int, int>>> ints = {
      {"port", {&c.port, {1, 65535}}},
      {"interval_ms", {&c.interval_ms, {100, 3600000}}},
      {"timeout_ms", {&c.timeout_ms, {10, 60000}}},
      {"rise", {&c.rise, {1, 100}}},
      {"fall", {&c.fall, {1, 100}}}};
  for (const auto& [key, value] : j.items()) {
    if (key == "type") {
      if (value != "tcp") return bad("type", "only tcp (a connect to the address at port)");
      continue;
    }
    auto it = ints.find(key);
    if (it == ints.end()) return bad(key, "unknown field");
    const auto [lo, hi] = it->second.second;
    if (!value.is_number_integer() || value.get<int64_t>() < lo || value.get<int64_t>() > hi) {
      return bad(key, "want an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    *it->second.first = value.get<int>();
  }
  if (c.port == 0) return bad("port", "required");
  return c;
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// POST /v1/probe: TCP connects from this flashdns's vantage point, all at once. photon-server's
// gslb provider asks several checkers (docs/flashdns.md "GlobalService") and removes a VIP
// only when enough of them agree, so one checker's own network trouble removes nothing.
HttpResponse Probe(const json& body) {
  auto bad = [](const std::string& field, const std::string& why) {
    return Error(400, "INVALID_ARGUMENT", field + ": " + why);
  };
  constexpr size_t kMaxTargets = 64;  // one thread each while the probe runs
  const int timeout_ms = body.value("timeout_ms", 500);
  if (timeout_ms < 10 || timeout_ms > 10000) return bad("timeout_ms", "want 10..10000");
  const json targets = body.value("targets", json());
  if (!targets.is_array() || targets.empty() || targets.size() > kMaxTargets)
    return bad("targets", "want an array of 1.." + std::to_string(kMaxTargets));
  std::vector<std::future<std::string>> results;
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string at = "targets[" + std::to_string(i) + "].";
    const json& t = targets[i];
    if (!t.is_object() || !t.contains("address") || !t["address"].is_string() ||
        !IsIpLiteral(t["address"].get<std::string>()))
      return bad(at + "address", "want an IPv4 or IPv6 address");
    if (!t.contains("port") || !t["port"].is_number_integer() || t["port"].get<int64_t>() < 1 ||
        t["port"].get<int64_t>() > 65535)
      return bad(at + "port", "want 1..65535");
  }
  for (const auto& t : targets) {
    results.push_back(std::async(std::launch::async, CheckTcpConnect,
                                 t["address"].get<std::string>(), t["port"].get<int>(),
                                 timeout_ms));
  }
  json out = json::array();
  for (size_t i = 0; i < targets.size(); ++i) {
    out.push_back({{"address", targets[i]["address"]},
                   {"port", targets[i]["port"]},
                   {"result", results[i].get()}});
  }
  return HttpResponse::Json(200, json{{"results", out}}.dump());
}

}  // namespace

StatusOr<std::string> LoadOrCreateToken(const std::string& data_dir, bool* created) {
  return LoadOrCreateSecret(data_dir + "/api.token", created);
}

HttpResponse Api::Handle(HttpRequest& request) {
  try {
    return Route(request);
  } catch (const std::exception& e) {
    return Error(400, "INVALID_ARGUMENT", std::string("bad request: ") + e.what());
  }
}

HttpResponse Api::Route(HttpRequest& req) {
  if (req.path == "/healthz") {
    auto snapshot = zones_->Current();
    return HttpResponse::Text(200, "ok\n");
  }
  if (req.path == "/metrics") {
    HttpResponse r = HttpResponse::Text(200, stats_->Render() + metrics_->Render());
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }
  std::string auth = req.Header("authorization");
  const std::string prefix = "Bearer ";
  if (auth.rfind(prefix, 0) != 0 || !SecureEquals(auth.substr(prefix.size()), token_)) {
    HttpResponse r = Error(401, "UNAUTHENTICATED", "missing or bad bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    return r;
  }
  auto parts = SplitPath(req.path);
  if (parts.size() < 2 || parts[0] != "v1") return Error(404, "NOT_FOUND", "no such path");
  if (parts.size() == 2 && parts[1] == "reload" && req.method == "POST") {
    Status s = zones_->Reload();
    if (!s.ok()) return Error(s);
    return HttpResponse::Json(200, R"({"reloaded":true})");
  }
  if (parts.size() == 2 && parts[1] == "probe" && req.method == "POST")
    return Probe(json::parse(req.body));
  if (parts[1] != "zones") return Error(404, "NOT_FOUND", "no such path");
  if (parts.size() == 2) {
    if (req.method == "GET") {
      auto out = zones_->ListZonesJson();
      return out.ok() ? HttpResponse::Json(200, *out) : Error(out.status());
    }
    if (req.method == "POST") {
      json body = json::parse(req.body);
      std::string name = body.at("name").get<std::string>();
      std::vector<std::string> ns;
      if (body.contains("ns")) ns = body["ns"].get<std::vector<std::string>>();
      uint32_t ttl = body.value("ttl", 3600u);
      std::string owner = OwnerFrom(body);
      Status s = zones_->CreateZone(name, ns, ttl, owner);
      if (!s.ok()) return Error(s);
      auto out = zones_->GetZoneJson(name);
      return out.ok() ? HttpResponse::Json(201, *out) : Error(out.status());
    }
    return Error(405, "METHOD_NOT_ALLOWED", "use GET or POST");
  }
  const std::string& zone = parts[2];
  if (parts.size() == 3) {
    if (req.method == "GET") {
      auto out = zones_->GetZoneJson(zone);
      return out.ok() ? HttpResponse::Json(200, *out) : Error(out.status());
    }
    if (req.method == "DELETE") {
      Status s = zones_->DeleteZone(zone);
      return s.ok() ? HttpResponse::Json(200, R"({"deleted":true})") : Error(s);
    }
    return Error(405, "METHOD_NOT_ALLOWED", "use GET or DELETE");
  }
  if (parts[3] != "records") return Error(404, "NOT_FOUND", "no such path");
  if (parts.size() == 4 && req.method == "POST") {
    json body = json::parse(req.body);
    ApiRecord record;
    record.name = body.at("name").get<std::string>();
    record.type = body.at("type").get<std::string>();
    record.ttl = body.value("ttl", 3600u);
    record.data = body.at("data").get<std::string>();
    record.owner = OwnerFrom(body);
    if (body.contains("health_check")) {
      auto check = CheckFrom(body["health_check"]);
      if (!check.ok()) return Error(check.status());
      record.check = *check;
    }
    auto added = zones_->AddRecord(zone, record);
    if (!added.ok()) return Error(added.status());
    json out = {{"id", added->id},
                {"name", added->name},
                {"type", added->type},
                {"ttl", added->ttl},
                {"data", added->data}};
    if (!added->owner.empty()) out["owner"] = added->owner;
    if (added->check.port > 0) out["health_check"] = body["health_check"];
    return HttpResponse::Json(201, out.dump());
  }
  if (parts.size() == 5 && req.method == "DELETE") {
    Status s = zones_->DeleteRecord(zone, parts[4]);
    return s.ok() ? HttpResponse::Json(200, R"({"deleted":true})") : Error(s);
  }
  return Error(404, "NOT_FOUND", "no such path");
}

}  // namespace photon::flashdns
