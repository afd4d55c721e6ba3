// Levelled logging for every daemon (spdlog underneath). Thread-safe.
#pragma once

#include <string>

#include "common/status.h"

namespace photon {

// Sets the global level from "trace|debug|info|warn|error|off"; unknown names are refused.
Status InitLogging(const std::string& component, const std::string& level);

}  // namespace photon
