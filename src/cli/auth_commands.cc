#include "cli/auth_commands.h"

#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/http_server.h"

namespace photon::cli {

namespace {

using nlohmann::json;

std::string ErrorOf(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return j["error"].value("message", "") + " (" + std::to_string(r.status) + ")";
  }
  return "HTTP " + std::to_string(r.status);
}

// One line from the terminal with echo off, or from standard input when it is not a terminal.
std::string ReadPassword(const std::string& user) {
  std::string line;
  if (isatty(STDIN_FILENO)) {
    std::cerr << "Password for " << user << ": " << std::flush;
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, line);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  } else {
    std::getline(std::cin, line);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

bool SaveConfig(const std::string& path, const json& cfg) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (auto st = MakeDirs(dir, 0700); !st.ok()) {
    std::cerr << "error: " << st.message() << "\n";
    return false;
  }
  if (auto st = WriteFileAtomic(path, cfg.dump(2) + "\n", 0600); !st.ok()) {
    std::cerr << "error: " << st.message() << "\n";
    return false;
  }
  return true;
}

json SessionConfig(const std::string& server, const std::string& ca_file, const std::string& user,
                   const json& answer) {
  json cfg = {{"server", server},
              {"token", answer.value("accessToken", "")},
              {"refresh_token", answer.value("refreshToken", "")},
              {"user", user},
              {"expires_at", answer.value("expiresAt", "")}};
  if (!ca_file.empty()) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(ca_file, ec);
    cfg["ca_file"] = ec ? ca_file : abs.string();
  }
  return cfg;
}

}  // namespace

int PasswordLogin(const std::string& server, const std::string& ca_file, const std::string& user,
                  const std::string& config_path) {
  const std::string password = ReadPassword(user);
  if (password.empty()) {
    std::cerr << "error: no password given (type it, or pipe it on standard input)\n";
    return 1;
  }
  auto client = HttpClient::Create(server, "", ca_file);
  if (!client.ok()) {
    std::cerr << "error: " << client.status().message() << "\n";
    return 1;
  }
  auto r = client->Do("POST", "/v1/login", json{{"user", user}, {"password", password}}.dump());
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 1;
  }
  if (r->status != 200) {
    std::cerr << "error: login refused: " << ErrorOf(*r) << "\n";
    return 1;
  }
  json answer = json::parse(r->body, nullptr, false);
  if (!answer.is_object()) {
    std::cerr << "error: malformed login answer\n";
    return 1;
  }
  if (!SaveConfig(config_path, SessionConfig(server, ca_file, user, answer))) return 1;
  std::cout << "logged in to " << server << " as " << user << " (access token until "
            << answer.value("expiresAt", "") << ", refreshed as needed); saved to " << config_path
            << "\n";
  return 0;
}

std::string RefreshSavedLogin(const std::string& server, const std::string& ca_file,
                              const std::string& token, const std::string& config_path) {
  auto text = ReadFile(config_path);
  if (!text.ok()) return "";
  json cfg = json::parse(*text, nullptr, false);
  if (!cfg.is_object() || cfg.value("refresh_token", "").empty() ||
      cfg.value("server", "") != server || cfg.value("token", "") != token) {
    return "";
  }
  auto client = HttpClient::Create(server, "", ca_file);
  if (!client.ok()) return "";
  auto r = client->Do("POST", "/v1/auth/refresh",
                      json{{"refreshToken", cfg.value("refresh_token", "")}}.dump());
  if (!r.ok() || r->status != 200) return "";
  json answer = json::parse(r->body, nullptr, false);
  if (!answer.is_object()) return "";
  json next = SessionConfig(server, cfg.value("ca_file", ""), cfg.value("user", ""), answer);
  if (!SaveConfig(config_path, next)) return "";
  return next.value("token", "");
}

int CanI(HttpClient client, const std::string& verb, const std::string& kind,
         const std::string& ns) {
  auto r = client.Do("GET", "/v1/auth/can-i?verb=" + PercentEncode(verb) +
                                "&kind=" + PercentEncode(kind) + "&namespace=" + PercentEncode(ns));
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return 2;
  }
  if (r->status != 200) {
    std::cerr << "error: " << ErrorOf(*r) << "\n";
    return 2;
  }
  const bool allowed = json::parse(r->body, nullptr, false).value("allowed", false);
  std::cout << (allowed ? "yes" : "no") << "\n";
  return allowed ? 0 : 1;
}

int WhoAmI(HttpClient client) {
  auto r = client.Do("GET", "/v1/auth/whoami");
  if (!r.ok() || r->status != 200) {
    std::cerr << "error: " << (r.ok() ? ErrorOf(*r) : std::string(r.status().message())) << "\n";
    return 1;
  }
  json j = json::parse(r->body, nullptr, false);
  std::cout << j.value("principal", "") << "\n";
  for (const auto& g : j.value("groups", json::array())) {
    std::cout << "  group " << g.get<std::string>() << "\n";
  }
  for (const auto& b : j.value("bindings", json::array())) {
    std::cout << "  " << b.value("role", "") << " in " << b.value("namespace", "") << "\n";
  }
  return 0;
}

}  // namespace photon::cli
