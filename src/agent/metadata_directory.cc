// See metadata_directory.h.
#include "agent/metadata_directory.h"

namespace photon::agent {

namespace {

std::string Str(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.contains(a) || !j[a].is_object()) return "";
  const auto& o = j[a];
  return o.contains(b) && o[b].is_string() ? o[b].get<std::string>() : "";
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
