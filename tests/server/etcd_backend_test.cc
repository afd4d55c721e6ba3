// photon-server on the distributed backend: a real etcd (Debian etcd-server) as its store.
#include <gtest/gtest.h>

#include <thread>

#include "../store/etcd_process.h"
#include "test_util.h"

namespace photon::testing {
namespace {

TEST(EtcdBackend, CreateListWatchAndRestartKeepState) {
  if (!store::testing::EtcdProcess::Available())
    GTEST_SKIP() << "SKIPPED LOUDLY: /usr/bin/etcd is not installed";
  auto etcd = store::testing::EtcdProcess::Start();
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  server::ServerOptions opts;
  opts.store = (*etcd)->spec();
  std::string dir;
  {
    TestServer s(opts);
    dir = s.dir;
    auto c = s.Admin();
    ASSERT_EQ(
        c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("e1"))->status,
        202);
    ASSERT_EQ(
        c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("e2"))->status,
        202);
    auto list = Json(*c.Do("GET", "/v1/namespaces/default/computeinstances"));
    EXPECT_EQ(list["items"].size(), 2u);
    EXPECT_EQ(
        c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("e1"))->status,
        409);
    std::vector<std::string> lines;
    (void)s.Admin().Stream("/v1/namespaces/default/computeinstances?watch=true",
                           [&](const std::string& line) {
                             lines.push_back(line);
                             return lines.size() < 2;
                           });
    EXPECT_EQ(lines.size(), 2u);
  }
  // A second server on the same etcd sees the same state (the store is the source of truth).
  TestServer s2(opts);
  auto list = Json(*s2.Admin().Do("GET", "/v1/computeinstances"));
  EXPECT_EQ(list["items"].size(), 2u);
}

}  // namespace
}  // namespace photon::testing
