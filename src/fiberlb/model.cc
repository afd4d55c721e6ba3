// Parsing and validation of fiberlb's state; see model.h.
#include "fiberlb/model.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <set>

#include "common/http_server.h"

namespace photon::fiberlb {
namespace {

using nlohmann::json;

Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(where + ": " + what);
}

// Refuses fields the type does not know: a misspelt option would otherwise be ignored.
Status OnlyFields(const json& j, const std::string& where, std::set<std::string> known) {
  if (!j.is_object()) return Bad(where, "must be an object");
  for (const auto& [key, value] : j.items()) {
    if (!known.contains(key)) return Bad(where + "." + key, "unknown field");
  }
  return absl::OkStatus();
}

Status GetString(const json& j, const std::string& key, const std::string& where, std::string* out,
                 bool required = false) {
  if (!j.contains(key)) {
    return required ? Bad(where + "." + key, "required") : absl::OkStatus();
  }
  if (!j[key].is_string()) return Bad(where + "." + key, "must be a string");
  *out = j[key].get<std::string>();
  return absl::OkStatus();
}

Status GetInt(const json& j, const std::string& key, const std::string& where, int* out, int min,
              int max) {
  if (!j.contains(key)) return absl::OkStatus();
  if (!j[key].is_number_integer()) return Bad(where + "." + key, "must be an integer");
  int64_t v = j[key].get<int64_t>();
  if (v < min || v > max) {
    return Bad(where + "." + key, "must be in " + std::to_string(min) + ".." + std::to_string(max));
  }
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

Status GetBool(const json& j, const std::string& key, const std::string& where, bool* out) {
  if (!j.contains(key)) return absl::OkStatus();
  if (!j[key].is_boolean()) return Bad(where + "." + key, "must be true or false");
  *out = j[key].get<bool>();
  return absl::OkStatus();
}

Status CheckAddress(const std::string& address, const std::string& where) {
  std::string host;
  int port = 0;
  if (!ParseHostPort(address, &host, &port).ok() || host.empty() || port == 0) {
    return Bad(where, "'" + address + "' is not HOST:PORT with a port in 1..65535");
  }
  for (char c : host) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != ':' && c != '-' && c != '*') {
      return Bad(where, "'" + host + "' is not an address");
    }
  }
  return absl::OkStatus();
}

StatusOr<Route> RouteFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(OnlyFields(j, where, {"host", "path_prefix", "pool"}));
  Route r;
  PHOTON_RETURN_IF_ERROR(GetString(j, "host", where, &r.host));
  PHOTON_RETURN_IF_ERROR(GetString(j, "path_prefix", where, &r.path_prefix));
  PHOTON_RETURN_IF_ERROR(GetString(j, "pool", where, &r.pool, true));
  if (r.host.empty() && r.path_prefix.empty()) return Bad(where, "needs a host or a path_prefix");
  for (char c : r.host) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
      return Bad(where + ".host", "not a host name");
    }
  }
  if (!r.path_prefix.empty() && r.path_prefix[0] != '/') {
    return Bad(where + ".path_prefix", "must start with '/'");
  }
  for (char c : r.path_prefix) {
    if (c <= ' ' || c > '~' || c == '\\' || c == '"' || c == '#') {
      return Bad(where + ".path_prefix", "characters outside URL paths");
    }
  }
  return r;
}

StatusOr<Certificate> CertificateFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(OnlyFields(j, where, {"cert", "key", "sni"}));
  Certificate c;
  PHOTON_RETURN_IF_ERROR(GetString(j, "cert", where, &c.cert_pem, true));
  PHOTON_RETURN_IF_ERROR(GetString(j, "key", where, &c.key_pem, true));
  if (j.contains("sni")) {
    if (!j["sni"].is_array()) return Bad(where + ".sni", "must be a list of names");
    for (const auto& n : j["sni"]) {
      if (!n.is_string()) return Bad(where + ".sni", "must be a list of names");
      std::string name = n.get<std::string>();
      for (char ch : name) {
        if (!isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '*') {
          return Bad(where + ".sni", "'" + name + "' is not a host name");
        }
      }
      c.sni.push_back(name);
    }
  }
  PHOTON_RETURN_IF_ERROR(CheckCertificate(c, where));
  return c;
}

