// `photon top nodes|instances`: current CPU and memory use, as the agents sample them from
// /proc and the instances' cgroups (GET /v1/ops/top/..., docs/operations.md "Usage").
// `photon stats`: the long-term daily and monthly figures (GET /v1/stats).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/http_client.h"

namespace photon::cli {

struct TopArgs {
  bool all_ns = false;           // instances of every namespace the caller may list
  std::string output = "table";  // table or json
  CLI::App *top = nullptr, *nodes = nullptr, *instances = nullptr;
  // photon stats [--period day|month] [--nodes] [--subject X] [--from T] [--to T]
  CLI::App* stats = nullptr;
  std::string period = "day", subject, from, to;
  bool stats_nodes = false;
};
void AddTopCommands(CLI::App& app, TopArgs* args);
// Runs `photon top ...` or `photon stats` when the command line named it: its exit status,
// else -1.
int RunTopCommand(const TopArgs& args, HttpClient client, const std::string& ns);

}  // namespace photon::cli
