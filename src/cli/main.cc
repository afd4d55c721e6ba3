// photon: the PhotonCloud command line. Talks to photon-server's REST API.
// Server, token and CA file come from PHOTON_SERVER / PHOTON_TOKEN / PHOTON_CA_FILE, or from
// the file `photon login` writes (~/.config/photon/config.json, mode 0600).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/alert_commands.h"
#include "cli/auth_commands.h"
#include "cli/completion.h"
#include "cli/documents.h"
#include "cli/http_client.h"
#include "cli/image_commands.h"
#include "cli/stream_commands.h"
#include "cli/table.h"
#include "cli/top_commands.h"
#include "cli/wait_commands.h"
#include "common/file_util.h"
#include "common/http_server.h"

using nlohmann::json;
using photon::cli::HttpClient;
using photon::cli::HttpResult;
using photon::cli::PrintRows;

namespace {

struct Globals {
  std::string server;
  std::string token;
  std::string ca_file;  // PEM CA for an https:// server
  std::string ns = "default";
  std::string output = "table";
};

std::string ConfigPath() {
  const char* home = getenv("HOME");
  return std::string(home ? home : "/root") + "/.config/photon/config.json";
}

[[noreturn]] void Die(const std::string& msg) {
  std::cerr << "error: " << msg << "\n";
  exit(1);
}

void LoadDefaults(Globals& g) {
  if (const char* s = getenv("PHOTON_SERVER")) g.server = s;
  if (const char* t = getenv("PHOTON_TOKEN")) g.token = t;
  if (const char* c = getenv("PHOTON_CA_FILE")) g.ca_file = c;
  if (g.server.empty() || g.token.empty() || g.ca_file.empty()) {
    auto text = photon::ReadFile(ConfigPath());
    if (text.ok()) {
      auto j = json::parse(*text, nullptr, false);
      if (j.is_object()) {
        const std::string saved = j.value("server", "");
        // The saved CA belongs to the saved server, not to one named in the environment.
        if (g.ca_file.empty() && (g.server.empty() || g.server == saved)) {
          g.ca_file = j.value("ca_file", "");
        }
        if (g.server.empty()) g.server = saved;
        if (g.token.empty()) g.token = j.value("token", "");
      }
    }
  }
  if (g.server.empty()) g.server = "http://127.0.0.1:8080";
  while (!g.token.empty() && (g.token.back() == '\n' || g.token.back() == ' ')) g.token.pop_back();
}

HttpClient Client(const Globals& g) {
  auto c = HttpClient::Create(g.server, g.token, g.ca_file);
  if (!c.ok()) Die(std::string(c.status().message()));
  return *c;
}

// The one-line reason of an API error body.
std::string Reason(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    return j["error"].value("message", "") + " (" + std::to_string(r.status) + " " +
           j["error"].value("code", "") + ")";
  }
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
}

HttpResult Call(const Globals& g, const std::string& method, const std::string& path,
                const std::string& body = "") {
  auto r = Client(g).Do(method, path, body);
  if (!r.ok()) Die(std::string(r.status().message()));
  static bool refreshed = false;  // once per command
  if (r->status == 401 && !refreshed) {
    // A password login's access token is short-lived: its refresh token gets the next one.
    refreshed = true;
    Globals again = g;
    again.token = photon::cli::RefreshSavedLogin(g.server, g.ca_file, g.token, ConfigPath());
    if (!again.token.empty()) return Call(again, method, path, body);
  }
  return *r;
}

// Short names, as kubectl and incus users type them.
const std::map<std::string, std::string>& ShortNames() {
  static const std::map<std::string, std::string> kNames = {
      {"ci", "computeinstances"}, {"vm", "computeinstances"}, {"vms", "computeinstances"},
      {"img", "images"},          {"vol", "volumes"},         {"no", "nodes"},
      {"sg", "securitygroups"},   {"sgs", "securitygroups"},  {"fip", "floatingips"},
      {"fips", "floatingips"},    {"lb", "loadbalancers"},    {"lbs", "loadbalancers"},
      {"rs", "regionservices"},   {"ev", "events"},           {"op", "operations"},
      {"ops", "operations"},      {"zone", "dnszones"},       {"rec", "dnsrecords"},
      {"bkt", "buckets"},         {"fl", "flavors"},          {"gs", "globalservices"}};
  return kNames;
}

std::string Plural(std::string kind) {
  for (auto& c : kind) c = static_cast<char>(tolower(c));
  if (auto it = ShortNames().find(kind); it != ShortNames().end()) return it->second;
  if (!kind.empty() && kind.back() != 's') kind += 's';
  return kind;
}

// Cluster-scoped kinds live in the "system" namespace: no -n needed for them.
std::string NamespaceOf(const std::string& ns, const std::string& kind) {
  const std::string p = Plural(kind);
  return p == "nodes" || p == "datacenters" || p == "floors" || p == "racks" ||
                 p == "physicalresources"
             ? "system"
             : ns;
}

std::string ObjPath(const std::string& ns, const std::string& kind, const std::string& name = "") {
  std::string p = "/v1/namespaces/" + photon::PercentEncode(NamespaceOf(ns, kind)) + "/" +
                  photon::PercentEncode(Plural(kind));
  if (!name.empty()) p += "/" + photon::PercentEncode(name);
  return p;
}