StatusOr<HealthCheck> HealthCheckFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(
      OnlyFields(j, where, {"type", "path", "expect_status", "interval_ms", "rise", "fall"}));
  HealthCheck h;
  PHOTON_RETURN_IF_ERROR(GetString(j, "type", where, &h.type));
  if (h.type != "none" && h.type != "tcp" && h.type != "http") {
    return Bad(where + ".type", "must be none, tcp or http");
  }
  PHOTON_RETURN_IF_ERROR(GetString(j, "path", where, &h.path));
  if (h.path.empty() || h.path[0] != '/') return Bad(where + ".path", "must start with '/'");
  for (char c : h.path) {
    if (c <= ' ' || c > '~') return Bad(where + ".path", "characters outside URL paths");
  }
  if (h.type != "http" && (j.contains("path") || j.contains("expect_status"))) {
    return Bad(where + ".path", "only for type http");
  }
  PHOTON_RETURN_IF_ERROR(GetInt(j, "expect_status", where, &h.expect_status, 100, 599));
  PHOTON_RETURN_IF_ERROR(GetInt(j, "interval_ms", where, &h.interval_ms, 100, 3600000));
  PHOTON_RETURN_IF_ERROR(GetInt(j, "rise", where, &h.rise, 1, 100));
  PHOTON_RETURN_IF_ERROR(GetInt(j, "fall", where, &h.fall, 1, 100));
  return h;
}

std::string DefaultMemberName(const std::string& address) {
  std::string name;
  for (char c : address) name += (c == '.' || c == ':' || c == '[' || c == ']') ? '_' : c;
  while (!name.empty() && name.front() == '_') name.erase(0, 1);
  return name;
}

bool IsWildcard(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "*";
}

}  // namespace

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

Status CheckCertificate(const Certificate& c, const std::string& where) {
  BIO* cert_bio = BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size()));
  X509* x509 = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  if (x509 == nullptr) return Bad(where + ".cert", "not a PEM certificate");
  BIO* key_bio = BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  if (key == nullptr) {
    X509_free(x509);
    return Bad(where + ".key", "not an unencrypted PEM private key");
  }
  bool match = X509_check_private_key(x509, key) == 1;
  EVP_PKEY_free(key);
  X509_free(x509);
  if (!match) return Bad(where + ".key", "does not match the certificate");
  return absl::OkStatus();
}

StatusOr<Member> MemberFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(OnlyFields(j, where, {"name", "address", "weight"}));
  Member m;
  PHOTON_RETURN_IF_ERROR(GetString(j, "address", where, &m.address, true));
  PHOTON_RETURN_IF_ERROR(CheckAddress(m.address, where + ".address"));
  if (m.address.find('*') != std::string::npos ||
      IsWildcard(m.address.substr(0, m.address.rfind(':')))) {
    return Bad(where + ".address", "a member needs a concrete address");
  }
  m.name = DefaultMemberName(m.address);
  PHOTON_RETURN_IF_ERROR(GetString(j, "name", where, &m.name));
  if (!ValidName(m.name)) return Bad(where + ".name", "use 1..64 of [A-Za-z0-9_.-]");
  PHOTON_RETURN_IF_ERROR(GetInt(j, "weight", where, &m.weight, 0, 256));
  return m;
}

