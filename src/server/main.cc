// photon-server: the control plane. See docs/architecture.md.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "common/log.h"
#include "common/util.h"
#include "server/server.h"

int main(int argc, char** argv) {
  photon::DisableAbslDeadlockDetection();
  CLI::App app{"photon-server: the PhotonCloud control plane"};
  photon::server::ServerOptions opts;
  std::string config, log_level = "info";
  app.add_option("--config", config,
                 "YAML config file (keys: data_dir, listen, grpc_listen, store, ...)");
  app.add_option("--data-dir", opts.data_dir, "state directory (store, tokens)");
  app.add_option("--listen", opts.listen, "REST listen address HOST:PORT");
  app.add_option("--grpc-listen", opts.grpc_listen, "gRPC listen address HOST:PORT");
  app.add_option("--store", opts.store, "sqlite | etcd://host:port[,host:port...]");
  app.add_option("--leader-lease-ttl", opts.leader_lease_ttl_s,
                 "seconds: with several servers on etcd, how long the leader's lease outlives "
                 "its last renewal (default 2)");
  app.add_option("--advertise", opts.advertise,
                 "URL other servers and /healthz name this server by (default: from --listen)");
  bool join = false;
  app.add_flag("--join", join,
               "join the control plane already on --store (etcd://...): PHOTON_TOKEN holds one "
               "of its admin tokens (see docs/ha.md)");
  app.add_option("--ca-from", opts.join_ca_from,
                 "with --join on TLS with the built-in CA: https://SERVER:PORT of the control "
                 "plane, whose CA this server takes (see docs/ha.md)");
  app.add_option("--ca-hash", opts.join_ca_hash,
                 "with --ca-from: sha256:... of the control plane's CA (its servers log it)");
  app.add_option("--http-threads", opts.http_threads,
                 "REST I/O threads (default 0: twice the cores, 4 to 16)");
  app.add_option("--node-suspect-after", opts.node_suspect_after_ms,
                 "ms without a node heartbeat before it is SUSPECT (and probed)");
  app.add_option("--node-down-after", opts.node_down_after_ms,
                 "ms without a node heartbeat before it is DOWN and its computes move");
  app.add_option("--prometheus-url", opts.prometheus_url,
                 "http://HOST:PORT of the Prometheus the long-term statistics are computed from "
                 "(docs/operations.md; default: none)");
  app.add_option("--stats-day-seconds", opts.stats_day_s,
                 "length of a statistics day (default 86400; shorter for tests)");
  app.add_option("--stats-month-days", opts.stats_month_days,
                 "days of a statistics month when the day is not 86400 s (default: calendar)");
  app.add_option("--join-token-ttl", opts.join_token_ttl_s,
                 "seconds a join token stays valid (default 86400: 24 h)");
  app.add_option("--agent-cert-ttl", opts.agent_cert_ttl_s,
                 "seconds an agent certificate stays valid; agents renew at 2/3 (default 86400)");
  app.add_option("--token-ttl", opts.token_ttl_s,
                 "seconds a token made without --ttl stays valid (default 2592000: 30 days)");
  app.add_option("--audit-retention-age", opts.audit_retention_age_s,
                 "seconds an audit record is kept (default 2592000: 30 days)");
  app.add_option("--audit-retention-count", opts.audit_retention_count,
                 "audit records kept at most, the newest (default 100000)");
  app.add_option("--watch-bookmark-interval", opts.watch_bookmark_interval_ms,
                 "ms between BOOKMARK events on every watch (default 30000; 0: none)");
  app.add_flag("--scheduler-binpack", opts.scheduler_binpack,
               "fill the fullest node that fits instead of the emptiest");
  app.add_option("--tls", opts.tls,
                 "auto (TLS unless listening on loopback only) | on | off; default auto");
  app.add_option("--tls-cert", opts.tls_cert,
                 "PEM certificate chain for REST and gRPC (default: generated in DATA_DIR/tls)");
  app.add_option("--tls-key", opts.tls_key, "PEM private key of --tls-cert");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  // Parse once to find --config, load it, then parse again so flags override the file.
  CLI11_PARSE(app, argc, argv);
  if (!config.empty()) {
    if (auto st = photon::server::LoadServerConfig(config, &opts); !st.ok()) {
      std::cerr << "photon-server: " << st.message() << "\n";
      return 2;
    }
    CLI11_PARSE(app, argc, argv);
  }
  if (join) {
    const char* token = getenv("PHOTON_TOKEN");
    if (token == nullptr || *token == '\0') {
      std::cerr << "photon-server: --join needs PHOTON_TOKEN, an admin token of the control "
                   "plane (cat DATA_DIR/admin.token on a server of it)\n";
      return 2;
    }
    if (opts.store.rfind("etcd://", 0) != 0) {
      std::cerr << "photon-server: --join needs --store etcd://... (the control plane's store)\n";
      return 2;
    }
    opts.join_admin_token = token;
  } else if (!opts.join_ca_from.empty() || !opts.join_ca_hash.empty()) {
    std::cerr << "photon-server: --ca-from and --ca-hash go with --join\n";
    return 2;
  }
  if (auto st = photon::InitLogging("photon-server", log_level); !st.ok()) {
    std::cerr << "photon-server: " << st.message() << "\n";
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto server = photon::server::Server::Start(opts);
  if (!server.ok()) {
    std::cerr << "photon-server: " << server.status().message() << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  std::cerr << "photon-server: signal " << sig << ", stopping\n";
  (*server)->Stop();
  return 0;
}
