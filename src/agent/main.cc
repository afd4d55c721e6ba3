// photon-agent: the node agent. See agent.h and docs/agent.md.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>

#include "agent/agent.h"
#include "agent/config.h"
#include "common/log.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using photon::agent::AgentOptions;
  AgentOptions o;
  std::string config_file, labels;
  CLI::App app{"photon-agent: PhotonCloud node agent"};
  app.add_option("--server", o.server,
                 "control plane REST address: HOST:PORT (plain HTTP) or https://HOST:PORT");
  app.add_option("--ca-file", o.ca_file, "PEM CA that signed the server's certificate");
  app.add_option("--ca-hash", o.ca_hash,
                 "sha256:HEX of the server CA's public key (photon-server logs it): pins the CA "
                 "the join trusts");
  app.add_option("--token-file", o.token_file, "the server's join.token");
  app.add_option("--data-dir", o.data_dir, "state directory (credential, handles, logs)");
  app.add_option("--name", o.name, "node name");
  app.add_option("--labels", labels, "topology and free labels k=v,k2=v2");
  app.add_option("--config", config_file, "YAML config file (flags win)");
  app.add_option("--listen", o.listen, "HOST:PORT for /healthz and /metrics");
  app.add_option("--heartbeat-seconds", o.heartbeat_seconds, "heartbeat interval");
  app.add_option("--resync-seconds", o.resync_seconds, "level-triggered re-check interval");
  app.add_option("--workers", o.workers, "reconcile workers");
  app.add_option("--vcpu", o.vcpu, "vCPU capacity offered (default: the host's)");
  app.add_option("--memory-mb", o.memory_mb, "memory capacity offered in MiB (default: host)");
  app.add_option("--disk-gb", o.disk_gb, "disk capacity offered in GiB (default: host)");
  app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error");
  app.add_option("--network-mode", o.network_mode,
                 "instance networks: ports (a port namespace each), none (refuse them), shared "
                 "(development: the node's network)");
  app.add_option("--netns-prefix", o.netns_prefix, "port namespace name prefix");
  app.add_option("--bird-config", o.bird_config, "the node's BIRD2 config file the agent renders");
  app.add_option("--bird-socket", o.bird_socket, "that BIRD's control socket");
  app.add_option("--bird-router-id", o.bird_router_id, "the node's underlay address");
  app.add_option("--bird-local-as", o.bird_local_as, "the node's AS number");
  app.add_option("--bird-peers", o.bird_peers, "the rack routers: ADDRESS:AS,...");
  app.add_option("--bird-log", o.bird_log, "BIRD's log file (default: syslog)");
  app.add_option("--nat-cloud-cidrs", o.nat_cloud_cidrs,
                 "the cloud's VPC ranges CIDR,... (never NATed; needed for floating IPs and SNAT)");
  app.add_option("--snat-interface", o.snat_interface,
                 "SNAT instances without a floating IP leaving by this interface (default: off)");
  app.add_option("--snat-address", o.snat_address,
                 "SNAT them to this address (default: the interface's)");
  CLI11_PARSE(app, argc, argv);

  if (!config_file.empty()) {
    // Flags win over the file: load the file into a copy, then re-apply flags given.
    AgentOptions from_file;
    if (auto s = photon::agent::LoadConfigFile(config_file, &from_file); !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
    AgentOptions defaults;
    auto pick = [&](auto& flag, const auto& file, const auto& def) {
      if (flag == def) flag = file;
    };
    pick(o.server, from_file.server, defaults.server);
    pick(o.ca_file, from_file.ca_file, defaults.ca_file);
    pick(o.ca_hash, from_file.ca_hash, defaults.ca_hash);
    pick(o.token_file, from_file.token_file, defaults.token_file);
    pick(o.data_dir, from_file.data_dir, defaults.data_dir);
    pick(o.name, from_file.name, defaults.name);
    pick(o.listen, from_file.listen, defaults.listen);
    pick(o.heartbeat_seconds, from_file.heartbeat_seconds, defaults.heartbeat_seconds);
    pick(o.resync_seconds, from_file.resync_seconds, defaults.resync_seconds);
    pick(o.workers, from_file.workers, defaults.workers);
    pick(o.vcpu, from_file.vcpu, defaults.vcpu);
    pick(o.memory_mb, from_file.memory_mb, defaults.memory_mb);
    pick(o.disk_gb, from_file.disk_gb, defaults.disk_gb);
    pick(o.log_level, from_file.log_level, defaults.log_level);
    pick(o.network_mode, from_file.network_mode, defaults.network_mode);
    pick(o.netns_prefix, from_file.netns_prefix, defaults.netns_prefix);
    o.host_netns = from_file.host_netns;
    pick(o.bird_config, from_file.bird_config, defaults.bird_config);
    pick(o.bird_socket, from_file.bird_socket, defaults.bird_socket);
    pick(o.bird_router_id, from_file.bird_router_id, defaults.bird_router_id);
    pick(o.bird_local_as, from_file.bird_local_as, defaults.bird_local_as);
    pick(o.bird_peers, from_file.bird_peers, defaults.bird_peers);
    pick(o.bird_log, from_file.bird_log, defaults.bird_log);
    o.labels = from_file.labels;
    o.drivers = from_file.drivers;
  }
  if (auto s = photon::agent::ParseLabels(labels, &o.labels); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  if (auto s = photon::agent::ValidateOptions(o); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  if (auto s = photon::InitLogging("photon-agent", o.log_level); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  // Signals are taken by sigwait below, never by an arbitrary thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  photon::agent::Agent agent(o);
  // A dedicated thread takes SIGTERM/SIGINT, also while Start() is still joining.
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("signal {}: stopping (workloads keep running)", sig);
    agent.Stop();
    spdlog::default_logger()->flush();
    // Watch threads may be blocked in reads; leave without running static destructors.
    _exit(0);
  });
  if (auto s = agent.Start(); !s.ok()) {
    spdlog::error("photon-agent: {}", s.ToString());
    spdlog::default_logger()->flush();
    _exit(1);
  }
  signals.join();
  return 0;
}
