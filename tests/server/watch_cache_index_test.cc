// The watch cache's index by agentId: a subscriber that selects one node gets the events about
// that node's objects (placed there now, or moved away from it) and is never called for
// another node's, while an unindexed subscriber still gets everything. Real SQLite store.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "photon/compute.pb.h"
#include "server/watch_cache.h"
#include "store/store.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using server::CacheEvent;

struct Seen {
  std::mutex mu;
  std::vector<std::string> events;  // "TYPE name@agent" of each delivered event
  int calls = 0;
  size_t size() {
    std::lock_guard l(mu);
    return events.size();
  }
};

std::string Describe(const CacheEvent& e) {
  auto msg = e.object->Decoded();
  const auto& ci = static_cast<const compute::ComputeInstance&>(*msg);
  const char* type = e.type == CacheEvent::Type::kAdded     ? "ADDED"
                     : e.type == CacheEvent::Type::kDeleted ? "DELETED"
                                                            : "MODIFIED";
  return std::string(type) + " " + ci.metadata().name() + "@" + ci.metadata().agent_id();
}

class WatchCacheIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("wcindex");
    auto st = store::OpenStore({.data_dir = dir_});
    ASSERT_TRUE(st.ok()) << st.status();
    store_ = std::move(*st);
    cache_ = std::make_unique<server::WatchCache>(store_.get(), &metrics_);
    ASSERT_TRUE(cache_->Start().ok());
  }
  void TearDown() override {
    cache_->Stop();
    cache_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  uint64_t Watch(Seen* seen, const std::string& agent) {
    auto id = cache_->Subscribe(
        server::RegistryPrefix("computeinstances"), 0, nullptr,
        [seen](const std::vector<CacheEvent>& events) {
          std::lock_guard l(seen->mu);
          ++seen->calls;
          for (const auto& e : events) seen->events.push_back(Describe(e));
        },
        false, agent);
    EXPECT_TRUE(id.ok());
    return *id;
  }
  void Put(const std::string& name, const std::string& agent) {
    compute::ComputeInstance ci;
    ci.mutable_metadata()->set_name(name);
    ci.mutable_metadata()->set_namespace_("default");
    ci.mutable_metadata()->set_agent_id(agent);
    ASSERT_TRUE(
        store_
            ->Put(server::RegistryKey("computeinstances", "default", name), ci.SerializeAsString())
            .ok());
  }
  static void WaitFor(Seen* seen, size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (seen->size() < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  std::string dir_;
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<server::WatchCache> cache_;
};

TEST_F(WatchCacheIndexTest, ANodesWatchGetsOnlyItsOwnObjects) {
  Seen n1, n2, all;
  Watch(&n1, "n1");
  Watch(&n2, "n2");
  Watch(&all, "");
  Put("a", "n1");
  Put("b", "n3");
  Put("c", "");
  Put("a", "n2");  // moved from n1 to n2: both see it (n1 sees it leave)
  ASSERT_TRUE(store_->Delete(server::RegistryKey("computeinstances", "default", "a")).ok());
  WaitFor(&all, 5);
  WaitFor(&n1, 2);
  WaitFor(&n2, 2);
  // The unindexed watch is the reference: every event, in order.
  EXPECT_EQ(all.events, (std::vector<std::string>{"ADDED a@n1", "ADDED b@n3", "ADDED c@",
                                                  "MODIFIED a@n2", "DELETED a@n2"}));
  EXPECT_EQ(n1.events, (std::vector<std::string>{"ADDED a@n1", "MODIFIED a@n2"}));
  EXPECT_EQ(n2.events, (std::vector<std::string>{"MODIFIED a@n2", "DELETED a@n2"}));
}

TEST_F(WatchCacheIndexTest, AnotherNodesChangesNeverCallIt) {
  Seen n1, n2;
  Watch(&n1, "n1");
  Watch(&n2, "n2");
  for (int i = 0; i < 50; ++i) Put("x" + std::to_string(i), "n2");
  WaitFor(&n2, 50);
  ASSERT_EQ(n2.size(), 50u);
  std::lock_guard l(n1.mu);
  EXPECT_EQ(n1.calls, 0);  // not even with an empty list
  EXPECT_TRUE(n1.events.empty());
}

TEST_F(WatchCacheIndexTest, OtherNodesWatchesDoNotHoldItsChangesBack) {
  // Rounds are spaced by the subscribers each round calls. 2,500 watches of other nodes are
  // not called for n1's changes, so they must not space n1's rounds out (counted, they set the
  // longest spacing, 50 ms, between a change and its delivery).
  Seen others, n1;
  for (int i = 0; i < 2500; ++i) Watch(&others, "other" + std::to_string(i));
  Watch(&n1, "n1");
  std::vector<double> ms;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Put("y", "n1");
    const auto deadline = t0 + std::chrono::seconds(10);
    while (n1.size() < static_cast<size_t>(i + 1) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    ASSERT_EQ(n1.size(), static_cast<size_t>(i + 1));
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[ms.size() / 2], 25.0) << "median put -> delivery, ms";
  EXPECT_EQ(others.size(), 0u);
}

}  // namespace
}  // namespace photon::testing
