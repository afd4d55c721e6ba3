// The CLI's HTTP client is the shared one in src/common; these names keep the CLI, the agent
// and the tests that spell it cli::HttpClient compiling.
#pragma once

#include "common/http_client.h"

namespace photon::cli {

using HttpClient = photon::HttpClient;
using HttpResult = photon::HttpResult;

}  // namespace photon::cli
