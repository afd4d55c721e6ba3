// The CLI's identity commands: `photon login --user NAME` (the password from the terminal
// with echo off, or the first line of standard input; never from the command line), and
// `photon auth can-i VERB KIND` / `photon auth whoami`.
#pragma once

#include <string>

#include "cli/http_client.h"

namespace photon::cli {

// Exchanges NAME's password for an access and a refresh token (POST /v1/login) and saves them
// with the server URL (and CA file) to `config_path` (0600). Exit status.
int PasswordLogin(const std::string& server, const std::string& ca_file, const std::string& user,
                  const std::string& config_path);

// Asks the server whether the caller may VERB KIND in `ns`; prints yes or no. Exit status 0 for
// yes, 1 for no (as kubectl auth can-i), 2 for an error.
int CanI(HttpClient client, const std::string& verb, const std::string& kind,
         const std::string& ns);

// Prints who the server takes the caller for, and the roles it holds.
int WhoAmI(HttpClient client);

// When `token` is the saved login's access token: the saved refresh token, exchanged for a new
// access token (and refresh token) and saved; the new access token, or "" when there is none
// to refresh or the server refuses.
std::string RefreshSavedLogin(const std::string& server, const std::string& ca_file,
                              const std::string& token, const std::string& config_path);

}  // namespace photon::cli