std::string Field(const json& o, std::initializer_list<const char*> path) {
  const json* cur = &o;
  for (const char* p : path) {
    if (!cur->is_object() || !cur->contains(p)) return "";
    cur = &(*cur)[p];
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return "";
  return cur->dump();
}

// The driver of an instance (process, container, vm), or "" for other kinds.
std::string DriverOf(const json& o) {
  if (!o.contains("spec") || !o["spec"].is_object()) return "";
  for (const char* d : {"process", "container", "vm"}) {
    if (o["spec"].contains(d)) return d;
  }
  return "";
}

void PrintTable(const std::vector<json>& items, bool wide) {
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "NAME", "KIND", "PHASE", "NODE", "MESSAGE"}};
  if (wide) rows[0].insert(rows[0].end(), {"DRIVER", "ADDRESS", "CREATED", "ID"});
  for (const auto& o : items) {
    const bool node = Field(o, {"kind"}) == "Node";
    rows.push_back({Field(o, {"metadata", "namespace"}), Field(o, {"metadata", "name"}),
                    Field(o, {"kind"}),
                    // Nodes report their condition (READY, SUSPECT, DOWN), not a phase.
                    node ? Field(o, {"nodeStatus", "condition"}) : Field(o, {"status", "phase"}),
                    Field(o, {"metadata", "agentId"}),
                    node ? Field(o, {"nodeStatus", "message"}) : Field(o, {"status", "message"})});
    if (!wide) continue;
    std::string address;
    if (o.contains("status") && o["status"].contains("addresses") &&
        !o["status"]["addresses"].empty()) {
      address = o["status"]["addresses"][0].get<std::string>();
    }
    rows.back().insert(
        rows.back().end(),
        {DriverOf(o), address, Field(o, {"metadata", "createdAt"}), Field(o, {"metadata", "id"})});
  }
  PrintRows(rows);
}

// The value at a dotted path (".metadata.name", "status.phase"); nullptr when absent.
const json* AtPath(const json& o, const std::string& path) {
  const json* cur = &o;
  size_t start = path.size() > 0 && path[0] == '.' ? 1 : 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(part)) return nullptr;
    cur = &(*cur)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

// Sorts by the field at `path`, numbers as numbers; refuses a path no object has (a typo
// must not print an unsorted list as if sorted).
void SortBy(std::vector<json>& items, const std::string& path) {
  if (path.empty() || items.empty()) return;
  bool any = false;
  for (const auto& o : items) any = any || AtPath(o, path) != nullptr;
  if (!any) Die("--sort-by: no listed object has the field '" + path + "'");
  auto key = [&](const json& o) -> std::pair<double, std::string> {
    const json* v = AtPath(o, path);
    if (v == nullptr) return {0, ""};
    if (v->is_number()) return {v->get<double>(), ""};
    std::string s = v->is_string() ? v->get<std::string>() : v->dump();
    char* end = nullptr;
    double d = strtod(s.c_str(), &end);
    return (!s.empty() && end && *end == 0) ? std::make_pair(d, std::string())
                                            : std::make_pair(0.0, s);
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const json& a, const json& b) { return key(a) < key(b); });
}

void PrintObjects(const Globals& g, const std::vector<json>& items, bool single) {
  if (g.output == "json") {
    std::cout << (single ? items.at(0).dump(2) : json(items).dump(2)) << "\n";
  } else if (g.output == "yaml") {
    if (single) {
      std::cout << photon::cli::ToYaml(items.at(0));
    } else {
      for (const auto& o : items) std::cout << "---\n" << photon::cli::ToYaml(o);
    }
  } else if (g.output == "name") {
    for (const auto& o : items) std::cout << Field(o, {"metadata", "name"}) << "\n";
  } else if (g.output == "table" || g.output == "wide") {
    PrintTable(items, g.output == "wide");
  } else {
    Die("-o: unknown output format '" + g.output + "' (want table, wide, name, json or yaml)");
  }
}

std::string ReadInput(const std::string& file) {
  if (file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  auto text = photon::ReadFile(file);
  if (!text.ok()) Die(std::string(text.status().message()));
  return *text;
}

std::vector<json> ListAll(const Globals& g, const std::string& kind, bool all_ns,
                          const std::string& selector, std::string* rv) {
  std::vector<json> items;
  std::string cont;
  while (true) {
    std::string path = all_ns ? "/v1/" + photon::PercentEncode(Plural(kind)) : ObjPath(g.ns, kind);
    path += "?limit=500";
    if (!selector.empty()) path += "&labelSelector=" + photon::PercentEncode(selector);
    if (!cont.empty()) path += "&continue=" + photon::PercentEncode(cont);
    auto r = Call(g, "GET", path);
    if (r.status != 200) Die(Reason(r));
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) Die("malformed answer from the server");
    for (auto& it : j["items"]) items.push_back(std::move(it));
    if (rv) *rv = j.value("resourceVersion", "");
    cont = j.value("continue", "");
    if (cont.empty()) break;
  }
  return items;
}

int CreateOrApply(const Globals& g, const std::string& file, bool apply) {
  auto docs = photon::cli::ParseDocuments(ReadInput(file));
  if (!docs.ok()) Die(file + ": " + std::string(docs.status().message()));
  int failures = 0;
  for (auto& doc : *docs) {
    std::string kind = doc["kind"].get<std::string>();
    std::string name = Field(doc, {"metadata", "name"});
    std::string ns = Field(doc, {"metadata", "namespace"});
    if (ns.empty()) ns = g.ns;
    std::string path = ObjPath(ns, kind);
    if (apply && !name.empty()) {
      auto cur = Call(g, "GET", ObjPath(ns, kind, name));
      if (cur.status == 200) {
        HttpResult r;
        // A controller may write the object between our read and our write: read again.
        for (int attempt = 0; attempt < 10; ++attempt) {
          if (attempt > 0) cur = Call(g, "GET", ObjPath(ns, kind, name));
          auto cj = json::parse(cur.body);
          doc["metadata"]["resourceVersion"] = cj["metadata"]["resourceVersion"];
          r = Call(g, "PUT", ObjPath(ns, kind, name), doc.dump());
          if (r.status != 409) break;
        }
        if (r.status != 200) {
          std::cerr << "error: " << kind << " " << name << ": " << Reason(r) << "\n";
          ++failures;
          continue;
        }
        std::cout << Plural(kind) << "/" << name << " configured\n";
        continue;
      }
    }
    auto r = Call(g, "POST", path, doc.dump());
    if (r.status != 202) {
      std::cerr << "error: " << kind << " " << name << ": " << Reason(r) << "\n";
      ++failures;
      continue;
    }
    auto j = json::parse(r.body);
    std::cout << Plural(kind) << "/" << name << " created (operation "
              << Field(j, {"operation", "metadata", "id"}) << ")\n";
  }
  return failures ? 1 : 0;
}

