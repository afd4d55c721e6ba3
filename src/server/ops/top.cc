// photon top (docs/operations.md "Usage"): current CPU and memory of nodes and instances, read
// from the agents' /metrics (their photon_node_* and photon_instance_* families, sampled from
// /proc and the instances' cgroups) at the address each Node advertises, all nodes at once.
//   GET /v1/ops/top/nodes                 admins
//   GET /v1/ops/top/instances[?namespace=NS]   the namespaces the caller may list instances of
#include <future>
#include <nlohmann/json.hpp>

#include "common/http_client.h"
#include "common/util.h"
#include "photon/node.pb.h"
#include "server/object_util.h"
#include "server/ops/ops_engine.h"
#include "server/rest_gateway.h"

namespace photon::server::opsengine {

using nlohmann::json;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// One sample line of the Prometheus text format ("name{k=\"v\",...} value"); nullopt for
// comments and lines it cannot read.
std::optional<Sample> ParseSample(const std::string& line) {
  if (line.empty() || line[0] == '#') return std::nullopt;
  Sample s;
  size_t i = line.find_first_of("{ ");
  if (i == std::string::npos) return std::nullopt;
  s.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find("=\"", i);
      if (eq == std::string::npos) return std::nullopt;
      std::string key = line.substr(i, eq - i), value;
      for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
      }
      s.labels[key] = value;
      i += 1;  // the closing quote
      if (i < line.size() && line[i] == ',') ++i;
    }
    ++i;  // '}'
  }
  try {
    s.value = std::stod(line.substr(i));
  } catch (...) {
    return std::nullopt;
  }
  return s;
}

struct NodeReading {
  std::string node, address, condition;
  std::string error;  // why the agent's /metrics could not be read
  std::vector<Sample> samples;
};

NodeReading ReadAgent(NodeReading r) {
  auto client = HttpClient::Create("http://" + r.address, "");
  if (!client.ok()) {
    r.error = std::string(client.status().message());
    return r;
  }
  client->set_timeout(std::chrono::seconds(3));
  auto got = client->Do("GET", "/metrics");
  if (!got.ok() || got->status != 200) {
    r.error = got.ok() ? "HTTP " + std::to_string(got->status) : got.status().ToString();
    return r;
  }
  size_t start = 0;
  while (start < got->body.size()) {
    size_t end = got->body.find('\n', start);
    if (end == std::string::npos) end = got->body.size();
    const std::string line = got->body.substr(start, end - start);
    if (line.rfind("photon_node_", 0) == 0 || line.rfind("photon_instance_", 0) == 0) {
      if (auto s = ParseSample(line)) r.samples.push_back(std::move(*s));
    }
    start = end + 1;
  }
  return r;
}

// Every node's agent, read in parallel (each bounded by its timeout).
std::vector<NodeReading> ReadAllAgents(const WatchCache* cache) {
  std::vector<std::future<NodeReading>> pending;
  const std::string prefix = RegistryPrefix("nodes");
  for (const auto& o : cache->List(prefix, store::PrefixEnd(prefix), 0, nullptr).items) {
    node::Node n;
    if (!n.ParseFromString(o->value())) continue;
    NodeReading r{.node = n.metadata().name(),
                  .address = n.spec().address(),
                  .condition = node::NodeStatus::Condition_Name(n.node_status().condition())};
    if (r.address.empty()) {
      r.error = "the node advertises no address";
      std::promise<NodeReading> p;
      p.set_value(std::move(r));
      pending.push_back(p.get_future());
      continue;
    }
    pending.push_back(std::async(std::launch::async, ReadAgent, std::move(r)));
  }
  std::vector<NodeReading> out;
  for (auto& f : pending) out.push_back(f.get());
  return out;
}

}  // namespace

HttpResponse OpsEngine::Top(const HttpRequest& req, const Principal& who) {
  const auto p = SplitPath(req.path);
  const std::string what = p.size() == 4 ? p[3] : "";
  if (what != "nodes" && what != "instances") {
    return ErrorResponse(absl::NotFoundError("photon top: nodes or instances, not '" + what + "'"));
  }
  auto q = req.query.find("namespace");
  const std::string only_ns = q == req.query.end() ? "" : q->second;
  if (what == "nodes" && !who.IsAdmin()) {
    return ErrorResponse(
        absl::PermissionDeniedError("'" + who.name + "' may not read the nodes' usage (admins)"));
  }
  if (!only_ns.empty()) {
    if (auto st = ValidateName("namespace", only_ns); !st.ok()) return ErrorResponse(st);
  }
  if (!only_ns.empty() && !who.Allowed(Verb::kList, "computeinstances", only_ns)) {
    return ErrorResponse(absl::PermissionDeniedError(
        "'" + who.name + "' may not list the instances of namespace '" + only_ns + "'"));
  }
  json items = json::array();
  for (const NodeReading& r : ReadAllAgents(resources_->cache())) {
    if (what == "nodes") {
      json n{{"node", r.node}, {"condition", r.condition}, {"error", r.error}};
      int instances = 0;
      for (const Sample& s : r.samples) {
        if (s.name == "photon_node_cpus") n["cpus"] = s.value;
        if (s.name == "photon_node_cpu_cores_used") n["cpuCores"] = s.value;
        if (s.name == "photon_node_memory_total_bytes") n["memoryTotalBytes"] = s.value;
        if (s.name == "photon_node_memory_available_bytes") n["memoryAvailableBytes"] = s.value;
        instances += s.name == "photon_instance_memory_bytes";
      }
      if (n.contains("memoryTotalBytes") && n.contains("memoryAvailableBytes")) {
        n["memoryBytes"] =
            n["memoryTotalBytes"].get<double>() - n["memoryAvailableBytes"].get<double>();
      }
      n["instances"] = instances;
      items.push_back(std::move(n));
      continue;
    }
    std::map<std::pair<std::string, std::string>, json> per;  // (ns, name) → row
    for (const Sample& s : r.samples) {
      if (s.name.rfind("photon_instance_", 0) != 0) continue;
      const std::string ns = s.labels.count("namespace") ? s.labels.at("namespace") : "";
      const std::string name = s.labels.count("instance") ? s.labels.at("instance") : "";
      if (!only_ns.empty() && ns != only_ns) continue;
      if (!who.Allowed(Verb::kList, "computeinstances", ns)) continue;
      json& row = per[{ns, name}];
      row["namespace"] = ns;
      row["name"] = name;
      row["node"] = r.node;
      row["driver"] = s.labels.count("driver") ? s.labels.at("driver") : "";
      const std::string field = s.name.substr(std::string("photon_instance_").size());
      if (field == "cpu_cores") row["cpuCores"] = s.value;
      if (field == "cpu_seconds_total") row["cpuSeconds"] = s.value;
      if (field == "memory_bytes") row["memoryBytes"] = s.value;
      if (field == "memory_limit_bytes") row["memoryLimitBytes"] = s.value;
      if (field == "block_read_bytes_total") row["blockReadBytes"] = s.value;
      if (field == "block_write_bytes_total") row["blockWriteBytes"] = s.value;
      if (field == "network_receive_bytes_total") row["networkReceiveBytes"] = s.value;
      if (field == "network_transmit_bytes_total") row["networkTransmitBytes"] = s.value;
    }
    for (auto& [k, row] : per) items.push_back(std::move(row));
    if (!r.error.empty() && who.IsAdmin()) {
      items.push_back({{"node", r.node}, {"error", r.error}});
    }
  }
  return HttpResponse::Json(200, json{{"items", items}}.dump());
}

}  // namespace photon::server::opsengine
