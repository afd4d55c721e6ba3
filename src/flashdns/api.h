// The flashdns REST API on the `api` listener: zone and record management (bearer token),
// reload, and the unauthenticated /healthz and /metrics.
//
//   GET    /v1/zones                      list zones
//   POST   /v1/zones                      {"name","ns":[...],"ttl"} create an API zone
//   GET    /v1/zones/{zone}               zone with its records
//   DELETE /v1/zones/{zone}
//   POST   /v1/zones/{zone}/records       {"name","type","ttl","data","health_check"?} → {"id",...}
//                                         (GSLB: a checked A/AAAA record leaves the answers
//                                         while its check fails, record_health.h)
//   DELETE /v1/zones/{zone}/records/{id}
//   POST   /v1/reload                     re-read the zone files
//
// Thread-safety: handlers run on the HTTP server's threads; state lives in ZoneManager.
#pragma once

#include <memory>
#include <string>

#include "common/http_server.h"
#include "common/metrics.h"
#include "flashdns/query_stats.h"
#include "flashdns/zone_manager.h"

namespace photon::flashdns {

// Reads DATA_DIR/api.token, creating it (mode 0600) with a random token when absent.
// `created` tells the caller to print where it is.
StatusOr<std::string> LoadOrCreateToken(const std::string& data_dir, bool* created);

class Api {
 public:
  Api(ZoneManager* zones, QueryStats* stats, MetricsRegistry* metrics, std::string token)
      : zones_(zones), stats_(stats), metrics_(metrics), token_(std::move(token)) {}
  HttpResponse Handle(HttpRequest& request);

 private:
  HttpResponse Route(HttpRequest& request);
  ZoneManager* zones_;
  QueryStats* stats_;
  MetricsRegistry* metrics_;
  std::string token_;
};

}  // namespace photon::flashdns
