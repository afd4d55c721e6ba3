// The CLI's operations commands: `photon alert close NAME --comment TEXT` (operators),
// `photon maintenance start|end NAME` (docs/operations.md "Maintenance") and
// `photon events|alerts list|watch [--severity S] [-l KEY=VALUE]`. The other kinds list
// through the generic verbs: `photon list checks|eventrules|maintenances`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "common/status.h"

namespace photon::cli {

// Closes an open alert with the operator's comment (kept in its history). Exit status.
int CloseAlert(HttpClient client, const std::string& ns, const std::string& name,
               const std::string& comment);

struct MaintenanceOptions {
  std::string description;
  std::vector<std::string> nodes, instances;
  std::string from;      // RFC 3339 UTC; "" = now
  std::string until;     // RFC 3339 UTC, or
  std::string duration;  // 90m, 2h, 1d, 3600s (from `from`)
  bool drain = false;
};
// Records a maintenance (who: the caller; what, where, from when to when). Exit status.
int StartMaintenance(HttpClient client, const std::string& ns, const std::string& name,
                     const MaintenanceOptions& o);
// Ends a maintenance now (its record stays, with the time it ended). Exit status.
int EndMaintenance(HttpClient client, const std::string& ns, const std::string& name);

// `photon events|alerts list|watch`: filters that the server applies (labelSelector over the
// labels the pipeline keeps selectable: the event's or alert's labels, photon.io/severity and
// an alert's photon.io/state).
struct OpsListArgs {
  std::vector<std::string> severities;  // --severity critical,warning (or repeated)
  std::vector<std::string> labels;      // -l team=db (repeated: all must match)
  bool all_ns = false;
  std::string output = "table";  // table, name, json, yaml
  std::string kind;              // events or alerts, once parsed
  CLI::App *events_list = nullptr, *events_watch = nullptr;
  CLI::App *alerts_list = nullptr, *alerts_watch = nullptr;
};
void AddOpsListCommands(CLI::App& app, OpsListArgs* args);
// The labelSelector for `kind` ("events" or "alerts"): INVALID_ARGUMENT for a severity the
// kind does not have or a label filter the selector cannot express (never dropped).
StatusOr<std::string> OpsSelector(const std::string& kind, const OpsListArgs& args);
// Runs the list or watch the command line named: its exit status, or -1 when it named none.
int RunOpsListCommand(const OpsListArgs& args, HttpClient client, const std::string& ns);

}  // namespace photon::cli
