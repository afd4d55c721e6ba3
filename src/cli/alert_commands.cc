#include "cli/alert_commands.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace photon::cli {

int CloseAlert(HttpClient client, const std::string& ns, const std::string& name,
               const std::string& comment) {
  const std::string path =
      "/v1/namespaces/" + PercentEncode(ns) + "/alerts/" + PercentEncode(name) + "/close";
  auto r = client.Do("POST", path, nlohmann::json{{"comment", comment}}.dump());
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 1;
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    std::string why = j.is_object() && j.contains("error") ? j["error"].value("message", "")
                                                           : r->body.substr(0, 200);
    std::cerr << "error: " << why << " (" << r->status << ")\n";
    return 1;
  }
  std::cout << "alert/" << name << " closed by " << j["status"].value("closedBy", "") << "\n";
  return 0;
}

}  // namespace photon::cli
