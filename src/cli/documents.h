// Reading resource documents (YAML or JSON, several per file) and printing objects as the CLI
// shows them. Stateless; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::cli {

// Parses every document of a YAML (or JSON, which is YAML) text. Each must be a mapping with a
// "kind"; errors name the document number.
StatusOr<std::vector<nlohmann::json>> ParseDocuments(const std::string& text);
// YAML rendering of a JSON value (for -o yaml).
std::string ToYaml(const nlohmann::json& value);

}  // namespace photon::cli
