// `photon image upload NAME FILE [--format F] [--sha256 HEX]`, `photon image download NAME FILE`
// and `photon image share NAME --public|--private` (docs/images.md): images stored by the
// control plane in lightningstor, sent and read in chunks with a progress bar on a terminal
// (plain lines when stderr is not one).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/http_client.h"

namespace photon::cli {

struct ImageArgs {
  std::string name;
  std::string file;
  std::string format;
  std::string sha256;
  bool make_public = false;
  bool make_private = false;
  CLI::App* image = nullptr;
  CLI::App* upload = nullptr;
  CLI::App* download = nullptr;
  CLI::App* share = nullptr;
};

// Registers `image` and its subcommands on `app`, parsing into *args.
void AddImageCommands(CLI::App& app, ImageArgs* args);

// Runs the image command the command line named: its exit status, or -1 when it named none.
int RunImageCommand(const ImageArgs& args, HttpClient client, const std::string& ns);

// The format a file name suggests (vmlinuz -> kernel, *.qcow2 -> qcow2, ...), "" when unsure.
std::string GuessImageFormat(const std::string& path);

}  // namespace photon::cli
