#include "agent/config.h"

#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

namespace photon::agent {
namespace {

const std::regex kLabelKey("[a-z0-9]([-a-z0-9_./]*[a-z0-9])?");
const std::regex kDnsLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");

Status LoadBird(const std::string& path, const YAML::Node& b, AgentOptions* o) {
  for (const auto& kv : b) {
    std::string key = kv.first.as<std::string>();
    if (key == "config") {
      o->bird_config = kv.second.as<std::string>();
    } else if (key == "socket") {
      o->bird_socket = kv.second.as<std::string>();
    } else if (key == "routerId") {
      o->bird_router_id = kv.second.as<std::string>();
    } else if (key == "localAs") {
      o->bird_local_as = kv.second.as<int64_t>();
    } else if (key == "peers") {
      o->bird_peers = kv.second.as<std::string>();
    } else if (key == "log") {
      o->bird_log = kv.second.as<std::string>();
    } else {
      return absl::InvalidArgumentError("config " + path + ": unknown key 'network.bird." + key +
                                        "'");
    }
  }
  return absl::OkStatus();
}

}  // namespace

Status ParseBirdPeers(const std::string& text, std::vector<std::pair<std::string, int64_t>>* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    auto colon = item.rfind(':');
    int64_t as = 0;
    if (colon != std::string::npos) as = std::atoll(item.c_str() + colon + 1);
    if (colon == std::string::npos || colon == 0 || as < 1 || as > 4294967295LL) {
      return absl::InvalidArgumentError("bird-peers: '" + item + "' is not ADDRESS:AS");
    }
    out->emplace_back(item.substr(0, colon), as);
  }
  return absl::OkStatus();
}

Status ParseLabels(const std::string& text, std::map<std::string, std::string>* labels) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("labels: '" + item + "' is not key=value");
    }
    std::string key = item.substr(0, eq);
    if (!std::regex_match(key, kLabelKey)) {
      return absl::InvalidArgumentError("labels: bad key '" + key + "'");
    }
    (*labels)[key] = item.substr(eq + 1);
  }
  return absl::OkStatus();
}

Status LoadConfigFile(const std::string& path, AgentOptions* o) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError("config " + path + ": " + e.what());
  }
  if (!root.IsMap()) return absl::InvalidArgumentError("config " + path + ": want a mapping");
  static const std::set<std::string> kKeys = {
      "server",   "caFile",   "tokenFile",        "dataDir",       "name",
      "labels",   "listen",   "heartbeatSeconds", "resyncSeconds", "workers",
      "capacity", "logLevel", "drivers",          "network"};
  try {
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!kKeys.count(key))
        return absl::InvalidArgumentError("config " + path + ": unknown key '" + key + "'");
    }
    if (root["server"]) o->server = root["server"].as<std::string>();
    if (root["caFile"]) o->ca_file = root["caFile"].as<std::string>();
    if (root["caHash"]) o->ca_hash = root["caHash"].as<std::string>();
    if (root["tokenFile"]) o->token_file = root["tokenFile"].as<std::string>();
    if (root["dataDir"]) o->data_dir = root["dataDir"].as<std::string>();
    if (root["name"]) o->name = root["name"].as<std::string>();
    if (root["listen"]) o->listen = root["listen"].as<std::string>();
    if (root["logLevel"]) o->log_level = root["logLevel"].as<std::string>();
    if (root["heartbeatSeconds"]) o->heartbeat_seconds = root["heartbeatSeconds"].as<int>();
    if (root["resyncSeconds"]) o->resync_seconds = root["resyncSeconds"].as<int>();
    if (root["workers"]) o->workers = root["workers"].as<int>();
    if (const auto& l = root["labels"]) {
      for (const auto& kv : l) o->labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
    if (const auto& c = root["capacity"]) {
      if (c["vcpu"]) o->vcpu = c["vcpu"].as<int>();
      if (c["memoryMb"]) o->memory_mb = c["memoryMb"].as<int64_t>();
      if (c["diskGb"]) o->disk_gb = c["diskGb"].as<int64_t>();
    }
    if (const auto& n = root["network"]) {
      for (const auto& kv : n) {
        std::string key = kv.first.as<std::string>();
        if (key == "mode") {
          o->network_mode = kv.second.as<std::string>();
        } else if (key == "netnsPrefix") {
          o->netns_prefix = kv.second.as<std::string>();
        } else if (key == "hostNetns") {
          o->host_netns = kv.second.as<std::string>();
        } else if (key == "bird") {
          PHOTON_RETURN_IF_ERROR(LoadBird(path, kv.second, o));
        } else {
          return absl::InvalidArgumentError("config " + path + ": unknown key 'network." + key +
                                            "'");
        }
      }
    }
    if (const auto& d = root["drivers"]) {
      for (const auto& drv : d) {
        auto& m = o->drivers[drv.first.as<std::string>()];
        for (const auto& kv : drv.second)
          m[kv.first.as<std::string>()] = kv.second.as<std::string>();
      }
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError("config " + path + ": " + e.what());
  }
  return absl::OkStatus();
}

