// The Node object an agent registers and heartbeats, as JSON: shared by photon-agent and by
// photon-hollow (which registers thousands of simulated nodes the same way).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace photon::agent {

struct NodeOffer {
  int vcpu = 0;
  int64_t memory_mb = 0;
  int64_t disk_gb = 0;
  std::set<std::string> drivers;
  std::map<std::string, std::string> attributes;
  std::string address;  // HOST:PORT of the node's /healthz, "" for none
};

// spec: capacity, drivers, attributes, address.
nlohmann::json NodeSpecJson(const NodeOffer& offer);
// A Node to POST for a first registration.
nlohmann::json NewNodeObject(const std::string& name,
                             const std::map<std::string, std::string>& labels,
                             const nlohmann::json& spec);
// `current` re-registered: what the agent owns (spec fields, its labels) replaced; what admins
// set (cordon, extra labels) kept.
nlohmann::json MergeNodeRegistration(nlohmann::json current, const nlohmann::json& spec,
                                     const std::map<std::string, std::string>& labels);
// The heartbeat: READY, now, and a message, written into node["nodeStatus"].
void MarkHeartbeat(nlohmann::json* node, const std::string& message);

}  // namespace photon::agent