void Describe(const json& o, const std::string& indent = "") {
  for (auto& [k, v] : o.items()) {
    if (v.is_object()) {
      if (v.empty()) continue;
      std::cout << indent << k << ":\n";
      Describe(v, indent + "  ");
    } else if (v.is_array()) {
      if (v.empty()) continue;
      std::cout << indent << k << ":\n";
      for (auto& item : v) {
        if (item.is_object()) {
          std::cout << indent << "  -\n";
          Describe(item, indent + "    ");
        } else {
          std::cout << indent << "  - "
                    << (item.is_string() ? item.get<std::string>() : item.dump()) << "\n";
        }
      }
    } else {
      std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      if (s.empty() || s == "0" || s == "false") continue;
      std::cout << indent << k << ": " << s << "\n";
    }
  }
}

// Prints the changes of a kind from resourceVersion `rv` on (never returns but on error).
int WatchFrom(const Globals& g, const std::string& kind, bool all_ns, const std::string& selector,
              std::string rv) {
  while (true) {
    std::string path = all_ns ? "/v1/" + photon::PercentEncode(Plural(kind)) : ObjPath(g.ns, kind);
    path += "?watch=true&resourceVersion=" + rv;
    if (!selector.empty()) path += "&labelSelector=" + photon::PercentEncode(selector);
    auto client = Client(g);
    std::string ended;  // the server's last word on a watch it ends (a revoked token)
    auto r = client.Stream(path, [&](const std::string& line) {
      auto ev = json::parse(line, nullptr, false);
      if (ev.is_discarded()) return true;
      std::string type = ev.value("type", "");
      if (type == "ERROR") {
        const json err = ev.value("error", json::object());
        ended = err.value("code", "ERROR") + ": " + err.value("message", line);
        return false;
      }
      const auto& o = ev["object"];
      rv = Field(o, {"metadata", "resourceVersion"});
      if (type == "BOOKMARK") return true;  // nothing changed up to rv
      type.resize(10, ' ');
      std::cout << type << Field(o, {"metadata", "namespace"}) << "/"
                << Field(o, {"metadata", "name"}) << "  " << Field(o, {"status", "phase"}) << "  "
                << Field(o, {"status", "message"}) << std::endl;
      return true;
    });
    if (!ended.empty()) Die("the server ended the watch: " + ended);
    if (!r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded) {
      // Silence past the bookmark interval: the connection is dead; resume on a new one.
      std::cerr << "watch: " << r.status().message() << "; reconnecting\n";
      continue;
    }
    if (!r.ok()) Die(std::string(r.status().message()));
    if (r->status == 410) {
      std::cerr << "watch: history compacted, relisting\n";
      ListAll(g, kind, all_ns, selector, &rv);
      continue;
    }
    if (r->status != 200) Die(Reason(*r));
    // The server closed the stream (restart): resume from the last version seen.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int Watch(const Globals& g, const std::string& kind, bool all_ns, const std::string& selector) {
  std::string rv;
  // The initial state, then changes; a 410 (history compacted) relists and resumes by itself.
  auto items = ListAll(g, kind, all_ns, selector, &rv);
  for (const auto& o : items) {
    std::cout << "ADDED     " << Field(o, {"metadata", "namespace"}) << "/"
              << Field(o, {"metadata", "name"}) << "  " << Field(o, {"status", "phase"}) << "  "
              << Field(o, {"status", "message"}) << std::endl;
  }
  return WatchFrom(g, kind, all_ns, selector, rv);
}

// What the command line asked for: the options of every subcommand (CLI11 writes them).
struct Options {
  std::string file, selector, kind, name, id, action;
  bool all_ns = false;
  int limit = 50;
  std::string principal, role = "viewer", token_file, ttl, token_id;
  std::string node_name;
  int drain_timeout = 300;
  std::string continue_token;                   // audit: the page before this one
  std::string user, verb;                       // login --user; auth can-i VERB KIND
  std::string alert_name, comment;              // alert close NAME --comment TEXT
  photon::cli::MaintenanceOptions maintenance;  // maintenance start NAME ...
  photon::cli::OpsListArgs ops_list;            // events|alerts list|watch
  photon::cli::TopArgs top;                     // top nodes|instances
  std::string sort_by;                          // list --sort-by PATH
  bool watch = false;                           // list -w
  bool async = false;                           // action --async
  std::string wait_for, timeout = "60s";
  int tail = 100;              // logs --tail N
  std::string shell = "bash";  // completion SHELL
};

// The subcommands, to tell after parsing which one was given.
struct Commands {
  CLI::App *create, *apply, *get, *list, *describe, *del, *watch;
  CLI::App *ops, *act, *audit, *token_create, *token_list, *token_revoke, *token_rotate;
  CLI::App *cordon, *uncordon, *drain, *login;
  CLI::App *node_revoke, *node_unrevoke;
  CLI::App *can_i, *whoami;
  CLI::App* alert_close;
  CLI::App *maintenance_start, *maintenance_end;
  CLI::App *wait, *logs, *completion;
};

void AddResourceCommands(CLI::App& app, Globals& g, Options& o, Commands& c) {
  c.create = app.add_subcommand("create", "create resources from a YAML/JSON file");
  c.create->add_option("-f,--file", o.file, "file ('-' for stdin)")->required();
  c.apply = app.add_subcommand("apply", "create or update resources from a YAML/JSON file");
  c.apply->add_option("-f,--file", o.file, "file ('-' for stdin)")->required();

  c.get = app.add_subcommand("get", "show one resource");
  c.get->add_option("kind", o.kind, "kind, e.g. computeinstances")->required();
  c.get->add_option("name", o.name)->required();
  c.get->add_option("-o,--output", g.output, "table|wide|name|json|yaml");

  c.list = app.add_subcommand("list", "list resources");
  c.list->add_option("kind", o.kind)->required();
  c.list->add_option("-l,--selector", o.selector, "label selector, e.g. app=web,tier!=db");
  c.list->add_option("-o,--output", g.output, "table|wide|name|json|yaml");
  c.list->add_flag("-A,--all-namespaces", o.all_ns);
  c.list->add_option("--sort-by", o.sort_by, "sort by a field, e.g. .metadata.createdAt");
  c.list->add_flag("-w,--watch", o.watch, "after the list, print changes as they happen");

  c.describe = app.add_subcommand("describe", "show a resource in detail");
  c.describe->add_option("kind", o.kind)->required();
  c.describe->add_option("name", o.name)->required();

  c.del = app.add_subcommand("delete", "delete a resource");
  c.del->add_option("kind", o.kind);
  c.del->add_option("name", o.name);
  c.del->add_option("-f,--file", o.file, "delete what a file describes");

  c.watch = app.add_subcommand("watch", "follow changes of a kind");
  c.watch->add_option("kind", o.kind)->required();
  c.watch->add_option("-l,--selector", o.selector);
  c.watch->add_flag("-A,--all-namespaces", o.all_ns);

  c.wait = app.add_subcommand("wait", "wait until a resource reaches a state");
  c.wait->add_option("kind", o.kind)->required();
  c.wait->add_option("name", o.name)->required();
  c.wait->add_option("--for", o.wait_for, "phase=PHASE, condition=CONDITION or delete")->required();
  c.wait->add_option("--timeout", o.timeout, "e.g. 60s, 5m (default 60s)");
}

void AddOperationCommands(CLI::App& app, Globals& g, Options& o, Commands& c) {
  c.ops = app.add_subcommand("operations", "show an operation, or list recent ones");
  c.ops->add_option("id", o.id);
  c.ops->add_option("-o,--output", g.output, "table|json|yaml");

  c.act = app.add_subcommand("action", "run an action (start, stop, restart, logs, ...)");
  c.act->add_option("kind", o.kind)->required();
  c.act->add_option("name", o.name)->required();
  c.act->add_option("action", o.action)->required();
  c.act->add_flag("--async", o.async, "print the operation id instead of waiting for the result");
  c.act->add_option("--timeout", o.timeout, "how long to wait for the result (default 60s)");

  c.completion = app.add_subcommand("completion", "print a shell completion script");
  c.completion->add_option("shell", o.shell, "bash (the only one so far)");

  c.audit = app.add_subcommand("audit", "show the audit log (admins)");
  c.audit->add_option("--limit", o.limit, "records per page, the newest first (at most 5000)");
  c.audit->add_option("--continue", o.continue_token,
                      "show the page before the one that printed this token");
}

void AddAdminCommands(CLI::App& app, Globals& g, Options& o, Commands& c) {
  auto* token = app.add_subcommand("token", "manage API tokens (admins)");
  c.token_create = token->add_subcommand("create", "create a token for a principal");
  c.token_create->add_option("--principal", o.principal)->required();
  c.token_create->add_option("--role", o.role, "viewer|editor|admin|join (join: namespace *)");
  c.token_create->add_option("--ttl", o.ttl,
                             "lifetime, e.g. 90s, 15m, 24h, 7d (default: the server's, 30 days; "
                             "24 h for join)");
  c.token_list = token->add_subcommand("list", "list tokens (never their secrets)");
  c.token_list->add_option("-o,--output", g.output, "table|json");
  c.token_revoke = token->add_subcommand("revoke", "revoke a token; it is refused from then on");
  c.token_revoke->add_option("id", o.token_id, "token id (see token list)")->required();
  c.token_rotate = token->add_subcommand(
      "rotate-admin", "new DATA_DIR/admin.token on the server; the old admin token stops working");
  token->require_subcommand(1);

  auto* node = app.add_subcommand("node", "node operations: cordon, uncordon, drain, revoke");
  node->require_subcommand(1);
  c.cordon = node->add_subcommand("cordon", "stop new placements on a node");
  c.cordon->add_option("name", o.node_name)->required();
  c.uncordon = node->add_subcommand("uncordon", "allow placements on a node again");
  c.uncordon->add_option("name", o.node_name)->required();
  c.drain = node->add_subcommand("drain", "cordon a node and move its instances off, waiting");
  c.drain->add_option("name", o.node_name)->required();
  c.drain->add_option("--timeout", o.drain_timeout, "seconds to wait");
  c.node_revoke = node->add_subcommand(
      "revoke", "refuse a node's agent at once: its certificate, its token and its joins");
  c.node_revoke->add_option("name", o.node_name)->required();
  c.node_unrevoke = node->add_subcommand("unrevoke", "let a revoked node join again");
  c.node_unrevoke->add_option("name", o.node_name)->required();

  c.login = app.add_subcommand("login", "save server URL and token for later commands");
  auto* token_file = c.login->add_option("--token-file", o.token_file,
                                         "file holding the token (e.g. DATA_DIR/admin.token)");
  auto* user = c.login->add_option(
      "--user", o.user, "log in as this user: the password is read from the terminal or stdin");
  token_file->excludes(user);
  c.login->require_option(1);

  auto* auth = app.add_subcommand("auth", "what the server takes you for, and may you do it");
  auth->require_subcommand(1);
  c.can_i = auth->add_subcommand("can-i", "may I VERB KIND in the namespace? (exit 0 yes, 1 no)");
  c.can_i->add_option("verb", o.verb, "get|list|watch|create|update|delete|action|...")->required();
  c.can_i->add_option("kind", o.kind)->required();
  c.whoami = auth->add_subcommand("whoami", "the principal of the token in use, and its roles");

  auto* alert = app.add_subcommand("alert", "operations alerts (list them: photon list alerts)");
  alert->require_subcommand(1);
  c.alert_close = alert->add_subcommand("close", "close an open alert, saying what was done");
  c.alert_close->add_option("name", o.alert_name)->required();
  c.alert_close->add_option("--comment", o.comment, "what was done (kept in its history)")
      ->required();

  auto* maint =
      app.add_subcommand("maintenance", "maintenance records (list: photon list maintenances)");
  maint->require_subcommand(1);
  auto& m = o.maintenance;
  c.maintenance_start =
      maint->add_subcommand("start", "record a maintenance: its events take no action");
  c.maintenance_start->add_option("name", o.alert_name)->required();
  c.maintenance_start->add_option("--description", m.description, "what is done")->required();
  c.maintenance_start->add_option("--node", m.nodes, "a node under maintenance (repeat)");
  c.maintenance_start->add_option("--instance", m.instances,
                                  "an instance NAME or NS/NAME (repeat)");
  c.maintenance_start->add_option("--from", m.from, "start, RFC 3339 UTC (default now)");
  c.maintenance_start->add_option("--until", m.until, "end, RFC 3339 UTC");
  c.maintenance_start->add_option("--duration", m.duration, "length: 90m, 2h, 1d");
  c.maintenance_start->add_flag("--drain", m.drain, "cordon and drain the nodes meanwhile");
  c.maintenance_end = maint->add_subcommand("end", "end a maintenance now (the record stays)");
  c.maintenance_end->add_option("name", o.alert_name)->required();
  photon::cli::AddOpsListCommands(app, &o.ops_list);
  photon::cli::AddTopCommands(app, &o.top);
}

int Login(Globals g, const std::string& token_file) {
  auto t = photon::ReadFile(token_file);
  if (!t.ok()) Die(std::string(t.status().message()));
  std::string tok = *t;
  while (!tok.empty() && (tok.back() == '\n' || tok.back() == ' ')) tok.pop_back();
  g.token = tok;
  auto r = Call(g, "GET", "/v1/computeinstances?limit=1");
  if (r.status == 401) Die("the server refused this token: " + Reason(r));
  std::string dir = ConfigPath().substr(0, ConfigPath().rfind('/'));
  if (auto st = photon::MakeDirs(dir, 0700); !st.ok()) Die(std::string(st.message()));
  json cfg = {{"server", g.server}, {"token", tok}};
  if (!g.ca_file.empty()) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(g.ca_file, ec);
    cfg["ca_file"] = ec ? g.ca_file : abs.string();
  }
  if (auto st = photon::WriteFileAtomic(ConfigPath(), cfg.dump(2) + "\n", 0600); !st.ok()) {
    Die(std::string(st.message()));
  }
  std::cout << "logged in to " << g.server << "; saved to " << ConfigPath() << "\n";
  return 0;
}

