// lightningstor: standalone S3-compatible object storage.
//   lightningstor --config FILE                 run the daemon
//   lightningstor --config FILE keys create NAME [--user USER] | keys list | keys delete ID
#include <CLI/CLI.hpp>
#include <cstdio>

#include "lightningstor/config.h"
#include "lightningstor/daemon.h"

int main(int argc, char** argv) {
  using namespace photon::lightningstor;
  CLI::App app{"lightningstor: S3-compatible object storage"};
  std::string config_path;
  app.add_option("--config", config_path, "YAML configuration file")->required();
  auto* keys = app.add_subcommand("keys", "manage access keys");
  std::string name, id, user = "lightningstor";
  auto* create = keys->add_subcommand("create", "create an access key and print it");
  create->add_option("NAME", name, "a label for the key")->required();
  create->add_option("--user", user, "the account the key acts as (default: lightningstor)");
  auto* list = keys->add_subcommand("list", "list access key ids");
  auto* del = keys->add_subcommand("delete", "delete an access key");
  del->add_option("ID", id, "access key id")->required();
  keys->require_subcommand(1);
  CLI11_PARSE(app, argc, argv);

  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (create->parsed()) return KeysCreate(*config, name, user);
  if (list->parsed()) return KeysList(*config);
  if (del->parsed()) return KeysDelete(*config, id);
  return RunDaemon(*config);
}
