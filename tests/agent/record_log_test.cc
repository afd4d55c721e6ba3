// The agent's handle log: records survive reopening, a torn last line is dropped, the file is
// compacted, and concurrent writers share syncs (one fsync per batch, not per record).
#include "agent/host/record_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "test_env.h"

namespace photon::agent {
namespace {

class RecordLogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("record-log"); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path() const { return dir_ + "/handles.log"; }
  std::string dir_;
};

TEST_F(RecordLogTest, RecordsSurviveReopeningAndATornTailIsDropped) {
  {
    auto log = RecordLog::Open(path());
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Put("a", "{\"x\":1}").ok());
    ASSERT_TRUE((*log)->Put("b", "two").ok());
    ASSERT_TRUE((*log)->Put("a", "one").ok());
    ASSERT_TRUE((*log)->Erase("b").ok());
    ASSERT_TRUE((*log)->Put("c", "three").ok());
  }
  {
    std::ofstream torn(path(), std::ios::app);
    torn << "{\"id\":\"d\",\"value\":\"cut sh";  // a crash in mid-append
  }
  auto read = RecordLog::Read(path());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, (std::map<std::string, std::string>{{"a", "one"}, {"c", "three"}}));
  auto log = RecordLog::Open(path());
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->Records(), *read);
  // Opening compacts: one line per record, the torn line gone, mode 0600.
  EXPECT_EQ(testing::Slurp(path()),
            "{\"id\":\"a\",\"value\":\"one\"}\n{\"id\":\"c\",\"value\":\"three\"}\n");
  EXPECT_EQ(std::filesystem::status(path()).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ASSERT_TRUE((*log)->Put("e", "five").ok());
  EXPECT_EQ(RecordLog::Read(path())->count("e"), 1u);
}

// 8 workers saving 1,000 records share syncs (each Put returns only once its line is synced).
TEST_F(RecordLogTest, ConcurrentPutsShareSyncs) {
  auto log = RecordLog::Open(path());
  ASSERT_TRUE(log.ok());
  const uint64_t before = (*log)->Syncs();
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < 125; ++i) {
        std::string id = std::to_string(w) + "-" + std::to_string(i);
        EXPECT_TRUE((*log)->Put(id, std::string(300, 'x')).ok());
      }
    });
  }
  for (auto& t : workers) t.join();
  const uint64_t syncs = (*log)->Syncs() - before;
  EXPECT_GT(syncs, 0u);
  EXPECT_LT(syncs, 700u) << "about one sync per record: no group commit";
  EXPECT_EQ(RecordLog::Read(path())->size(), 1000u);
  // Many more lines than records: the log is rewritten rather than growing without bound.
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE((*log)->Put("hot", std::to_string(i)).ok());
  }
  EXPECT_LT(std::filesystem::file_size(path()), 2u * 1001u * 330u + 1024u * 40u);
  EXPECT_EQ(RecordLog::Read(path())->at("hot"), "999");
}

}  // namespace
}  // namespace photon::agent
