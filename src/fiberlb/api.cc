// REST API handlers; see api.h.
#include "fiberlb/api.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/secret_file.h"
#include "common/util.h"

namespace photon::fiberlb {
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

HttpResponse Done(const Status& s, int http, const json& body) {
  return s.ok() ? HttpResponse::Json(http, body.dump()) : Error(s);
}

StatusOr<json> Body(const HttpRequest& req) {
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("body: must be a JSON object");
  }
  return j;
}

// The name in the path wins; a different one in the body is refused, not silently replaced.
Status NameFromPath(json& j, const std::string& name, const std::string& where) {
  if (j.contains("name") && j["name"] != name) {
    return absl::InvalidArgumentError(where + ".name: differs from the path ('" + name + "')");
  }
  j["name"] = name;
  return absl::OkStatus();
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
    return lb_->Healthy() ? HttpResponse::Text(200, "ok\n")
                          : HttpResponse::Text(503, "haproxy runtime API not answering\n");
  }
  if (req.path == "/metrics") {
    HttpResponse r = HttpResponse::Text(200, lb_->Metrics() + (l4_ ? l4_->Metrics() : ""));
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
  if (parts.size() == 2 && parts[1] == "state" && req.method == "GET") {
    return HttpResponse::Json(200, ToJson(lb_->Snapshot()).dump());
  }
  if (parts[1] == "listeners") return Listeners(req, parts);
  if (parts[1] == "l4") return L4(req, parts);
  if (parts[1] == "vips" && parts.size() == 2) return Vips(req);
  if (parts[1] == "pools" && parts.size() >= 4 && parts[3] == "members") return Members(req, parts);
  if (parts[1] == "pools") return Pools(req, parts);
  return Error(404, "NOT_FOUND", "no such path");
}

HttpResponse Api::Listeners(HttpRequest& req, const std::vector<std::string>& parts) {
  State state = lb_->Snapshot();
  if (parts.size() == 2) {
    if (req.method != "GET") return Error(405, "METHOD_NOT_ALLOWED", "use GET");
    return HttpResponse::Json(200, ToJson(state).at("listeners").dump());
  }
  if (parts.size() != 3) return Error(404, "NOT_FOUND", "no such path");
  const std::string& name = parts[2];
  std::string where = "listeners." + name;
  if (req.method == "GET") {
    auto it = state.listeners.find(name);
    if (it == state.listeners.end()) return Error(absl::NotFoundError("no listener " + name));
    return HttpResponse::Json(200, ToJson(it->second).dump());
  }
  if (req.method == "DELETE") return Done(lb_->DeleteListener(name), 200, {{"deleted", true}});
  if (req.method != "PUT") return Error(405, "METHOD_NOT_ALLOWED", "use GET, PUT or DELETE");
  auto body = Body(req);
  if (!body.ok()) return Error(body.status());
  if (Status s = NameFromPath(*body, name, where); !s.ok()) return Error(s);
  auto listener = ListenerFromJson(*body, where);
  if (!listener.ok()) return Error(listener.status());
  for (const auto& l4 : l4_ ? l4_->Listeners() : std::vector<L4ListenerSpec>{}) {
    Status s = CheckL4Overlap(l4, {listener->address}, "l4.listeners." + l4.name);
    if (!s.ok()) {
      return Error(absl::InvalidArgumentError(where + ".address: overlaps the L4 listener " +
                                              l4.name + " (" + std::string(s.message()) + ")"));
    }
  }
  return Done(lb_->PutListener(*listener), 200, ToJson(*listener));
}

HttpResponse Api::Vips(HttpRequest& req) {
  if (req.method == "PUT") {
    auto body = Body(req);
    if (!body.ok()) return Error(body.status());
    if (body->size() != 1 || !body->contains("draining") || !(*body)["draining"].is_boolean()) {
      return Error(absl::InvalidArgumentError("draining: the only field, true or false"));
    }
    if (Status s = lb_->SetVipsDraining((*body)["draining"].get<bool>()); !s.ok()) return Error(s);
  } else if (req.method != "GET") {
    return Error(405, "METHOD_NOT_ALLOWED", "use GET or PUT");
  }
  auto described = lb_->DescribeVips();
  return described.ok() ? HttpResponse::Json(200, described->dump()) : Error(described.status());
}

