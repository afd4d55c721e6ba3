// YAML configuration loading; see config.h. yaml-cpp throws: every call is caught here.
#include "flashdns/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <set>

#include "common/file_util.h"
#include "common/http_server.h"
#include "flashdns/transfer.h"
#include "flashdns/zone_parser.h"

namespace photon::flashdns {
namespace {

Status CheckKeys(const YAML::Node& map, const std::set<std::string>& known,
                 const std::string& where) {
  if (!map.IsMap()) return absl::InvalidArgumentError(where + ": must be a mapping");
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    if (!known.count(key)) {
      return absl::InvalidArgumentError(where + ": unknown key '" + key + "'");
    }
  }
  return absl::OkStatus();
}

StatusOr<std::vector<std::string>> StringList(const YAML::Node& node, const std::string& key) {
  if (!node.IsSequence()) return absl::InvalidArgumentError(key + ": must be a list");
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(item.as<std::string>());
  return out;
}

// An integer in [lo, hi], or an error naming `key` (yaml-cpp's own conversion error does not).
StatusOr<int64_t> IntInRange(const YAML::Node& node, const std::string& key, int64_t lo,
                             int64_t hi) {
  auto range = std::to_string(lo) + ".." + std::to_string(hi);
  int64_t v = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, v)) {
    return absl::InvalidArgumentError(key + ": must be an integer " + range);
  }
  if (v < lo || v > hi) return absl::InvalidArgumentError(key + ": must be " + range);
  return v;
}

Status ParseRrl(const YAML::Node& node, RrlOptions* rrl) {
  PHOTON_RETURN_IF_ERROR(CheckKeys(
      node, {"rate", "burst", "slip", "ipv4_prefix", "ipv6_prefix", "table_size", "exempt"},
      "rrl"));
  struct IntKey {
    const char* name;
    int64_t lo, hi;
    std::function<void(int64_t)> set;
  };
  const IntKey keys[] = {
      {"rate", 0, 1000000, [&](int64_t v) { rrl->rate = static_cast<uint32_t>(v); }},
      {"burst", 1, 1000000, [&](int64_t v) { rrl->burst = static_cast<uint32_t>(v); }},
      {"slip", 0, 10, [&](int64_t v) { rrl->slip = static_cast<uint32_t>(v); }},
      {"ipv4_prefix", 1, 32, [&](int64_t v) { rrl->ipv4_prefix = static_cast<int>(v); }},
      {"ipv6_prefix", 1, 128, [&](int64_t v) { rrl->ipv6_prefix = static_cast<int>(v); }},
      {"table_size", 8, 16777216, [&](int64_t v) { rrl->table_size = static_cast<uint32_t>(v); }},
  };
  for (const auto& k : keys) {
    if (!node[k.name]) continue;
    PHOTON_ASSIGN_OR_RETURN(int64_t v,
                            IntInRange(node[k.name], std::string("rrl.") + k.name, k.lo, k.hi));
    k.set(v);
  }
  if (node["exempt"]) {
    PHOTON_ASSIGN_OR_RETURN(rrl->exempt, StringList(node["exempt"], "rrl.exempt"));
    for (const auto& a : rrl->exempt) {
      auto m = AddressMatcher::Parse(a);
      if (!m.ok()) {
        return absl::InvalidArgumentError("rrl.exempt: " + std::string(m.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

StatusOr<Config> ParseUnchecked(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root = YAML::Load(yaml_text);
  Config config;
  if (root.IsNull()) return config;
  PHOTON_RETURN_IF_ERROR(CheckKeys(
      root, {"listen", "zones", "api", "data_dir", "workers", "api_allow_transfer", "rrl"},
      "config"));
  if (root["listen"]) {
    PHOTON_ASSIGN_OR_RETURN(config.listen, StringList(root["listen"], "listen"));
    for (const auto& hp : config.listen) {
      std::string host;
      int port = 0;
      Status s = ParseHostPort(hp, &host, &port);
      if (!s.ok()) return absl::InvalidArgumentError("listen: " + std::string(s.message()));
    }
  }
  if (root["api"]) config.api = root["api"].as<std::string>();
  if (root["data_dir"]) config.data_dir = root["data_dir"].as<std::string>();
  if (root["workers"]) {
    config.workers = root["workers"].as<int>();
    if (config.workers < 0 || config.workers > 256) {
      return absl::InvalidArgumentError("workers: must be 0..256");
    }
  }
  if (root["rrl"]) PHOTON_RETURN_IF_ERROR(ParseRrl(root["rrl"], &config.rrl));
  if (root["api_allow_transfer"]) {
    PHOTON_ASSIGN_OR_RETURN(config.api_allow_transfer,
                            StringList(root["api_allow_transfer"], "api_allow_transfer"));
  }
  if (root["zones"]) {
    if (!root["zones"].IsSequence()) return absl::InvalidArgumentError("zones: must be a list");
    std::set<std::string> seen;
    for (const auto& z : root["zones"]) {
      PHOTON_RETURN_IF_ERROR(CheckKeys(z, {"name", "file", "allow_transfer"}, "zones[]"));
      ZoneConfig zc;
      if (!z["name"] || !z["file"]) {
        return absl::InvalidArgumentError("zones[]: 'name' and 'file' are required");
      }
      zc.name = z["name"].as<std::string>();
      if (zc.name.empty() || zc.name.back() != '.') zc.name += '.';
      auto wire = ParseName(zc.name, std::string(1, '\0'));
      if (!wire.ok())
        return absl::InvalidArgumentError("zones[].name: " + zc.name + ": " +
                                          std::string(wire.status().message()));
      if (!seen.insert(LowerWireName(*wire)).second) {
        return absl::InvalidArgumentError("zones[].name: zone " + zc.name + " listed twice");
      }
      std::filesystem::path file(z["file"].as<std::string>());
      if (file.is_relative()) file = std::filesystem::path(base_dir) / file;
      zc.file = file.string();
      if (z["allow_transfer"]) {
        PHOTON_ASSIGN_OR_RETURN(zc.allow_transfer,
                                StringList(z["allow_transfer"], "zones[].allow_transfer"));
      }
      config.zones.push_back(std::move(zc));
    }
  }
  for (const auto& a : config.api_allow_transfer) {
    auto m = AddressMatcher::Parse(a);
    if (!m.ok())
      return absl::InvalidArgumentError("api_allow_transfer: " + std::string(m.status().message()));
  }
  for (const auto& zc : config.zones) {
    for (const auto& a : zc.allow_transfer) {
      auto m = AddressMatcher::Parse(a);
      if (!m.ok())
        return absl::InvalidArgumentError("zones[].allow_transfer: " +
                                          std::string(m.status().message()));
    }
  }
  return config;
}

}  // namespace

StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir) {
  try {
    return ParseUnchecked(yaml_text, base_dir);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("config: ") + e.what());
  }
}

StatusOr<Config> LoadConfig(const std::string& path) {
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto base = std::filesystem::absolute(path).parent_path().string();
  auto config = ParseConfig(text, base);
  if (!config.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(config.status().message()));
  }
  return config;
}

}  // namespace photon::flashdns
