// Wires the lightningstor daemon together: stores, service, HTTP server, sweeper; runs until
// SIGINT/SIGTERM. Also the key-management commands of the CLI. Called from main only.
#pragma once

#include <string>

#include "lightningstor/config.h"

namespace photon::lightningstor {

int RunDaemon(const Config& config);
int KeysCreate(const Config& config, const std::string& name, const std::string& user);
int KeysList(const Config& config);
int KeysDelete(const Config& config, const std::string& id);

}  // namespace photon::lightningstor
