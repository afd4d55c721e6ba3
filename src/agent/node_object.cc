#include "agent/node_object.h"

#include "common/util.h"

namespace photon::agent {
using json = nlohmann::json;

json NodeSpecJson(const NodeOffer& offer) {
  json drivers = json::array();
  for (const auto& d : offer.drivers) drivers.push_back(d);
  json attrs = json::object();
  for (const auto& [k, v] : offer.attributes) attrs[k] = v;
  json spec{{"capacity",
             {{"vcpu", offer.vcpu},
              {"memoryMb", std::to_string(offer.memory_mb)},
              {"diskGb", std::to_string(offer.disk_gb)}}},
            {"drivers", drivers},
            {"attributes", attrs}};
  if (!offer.address.empty()) spec["address"] = offer.address;
  return spec;
}

json NewNodeObject(const std::string& name, const std::map<std::string, std::string>& labels,
                   const json& spec) {
  json l = json::object();
  for (const auto& [k, v] : labels) l[k] = v;
  return json{{"metadata", {{"name", name}, {"namespace", "system"}, {"labels", l}}},
              {"spec", spec}};
}

json MergeNodeRegistration(json current, const json& spec,
                           const std::map<std::string, std::string>& labels) {
  bool unschedulable = current.contains("spec") && current["spec"].value("unschedulable", false);
  for (const auto& [k, v] : spec.items()) current["spec"][k] = v;
  if (unschedulable) current["spec"]["unschedulable"] = true;
  for (const auto& [k, v] : labels) current["metadata"]["labels"][k] = v;
  return current;
}

void MarkHeartbeat(json* node, const std::string& message) {
  json& ns = (*node)["nodeStatus"];
  if (!ns.is_object()) ns = json::object();
  ns["condition"] = "READY";
  ns["lastHeartbeat"] = NowRfc3339();
  ns["message"] = message;
}

}  // namespace photon::agent
