// photon-hollow: many simulated nodes in one process, for control-plane tests and benchmarks
// at 1,000-10,000 nodes on one machine. See fleet.h and docs/hollow.md.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <iostream>

#include "agent/config.h"
#include "agent/hollow/fleet.h"
#include "common/http_server.h"
#include "common/log.h"
#include "spdlog/spdlog.h"

namespace {

std::set<std::string> SplitCommas(const std::string& s) {
  std::set<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.insert(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  photon::hollow::FleetOptions o;
  std::string labels, drivers = "process,container,vm", listen, log_level = "warn";
  CLI::App app{"photon-hollow: simulated nodes (kubemark-style) against a real control plane"};
  app.add_option("--server", o.server, "control plane REST address http://HOST:PORT")->required();
  app.add_option("--join-token", o.join_token_file, "the server's join.token")->required();
  app.add_option("--data-dir", o.data_dir, "where each node's credential is kept (0700)")
      ->required();
  app.add_option("--nodes", o.nodes, "number of simulated nodes")->check(CLI::Range(1, 100000));
  app.add_option("--name-prefix", o.name_prefix, "node names are PREFIX-INDEX");
  app.add_option("--first-index", o.first_index, "index of the first node");
  app.add_option("--heartbeat-seconds", o.heartbeat_seconds, "heartbeat interval per node")
      ->check(CLI::Range(1, 3600));
  app.add_option("--vcpu", o.vcpu, "vCPU capacity per node")->check(CLI::Range(1, 1024));
  app.add_option("--memory-mb", o.memory_mb, "memory capacity per node (MiB)")
      ->check(CLI::Range(int64_t{1}, int64_t{64} << 20));
  app.add_option("--disk-gb", o.disk_gb, "disk capacity per node (GiB)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--drivers", drivers, "drivers every node offers, comma-separated");
  app.add_option("--labels", labels, "labels of every node k=v,k2=v2");
  app.add_option("--threads", o.threads, "event loops")->check(CLI::Range(1, 64));
  app.add_option("--connections", o.connections, "keep-alive connections per loop")
      ->check(CLI::Range(1, 1024));
  app.add_option("--start-rate", o.start_per_second, "nodes brought up per second")
      ->check(CLI::Range(1, 100000));
  app.add_option("--listen", listen,
                 "HOST:PORT for /healthz, /metrics and /stats (also every node's address)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  CLI11_PARSE(app, argc, argv);

  if (o.server.rfind("http://", 0) != 0 && o.server.find("://") == std::string::npos) {
    o.server = "http://" + o.server;
  }
  o.drivers = SplitCommas(drivers);
  if (auto s = photon::agent::ParseLabels(labels, &o.labels); !s.ok()) {
    std::cerr << "--labels: " << s.message() << "\n";
    return 2;
  }
  if (auto s = photon::InitLogging("photon-hollow", log_level); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The HTTP server starts first: its port is every node's advertised address.
  std::atomic<photon::hollow::Fleet*> fleet_ptr{nullptr};
  std::unique_ptr<photon::HttpServer> http;
  if (!listen.empty()) {
    photon::HttpServerOptions hopts;
    hopts.listen = listen;
    hopts.threads = 1;
    hopts.name = "hollow";
    auto started = photon::HttpServer::Start(hopts, [&fleet_ptr](photon::HttpRequest& req) {
      photon::hollow::Fleet* fleet = fleet_ptr.load();
      if (fleet == nullptr) return photon::HttpResponse::Text(503, "starting\n");
      if (req.path == "/healthz") {
        // Like an agent's: the process is up (the control plane probes this for SUSPECT nodes).
        return photon::HttpResponse::Text(200, "ok\n");
      }
      if (req.path == "/metrics") {
        auto r = photon::HttpResponse::Text(200, fleet->Metrics());
        r.content_type = "text/plain; version=0.0.4";
        return r;
      }
      if (req.path == "/stats") {
        return photon::HttpResponse::Json(200, fleet->Stats(req.query.count("reset") > 0).dump());
      }
      return photon::HttpResponse::Text(404, "not found\n");
    });
    if (!started.ok()) {
      std::cerr << "--listen: " << started.status().message() << "\n";
      return 2;
    }
    http = std::move(*started);
    o.address = "127.0.0.1:" + std::to_string(http->port());
    spdlog::info("serving /healthz, /metrics and /stats on port {}", http->port());
  }
  photon::hollow::Fleet fleet(o);
  if (auto s = fleet.Start(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  fleet_ptr = &fleet;
  spdlog::info("{} hollow nodes {}-{}.. starting against {}", o.nodes, o.name_prefix, o.first_index,
               o.server);
  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("signal {}: stopping", sig);
  fleet_ptr = nullptr;
  if (http) http->Stop();
  fleet.Stop();
  spdlog::default_logger()->flush();
  return 0;
}
