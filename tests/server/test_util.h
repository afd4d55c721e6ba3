// Helpers for server tests: temp dirs, an in-process photon-server, a REST client.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "../free_port.h"
#include "cli/http_client.h"
#include "common/file_util.h"
#include "server/server.h"

namespace photon::testing {

inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("photon-" + tag + "-XXXXXX")).string();
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct TestServer {
  std::string dir;
  std::unique_ptr<server::Server> server;
  std::string admin_token;
  std::string base;

  explicit TestServer(server::ServerOptions opts = {}) {
    dir = MakeTempDir("server");
    opts.data_dir = dir;
    opts.listen = "127.0.0.1:0";
    opts.grpc_listen = "127.0.0.1:0";
    auto s = server::Server::Start(opts);
    EXPECT_TRUE(s.ok()) << s.status();
    server = std::move(*s);
    admin_token = Trim(*ReadFile(dir + "/admin.token"));
    base = "http://127.0.0.1:" + std::to_string(server->http_port());
  }
  ~TestServer() {
    server->Stop();
    server.reset();
    std::filesystem::remove_all(dir);
  }
  cli::HttpClient Client(const std::string& token) const {
    return *cli::HttpClient::Create(base, token);
  }
  cli::HttpClient Admin() const { return Client(admin_token); }
};

inline nlohmann::json Json(const cli::HttpResult& r) {
  return nlohmann::json::parse(r.body, nullptr, false);
}

inline std::string ProcessInstance(const std::string& name, const std::string& labels = "{}") {
  return R"({"kind":"ComputeInstance","metadata":{"name":")" + name + R"(","labels":)" + labels +
         R"(},"spec":{"process":{"command":["/bin/true"]},"resources":{"vcpu":1,"memoryMb":64}}})";
}

}  // namespace photon::testing
