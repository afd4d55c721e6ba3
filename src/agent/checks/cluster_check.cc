#include "agent/checks/cluster_check.h"

#include <map>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/http_client.h"

namespace photon::agent::checks {

using nlohmann::json;

namespace {

PluginResult Result(int code, std::string line) {
  static const char* kWords[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
  line = std::string("PHOTON-CLUSTER ") + kWords[code] + " - " + line;
  if (line.size() > 1024) line.resize(1024);
  return PluginResult{.exit_code = code, .output = line};
}

}  // namespace

PluginResult RunClusterCheck(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout) {
  std::map<std::string, std::string> opt;
  for (size_t i = 0; i + 1 < args.size(); i += 2) opt[args[i]] = args[i + 1];
  if (args.size() % 2 != 0 || !opt.count("--url") || !opt.count("--token-file")) {
    return Result(3, "want --url URL --token-file PATH [--ca-file PATH]");
  }
  const std::string url = opt["--url"];
  auto token = ReadFile(opt["--token-file"]);
  if (!token.ok()) return Result(3, "token file: " + std::string(token.status().message()));
  std::string tok = *token;
  while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r')) tok.pop_back();
  auto client = HttpClient::Create(url, tok, opt.count("--ca-file") ? opt["--ca-file"] : "");
  if (!client.ok()) return Result(3, url + ": " + std::string(client.status().message()));
  client->set_timeout(timeout);
  auto health = client->Do("GET", "/healthz");
  if (!health.ok() || health->status != 200) {
    return Result(2, url + " does not answer: " +
                         (health.ok() ? "HTTP " + std::to_string(health->status)
                                      : std::string(health.status().message())));
  }
  auto nodes = client->Do("GET", "/v1/namespaces/system/nodes");
  if (!nodes.ok()) {
    return Result(2, url + ": listing its nodes failed: " + std::string(nodes.status().message()));
  }
  if (nodes->status == 401 || nodes->status == 403) {
    return Result(2, url + " refused the token (HTTP " + std::to_string(nodes->status) + ")");
  }
  json j = json::parse(nodes->body, nullptr, false);
  if (nodes->status != 200 || !j.is_object() || !j.contains("items")) {
    return Result(2, url + ": listing its nodes answered HTTP " + std::to_string(nodes->status));
  }
  std::string down;
  int total = 0, ready = 0;
  for (const auto& n : j["items"]) {
    ++total;
    const std::string cond =
        n.value("nodeStatus", json::object()).value("condition", std::string("UNKNOWN"));
    if (cond == "READY") {
      ++ready;
    } else {
      down += (down.empty() ? "" : ", ") + n["metadata"].value("name", "?") + " " + cond;
    }
  }
  const std::string counts =
      std::to_string(ready) + " of " + std::to_string(total) + " nodes READY";
  if (ready < total) return Result(1, url + ": " + counts + " (" + down + ")");
  return Result(0, url + ": " + counts);
}

}  // namespace photon::agent::checks
