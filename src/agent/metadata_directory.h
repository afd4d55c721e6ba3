// The agent's side of the metadata service (agent/metadata): an instance on this node found by
// its VPC address, from the agent's own caches — its Ports (spec.ipAddress) and its instances
// (a Port is named after its instance, so both have the same key).
// Thread-safety: thread-safe (the informers are).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "agent/informer.h"
#include "agent/metadata/metadata_service.h"

namespace photon::agent {

class AgentInstanceDirectory : public metadata::InstanceDirectory {
 public:
  AgentInstanceDirectory(const Informer* instances, const Informer* ports)
      : instances_(instances), ports_(ports) {}
  // A scan of this node's Ports (at most 8,192): metadata requests are rare.
  std::optional<metadata::InstanceMetadata> FindByAddress(const std::string& ip) const override;

 private:
  const Informer* instances_;
  const Informer* ports_;
};

// The annotation that gives an instance its SSH public keys (authorized_keys lines, one a line),
// served as OpenStack public_keys/keys and EC2 public-keys.
inline constexpr char kSshKeysAnnotation[] = "photon.io/ssh-authorized-keys";

// What the metadata service says of an instance with this Port (both as the API returns them).
metadata::InstanceMetadata MetadataOf(const nlohmann::json& instance, const nlohmann::json& port);

}  // namespace photon::agent
