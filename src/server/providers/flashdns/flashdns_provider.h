// The flashdns driver: realizes DnsZone and DnsRecord objects on a flashdns server through
// its REST API (docs/flashdns.md, docs/providers.md).
//
// Ownership: every zone and record it creates carries the owner tag
// "<owner>:<kind>/<namespace>/<name>" (owner defaults to "photon"), so it only ever changes or
// removes what it made: zones from zone files or from other API clients are never touched.
// Zone names are global: a zone held by another DnsZone (another namespace) is an ERROR
// naming that owner.
//
// Config keys (photon-server `providers:` entry):
//   endpoint: http://127.0.0.1:5380   # flashdns API (required)
//   token_file: /path/api.token      # flashdns API token (required; read again on a 401)
//   owner: photon                    # owner tag prefix; distinct per photon cluster
//   nameservers: ns1.example.net.,ns2.example.net.   # NS records of new zones (optional)
//   zone_ttl: 3600                   # TTL of SOA/NS of new zones
//   timeout_ms: 2000                 # per HTTP call
#pragma once

#include <memory>

#include "server/providers/service_provider.h"

namespace photon::server {

StatusOr<std::unique_ptr<ServiceProvider>> NewFlashDnsProvider(const ProviderConfig& config);
// The same driver for private DNS zones (service_provider.h ZoneBackend); a separate instance.
StatusOr<std::unique_ptr<ZoneBackend>> NewFlashDnsZoneBackend(const ProviderConfig& config);

// "www" in "example.com." → "www.example.com."; "@" → the zone; "a.b." stays absolute.
// Lower case. Error when an absolute name is outside the zone.
StatusOr<std::string> DnsRecordFqdn(const std::string& name, const std::string& zone);
// "Example.COM" → "example.com."
std::string CanonicalZoneName(const std::string& name);

}  // namespace photon::server
