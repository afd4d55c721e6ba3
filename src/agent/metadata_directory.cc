// See metadata_directory.h.
#include "agent/metadata_directory.h"

namespace photon::agent {

namespace {

std::string Str(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.contains(a) || !j[a].is_object()) return "";
  const auto& o = j[a];
  return o.contains(b) && o[b].is_string() ? o[b].get<std::string>() : "";
}

// The instance's SSH public keys: its annotation kSshKeysAnnotation, one authorized_keys line
// a line (the ComputeInstance spec has no key field yet; adding one to compute.proto is the
// lasting place). Blank lines and comments are no keys.
std::vector<std::string> SshKeys(const nlohmann::json& instance) {
  std::vector<std::string> keys;
  if (!instance.contains("metadata") || !instance["metadata"].is_object()) return keys;
  const std::string text = Str(instance["metadata"], "annotations", kSshKeysAnnotation);
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') keys.push_back(line);
    at = end + 1;
  }
  return keys;
}

}  // namespace

metadata::InstanceMetadata MetadataOf(const nlohmann::json& instance, const nlohmann::json& port) {
  metadata::InstanceMetadata md;
  md.id = Str(instance, "metadata", "id");
  md.name = Str(instance, "metadata", "name");
  md.namespace_ = Str(instance, "metadata", "namespace");
  md.hostname = md.name;
  md.ip = Str(port, "spec", "ipAddress");
  md.mac = Str(port, "spec", "macAddress");
  md.subnet_cidr = Str(port, "spec", "cidr");
  md.user_data = Str(instance, "spec", "userData");
  md.public_keys = SshKeys(instance);
  return md;
}

std::optional<metadata::InstanceMetadata> AgentInstanceDirectory::FindByAddress(
    const std::string& ip) const {
  for (const auto& key : ports_->Keys()) {
    auto port = ports_->Get(key);
    if (!port || Str(*port, "spec", "ipAddress") != ip) continue;
    auto instance = instances_->Get(key);
    // The Port must be this instance's (not one of a deleted namesake's).
    if (!instance || Str(*instance, "metadata", "id") != Str(*port, "spec", "instance"))
      return std::nullopt;
    return MetadataOf(*instance, *port);
  }
  return std::nullopt;
}

}  // namespace photon::agent
