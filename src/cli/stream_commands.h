// `photon logs NAME [-f] [--tail N] [--since D]` and `photon exec NAME -- CMD…`: byte streams
// from and to an instance on its node, relayed by photon-server (docs/api.md "Streams").
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/http_client.h"

namespace photon::cli {

struct StreamArgs {
  std::string name;
  bool follow = false;
  int tail = 100;
  std::string since;
  std::vector<std::string> argv;  // exec: the command, after --
  CLI::App* logs = nullptr;
  CLI::App* exec = nullptr;
};

// Registers `logs` and `exec` on `app`, parsing into *args.
void AddStreamCommands(CLI::App& app, StreamArgs* args);

// Runs the stream command the command line named: its exit status (exec: the command's), or
// -1 when it named none of them.
int RunStreamCommand(const StreamArgs& args, HttpClient client, const std::string& ns);

}  // namespace photon::cli
