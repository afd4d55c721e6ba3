// The REST/JSON gateway: maps HTTP routes onto ResourceManager verbs, with protobuf's JSON
// mapping for bodies (docs/api.md lists the routes). Stateless apart from metrics; thread-safe.
#pragma once

#include "common/http_server.h"
#include "common/metrics.h"
#include "server/auth.h"
#include "server/resource_manager.h"

namespace photon::server {

namespace identity {
class IdentityApi;
}
class StreamRelay;
namespace images {
class ImageService;
}

class RestGateway {
 public:
  RestGateway(ResourceManager* resources, Authenticator* auth, MetricsRegistry* metrics);
  HttpResponse Handle(HttpRequest& req);
  // Identity's routes (login, users, roles, ...); set before serving.
  void SetIdentity(identity::IdentityApi* identity) { identity_ = identity; }
  // logs and exec streams (StreamRelay::Owns); set before serving.
  void SetStreamRelay(StreamRelay* relay) { relay_ = relay; }
  // Image uploads and content (images::ImageService::Owns); set before serving.
  void SetImageService(images::ImageService* images) { images_ = images; }

 private:
  // Route, and the audit record of a mutating call that reached no verb of the resource
  // manager (which records its own): the gateway's own calls (tokens, join) and refusals.
  HttpResponse RouteAudited(HttpRequest& req, const Principal& who);
  // Route picks a group by path: Cluster (/v1/X...) or Namespaced (/v1/namespaces/NS/KIND...).
  HttpResponse Route(HttpRequest& req, const Principal& who);
  HttpResponse Cluster(HttpRequest& req, const Principal& who,
                       const std::vector<std::string>& parts);
  HttpResponse AuditEvents(HttpRequest& req, const Principal& who);
  HttpResponse Join(HttpRequest& req, const Principal& who);
  // /v1/noderevocations[/NODE]: list, revoke (POST), lift (DELETE).
  HttpResponse NodeRevocations(HttpRequest& req, const Principal& who,
                               const std::vector<std::string>& parts);
  HttpResponse Namespaced(HttpRequest& req, const Principal& who,
                          const std::vector<std::string>& parts);
  HttpResponse Create(HttpRequest& req, const Principal& who, const KindInfo& kind,
                      const std::string& ns);
  // PUT of an object (spec, labels, annotations) or of its status, answered on commit.
  HttpResponse Update(HttpRequest& req, const Principal& who, const KindInfo& kind,
                      const std::string& ns, const std::string& name, bool status_only);
  // GET, PUT and DELETE of /v1/namespaces/NS/KIND/NAME.
  HttpResponse Object(HttpRequest& req, const Principal& who, const KindInfo& kind,
                      const std::string& ns, const std::string& name);
  // /v1/tokens: list, create, revoke (DELETE /v1/tokens/ID), rotate-admin.
  HttpResponse Tokens(HttpRequest& req, const Principal& who,
                      const std::vector<std::string>& parts);
  // Request count by method and code; latency unless the answer is a stream.
  void Record(const std::string& method, int status, int64_t t0, bool timed);
  // GET on a list URL: a page of objects, or with ?watch=true a stream of changes.
  HttpResponse ListOrWatch(HttpRequest& req, const Principal& who, const KindInfo& kind,
                           const std::string& ns);
  HttpResponse Watch(HttpRequest& req, const Principal& who, const KindInfo& kind,
                     const std::string& ns);

  ResourceManager* resources_;
  Authenticator* auth_;
  identity::IdentityApi* identity_ = nullptr;
  StreamRelay* relay_ = nullptr;
  images::ImageService* images_ = nullptr;
  MetricsRegistry* metrics_;
};

// {"error":{"code":"NOT_FOUND","status":404,"message":"..."}} with the matching HTTP status.
HttpResponse ErrorResponse(const Status& status);

}  // namespace photon::server
