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
  app.add_option("--http-threads", opts.http_threads,
                 "REST I/O threads (default 0: twice the cores, 4 to 16)");
  app.add_option("--node-suspect-after", opts.node_suspect_after_ms,
                 "ms without a node heartbeat before it is SUSPECT (and probed)");
  app.add_option("--node-down-after", opts.node_down_after_ms,
                 "ms without a node heartbeat before it is DOWN and its computes move");
  app.add_option("--join-token-ttl", opts.join_token_ttl_s,
                 "seconds a join token stays valid (default 86400: 24 h)");
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
