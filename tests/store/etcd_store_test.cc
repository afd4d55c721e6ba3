// EtcdStore beyond the shared contract: endpoint fail-over and spec parsing, against a real
// etcd started for the suite.
#include <gtest/gtest.h>

#include "etcd_process.h"
#include "store/store.h"

namespace photon::store {
namespace {

class EtcdStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::EtcdProcess::Available()) return;
    auto started = testing::EtcdProcess::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    etcd_ = std::move(*started);
  }
  static void TearDownTestSuite() { etcd_.reset(); }
  void SetUp() override {
    if (!testing::EtcdProcess::Available()) {
      GTEST_SKIP() << "*** SKIPPED: " << testing::kEtcdBinary
                   << " is not installed (Debian package etcd-server) ***";
    }
    ASSERT_NE(etcd_, nullptr);
  }
  static inline std::unique_ptr<testing::EtcdProcess> etcd_;
};

TEST_F(EtcdStoreTest, SkipsDeadEndpointsInOrder) {
  int dead_port = testing::PickFreePort();
  std::string spec =
      "etcd://127.0.0.1:" + std::to_string(dead_port) + ",http://" + etcd_->endpoint();
  auto store = OpenStore(StoreOptions{spec, ""});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Backend(), "etcd");
  auto revision = (*store)->Put("/failover/k", "v");
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto got = (*store)->Range("/failover/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "v");
}

TEST_F(EtcdStoreTest, NoLiveEndpointFailsToOpen) {
  std::string spec = "etcd://127.0.0.1:" + std::to_string(testing::PickFreePort());
  auto store = OpenStore(StoreOptions{spec, ""});
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status();
}

TEST(OpenStoreTest, RejectsBadSpecs) {
  EXPECT_EQ(OpenStore(StoreOptions{"bogus", "/tmp"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore(StoreOptions{"sqlite", ""}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore(StoreOptions{"etcd://", ""}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace photon::store
