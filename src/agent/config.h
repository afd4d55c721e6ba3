// photon-agent's configuration: every option with its default, loaded from flags and an
// optional YAML file (flags win), validated at start-up so a bad value fails fast naming
// the offending key. Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace photon::agent {

struct AgentOptions {
  // control plane REST address: HOST:PORT or http://HOST:PORT (plain), https://HOST:PORT
  std::string server;
  std::string ca_file;  // PEM CA the server's certificate must chain to (https only)
  // "sha256:HEX" of the CA's public key (photon-server logs it): the CA fetched or given
  // must match it, else the join is refused (https only).
  std::string ca_hash;
  std::string token_file;                     // the server's join.token (used once, to join)
  std::string data_dir;                       // credential, handles, provider state
  std::string name;                           // node name (DNS label)
  std::map<std::string, std::string> labels;  // region, zone, power_az, rack_az, network_az, ...
  std::string listen = "127.0.0.1:0";         // /healthz and /metrics
  int heartbeat_seconds = 5;
  int resync_seconds = 5;  // level-triggered re-check of every assigned instance
  int workers = 8;
  // Capacity offered to the scheduler; 0 = what the host has.
  int vcpu = 0;
  int64_t memory_mb = 0;
  int64_t disk_gb = 0;
  std::string log_level = "info";
  // Per-driver options (ProviderContext::config), e.g. container: {runtime: runc}.
  std::map<std::string, std::map<std::string, std::string>> drivers;
  // Instance networks (docs/networking.md "Nodes"): "ports" wires each instance's Port into a
  // port namespace of its own (needs CAP_NET_ADMIN); "none" refuses every instance that needs
  // a port (only spec.network.hostNetwork ones run); "shared" (development and tests only)
  // runs them in the node's network, marked network.wired=false, and refuses security groups.
  std::string network_mode = "none";
  std::string netns_prefix = "photon-port-";  // port namespace = prefix + instance id
  std::string host_netns;                     // the node's network namespace ("" = the agent's own)
  // The node's BIRD2 (mode ports): when bird_config is set, the agent renders the node's BIRD
  // configuration (it learns the port /32s from the kernel and announces them to the peers),
  // checks it with `bird -p` and has the BIRD behind bird_socket load it at start.
  std::string bird_config;
  std::string bird_socket;
  std::string bird_router_id;  // the node's underlay address
  int64_t bird_local_as = 0;
  std::string bird_peers;  // the rack routers: "ADDRESS:AS,ADDRESS:AS"
  std::string bird_log;    // "" = syslog
  // The node's NAT (mode ports, docs/networking.md "Floating IPs and egress"): the cloud's VPC
  // ranges (comma-separated CIDRs; never NATed, required for floating IPs and SNAT), and SNAT
  // of instances without a floating IP to the node's egress interface/address (off unless
  // either is set).
  std::string nat_cloud_cidrs;
  std::string snat_interface;
  std::string snat_address;
};

// "ADDRESS:AS,..." into (address, AS) pairs; INVALID_ARGUMENT naming the bad entry.
Status ParseBirdPeers(const std::string& text, std::vector<std::pair<std::string, int64_t>>* out);

// "k=v,k2=v2" into labels.
Status ParseLabels(const std::string& text, std::map<std::string, std::string>* labels);
// Reads a YAML file into options; keys: server, caFile, tokenFile, dataDir, name, labels (map),
// listen, heartbeatSeconds, resyncSeconds, workers, capacity {vcpu, memoryMb, diskGb},
// logLevel, drivers {NAME: {key: value}}, network {mode, netnsPrefix, hostNetns, bird {config,
// socket, routerId, localAs, peers, log}}. Unknown keys are refused.
Status LoadConfigFile(const std::string& path, AgentOptions* options);
Status ValidateOptions(const AgentOptions& options);

}  // namespace photon::agent