// Cordons (or uncordons) a node; `drain` also asks the scheduler to move its instances off.
void SetSchedulable(const Globals& g, const std::string& node_name, bool schedulable, bool drain) {
  // Read-modify-write with the resourceVersion; retry when an agent's heartbeat wins the race.
  for (int attempt = 0;; ++attempt) {
    auto cur = Call(g, "GET", ObjPath("system", "nodes", node_name));
    if (cur.status != 200) Die(Reason(cur));
    auto n = json::parse(cur.body);
    n["spec"]["unschedulable"] = !schedulable;
    if (drain) n["metadata"]["annotations"]["photon.io/drain"] = "requested";
    if (schedulable) n["metadata"]["annotations"].erase("photon.io/drain");
    auto r = Call(g, "PUT", ObjPath("system", "nodes", node_name), n.dump());
    if (r.status == 200) break;
    if (r.status != 409 || attempt > 20) Die(Reason(r));
  }
  std::cout << "node/" << node_name << (schedulable ? " uncordoned" : " cordoned") << "\n";
}

// The instances on a node ("ns/name" → whether it was RUNNING there), before a drain moves them.
std::map<std::string, bool> InstancesOn(const Globals& g, const std::string& node_name) {
  std::map<std::string, bool> out;
  for (auto& o : ListAll(g, "computeinstances", true, "", nullptr)) {
    if (Field(o, {"metadata", "agentId"}) != node_name) continue;
    out[Field(o, {"metadata", "namespace"}) + "/" + Field(o, {"metadata", "name"})] =
        Field(o, {"status", "phase"}) == "RUNNING";
  }
  return out;
}

