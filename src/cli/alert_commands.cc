#include "cli/alert_commands.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/documents.h"
#include "cli/table.h"
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

namespace {

using nlohmann::json;

// What a labelSelector value or key may hold (the server's selector grammar).
bool Selectable(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
  });
}

std::vector<std::string> SeveritiesOf(const std::string& kind) {
  if (kind == "alerts") return {"FATAL", "CRITICAL", "WARNING"};
  return {"SUCCESS", "WARNING", "CRITICAL"};
}

// A field as text: strings as they are, numbers printed, absent as "".
std::string Text(const json& o, std::initializer_list<const char*> path) {
  const json* at = &o;
  for (const char* p : path) {
    if (!at->is_object() || !at->contains(p)) return "";
    at = &(*at)[p];
  }
  return at->is_string() ? at->get<std::string>() : at->is_null() ? "" : at->dump();
}

std::vector<std::string> Row(const std::string& kind, const json& o) {
  const std::string ns = Text(o, {"metadata", "namespace"}), name = Text(o, {"metadata", "name"});
  if (kind == "alerts") {
    std::string state = Text(o, {"status", "state"});
    if (state == "OPEN" && Text(o, {"status", "resolved"}) == "true") state = "OPEN(resolved)";
    return {ns,
            name,
            Text(o, {"spec", "severity"}),
            state,
            Text(o, {"status", "count"}),
            Text(o, {"status", "lastRaised"}),
            Text(o, {"spec", "summary"})};
  }
  const json e = o.contains("spec") ? o["spec"].value("opsEvent", json::object()) : json::object();
  std::string severity = Text(e, {"severity"});
  if (severity.empty()) severity = "SUCCESS";  // proto3 JSON leaves the zero value out
  return {ns,
          name,
          severity,
          Text(e, {"check"}),
          Text(e, {"node"}),
          Text(e, {"count"}),
          Text(e, {"lastSeen"}),
          Text(e, {"output"})};
}

std::string KindPath(const std::string& kind, const std::string& ns, bool all_ns) {
  return all_ns ? "/v1/" + kind : "/v1/namespaces/" + PercentEncode(ns) + "/" + kind;
}

// Every page of the list; *rv is the version to watch from.
StatusOr<std::vector<json>> ListPages(HttpClient& client, const std::string& base,
                                      const std::string& selector, std::string* rv) {
  std::vector<json> items;
  std::string cont;
  do {
    std::string path = base + "?limit=500&labelSelector=" + PercentEncode(selector);
    if (!cont.empty()) path += "&continue=" + PercentEncode(cont);
    auto r = client.Do("GET", path);
    if (!r.ok()) return r.status();
    auto j = json::parse(r->body, nullptr, false);
    if (r->status != 200) {
      const std::string why = j.is_object() && j.contains("error") ? j["error"].value("message", "")
                                                                   : r->body.substr(0, 200);
      return absl::InvalidArgumentError(why + " (" + std::to_string(r->status) + ")");
    }
    if (!j.is_object()) return absl::InternalError("malformed answer from the server");
    for (auto& it : j["items"]) items.push_back(std::move(it));
    *rv = j.value("resourceVersion", "");
    cont = j.value("continue", "");
  } while (!cont.empty());
  return items;
}

void PrintList(const OpsListArgs& a, const std::vector<json>& items) {
  if (a.output == "json") {
    std::cout << json(items).dump(2) << "\n";
  } else if (a.output == "yaml") {
    for (const auto& o : items) std::cout << "---\n" << ToYaml(o);
  } else if (a.output == "name") {
    for (const auto& o : items) std::cout << Text(o, {"metadata", "name"}) << "\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    if (a.kind == "alerts") {
      rows.push_back({"NAMESPACE", "NAME", "SEVERITY", "STATE", "COUNT", "LAST-RAISED", "SUMMARY"});
    } else {
      rows.push_back(
          {"NAMESPACE", "NAME", "SEVERITY", "CHECK", "NODE", "COUNT", "LAST-SEEN", "OUTPUT"});
    }
    for (const auto& o : items) rows.push_back(Row(a.kind, o));
    PrintRows(rows);
  }
}

// One change as a line: TYPE and the row (table), or the watch event itself (json).
void PrintChange(const OpsListArgs& a, const std::string& type, const json& o) {
  if (a.output == "json") {
    std::cout << json{{"type", type}, {"object", o}}.dump() << std::endl;
    return;
  }
  std::string line = type;
  line.resize(10, ' ');
  for (const auto& f : Row(a.kind, o)) line += f + "  ";
  std::cout << line << std::endl;
}

