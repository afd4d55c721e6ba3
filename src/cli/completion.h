// `photon completion bash`: a completion script generated from the command tree itself, so it
// never falls behind a new subcommand or option.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace photon::cli {

// Completes subcommands, their options, kind names (`kinds`) for commands whose first argument
// is a kind, and object names through `photon list KIND -o name`.
std::string BashCompletion(const CLI::App& app, const std::vector<std::string>& kinds,
                           const std::vector<std::string>& kind_commands);

}  // namespace photon::cli
