// The fiberlb REST API on the `api` listener (bearer token), plus the unauthenticated
// /healthz (200 while HAProxy's runtime API answers, else 503) and /metrics.
//
//   GET    /v1/state                          listeners and pools
//   GET    /v1/listeners                      PUT|GET|DELETE /v1/listeners/{name}
//   GET    /v1/pools                          PUT|GET|DELETE /v1/pools/{name}  (GET: live health)
//   POST   /v1/pools/{pool}/members           {"address","name"?,"weight"?} add a member
//   PUT    /v1/pools/{pool}/members/{name}    add or change (weight, address)
//   DELETE /v1/pools/{pool}/members/{name}    drain, then remove (202)
//   GET    /v1/l4                             L4 node: draining, announced VIPs, listeners
//   PUT    /v1/l4                             {"draining": bool} withdraw / announce VIPs
//   GET    /v1/l4/listeners                   PUT|GET|DELETE /v1/l4/listeners/{name}
//   GET    /v1/vips                           announced L7 VIPs: draining, held, announced
//   PUT    /v1/vips                           {"draining": bool} withdraw / announce them
//
// Bad input is 400 naming the field. Thread-safety: handlers run on the HTTP server's
// threads; state lives in Lb.
#pragma once

#include <string>

#include "common/http_server.h"
#include "fiberlb/l4_service.h"
#include "fiberlb/lb.h"

namespace photon::fiberlb {

// Reads DATA_DIR/api.token, creating it (mode 0600) with a random token when absent.
StatusOr<std::string> LoadOrCreateToken(const std::string& data_dir, bool* created);

class Api {
 public:
  // `l4` may be null (no l4 section): its paths answer 404.
  Api(Lb* lb, L4Service* l4, std::string token) : lb_(lb), l4_(l4), token_(std::move(token)) {}
  HttpResponse Handle(HttpRequest& request);

 private:
  HttpResponse Route(HttpRequest& request);
  HttpResponse Listeners(HttpRequest& request, const std::vector<std::string>& parts);
  HttpResponse Pools(HttpRequest& request, const std::vector<std::string>& parts);
  HttpResponse Members(HttpRequest& request, const std::vector<std::string>& parts);
  HttpResponse L4(HttpRequest& request, const std::vector<std::string>& parts);
  HttpResponse Vips(HttpRequest& request);
  Lb* lb_;
  L4Service* l4_;
  std::string token_;
};

}  // namespace photon::fiberlb
