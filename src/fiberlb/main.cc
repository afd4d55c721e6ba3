// fiberlb: standalone load balancer. Parses flags and the configuration, starts the HAProxy
// data plane through Lb and the REST API, and turns SIGINT/SIGTERM into a clean stop.
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/file_util.h"
#include "common/log.h"
#include "fiberlb/api.h"
#include "fiberlb/config.h"
#include "fiberlb/lb.h"

namespace photon::fiberlb {
namespace {

// One fiberlb per data directory: two would fight over one HAProxy.
bool LockDataDir(const std::string& data_dir) {
  int fd = open((data_dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;  // held until exit
}

int Run(int argc, char** argv) {
  CLI::App app{"fiberlb: load balancer (L7 through HAProxy, stateless L4 in nftables)"};
  std::string config_path, data_dir, log_level = "info";
  app.add_option("--config", config_path, "YAML configuration file")->required();
  app.add_option("--data-dir", data_dir, "state directory (overrides data_dir in the file)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  CLI11_PARSE(app, argc, argv);

  if (Status s = InitLogging("fiberlb", log_level); !s.ok()) {
    fprintf(stderr, "fiberlb: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    spdlog::error("{}", std::string(config.status().message()));
    return 2;
  }
  if (!data_dir.empty()) config->data_dir = data_dir;
  if (Status s = MakeDirs(config->data_dir, 0700); !s.ok()) {
    spdlog::error("data_dir: {}", std::string(s.message()));
    return 2;
  }
  if (!LockDataDir(config->data_dir)) {
    spdlog::error("data_dir {} is in use by another fiberlb", config->data_dir);
    return 2;
  }
  // A peer that closes a socket we write to is an error of that write, never our exit.
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  LbOptions options;
  options.data_dir = config->data_dir;
  options.api_address = config->api;
  options.haproxy_binary = config->haproxy;
  options.access_log = config->access_log;
  options.bgp_route_protocol = config->bgp_route_protocol;
  auto lb = Lb::Start(options, config->state);
  if (!lb.ok()) {
    spdlog::error("{}", std::string(lb.status().message()));
    return 1;
  }
  std::unique_ptr<L4Service> l4;
  if (config->l4) {
    auto started = L4Service::Start(config->data_dir, *config->l4);
    if (!started.ok()) {
      spdlog::error("l4: {}", std::string(started.status().message()));
      return 1;
    }
    l4 = std::move(*started);
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
          "fiberlb: API token written to %s/api.token (mode 0600); send it as "
          "'Authorization: Bearer <token>'\n",
          config->data_dir.c_str());
      fflush(stdout);
    }
    api = std::make_unique<Api>(lb->get(), l4.get(), *token);
    HttpServerOptions http_options;
    http_options.listen = config->api;
    http_options.threads = 2;
    http_options.name = "fiberlb-api";
    auto started = HttpServer::Start(http_options, [&](HttpRequest& r) { return api->Handle(r); });
    if (!started.ok()) {
      spdlog::error("api {}: {}", config->api, std::string(started.status().message()));
      return 1;
    }
    http = std::move(*started);
    spdlog::info("API on {} (port {})", config->api, http->port());
  }
  spdlog::info("fiberlb ready (haproxy master {})", (*lb)->haproxy().master_pid());
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  spdlog::info("signal {}: stopping", sig);
  if (http) http->Stop();
  if (l4) l4->Stop();
  (*lb)->Stop();
  return 0;
}

}  // namespace
}  // namespace photon::fiberlb

int main(int argc, char** argv) { return photon::fiberlb::Run(argc, argv); }
