#include "cli/top_commands.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/table.h"
#include "common/hex.h"

namespace photon::cli {

using nlohmann::json;

namespace {

std::string Cores(const json& row, const char* key) {
  if (!row.contains(key)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", row[key].get<double>());
  return buf;
}

std::string MiB(const json& row, const char* key) {
  if (!row.contains(key)) return "-";
  return std::to_string(static_cast<int64_t>(row[key].get<double>() / (1 << 20))) + "Mi";
}

std::string Percent(const json& row, const char* part, const char* whole) {
  if (!row.contains(part) || !row.contains(whole) || row[whole].get<double>() <= 0) return "-";
  return std::to_string(
             static_cast<int>(100 * row[part].get<double>() / row[whole].get<double>() + 0.5)) +
         "%";
}

}  // namespace

void AddTopCommands(CLI::App& app, TopArgs* a) {
  a->top = app.add_subcommand("top", "current CPU and memory use of nodes or instances");
  a->top->require_subcommand(1);
  a->nodes = a->top->add_subcommand("nodes", "each node: CPUs busy, memory used (admins)");
  a->instances = a->top->add_subcommand("instances", "each instance: CPU cores, memory");
  a->instances->add_flag("-A,--all-namespaces", a->all_ns, "every namespace you may list");
  for (CLI::App* c : {a->nodes, a->instances}) {
    c->add_option("-o,--output", a->output, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
  }
}

int RunTopCommand(const TopArgs& a, HttpClient client, const std::string& ns) {
  if (!a.top || !a.top->parsed()) return -1;
  const bool nodes = a.nodes->parsed();
  std::string path = nodes ? "/v1/ops/top/nodes" : "/v1/ops/top/instances";
  if (!nodes && !a.all_ns) path += "?namespace=" + photon::PercentEncode(ns);
  auto r = client.Do("GET", path);
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 1;
  }
  json j = json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object()) {
    std::string why = j.is_object() && j.contains("error") ? j["error"].value("message", "")
                                                           : r->body.substr(0, 200);
    std::cerr << "error: " << why << " (" << r->status << ")\n";
    return 1;
  }
  if (a.output == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  int unreadable = 0;
  if (nodes) {
    rows.push_back({"NODE", "CONDITION", "CPU(cores)", "CPU%", "MEMORY", "MEMORY%", "INSTANCES"});
    for (const auto& n : j["items"]) {
      rows.push_back({n.value("node", ""), n.value("condition", ""), Cores(n, "cpuCores"),
                      Percent(n, "cpuCores", "cpus"), MiB(n, "memoryBytes"),
                      Percent(n, "memoryBytes", "memoryTotalBytes"),
                      n.contains("instances") ? std::to_string(n["instances"].get<int>()) : "-"});
      if (!n.value("error", "").empty()) {
        std::cerr << "node " << n.value("node", "") << ": " << n.value("error", "") << "\n";
        ++unreadable;
      }
    }
  } else {
    rows.push_back({"NAMESPACE", "NAME", "NODE", "DRIVER", "CPU(cores)", "MEMORY", "LIMIT"});
    for (const auto& i : j["items"]) {
      if (i.contains("error")) {
        std::cerr << "node " << i.value("node", "") << ": " << i.value("error", "") << "\n";
        ++unreadable;
        continue;
      }
      rows.push_back({i.value("namespace", ""), i.value("name", ""), i.value("node", ""),
                      i.value("driver", ""), Cores(i, "cpuCores"), MiB(i, "memoryBytes"),
                      MiB(i, "memoryLimitBytes")});
    }
  }
  PrintRows(rows);
  // Some nodes could not be read: the table is not the whole picture.
  return unreadable ? 3 : 0;
}

}  // namespace photon::cli