StatusOr<Listener> ListenerFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(
      OnlyFields(j, where,
                 {"name", "protocol", "address", "pool", "routes", "certificates", "http2",
                  "forwarded_for", "rate_limit", "announce"}));
  Listener l;
  PHOTON_RETURN_IF_ERROR(GetString(j, "name", where, &l.name, true));
  if (!ValidName(l.name)) return Bad(where + ".name", "use 1..64 of [A-Za-z0-9_.-]");
  PHOTON_RETURN_IF_ERROR(GetString(j, "protocol", where, &l.protocol, true));
  if (l.protocol == "udp") {
    return Bad(where + ".protocol", "udp is served by the L4 data path, not by HAProxy listeners");
  }
  if (l.protocol != "tcp" && l.protocol != "http" && l.protocol != "https") {
    return Bad(where + ".protocol", "must be tcp, http or https");
  }
  PHOTON_RETURN_IF_ERROR(GetString(j, "address", where, &l.address, true));
  PHOTON_RETURN_IF_ERROR(CheckAddress(l.address, where + ".address"));
  PHOTON_RETURN_IF_ERROR(GetString(j, "pool", where, &l.pool, true));
  PHOTON_RETURN_IF_ERROR(GetBool(j, "announce", where, &l.announce));
  if (l.announce) {
    std::string host;
    int port = 0;
    (void)ParseHostPort(l.address, &host, &port);
    in_addr a{};
    if (IsWildcard(host) || inet_pton(AF_INET, host.c_str(), &a) != 1) {
      return Bad(where + ".announce",
                 "needs an IPv4 address (the VIP) in address, not '" + l.address + "'");
    }
  }
  bool l7 = l.protocol != "tcp";
  // L7 options on a TCP listener would be silently meaningless: refuse them by name.
  for (const char* key : {"routes", "certificates", "http2", "forwarded_for", "rate_limit"}) {
    if (!l7 && j.contains(key)) return Bad(where + "." + key, "L7 option on a tcp listener");
  }
  if (j.contains("routes")) {
    if (!j["routes"].is_array()) return Bad(where + ".routes", "must be a list");
    for (size_t i = 0; i < j["routes"].size(); ++i) {
      auto r = RouteFromJson(j["routes"][i], where + ".routes[" + std::to_string(i) + "]");
      if (!r.ok()) return r.status();
      l.routes.push_back(*r);
    }
  }
  if (j.contains("certificates")) {
    if (l.protocol != "https") return Bad(where + ".certificates", "only for https listeners");
    if (!j["certificates"].is_array()) return Bad(where + ".certificates", "must be a list");
    for (size_t i = 0; i < j["certificates"].size(); ++i) {
      auto c = CertificateFromJson(j["certificates"][i],
                                   where + ".certificates[" + std::to_string(i) + "]");
      if (!c.ok()) return c.status();
      l.certificates.push_back(*c);
    }
  }
  if (l.protocol == "https" && l.certificates.empty()) {
    return Bad(where + ".certificates", "an https listener needs at least one");
  }
  PHOTON_RETURN_IF_ERROR(GetBool(j, "http2", where, &l.http2));
  if (l.protocol == "http" && j.contains("http2")) {
    return Bad(where + ".http2", "only for https listeners (ALPN)");
  }
  PHOTON_RETURN_IF_ERROR(GetBool(j, "forwarded_for", where, &l.forwarded_for));
  if (j.contains("rate_limit")) {
    const json& r = j["rate_limit"];
    std::string w = where + ".rate_limit";
    PHOTON_RETURN_IF_ERROR(OnlyFields(r, w, {"requests", "period_s"}));
    PHOTON_RETURN_IF_ERROR(GetInt(r, "requests", w, &l.rate_limit.requests, 0, 100000000));
    PHOTON_RETURN_IF_ERROR(GetInt(r, "period_s", w, &l.rate_limit.period_s, 1, 3600));
  }
  return l;
}