// Where a moved instance stands; "" once it is done: RUNNING on its new node as that node
// reports it (one that was not RUNNING before only has to leave), or deleted meanwhile.
std::string MoveState(const json* o, const std::string& node_name, bool was_running) {
  if (o == nullptr) return "";
  const std::string agent = Field(*o, {"metadata", "agentId"});
  const std::string phase = Field(*o, {"status", "phase"});
  if (agent == node_name) return "still on " + node_name;
  if (!was_running && !agent.empty()) return "";
  if (agent.empty()) return phase + ", not placed: " + Field(*o, {"status", "message"});
  if (phase == "RUNNING" && Field(*o, {"status", "details", "node"}) == agent) return "";
  return phase + " on " + agent;
}

// Polls until no instance is left on the node and every instance that was RUNNING there runs
// on its new node, showing progress (a counter line on a terminal, a line per change when
// piped); dies after timeout_s seconds naming the instances that are not there yet.
void WaitDrained(const Globals& g, const std::string& node_name,
                 const std::map<std::string, bool>& moving, int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  const bool tty = isatty(STDERR_FILENO) == 1;
  std::string last;
  while (true) {
    auto items = ListAll(g, "computeinstances", true, "", nullptr);
    std::map<std::string, const json*> by_name;
    int left = 0;
    for (auto& o : items) {
      by_name[Field(o, {"metadata", "namespace"}) + "/" + Field(o, {"metadata", "name"})] = &o;
      if (Field(o, {"metadata", "agentId"}) == node_name) ++left;
    }
    std::vector<std::string> waiting;
    for (const auto& [name, was_running] : moving) {
      auto it = by_name.find(name);
      std::string state =
          MoveState(it == by_name.end() ? nullptr : it->second, node_name, was_running);
      if (!state.empty()) waiting.push_back(name + " (" + state + ")");
    }
    const std::string line = "drain: " + std::to_string(moving.size() - waiting.size()) + "/" +
                             std::to_string(moving.size()) + " moved and running, " +
                             std::to_string(left) + " left on " + node_name;
    if (line != last) {
      if (tty) {
        std::cerr << "\r" << line << "\x1b[K" << std::flush;
      } else {
        std::cerr << line << "\n";
      }
      last = line;
    }
    if (left == 0 && waiting.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      if (tty) std::cerr << "\n";
      std::string names;
      for (const auto& w : waiting) names += (names.empty() ? "" : ", ") + w;
      Die("drain: after " + std::to_string(timeout_s) + " s, " + std::to_string(left) +
          " instances left on " + node_name +
          (waiting.empty() ? "" : "; not running elsewhere: " + names));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::cerr << "\n";
  std::cout << "node/" << node_name << " drained: " << moving.size()
            << " instances running elsewhere\n";
}

// The object's recent events (reason, message), the newest last.
std::vector<json> EventsOf(const Globals& g, const std::string& kind, const std::string& name) {
  Globals in_ns = g;
  in_ns.ns = NamespaceOf(g.ns, kind);
  std::vector<json> out;
  for (auto& e : ListAll(in_ns, "events", false, "", nullptr)) {
    if (Field(e, {"spec", "resourceEvent", "name"}) == Plural(kind) + "/" + name) {
      out.push_back(std::move(e));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return Field(a, {"spec", "timestamp"}) < Field(b, {"spec", "timestamp"});
  });
  if (out.size() > 10) out.erase(out.begin(), out.end() - 10);
  return out;
}

// A human summary: who and where, the spec, the state, conditions and recent events.
void DescribeSummary(const Globals& g, const std::string& kind, const json& o) {
  auto line = [](const std::string& label, const std::string& value) {
    if (value.empty()) return;
    std::cout << label << std::string(label.size() < 12 ? 12 - label.size() : 1, ' ') << value
              << "\n";
  };
  const bool node = Field(o, {"kind"}) == "Node";
  line("Name:", Field(o, {"metadata", "name"}));
  line("Namespace:", Field(o, {"metadata", "namespace"}));
  line("Kind:", Field(o, {"kind"}));
  line("ID:", Field(o, {"metadata", "id"}));
  line("Labels:", Field(o, {"metadata", "labels"}));
  line("Created:",
       Field(o, {"metadata", "createdAt"}) + " by " + Field(o, {"metadata", "createdBy"}));
  line("Node:", Field(o, {"metadata", "agentId"}));
  line("Driver:", DriverOf(o));
  line("Phase:", node ? Field(o, {"nodeStatus", "condition"}) : Field(o, {"status", "phase"}));
  line("Message:", node ? Field(o, {"nodeStatus", "message"}) : Field(o, {"status", "message"}));
  if (o.contains("status") && o["status"].contains("addresses")) {
    std::string addrs;
    for (const auto& a : o["status"]["addresses"])
      addrs += (addrs.empty() ? "" : ", ") + a.get<std::string>();
    line("Addresses:", addrs);
  }
  if (o.contains("spec") && o["spec"].is_object() && !o["spec"].empty()) {
    std::cout << "Spec:\n";
    Describe(o["spec"], "  ");
  }
  if (o.contains("status") && o["status"].contains("conditions")) {
    std::vector<std::vector<std::string>> rows = {{"  TYPE", "STATUS", "REASON", "MESSAGE"}};
    for (const auto& c : o["status"]["conditions"]) {
      rows.push_back({"  " + Field(c, {"type"}), Field(c, {"status"}), Field(c, {"reason"}),
                      Field(c, {"message"})});
    }
    std::cout << "Conditions:\n";
    PrintRows(rows);
  }
  auto events = EventsOf(g, kind, Field(o, {"metadata", "name"}));
  std::cout << "Events:" << (events.empty() ? " none\n" : "\n");
  if (events.empty()) return;
  std::vector<std::vector<std::string>> rows = {{"  TIME", "REASON", "MESSAGE"}};
  for (const auto& e : events) {
    rows.push_back({"  " + Field(e, {"spec", "timestamp"}), Field(e, {"spec", "eventType"}),
                    Field(e, {"spec", "resourceEvent", "message"})});
  }
  PrintRows(rows);
}

int Get(const Globals& g, const Options& o, bool describe) {
  auto r = Call(g, "GET", ObjPath(g.ns, o.kind, o.name));
  if (r.status != 200) Die(Reason(r));
  if (describe) {
    DescribeSummary(g, o.kind, json::parse(r.body));
  } else {
    PrintObjects(g, {json::parse(r.body)}, true);
  }
  return 0;
}

int Delete(const Globals& g, const Options& o) {
  std::vector<std::pair<std::string, std::string>> targets;
  if (!o.file.empty()) {
    auto docs = photon::cli::ParseDocuments(ReadInput(o.file));
    if (!docs.ok()) Die(o.file + ": " + std::string(docs.status().message()));
    for (auto& d : *docs)
      targets.push_back({d["kind"].get<std::string>(), Field(d, {"metadata", "name"})});
  } else {
    if (o.kind.empty() || o.name.empty()) Die("delete: want KIND NAME or -f FILE");
    targets.push_back({o.kind, o.name});
  }
  int failures = 0;
  for (auto& [k, n] : targets) {
    auto r = Call(g, "DELETE", ObjPath(g.ns, k, n));
    if (r.status != 202) {
      std::cerr << "error: " << Reason(r) << "\n";
      ++failures;
      continue;
    }
    std::cout << Plural(k) << "/" << n << " deleted\n";
  }
  return failures ? 1 : 0;
}

int ShowOperation(const Globals& g, const std::string& id) {
  auto r = Call(g, "GET", "/v1/operations/" + photon::PercentEncode(id));
  if (r.status != 200) Die(Reason(r));
  auto j = json::parse(r.body);
  if (g.output != "table") {
    PrintObjects(g, {j}, true);
    return 0;
  }
  std::cout << "operation " << Field(j, {"metadata", "id"})
            << "\n  verb:   " << Field(j, {"spec", "verb"})
            << "\n  target: " << Field(j, {"spec", "targetKind"}) << "/"
            << Field(j, {"spec", "targetNamespace"}) << "/" << Field(j, {"spec", "targetName"})
            << "\n  state:  " << Field(j, {"status", "state"})
            << "\n  message: " << Field(j, {"status", "message"}) << "\n";
  return 0;
}

int ListOperations(const Globals& g) {
  auto items = ListAll(g, "operations", false, "", nullptr);
  for (auto& o : items) {
    std::cout << Field(o, {"metadata", "id"}) << "  " << Field(o, {"spec", "verb"}) << "  "
              << Field(o, {"spec", "targetKind"}) << "/" << Field(o, {"spec", "targetName"}) << "  "
              << Field(o, {"status", "state"}) << "  " << Field(o, {"status", "message"}) << "\n";
  }
  return 0;
}

std::chrono::milliseconds Timeout(const Options& o) {
  auto t = photon::cli::ParseDuration(o.timeout);
  if (!t.ok()) Die("--timeout: " + std::string(t.status().message()));
  return *t;
}

// Runs the action and prints its result when the node has done it (--async: the operation).
int RunAction(const Globals& g, const Options& o, const std::string& action, const json& params) {
  const auto timeout = Timeout(o);
  json body = json::object();
  if (!params.empty()) body["params"] = params;
  auto r =
      Call(g, "POST", ObjPath(g.ns, o.kind, o.name) + "/actions/" + photon::PercentEncode(action),
           body.dump());
  if (r.status != 202) Die(Reason(r));
  const std::string id = Field(json::parse(r.body), {"operation", "metadata", "id"});
  if (o.async) {
    std::cout << action << " queued (operation " << id << ")\n";
    return 0;
  }
  return photon::cli::AwaitOperation(Client(g), id, timeout);
}

int Wait(const Globals& g, const Options& o) {
  auto cond = photon::cli::ParseWaitCondition(o.wait_for);
  if (!cond.ok()) Die(std::string(cond.status().message()));
  return photon::cli::WaitFor(Client(g), NamespaceOf(g.ns, o.kind), Plural(o.kind), o.name, *cond,
                              Timeout(o));
}

int ShowAudit(const Globals& g, int limit, const std::string& continue_token) {
  auto r = Call(
      g, "GET",
      "/v1/auditevents?limit=" + std::to_string(limit) +
          (continue_token.empty() ? "" : "&continue=" + photon::PercentEncode(continue_token)));
  if (r.status != 200) Die(Reason(r));
  auto j = json::parse(r.body);
  for (auto& e : j["items"]) {
    std::cout << Field(e, {"metadata", "timestamp"}) << "  " << Field(e, {"actorId"}) << "  "
              << Field(e, {"action"}) << "  " << Field(e, {"resourceId"}) << "  "
              << (e.value("success", false) ? "ok" : "refused") << " " << Field(e, {"code"})
              << "\n";
  }
  // Pages walk back in time: say how to get the older records.
  if (!j.value("continue", std::string()).empty()) {
    std::cerr << "older records: photon audit --continue " << j["continue"].get<std::string>()
              << "\n";
  }
  return 0;
}

// "90s", "15m", "24h", "7d" or plain seconds, as seconds.
int64_t ParseTtl(const std::string& text) {
  size_t digits = text.find_first_not_of("0123456789");
  std::string unit = digits == std::string::npos ? "s" : text.substr(digits);
  const std::map<std::string, int64_t> kUnits = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  if (text.empty() || digits == 0 ||
      text.size() - (digits == std::string::npos ? text.size() : digits) > 1 ||
      !kUnits.count(unit) || text.size() > 12) {
    Die("--ttl: '" + text + "' is not a duration like 90s, 15m, 24h or 7d");
  }
  int64_t n = std::stoll(text.substr(0, digits)) * kUnits.at(unit);
  if (n <= 0) Die("--ttl: must be more than 0");
  return n;
}

int CreateToken(const Globals& g, const Options& o) {
  // A join token serves every namespace: agents join the cluster, not a project.
  const std::string ns = o.role == "join" ? "*" : g.ns;
  json body = {{"principal", o.principal},
               {"bindings", json::array({{{"namespace", ns}, {"role", o.role}}})}};
  if (!o.ttl.empty()) body["ttlSeconds"] = ParseTtl(o.ttl);
  auto r = Call(g, "POST", "/v1/tokens", body.dump());
  if (r.status != 201) Die(Reason(r));
  auto j = json::parse(r.body);
  std::cout << j["token"].get<std::string>() << "\n";
  std::cerr << "token " << j.value("id", "") << " created (shown once; photon token list)\n";
  return 0;
}

int ListTokens(const Globals& g) {
  auto r = Call(g, "GET", "/v1/tokens");
  if (r.status != 200) Die(Reason(r));
  auto j = json::parse(r.body);
  if (g.output == "json") {
    std::cout << j["items"].dump(2) << "\n";
    return 0;
  }
  if (g.output != "table") Die("-o: unknown output format '" + g.output + "' (want table or json)");
  std::vector<std::vector<std::string>> rows = {
      {"ID", "PRINCIPAL", "PURPOSE", "ROLES", "CREATED", "EXPIRES", "STATE"}};
  for (const auto& t : j["items"]) {
    std::string roles;
    for (const auto& b : t.value("bindings", json::array())) {
      roles += (roles.empty() ? "" : ",") + b.value("role", "") + "@" + b.value("namespace", "");
    }
    const std::string state = t.value("revoked", false)   ? "revoked " + Field(t, {"revokedAt"})
                              : t.value("expired", false) ? "expired"
                                                          : "active";
    const std::string expires = Field(t, {"expiresAt"});
    rows.push_back({Field(t, {"id"}), Field(t, {"principal"}), Field(t, {"purpose"}), roles,
                    Field(t, {"createdAt"}), expires.empty() ? "never" : expires, state});
  }
  PrintRows(rows);
  return 0;
}

int RevokeToken(const Globals& g, const std::string& id) {
  auto r = Call(g, "DELETE", "/v1/tokens/" + photon::PercentEncode(id));
  if (r.status != 200) Die(Reason(r));
  std::cout << "token " << id << " revoked\n";
  return 0;
}

// Node revocations (docs/security.md "Agent certificates").
int RevokeNode(const Globals& g, const std::string& node, bool revoke) {
  auto r =
      Call(g, revoke ? "POST" : "DELETE", "/v1/noderevocations/" + photon::PercentEncode(node));
  if (r.status != (revoke ? 201 : 200)) Die(Reason(r));
  std::cout << "node " << node
            << (revoke ? " revoked: its agent is refused\n" : " may join again\n");
  return 0;
}

// The new admin token goes to stdout; `photon login`'s saved token follows it if it was the
// old one (which stops working at once).
int RotateAdmin(const Globals& g) {
  auto r = Call(g, "POST", "/v1/tokens/rotate-admin");
  if (r.status != 201) Die(Reason(r));
  const std::string token = json::parse(r.body)["token"].get<std::string>();
  std::cout << token << "\n";
  std::cerr << "written to the server's DATA_DIR/admin.token; the old admin token is revoked\n";
  auto text = photon::ReadFile(ConfigPath());
  if (!text.ok()) return 0;
  auto cfg = json::parse(*text, nullptr, false);
  if (!cfg.is_object() || cfg.value("token", "") != g.token) return 0;
  cfg["token"] = token;
  if (auto st = photon::WriteFileAtomic(ConfigPath(), cfg.dump(2) + "\n", 0600); !st.ok()) {
    Die("saving the new token to " + ConfigPath() + ": " + std::string(st.message()));
  }
  std::cerr << "saved to " << ConfigPath() << "\n";
  return 0;
}

int PrintCompletion(const CLI::App& app, const std::string& shell) {
  if (shell != "bash") Die("completion: only bash is supported, not '" + shell + "'");
  // The kinds photon-server serves (src/server/kinds.cc), for the KIND argument.
  static const std::vector<std::string> kKinds = {
      "computeinstances", "flavors",       "images",         "regionservices", "vpcs",
      "subnets",          "ports",         "securitygroups", "floatingips",    "loadbalancers",
      "dnszones",         "dnsrecords",    "volumes",        "buckets",        "nodes",
      "events",           "operations",    "checks",         "eventrules",     "alerts",
      "maintenances",     "globalservices"};
  std::cout << photon::cli::BashCompletion(
      app, kKinds, {"get", "list", "describe", "delete", "watch", "wait", "action"});
  return 0;
}

// Runs the one subcommand the command line named; its exit status.
int Dispatch(const CLI::App& app, const Globals& g, const Options& o, const Commands& c) {
  if (*c.login) {
    if (!o.user.empty())
      return photon::cli::PasswordLogin(g.server, g.ca_file, o.user, ConfigPath());
    return Login(g, o.token_file);
  }
  if (*c.can_i) return photon::cli::CanI(Client(g), o.verb, o.kind, g.ns);
  if (*c.whoami) return photon::cli::WhoAmI(Client(g));
  if (*c.alert_close) return photon::cli::CloseAlert(Client(g), g.ns, o.alert_name, o.comment);
  if (int rc = photon::cli::RunOpsListCommand(o.ops_list, Client(g), g.ns); rc >= 0) return rc;
  if (int rc = photon::cli::RunTopCommand(o.top, Client(g), g.ns); rc >= 0) return rc;
  if (*c.maintenance_start) {
    return photon::cli::StartMaintenance(Client(g), g.ns, o.alert_name, o.maintenance);
  }
  if (*c.maintenance_end) return photon::cli::EndMaintenance(Client(g), g.ns, o.alert_name);
  if (*c.cordon || *c.uncordon || *c.drain) {
    // What is on the node before the drain moves it: the instances to see running elsewhere.
    std::map<std::string, bool> moving;
    if (*c.drain) moving = InstancesOn(g, o.node_name);
    SetSchedulable(g, o.node_name, c.uncordon->parsed(), c.drain->parsed());
    if (*c.drain) WaitDrained(g, o.node_name, moving, o.drain_timeout);
    return 0;
  }
  if (*c.create || *c.apply) return CreateOrApply(g, o.file, c.apply->parsed());
  if (*c.get || *c.describe) return Get(g, o, c.describe->parsed());
  if (*c.list) {
    std::string rv;
    auto items = ListAll(g, o.kind, o.all_ns, o.selector, &rv);
    SortBy(items, o.sort_by);
    PrintObjects(g, items, false);
    if (o.watch) {
      std::cout.flush();
      return WatchFrom(g, o.kind, o.all_ns, o.selector, rv);
    }
    return 0;
  }
  if (*c.wait) return Wait(g, o);
  if (*c.completion) return PrintCompletion(app, o.shell);
  if (*c.del) return Delete(g, o);
  if (*c.watch) return Watch(g, o.kind, o.all_ns, o.selector);
  if (*c.ops) return o.id.empty() ? ListOperations(g) : ShowOperation(g, o.id);
  if (*c.act) return RunAction(g, o, o.action, json::object());
  if (*c.audit) return ShowAudit(g, o.limit, o.continue_token);
  if (*c.token_create) return CreateToken(g, o);
  if (*c.token_list) return ListTokens(g);
  if (*c.token_revoke) return RevokeToken(g, o.token_id);
  if (*c.node_revoke) return RevokeNode(g, o.node_name, true);
  if (*c.node_unrevoke) return RevokeNode(g, o.node_name, false);
  if (*c.token_rotate) return RotateAdmin(g);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"photon: manage PhotonCloud resources"};
  app.require_subcommand(1);
  // Global options (-n, -s) may also follow the subcommand: photon list nodes -n system.
  app.fallthrough();
  Globals g;
  LoadDefaults(g);
  app.add_option("-s,--server", g.server, "server URL (env PHOTON_SERVER)");
  app.add_option("--ca-file", g.ca_file,
                 "PEM CA for an https:// server (env PHOTON_CA_FILE; login saves it)");
  app.add_option("-n,--namespace", g.ns, "namespace (project)");
  Options o;
  Commands c{};
  AddResourceCommands(app, g, o, c);
  AddOperationCommands(app, g, o, c);
  AddAdminCommands(app, g, o, c);
  photon::cli::StreamArgs streams;  // logs, exec, console
  photon::cli::AddStreamCommands(app, &streams);
  photon::cli::ImageArgs images;  // image upload, download, share
  photon::cli::AddImageCommands(app, &images);
  CLI11_PARSE(app, argc, argv);
  if (images.image->parsed()) return photon::cli::RunImageCommand(images, Client(g), g.ns);
  if (photon::cli::StreamCommandParsed(streams)) {
    return photon::cli::RunStreamCommand(streams, Client(g), g.ns);
  }
  return Dispatch(app, g, o, c);
}