HttpResponse Api::L4(HttpRequest& req, const std::vector<std::string>& parts) {
  if (l4_ == nullptr) return Error(404, "NOT_FOUND", "this fiberlb has no l4 section");
  if (parts.size() == 2) {
    if (req.method == "GET") return HttpResponse::Json(200, l4_->Describe().dump());
    if (req.method != "PUT") return Error(405, "METHOD_NOT_ALLOWED", "use GET or PUT");
    auto body = Body(req);
    if (!body.ok()) return Error(body.status());
    if (body->size() != 1 || !body->contains("draining") || !(*body)["draining"].is_boolean()) {
      return Error(absl::InvalidArgumentError("draining: the only field, true or false"));
    }
    return Done(l4_->SetDraining((*body)["draining"].get<bool>()), 200, l4_->Describe());
  }
  if (parts[2] != "listeners" || parts.size() > 4) return Error(404, "NOT_FOUND", "no such path");
  if (parts.size() == 3) {
    if (req.method != "GET") return Error(405, "METHOD_NOT_ALLOWED", "use GET");
    return HttpResponse::Json(200, l4_->Describe()["listeners"].dump());
  }
  const std::string& name = parts[3];
  std::string where = "l4.listeners." + name;
  if (req.method == "GET") {
    const json described = l4_->Describe();  // a named copy: the loop must not outlive it
    for (const auto& l : described["listeners"]) {
      if (l["name"] == name) return HttpResponse::Json(200, l.dump());
    }
    return Error(absl::NotFoundError("no L4 listener " + name));
  }
  if (req.method == "DELETE") return Done(l4_->DeleteListener(name), 200, {{"deleted", true}});
  if (req.method != "PUT") return Error(405, "METHOD_NOT_ALLOWED", "use GET, PUT or DELETE");
  auto body = Body(req);
  if (!body.ok()) return Error(body.status());
  if (Status s = NameFromPath(*body, name, where); !s.ok()) return Error(s);
  auto listener = L4ListenerFromJson(*body, where);
  if (!listener.ok()) return Error(listener.status());
  std::vector<std::string> l7;
  for (const auto& [n, l] : lb_->Snapshot().listeners) l7.push_back(l.address);
  if (Status s = CheckL4Overlap(*listener, l7, where); !s.ok()) return Error(s);
  return Done(l4_->PutListener(*listener), 200, ToJson(*listener));
}

HttpResponse Api::Pools(HttpRequest& req, const std::vector<std::string>& parts) {
  if (parts.size() == 2) {
    if (req.method != "GET") return Error(405, "METHOD_NOT_ALLOWED", "use GET");
    return HttpResponse::Json(200, ToJson(lb_->Snapshot()).at("pools").dump());
  }
  if (parts.size() != 3) return Error(404, "NOT_FOUND", "no such path");
  const std::string& name = parts[2];
  std::string where = "pools." + name;
  if (req.method == "GET") {
    auto status = lb_->PoolStatus(name);
    return status.ok() ? HttpResponse::Json(200, status->dump()) : Error(status.status());
  }
  if (req.method == "DELETE") return Done(lb_->DeletePool(name), 200, {{"deleted", true}});
  if (req.method != "PUT") return Error(405, "METHOD_NOT_ALLOWED", "use GET, PUT or DELETE");
  auto body = Body(req);
  if (!body.ok()) return Error(body.status());
  if (Status s = NameFromPath(*body, name, where); !s.ok()) return Error(s);
  auto pool = PoolFromJson(*body, where);
  if (!pool.ok()) return Error(pool.status());
  return Done(lb_->PutPool(*pool), 200, ToJson(*pool));
}

HttpResponse Api::Members(HttpRequest& req, const std::vector<std::string>& parts) {
  const std::string& pool = parts[2];
  if (parts.size() == 4) {
    if (req.method != "POST") return Error(405, "METHOD_NOT_ALLOWED", "use POST");
    auto body = Body(req);
    if (!body.ok()) return Error(body.status());
    auto member = MemberFromJson(*body, "member");
    if (!member.ok()) return Error(member.status());
    State state = lb_->Snapshot();
    auto it = state.pools.find(pool);
    if (it == state.pools.end()) return Error(absl::NotFoundError("no pool " + pool));
    for (const auto& m : it->second.members) {
      if (m.name == member->name) {
        return Error(
            absl::AlreadyExistsError("member.name: '" + m.name + "' exists in pool " + pool));
      }
    }
    return Done(lb_->PutMember(pool, *member), 201, ToJson(*member));
  }
  if (parts.size() != 5) return Error(404, "NOT_FOUND", "no such path");
  const std::string& name = parts[4];
  if (req.method == "DELETE") {
    return Done(lb_->RemoveMember(pool, name), 202, {{"draining", name}});
  }
  if (req.method != "PUT") return Error(405, "METHOD_NOT_ALLOWED", "use PUT or DELETE");
  auto body = Body(req);
  if (!body.ok()) return Error(body.status());
  if (Status s = NameFromPath(*body, name, "member"); !s.ok()) return Error(s);
  auto member = MemberFromJson(*body, "member");
  if (!member.ok()) return Error(member.status());
  return Done(lb_->PutMember(pool, *member), 200, ToJson(*member));
}

}  // namespace photon::fiberlb
