// The gslb driver: realizes GlobalService objects (seed 003 GSLB, docs/flashdns.md
// "GlobalService"). A GlobalService's name in one of its namespace's DnsZones is answered by
// flashdns with one A/AAAA record per member VIP that is up; this driver decides which are.
//
// Several checkers connect to every member VIP each interval: photon-server itself ("self")
// and flashdns servers through their POST /v1/probe. Each checker calls a member down after
// `fall` failures in a row and up after `rise` successes. A member leaves the answer only when
// at least `quorum` checkers (two or more) call it down and no more call it up, so one checker's
// failure, or its own network trouble, removes nothing. When every member is down all are
// served, as flashdns does: an empty answer helps no client.
//
// Config keys (photon-server `providers:` entry):
//   endpoint: http://127.0.0.1:5380   # the flashdns that serves the DnsZones (required)
//   token_file: /path/api.token       # its API token (required)
//   checkers: self,flashdns           # default; items: self, flashdns (the endpoint above),
//                                     # or http://HOST:PORT=/path/to/that/flashdns/api.token
//   quorum: 2                         # checkers that must agree a member is down (2..checkers)
//   owner: photon                     # the flashdns driver's owner tag (its zones' owners)
//   timeout_ms: 2000                  # per HTTP call
#pragma once

#include <memory>

#include "server/providers/service_provider.h"

namespace photon::server {

StatusOr<std::unique_ptr<ServiceProvider>> NewGslbProvider(const ProviderConfig& config);

}  // namespace photon::server
