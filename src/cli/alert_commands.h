// The CLI's operations commands: `photon alert close NAME --comment TEXT` (operators).
// Listing goes through the generic verbs: `photon list alerts|events|checks|eventrules`.
#pragma once

#include <string>

#include "cli/http_client.h"

namespace photon::cli {

// Closes an open alert with the operator's comment (kept in its history). Exit status.
int CloseAlert(HttpClient client, const std::string& ns, const std::string& name,
               const std::string& comment);

}  // namespace photon::cli