// The list, then its changes from the listed version on; a 410 (history compacted) relists, a
// connection the server ends resumes from the last version seen. Returns only on an error.
int WatchOps(const OpsListArgs& a, HttpClient client, const std::string& base,
             const std::string& selector) {
  std::string rv;
  auto items = ListPages(client, base, selector, &rv);
  if (!items.ok()) {
    std::cerr << "error: " << items.status().message() << "\n";
    return 1;
  }
  for (const auto& o : *items) PrintChange(a, "ADDED", o);
  while (true) {
    const std::string path =
        base + "?watch=true&resourceVersion=" + rv + "&labelSelector=" + PercentEncode(selector);
    auto r = client.Stream(path, [&](const std::string& line) {
      auto ev = json::parse(line, nullptr, false);
      if (!ev.is_object()) return true;
      rv = Text(ev, {"object", "metadata", "resourceVersion"});
      const std::string type = ev.value("type", "");
      if (type != "BOOKMARK") PrintChange(a, type, ev["object"]);
      return true;
    });
    if (!r.ok() && r.status().code() == StatusCode::kDeadlineExceeded) continue;  // dead link
    if (!r.ok()) {
      std::cerr << "error: " << r.status().message() << "\n";
      return 1;
    }
    if (r->status == 410) {
      auto again = ListPages(client, base, selector, &rv);
      if (!again.ok()) {
        std::cerr << "error: " << again.status().message() << "\n";
        return 1;
      }
      continue;
    }
    if (r->status != 200) return Refused(*r);
    // The server ended the stream (a restart): resume after a pause rather than spin.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

void AddOpsListCommands(CLI::App& app, OpsListArgs* a) {
  for (const char* kind : {"events", "alerts"}) {
    auto* group = app.add_subcommand(kind, std::string("operations ") + kind + ": list, watch");
    group->require_subcommand(1);
    for (const char* verb : {"list", "watch"}) {
      auto* cmd = group->add_subcommand(
          verb,
          std::string(verb) + " " + kind +
              (std::string(verb) == "watch" ? ": the list, then changes as they happen" : ""));
      cmd->add_option("--severity", a->severities,
                      std::string("only these severities (") +
                          (std::string(kind) == "alerts" ? "fatal, critical, warning"
                                                         : "success, warning, critical") +
                          "; comma-separated or repeated)")
          ->delimiter(',');
      cmd->add_option("-l,--label", a->labels, "only those with label KEY=VALUE (repeat: all)");
      cmd->add_flag("-A,--all-namespaces", a->all_ns);
      cmd->add_option("-o,--output", a->output, "table|name|json|yaml");
      (std::string(kind) == "events"
           ? (std::string(verb) == "list" ? a->events_list : a->events_watch)
           : (std::string(verb) == "list" ? a->alerts_list : a->alerts_watch)) = cmd;
    }
  }
}

StatusOr<std::string> OpsSelector(const std::string& kind, const OpsListArgs& a) {
  std::vector<std::string> terms;
  if (!a.severities.empty()) {
    const auto known = SeveritiesOf(kind);
    std::string in;
    for (std::string s : a.severities) {
      std::transform(s.begin(), s.end(), s.begin(), ::toupper);
      if (std::find(known.begin(), known.end(), s) == known.end()) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        return absl::InvalidArgumentError("--severity: " + kind + " have no severity '" + s +
                                          "' (known: " + list + ")");
      }
      in += (in.empty() ? "" : ",") + s;
    }
    terms.push_back("photon.io/severity in (" + in + ")");
  }
  for (const auto& l : a.labels) {
    const size_t eq = l.find('=');
    const std::string key = l.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : l.substr(eq + 1);
    if (eq == std::string::npos || !Selectable(key) || !Selectable(value)) {
      return absl::InvalidArgumentError(
          "-l/--label '" + l +
          "': want KEY=VALUE, each of letters, digits and - _ . / (what the server can select)");
    }
    terms.push_back(key + "=" + value);
  }
  std::string selector;
  for (const auto& t : terms) selector += (selector.empty() ? "" : ",") + t;
  return selector;
}

int RunOpsListCommand(const OpsListArgs& args, HttpClient client, const std::string& ns) {
  OpsListArgs a = args;
  const bool watch =
      (a.events_watch && a.events_watch->parsed()) || (a.alerts_watch && a.alerts_watch->parsed());
  if ((a.events_list && a.events_list->parsed()) || (a.events_watch && a.events_watch->parsed())) {
    a.kind = "events";
  } else if ((a.alerts_list && a.alerts_list->parsed()) || watch) {
    a.kind = "alerts";
  } else {
    return -1;
  }
  if (a.output != "table" && a.output != "name" && a.output != "json" && a.output != "yaml") {
    std::cerr << "error: -o: unknown output format '" << a.output
              << "' (want table, name, json or yaml)\n";
    return 2;
  }
  auto selector = OpsSelector(a.kind, a);
  if (!selector.ok()) {
    std::cerr << "error: " << selector.status().message() << "\n";
    return 2;
  }
  if (watch && a.output != "table" && a.output != "json") {
    std::cerr << "error: -o " << a.output << ": a watch prints table rows or json lines\n";
    return 2;
  }
  const std::string base = KindPath(a.kind, ns, a.all_ns);
  if (watch) return WatchOps(a, std::move(client), base, *selector);
  std::string rv;
  auto items = ListPages(client, base, *selector, &rv);
  if (!items.ok()) {
    std::cerr << "error: " << items.status().message() << "\n";
    return 1;
  }
  PrintList(a, *items);
  return 0;
}

}  // namespace photon::cli
