#include "cli/top_commands.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

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

// Two byte counters ("12Mi/3Mi"), "-" when the instance has neither (no VM drives, no port).
std::string Pair(const json& row, const char* a, const char* b) {
  if (!row.contains(a) && !row.contains(b)) return "-";
  return MiB(row, a) + "/" + MiB(row, b);
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
  a->stats = app.add_subcommand("stats", "daily and monthly usage of namespaces or nodes");
  a->stats->add_option("--period", a->period, "day or month (default day)")
      ->check(CLI::IsMember({"day", "month"}));
  a->stats->add_flag("--nodes", a->stats_nodes, "nodes instead of namespaces (admins)");
  a->stats->add_flag("-A,--all-namespaces", a->all_ns, "every namespace you may list");
  a->stats->add_option("--from", a->from, "first period starting at or after (RFC 3339)");
  a->stats->add_option("--to", a->to, "periods starting before (RFC 3339)");
  for (CLI::App* c : {a->nodes, a->instances, a->stats}) {
    c->add_option("-o,--output", a->output, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
  }
}

namespace {

// GET `path`: the answer's JSON object, or nullopt after saying why on stderr.
std::optional<json> GetJson(HttpClient& client, const std::string& path) {
  auto r = client.Do("GET", path);
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return std::nullopt;
  }
  json j = json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object()) {
    std::string why = j.is_object() && j.contains("error") ? j["error"].value("message", "")
                                                           : r->body.substr(0, 200);
    std::cerr << "error: " << why << " (" << r->status << ")\n";
    return std::nullopt;
  }
  return j;
}

std::string Figure(const json& values, const char* key, double scale, const char* unit) {
  if (!values.contains(key)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.2f%s", values[key].get<double>() / scale, unit);
  return buf;
}

int RunStats(const TopArgs& a, HttpClient client, const std::string& ns) {
  std::string path = "/v1/stats?period=" + a.period;
  path += a.stats_nodes ? "&kind=node" : "&kind=namespace";
  if (!a.stats_nodes && !a.all_ns) path += "&subject=" + photon::PercentEncode(ns);
  if (!a.from.empty()) path += "&from=" + photon::PercentEncode(a.from);
  if (!a.to.empty()) path += "&to=" + photon::PercentEncode(a.to);
  auto j = GetJson(client, path);
  if (!j) return 1;
  if (a.output == "json") {
    std::cout << j->dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  if (a.stats_nodes) {
    rows.push_back({"START", "NODE", "CPU-AVG", "CPU-MAX", "CPUS", "MEM-AVG", "DOWN%"});
  } else {
    rows.push_back({"START", "NAMESPACE", "CPU-AVG", "CPU-MAX", "CPU-HOURS", "MEM-AVG", "MEM-MAX",
                    "INSTANCES"});
  }
  for (const auto& s : (*j)["items"]) {
    const json& v = s["values"];
    if (a.stats_nodes) {
      rows.push_back({s.value("start", ""), s.value("subject", ""), Figure(v, "cpuCoresAvg", 1, ""),
                      Figure(v, "cpuCoresMax", 1, ""), Figure(v, "cpus", 1, ""),
                      Figure(v, "memoryUsedBytesAvg", 1 << 20, "Mi"),
                      Figure(v, "agentDownRatio", 0.01, "")});
    } else {
      rows.push_back({s.value("start", ""), s.value("subject", ""), Figure(v, "cpuCoresAvg", 1, ""),
                      Figure(v, "cpuCoresMax", 1, ""), Figure(v, "cpuCoreSeconds", 3600, ""),
                      Figure(v, "memoryBytesAvg", 1 << 20, "Mi"),
                      Figure(v, "memoryBytesMax", 1 << 20, "Mi"),
                      Figure(v, "instancesAvg", 1, "")});
    }
  }
  PrintRows(rows);
  return 0;
}

}  // namespace

int RunTopCommand(const TopArgs& a, HttpClient client, const std::string& ns) {
  if (a.stats && a.stats->parsed()) return RunStats(a, std::move(client), ns);
  if (!a.top || !a.top->parsed()) return -1;
  const bool nodes = a.nodes->parsed();
  std::string path = nodes ? "/v1/ops/top/nodes" : "/v1/ops/top/instances";
  if (!nodes && !a.all_ns) path += "?namespace=" + photon::PercentEncode(ns);
  auto got = GetJson(client, path);
  if (!got) return 1;
  const json& j = *got;
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
    rows.push_back({"NAMESPACE", "NAME", "NODE", "DRIVER", "CPU(cores)", "MEMORY", "LIMIT",
                    "DISK R/W", "NET RX/TX"});
    for (const auto& i : j["items"]) {
      if (i.contains("error")) {
        std::cerr << "node " << i.value("node", "") << ": " << i.value("error", "") << "\n";
        ++unreadable;
        continue;
      }
      rows.push_back({i.value("namespace", ""), i.value("name", ""), i.value("node", ""),
                      i.value("driver", ""), Cores(i, "cpuCores"), MiB(i, "memoryBytes"),
                      MiB(i, "memoryLimitBytes"), Pair(i, "blockReadBytes", "blockWriteBytes"),
                      Pair(i, "networkReceiveBytes", "networkTransmitBytes")});
    }
  }
  PrintRows(rows);
  // Some nodes could not be read: the table is not the whole picture.
  return unreadable ? 3 : 0;
}

}  // namespace photon::cli
