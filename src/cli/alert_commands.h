// The CLI's operations commands: `photon alert close NAME --comment TEXT` (operators) and
// `photon maintenance start|end NAME` (docs/operations.md "Maintenance"). Listing goes
// through the generic verbs: `photon list alerts|events|checks|eventrules|maintenances`.
#pragma once

#include <string>
#include <vector>

#include "cli/http_client.h"

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

}  // namespace photon::cli