Status ValidateOptions(const AgentOptions& o) {
  if (o.server.empty()) return absl::InvalidArgumentError("server: required");
  if (!o.ca_file.empty() && o.server.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError("ca-file: only used with an https:// server");
  }
  if (!o.ca_hash.empty() && (o.server.rfind("https://", 0) != 0 ||
                             !std::regex_match(o.ca_hash, std::regex("sha256:[0-9a-f]{64}")))) {
    return absl::InvalidArgumentError(
        "ca-hash: want sha256:<64 lower-case hex> with an https:// server");
  }
  if (o.token_file.empty()) return absl::InvalidArgumentError("token-file: required");
  if (o.data_dir.empty()) return absl::InvalidArgumentError("data-dir: required");
  if (!std::regex_match(o.name, kDnsLabel) || o.name.size() > 63) {
    return absl::InvalidArgumentError("name: '" + o.name + "' is not a DNS label");
  }
  if (o.heartbeat_seconds < 1) return absl::InvalidArgumentError("heartbeat-seconds: must be >= 1");
  if (o.resync_seconds < 1) return absl::InvalidArgumentError("resync-seconds: must be >= 1");
  if (o.workers < 1 || o.workers > 64) return absl::InvalidArgumentError("workers: 1..64");
  if (o.vcpu < 0) return absl::InvalidArgumentError("vcpu: must not be negative");
  if (o.memory_mb < 0) return absl::InvalidArgumentError("memory-mb: must not be negative");
  if (o.disk_gb < 0) return absl::InvalidArgumentError("disk-gb: must not be negative");
  if (o.network_mode != "none" && o.network_mode != "shared" && o.network_mode != "ports") {
    return absl::InvalidArgumentError("network-mode: '" + o.network_mode +
                                      "' is not one of none, shared, ports");
  }
  // The prefix and a 36-character instance id together name a namespace file.
  if (o.netns_prefix.empty() || o.netns_prefix.size() > 40 ||
      !std::regex_match(o.netns_prefix, std::regex("[A-Za-z0-9._-]+"))) {
    return absl::InvalidArgumentError("netns-prefix: '" + o.netns_prefix +
                                      "' must be 1-40 characters of [A-Za-z0-9._-]");
  }
  if (!o.bird_config.empty()) {
    if (o.network_mode != "ports") {
      return absl::InvalidArgumentError("bird-config: only with network mode ports");
    }
    if (o.bird_socket.empty()) return absl::InvalidArgumentError("bird-socket: required");
    if (o.bird_router_id.empty()) return absl::InvalidArgumentError("bird-router-id: required");
    if (o.bird_local_as < 1 || o.bird_local_as > 4294967295LL) {
      return absl::InvalidArgumentError("bird-local-as: 1-4294967295");
    }
    std::vector<std::pair<std::string, int64_t>> peers;
    PHOTON_RETURN_IF_ERROR(ParseBirdPeers(o.bird_peers, &peers));
    if (peers.empty()) return absl::InvalidArgumentError("bird-peers: at least one ADDRESS:AS");
  }
  if ((!o.nat_cloud_cidrs.empty() || !o.snat_interface.empty() || !o.snat_address.empty()) &&
      o.network_mode != "ports") {
    return absl::InvalidArgumentError(
        "nat-cloud-cidrs, snat-interface, snat-address: only with "
        "network mode ports");
  }
  if ((!o.snat_interface.empty() || !o.snat_address.empty()) && o.nat_cloud_cidrs.empty()) {
    return absl::InvalidArgumentError(
        "nat-cloud-cidrs: required with snat-interface/snat-address (what is not NATed)");
  }
  if (!o.host_netns.empty() && o.host_netns[0] != '/') {
    return absl::InvalidArgumentError("host-netns: must be an absolute path");
  }
  return absl::OkStatus();
}

}  // namespace photon::agent
