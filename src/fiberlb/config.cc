// fiberlb configuration file; see config.h.
#include "fiberlb/config.h"

#include <yaml-cpp/yaml.h>

#include "common/file_util.h"

namespace photon::fiberlb {
namespace {

using nlohmann::json;

json Convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : node) j[kv.first.as<std::string>()] = Convert(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& item : node) j.push_back(Convert(item));
      return j;
    }
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: a string whatever it reads as
      if (s == "true") return true;
      if (s == "false") return false;
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
          s.find('-', 1) == std::string::npos && s != "-") {
        try {
          return std::stoll(s);
        } catch (const std::exception&) {
        }
      }
      return s;
    }
    default:
      return nullptr;
  }
}

// `bgp: {route_protocol: P}` (default 200): the protocol of the VIP routes the node's BIRD
// imports and announces, for L4 listeners and announced L7 ones alike.
StatusOr<int> BgpRouteProtocol(const json& bgp) {
  if (!bgp.is_object()) return absl::InvalidArgumentError("bgp: must be a mapping");
  for (const auto& [key, value] : bgp.items()) {
    if (key != "route_protocol")
      return absl::InvalidArgumentError("bgp." + key + ": unknown field");
  }
  if (!bgp.contains("route_protocol")) return 200;
  const json& p = bgp["route_protocol"];
  if (!p.is_number_integer() || p.get<int64_t>() < 1 || p.get<int64_t>() > 254) {
    return absl::InvalidArgumentError("bgp.route_protocol: an integer from 1 to 254");
  }
  return p.get<int>();
}

}  // namespace

StatusOr<json> YamlToJson(const std::string& yaml_text) {
  try {
    return Convert(YAML::Load(yaml_text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("YAML: ") + e.what());
  }
}

StatusOr<Config> ParseConfig(const std::string& yaml_text) {
  PHOTON_ASSIGN_OR_RETURN(json j, YamlToJson(yaml_text));
  if (j.is_null()) j = json::object();
  if (!j.is_object()) return absl::InvalidArgumentError("configuration: must be a mapping");
  Config c;
  for (const auto& [key, value] : j.items()) {
    if (key == "listeners" || key == "pools" || key == "l4" || key == "bgp") continue;
    std::string* target = key == "api"          ? &c.api
                          : key == "data_dir"   ? &c.data_dir
                          : key == "haproxy"    ? &c.haproxy
                          : key == "access_log" ? &c.access_log
                                                : nullptr;
    if (target == nullptr) return absl::InvalidArgumentError(key + ": unknown field");
    if (!value.is_string()) return absl::InvalidArgumentError(key + ": must be a string");
    *target = value.get<std::string>();
  }
  PHOTON_ASSIGN_OR_RETURN(c.state, StateFromJson(j));
  PHOTON_RETURN_IF_ERROR(Validate(c.state, c.api));
  if (j.contains("bgp")) {
    PHOTON_ASSIGN_OR_RETURN(c.bgp_route_protocol, BgpRouteProtocol(j["bgp"]));
  }
  if (j.contains("l4")) {
    json none;
    PHOTON_ASSIGN_OR_RETURN(c.l4, L4SettingsFromJson(j["l4"], j.contains("bgp") ? j["bgp"] : none));
    std::vector<std::string> l7;
    for (const auto& [name, l] : c.state.listeners) l7.push_back(l.address);
    for (size_t i = 0; i < c.l4->listeners.size(); ++i) {
      PHOTON_RETURN_IF_ERROR(
          CheckL4Overlap(c.l4->listeners[i], l7, "l4.listeners[" + std::to_string(i) + "]"));
    }
  }
  return c;
}

StatusOr<Config> LoadConfig(const std::string& path) {
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto c = ParseConfig(text);
  if (!c.ok()) return Status(c.status().code(), path + ": " + std::string(c.status().message()));
  return c;
}

}  // namespace photon::fiberlb
