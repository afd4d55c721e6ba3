// flashdns: standalone authoritative DNS server. Parses flags, wires the zone manager, the
// DNS transport and the API together, and turns SIGHUP into a reload and SIGINT/SIGTERM into
// a clean stop. Everything else lives in flashdns_lib so tests can link it.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "common/file_util.h"
#include "common/log.h"
#include "flashdns/api.h"
#include "flashdns/config.h"
#include "flashdns/record_health.h"
#include "flashdns/server.h"
#include "flashdns/zone_manager.h"

namespace photon::flashdns {
namespace {

int Run(int argc, char** argv) {
  CLI::App app{"flashdns: authoritative DNS server"};
  std::string config_path;
  std::string log_level = "info";
  app.add_option("--config", config_path, "YAML configuration file")->required();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  CLI11_PARSE(app, argc, argv);

  if (Status s = InitLogging("flashdns", log_level); !s.ok()) {
    fprintf(stderr, "flashdns: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    spdlog::error("{}", std::string(config.status().message()));
    return 2;
  }
  if (Status s = MakeDirs(config->data_dir, 0700); !s.ok()) {
    spdlog::error("data_dir: {}", std::string(s.message()));
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a client that closed its TCP socket must not stop the server
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ZoneManager zones(*config);
  if (Status s = zones.Load(/*initial=*/true); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 1;
  }
  QueryStats stats;
  MetricsRegistry metrics;
  DnsServerOptions options;
  options.listen = config->listen;
  options.workers = config->workers > 0
                        ? config->workers
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::unique_ptr<ResponseRateLimiter> rrl;
  if (config->rrl.rate > 0) {
    auto created = ResponseRateLimiter::Create(config->rrl);
    if (!created.ok()) {
      spdlog::error("{}", std::string(created.status().message()));
      return 2;
    }
    rrl = std::move(*created);
    options.rrl = rrl.get();
    spdlog::info("UDP response-rate limiting: {}/s per client prefix and kind, slip {}",
                 config->rrl.rate, config->rrl.slip);
  } else {
    spdlog::info("UDP response-rate limiting off (rrl.rate: 0)");
  }
  RecordHealth health(&zones);  // GSLB: checked records leave the answers when they fail
  health.Start();
  auto server = DnsServer::Start(options, &zones, &stats);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<Api> api;
  if (!config->api.empty()) {
    bool created = false;
    auto token = LoadOrCreateToken(config->data_dir, &created);
    if (!token.ok()) {
      spdlog::error("api token: {}", std::string(token.status().message()));
      return 1;
    }
    if (created) {
      printf(
          "flashdns: API token written to %s/api.token (mode 0600); send it as "
          "'Authorization: Bearer <token>'\n",
          config->data_dir.c_str());
      fflush(stdout);
    }
    api = std::make_unique<Api>(&zones, &stats, &metrics, *token);
    HttpServerOptions http_options;
    http_options.listen = config->api;
    http_options.threads = 2;
    http_options.name = "flashdns-api";
    auto started = HttpServer::Start(http_options, [&](HttpRequest& r) { return api->Handle(r); });
    if (!started.ok()) {
      spdlog::error("api {}: {}", config->api, std::string(started.status().message()));
      return 1;
    }
    http = std::move(*started);
    spdlog::info("API on {} (port {})", config->api, http->port());
  }
  spdlog::info("flashdns ready");
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading zones");
      Status s = zones.Reload();
      if (!s.ok()) spdlog::warn("reload finished with errors: {}", std::string(s.message()));
      continue;
    }
    spdlog::info("signal {}: stopping", sig);
    break;
  }
  if (http) http->Stop();
  health.Stop();
  (*server)->Stop();
  return 0;
}

}  // namespace
}  // namespace photon::flashdns

int main(int argc, char** argv) { return photon::flashdns::Run(argc, argv); }
