// fiberlb's desired state: listeners, pools and their members, as the YAML configuration and
// the REST API describe them. One parser (from JSON; YAML is converted first) refuses unknown
// fields and bad values with an error naming the field ("listeners.web.certificates[1]: ..."),
// and Validate checks the state as a whole (overlapping listeners, unknown pools, L7 options
// on TCP listeners). Plain data: thread-compatible.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::fiberlb {

struct Certificate {
  std::string cert_pem;          // certificate chain
  std::string key_pem;           // its private key
  std::vector<std::string> sni;  // names it serves; empty: the names in the certificate
};

struct Route {  // first match wins; an empty host or path matches everything
  std::string host;
  std::string path_prefix;
  std::string pool;
};

struct RateLimit {
  int requests = 0;  // per client address and period; 0: off
  int period_s = 10;
};

struct Listener {
  std::string name;
  std::string protocol;  // tcp | http | https
  std::string address;   // host:port
  std::string pool;      // default pool
  std::vector<Route> routes;
  std::vector<Certificate> certificates;  // https: the first is the default
  bool http2 = true;                      // https: ALPN h2 offered to clients
  bool forwarded_for = true;              // http/https: X-Forwarded-For to members
  RateLimit rate_limit;
  // The address's host is a VIP this node holds on its loopback and announces by BGP while the
  // listener's pool has a member UP and the node is not draining (l7_vips.h; needs `bgp`).
  bool announce = false;
};

// The IPv4 VIP of an announced listener ("" when it is not announced).
std::string AnnouncedVip(const Listener& l);

struct HealthCheck {
  std::string type = "none";  // none | tcp | http
  std::string path = "/";
  int expect_status = 200;
  int interval_ms = 2000;
  int rise = 2;
  int fall = 3;
};

struct Member {
  std::string name;  // default: the address with '.' and ':' turned into '_'
  std::string address;
  int weight = 1;  // 0..256; 0 takes no new traffic
};

struct Pool {
  std::string name;
  std::string algorithm = "roundrobin";  // roundrobin | leastconn
  std::vector<Member> members;
  HealthCheck health_check;
  std::string proxy_protocol;  // "" | "v2": PROXY protocol v2 header to members
  bool sticky = false;         // cookie-based session persistence (HTTP listeners)
  int drain_timeout_ms = 10000;
  // Passive ejection (HTTP pools): this many consecutive failed responses (5xx, resets,
  // timeouts) mark a member down until its health check passes again; 0: off.
  int passive_errors = 0;
};

struct State {
  std::map<std::string, Listener> listeners;
  std::map<std::string, Pool> pools;
};

// Parsers: `where` prefixes error messages ("listeners.web"). InvalidArgument on bad input.
StatusOr<Listener> ListenerFromJson(const nlohmann::json& j, const std::string& where);
StatusOr<Pool> PoolFromJson(const nlohmann::json& j, const std::string& where);
StatusOr<Member> MemberFromJson(const nlohmann::json& j, const std::string& where);
// {"listeners": [...], "pools": [...]}; other keys are the caller's to check.
StatusOr<State> StateFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const Listener& l);
nlohmann::json ToJson(const Pool& p);
nlohmann::json ToJson(const Member& m);
nlohmann::json ToJson(const State& s);

// Whole-state checks; `api_address` (may be empty) must not overlap a listener either.
Status Validate(const State& state, const std::string& api_address);

// Checks that a PEM certificate and key parse and belong together.
Status CheckCertificate(const Certificate& c, const std::string& where);

// HAProxy object names: letters, digits, '_', '-', '.', 1..64 characters.
bool ValidName(const std::string& name);

}  // namespace photon::fiberlb
