// `photon logs NAME [-f] [--tail N] [--since D]`, `photon exec [-i] [-t] NAME -- CMD…` and
// `photon console NAME`: byte streams from and to an instance on its node, relayed by
// photon-server (docs/api.md "Streams").
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/http_client.h"

namespace photon::cli {

struct StreamArgs {
  std::string name;
  bool follow = false;
  bool interactive = false;  // exec -i: pass stdin
  bool tty = false;          // exec -t: a terminal for the command
  int tail = 100;
  std::string since;
  std::vector<std::string> argv;  // exec: the command, after --
  CLI::App* logs = nullptr;
  CLI::App* exec = nullptr;
  CLI::App* console = nullptr;
};

// The detach key of `photon console`: Ctrl-], as in virsh console and telnet.
inline constexpr char kDetachKey = 0x1d;

// Registers `logs`, `exec` and `console` on `app`, parsing into *args.
void AddStreamCommands(CLI::App& app, StreamArgs* args);

// True when the command line named one of them.
bool StreamCommandParsed(const StreamArgs& args);

// Runs the stream command the command line named: its exit status (exec: the command's), or
// -1 when it named none of them.
int RunStreamCommand(const StreamArgs& args, HttpClient client, const std::string& ns);

}  // namespace photon::cli