StatusOr<Pool> PoolFromJson(const json& j, const std::string& where) {
  PHOTON_RETURN_IF_ERROR(
      OnlyFields(j, where,
                 {"name", "algorithm", "members", "health_check", "proxy_protocol", "sticky",
                  "drain_timeout_ms", "passive_ejection"}));
  Pool p;
  PHOTON_RETURN_IF_ERROR(GetString(j, "name", where, &p.name, true));
  if (!ValidName(p.name)) return Bad(where + ".name", "use 1..64 of [A-Za-z0-9_.-]");
  PHOTON_RETURN_IF_ERROR(GetString(j, "algorithm", where, &p.algorithm));
  if (p.algorithm == "maglev") {
    return Bad(where + ".algorithm",
               "maglev is the L4 data path's; HAProxy pools take "
               "roundrobin or leastconn");
  }
  if (p.algorithm != "roundrobin" && p.algorithm != "leastconn") {
    return Bad(where + ".algorithm", "must be roundrobin or leastconn");
  }
  if (j.contains("members")) {
    if (!j["members"].is_array()) return Bad(where + ".members", "must be a list");
    std::set<std::string> names;
    for (size_t i = 0; i < j["members"].size(); ++i) {
      std::string w = where + ".members[" + std::to_string(i) + "]";
      auto m = MemberFromJson(j["members"][i], w);
      if (!m.ok()) return m.status();
      if (!names.insert(m->name).second) return Bad(w + ".name", "'" + m->name + "' twice");
      p.members.push_back(*m);
    }
  }
  if (j.contains("health_check")) {
    auto h = HealthCheckFromJson(j["health_check"], where + ".health_check");
    if (!h.ok()) return h.status();
    p.health_check = *h;
  }
  PHOTON_RETURN_IF_ERROR(GetString(j, "proxy_protocol", where, &p.proxy_protocol));
  if (!p.proxy_protocol.empty() && p.proxy_protocol != "v2") {
    return Bad(where + ".proxy_protocol", "must be v2 (or absent)");
  }
  PHOTON_RETURN_IF_ERROR(GetBool(j, "sticky", where, &p.sticky));
  PHOTON_RETURN_IF_ERROR(GetInt(j, "drain_timeout_ms", where, &p.drain_timeout_ms, 0, 3600000));
  if (j.contains("passive_ejection")) {
    std::string w = where + ".passive_ejection";
    PHOTON_RETURN_IF_ERROR(OnlyFields(j["passive_ejection"], w, {"errors"}));
    PHOTON_RETURN_IF_ERROR(GetInt(j["passive_ejection"], "errors", w, &p.passive_errors, 1, 1000));
    // A member marked down by its traffic comes back only through its health check.
    if (p.health_check.type == "none") return Bad(w, "needs a health_check to bring members back");
  }
  return p;
}

StatusOr<State> StateFromJson(const json& j) {
  State s;
  for (const char* kind : {"listeners", "pools"}) {
    if (!j.contains(kind)) continue;
    if (!j[kind].is_array()) return Bad(kind, "must be a list");
    for (size_t i = 0; i < j[kind].size(); ++i) {
      std::string where = std::string(kind) + "[" + std::to_string(i) + "]";
      const json& item = j[kind][i];
      if (std::string(kind) == "listeners") {
        auto l = ListenerFromJson(item, where);
        if (!l.ok()) return l.status();
        if (s.listeners.contains(l->name)) return Bad(where + ".name", "'" + l->name + "' twice");
        s.listeners[l->name] = *l;
      } else {
        auto p = PoolFromJson(item, where);
        if (!p.ok()) return p.status();
        if (s.pools.contains(p->name)) return Bad(where + ".name", "'" + p->name + "' twice");
        s.pools[p->name] = *p;
      }
    }
  }
  return s;
}

json ToJson(const Member& m) {
  return {{"name", m.name}, {"address", m.address}, {"weight", m.weight}};
}

json ToJson(const Pool& p) {
  json members = json::array();
  for (const auto& m : p.members) members.push_back(ToJson(m));
  json hc = {{"type", p.health_check.type},
             {"interval_ms", p.health_check.interval_ms},
             {"rise", p.health_check.rise},
             {"fall", p.health_check.fall}};
  if (p.health_check.type == "http") {
    hc["path"] = p.health_check.path;
    hc["expect_status"] = p.health_check.expect_status;
  }
  json j = {{"name", p.name},     {"algorithm", p.algorithm},
            {"members", members}, {"health_check", hc},
            {"sticky", p.sticky}, {"drain_timeout_ms", p.drain_timeout_ms}};
  if (!p.proxy_protocol.empty()) j["proxy_protocol"] = p.proxy_protocol;
  if (p.passive_errors > 0) j["passive_ejection"] = {{"errors", p.passive_errors}};
  return j;
}

