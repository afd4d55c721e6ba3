// HAProxy configuration text; see haproxy_config.h. Every value written here was validated by
// model.cc (names, addresses, paths), so none can break out of its line.
#include "fiberlb/haproxy_config.h"

#include <fmt/format.h>

namespace photon::fiberlb {
namespace {

// Global and defaults sections. Notes on choices:
// - expose-fd listeners: a reloaded worker takes the listening sockets over from the old one
//   (no refused connection during a reload);
// - server-state-file: health, drain and weights survive a reload;
// - idle-close-on-response: an old worker answers the next request of each idle keep-alive
//   connection with "Connection: close" instead of closing it under a client about to send;
// - redispatch/retries: a connection refused by a member that just died is retried elsewhere.
std::string Header(const RenderPaths& paths) {
  std::string out = fmt::format(
      "global\n"
      "  stats socket {0}/admin.sock mode 600 level admin expose-fd listeners\n"
      "  server-state-file {0}/server-state\n"
      "  hard-stop-after 60s\n"
      "  tune.ssl.default-dh-param 2048\n",
      paths.run_dir);
  if (paths.access_log) out += "  log stdout format raw local0 info\n";
  out +=
      "\ndefaults\n"
      "  log global\n"
      "  timeout connect 3s\n"
      "  timeout client 60s\n"
      "  timeout server 60s\n"
      "  timeout http-keep-alive 10s\n"
      "  load-server-state-from-file global\n"
      "  option idle-close-on-response\n"
      "  option redispatch\n"
      "  retries 3\n";
  return out;
}

std::string Frontend(const Listener& l, const RenderPaths& paths) {
  std::string out = fmt::format("\nfrontend l_{}\n", l.name);
  std::string bind = "  bind " + l.address;
  if (l.protocol == "https") {
    bind += " ssl crt-list " + CrtListPath(paths, l.name);
    bind += l.http2 ? " alpn h2,http/1.1" : " alpn http/1.1";
  }
  out += bind + "\n";
  if (l.protocol == "tcp") {
    out += "  mode tcp\n  option tcplog\n";
  } else {
    out += "  mode http\n  option httplog\n";
    if (l.forwarded_for) out += "  option forwardfor\n";
    if (l.rate_limit.requests > 0) {
      out += fmt::format(
          "  stick-table type ipv6 size 1m expire {0}s store http_req_rate({0}s)\n"
          "  http-request track-sc0 src\n"
          "  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {1} }}\n",
          l.rate_limit.period_s, l.rate_limit.requests);
    }
    for (const auto& r : l.routes) {
      std::string cond;
      if (!r.host.empty()) cond += " { req.hdr(host),field(1,:),lower -m str " + r.host + " }";
      if (!r.path_prefix.empty()) cond += " { path_beg " + r.path_prefix + " }";
      out += "  use_backend " + BackendName(r.pool) + " if" + cond + "\n";
    }
  }
  out += "  default_backend " + BackendName(l.pool) + "\n";
  return out;
}

std::string Backend(const Pool& p, const std::string& mode, const std::vector<Member>& draining) {
  std::string out = fmt::format("\nbackend {}\n  mode {}\n  balance {}\n", BackendName(p.name),
                                mode, p.algorithm);
  if (p.health_check.type == "http") {
    out += fmt::format("  option httpchk GET {}\n  http-check expect status {}\n",
                       p.health_check.path, p.health_check.expect_status);
  }
  if (p.sticky) out += "  cookie FIBERLB insert indirect nocache\n";
  for (const auto& m : p.members) {
    out += "  server " + m.name + " " + m.address + " " + ServerOptions(p, m) + "\n";
  }
  for (Member m : draining) {
    m.weight = 0;
    out += "  server " + m.name + " " + m.address + " " + ServerOptions(p, m) + "\n";
  }
  return out;
}

}  // namespace

std::string BackendName(const std::string& pool) { return "p_" + pool; }

std::string ServerOptions(const Pool& pool, const Member& member) {
  std::string out = "weight " + std::to_string(member.weight);
  const HealthCheck& h = pool.health_check;
  if (h.type != "none") {
    out += fmt::format(" check inter {} rise {} fall {}", h.interval_ms, h.rise, h.fall);
  }
  if (pool.proxy_protocol == "v2") {
    out += " send-proxy-v2";
    if (h.type != "none") out += " check-send-proxy";
  }
  if (pool.sticky) out += " cookie " + member.name;
  if (pool.passive_errors > 0) {
    out += " observe layer7 error-limit " + std::to_string(pool.passive_errors) +
           " on-error mark-down";
  }
  return out;
}

std::string CrtListPath(const RenderPaths& paths, const std::string& listener) {
  return paths.run_dir + "/certs/" + listener + ".crt-list";
}

std::string CertificatePath(const RenderPaths& paths, const std::string& listener, size_t i) {
  return paths.run_dir + "/certs/" + listener + "-" + std::to_string(i) + ".pem";
}

std::string CrtList(const RenderPaths& paths, const Listener& listener) {
  std::string out;
  for (size_t i = 0; i < listener.certificates.size(); ++i) {
    out += CertificatePath(paths, listener.name, i);
    for (const auto& name : listener.certificates[i].sni) out += " " + name;
    out += "\n";
  }
  return out;
}

std::string RenderConfig(const State& state, const RenderPaths& paths,
                         const std::map<std::string, std::vector<Member>>& draining) {
  std::string out = Header(paths);
  std::map<std::string, std::string> mode_of_pool;
  for (const auto& [name, l] : state.listeners) {
    out += Frontend(l, paths);
    std::string mode = l.protocol == "tcp" ? "tcp" : "http";
    mode_of_pool[l.pool] = mode;
    for (const auto& r : l.routes) mode_of_pool[r.pool] = mode;
  }
  static const std::vector<Member> kNone;
  for (const auto& [name, p] : state.pools) {
    auto mode = mode_of_pool.find(name);
    auto d = draining.find(name);
    // A pool no listener uses still gets a backend so members and checks can be managed.
    out += Backend(p, mode == mode_of_pool.end() ? "http" : mode->second,
                   d == draining.end() ? kNone : d->second);
  }
  return out;
}

}  // namespace photon::fiberlb
