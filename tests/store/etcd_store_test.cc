// EtcdStore beyond the shared contract: endpoint fail-over and spec parsing, against a real
// etcd started for the suite.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "etcd_process.h"
#include "store/store.h"
#include "watch_collector.h"

namespace photon::store {
namespace {

using namespace std::chrono_literals;

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

TEST_F(EtcdStoreTest, RecoversFromEtcdRestart) {
  auto store = OpenStore(StoreOptions{etcd_->spec(), ""});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("/restart/k", "before").ok());
  testing::WatchCollector collector;
  auto watch = (*store)->Watch("/restart/", PrefixEnd("/restart/"), 0, collector.OnEvents(),
                               collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();

  ASSERT_TRUE(etcd_->Restart().ok());
  // The same store object works again within a few seconds, and nothing acknowledged is lost.
  StatusOr<int64_t> put = absl::UnavailableError("not tried");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!put.ok() && std::chrono::steady_clock::now() < deadline) {
    put = (*store)->Put("/restart/k2", "after");
    if (!put.ok()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(put.ok()) << put.status();
  auto got = (*store)->Range("/restart/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "before");
  // The watch resumed on the member once it was back, from where it was: the put made after
  // the restart arrives, and the watch never ended.
  auto events = collector.WaitFor(1, std::chrono::milliseconds(10000));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.key, "/restart/k2");
  EXPECT_EQ(events[0].kv.mod_revision, *put);
  EXPECT_FALSE(collector.Error().has_value()) << *collector.Error();
}

TEST(OpenStoreTest, RejectsBadSpecs) {
  EXPECT_EQ(OpenStore(StoreOptions{"bogus", "/tmp"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore(StoreOptions{"sqlite", ""}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore(StoreOptions{"etcd://", ""}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace photon::store
