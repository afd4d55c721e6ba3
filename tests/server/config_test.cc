#include <gtest/gtest.h>

#include "common/file_util.h"
#include "server/server.h"
#include "test_util.h"

namespace photon::testing {
namespace {

TEST(ServerConfig, LoadsKnownKeysAndRefusesUnknownOnesByName) {
  std::string dir = MakeTempDir("config");
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/ok.yaml", "data_dir: /tmp/x\nlisten: 127.0.0.1:9\nstore: sqlite\n")
          .ok());
  server::ServerOptions opts;
  ASSERT_TRUE(server::LoadServerConfig(dir + "/ok.yaml", &opts).ok());
  EXPECT_EQ(opts.data_dir, "/tmp/x");
  EXPECT_EQ(opts.listen, "127.0.0.1:9");
  ASSERT_TRUE(WriteFileAtomic(dir + "/bad.yaml", "listne: 127.0.0.1:9\n").ok());
  auto st = server::LoadServerConfig(dir + "/bad.yaml", &opts);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("listne"), std::string::npos) << st;
  // Broken YAML: the file and the parser's reason (where, and what is wrong).
  ASSERT_TRUE(WriteFileAtomic(dir + "/broken.yaml", "listen: [unclosed\n").ok());
  st = server::LoadServerConfig(dir + "/broken.yaml", &opts);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(dir + "/broken.yaml"), std::string::npos) << st;
  EXPECT_NE(st.message().find("end of sequence flow not found"), std::string::npos) << st;
  st = server::LoadServerConfig(dir + "/missing.yaml", &opts);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bad file: " + dir + "/missing.yaml"), std::string::npos) << st;
  std::filesystem::remove_all(dir);
}

TEST(ServerConfig, BadListenAddressFailsFast) {
  server::ServerOptions opts;
  opts.data_dir = MakeTempDir("badlisten");
  opts.listen = "not-an-address";
  opts.grpc_listen = "127.0.0.1:0";
  auto s = server::Server::Start(opts);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << s.status();
  EXPECT_NE(s.status().message().find("'not-an-address': want HOST:PORT"), std::string::npos)
      << s.status();
  std::filesystem::remove_all(opts.data_dir);
}

}  // namespace
}  // namespace photon::testing