std::string AnnouncedVip(const Listener& l) {
  if (!l.announce) return "";
  return l.address.substr(0, l.address.rfind(':'));
}

json ToJson(const Listener& l) {
  json j = {{"name", l.name}, {"protocol", l.protocol}, {"address", l.address}, {"pool", l.pool}};
  if (l.announce) j["announce"] = true;
  if (l.protocol == "tcp") return j;
  json routes = json::array();
  for (const auto& r : l.routes) {
    json rj = {{"pool", r.pool}};
    if (!r.host.empty()) rj["host"] = r.host;
    if (!r.path_prefix.empty()) rj["path_prefix"] = r.path_prefix;
    routes.push_back(rj);
  }
  j["routes"] = routes;
  j["forwarded_for"] = l.forwarded_for;
  j["rate_limit"] = {{"requests", l.rate_limit.requests}, {"period_s", l.rate_limit.period_s}};
  if (l.protocol == "https") {
    j["http2"] = l.http2;
    json certs = json::array();
    for (const auto& c : l.certificates) {
      certs.push_back({{"cert", c.cert_pem}, {"key", c.key_pem}, {"sni", c.sni}});
    }
    j["certificates"] = certs;
  }
  return j;
}

json ToJson(const State& s) {
  json listeners = json::array();
  for (const auto& [name, l] : s.listeners) listeners.push_back(ToJson(l));
  json pools = json::array();
  for (const auto& [name, p] : s.pools) pools.push_back(ToJson(p));
  return {{"listeners", listeners}, {"pools", pools}};
}

Status Validate(const State& state, const std::string& api_address) {
  // Two listeners overlap when they share a port and an address, a wildcard covering all.
  std::vector<std::pair<std::string, std::string>> bound;  // (where, address)
  for (const auto& [name, l] : state.listeners)
    bound.push_back({"listeners." + name + ".address", l.address});
  if (!api_address.empty()) bound.push_back({"api", api_address});
  for (size_t i = 0; i < bound.size(); ++i) {
    std::string host_a;
    int port_a = 0;
    PHOTON_RETURN_IF_ERROR(ParseHostPort(bound[i].second, &host_a, &port_a));
    for (size_t k = 0; k < i; ++k) {
      std::string host_b;
      int port_b = 0;
      PHOTON_RETURN_IF_ERROR(ParseHostPort(bound[k].second, &host_b, &port_b));
      if (port_a != port_b) continue;
      if (host_a == host_b || IsWildcard(host_a) || IsWildcard(host_b)) {
        size_t a = i, b = k;  // name the listener, not the API, as the bad field
        if (bound[a].first == "api") std::swap(a, b);
        return Bad(bound[a].first, "'" + bound[a].second + "' overlaps " + bound[b].first + " ('" +
                                       bound[b].second + "')");
      }
    }
  }
  std::map<std::string, std::string> mode_of_pool;  // pool → "tcp" | "http"
  for (const auto& [name, l] : state.listeners) {
    std::string where = "listeners." + name;
    std::vector<std::string> pools = {l.pool};
    for (const auto& r : l.routes) pools.push_back(r.pool);
    std::string mode = l.protocol == "tcp" ? "tcp" : "http";
    for (const auto& pool : pools) {
      auto it = state.pools.find(pool);
      if (it == state.pools.end()) return Bad(where + ".pool", "no pool '" + pool + "'");
      if (mode == "tcp" && (it->second.sticky || it->second.passive_errors > 0)) {
        return Bad(where + ".pool", "pool '" + pool +
                                        "' has L7 options (sticky, passive_ejection) but the "
                                        "listener is tcp");
      }
      auto [m, inserted] = mode_of_pool.emplace(pool, mode);
      if (!inserted && m->second != mode) {
        return Bad(where + ".pool", "pool '" + pool + "' is used by both tcp and http listeners");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace photon::fiberlb
