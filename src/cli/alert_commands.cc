#include "cli/alert_commands.h"

#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace photon::cli {

namespace {

// The server's error message (or the start of the body) and the status, on stderr.
int Refused(const HttpResult& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string why = j.is_object() && j.contains("error") ? j["error"].value("message", "")
                                                         : r.body.substr(0, 200);
  std::cerr << "error: " << why << " (" << r.status << ")\n";
  return 1;
}

std::string Utc(std::time_t t) {
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "90m", "2h", "1d", "3600s" in seconds; -1 when malformed.
int64_t DurationSeconds(const std::string& text) {
  if (text.size() < 2) return -1;
  const std::string digits = text.substr(0, text.size() - 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return -1;
  const int64_t n = std::stoll(digits);
  switch (text.back()) {
    case 's':
      return n;
    case 'm':
      return n * 60;
    case 'h':
      return n * 3600;
    case 'd':
      return n * 86400;
    default:
      return -1;
  }
}

std::time_t ParseUtc(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return end && *end == '\0' ? timegm(&tm) : -1;
}

}  // namespace

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

int StartMaintenance(HttpClient client, const std::string& ns, const std::string& name,
                     const MaintenanceOptions& o) {
  const std::time_t from = o.from.empty() ? std::time(nullptr) : ParseUtc(o.from);
  if (from < 0) {
    std::cerr << "error: --from: want RFC 3339 UTC (2026-12-05T06:00:00Z), got '" << o.from
              << "'\n";
    return 2;
  }
  std::string until = o.until;
  if (until.empty() == o.duration.empty()) {
    std::cerr << "error: give one of --until TIME and --duration (90m, 2h, 1d)\n";
    return 2;
  }
  if (!o.duration.empty()) {
    const int64_t d = DurationSeconds(o.duration);
    if (d <= 0) {
      std::cerr << "error: --duration: want 90m, 2h, 1d or 3600s, got '" << o.duration << "'\n";
      return 2;
    }
    until = Utc(from + d);
  }
  nlohmann::json spec{{"description", o.description},
                      {"nodes", o.nodes},
                      {"instances", o.instances},
                      {"endTime", until},
                      {"drain", o.drain}};
  if (!o.from.empty()) spec["startTime"] = o.from;
  nlohmann::json body{{"metadata", {{"name", name}, {"namespace", ns}}}, {"spec", spec}};
  auto r = client.Do("POST", "/v1/namespaces/" + PercentEncode(ns) + "/maintenances", body.dump());
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 1;
  }
  if (r->status != 201 && r->status != 202 && r->status != 200) return Refused(*r);
  std::cout << "maintenance/" << name << " until " << until << (o.drain ? " (draining)" : "")
            << "\n";
  return 0;
}

int EndMaintenance(HttpClient client, const std::string& ns, const std::string& name) {
  const std::string path =
      "/v1/namespaces/" + PercentEncode(ns) + "/maintenances/" + PercentEncode(name);
  // Read, then write the end time compared on the version read (the server refuses a change
  // in between, and this is run again).
  auto got = client.Do("GET", path);
  if (!got.ok()) {
    std::cerr << "error: " << got.status().message() << "\n";
    return 1;
  }
  if (got->status != 200) return Refused(*got);
  auto m = nlohmann::json::parse(got->body, nullptr, false);
  const std::time_t now = std::time(nullptr);
  auto& spec = m["spec"];
  const std::string start = spec.value("startTime", "");
  if (!start.empty() && ParseUtc(start) >= now) spec["startTime"] = Utc(now - 1);  // never began
  spec["endTime"] = Utc(now);
  auto put = client.Do("PUT", path, m.dump());
  if (!put.ok()) {
    std::cerr << "error: " << put.status().message() << "\n";
    return 1;
  }
  if (put->status != 200 && put->status != 202) return Refused(*put);
  std::cout << "maintenance/" << name << " ended at " << Utc(now) << "\n";
  return 0;
}

}  // namespace photon::cli
