// The Store contract: one typed test suite that every backend passes (SqliteStore on a fresh
// file per test, EtcdStore against a real etcd started for the suite). Keys of each test live
// under their own prefix, so tests sharing one etcd do not see each other.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "common/util.h"
#include "etcd_process.h"
#include "store/store.h"
#include "watch_collector.h"

namespace photon::store {
namespace {

using namespace std::chrono_literals;
using testing::EtcdProcess;
using testing::WatchCollector;

struct SqliteBackend {
  static constexpr char kName[] = "sqlite";
  static inline std::string dir;
  static void SetUpSuite() {}
  static void TearDownSuite() {}
  static StatusOr<std::unique_ptr<Store>> Open() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
    dir = testing::MakeTempDir("store-contract");
    return OpenStore(StoreOptions{"sqlite", dir});
  }
  static void Close() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
    dir.clear();
  }
};

struct EtcdBackend {
  static constexpr char kName[] = "etcd";
  static inline std::unique_ptr<EtcdProcess> etcd;
  static inline Status start_status;
  static void SetUpSuite() {
    auto started = EtcdProcess::Start();
    start_status = started.status();
    if (started.ok()) etcd = std::move(*started);
  }
  static void TearDownSuite() { etcd.reset(); }
  static StatusOr<std::unique_ptr<Store>> Open() {
    if (!etcd) return start_status;
    return OpenStore(StoreOptions{etcd->spec(), ""});
  }
  static void Close() {}
};

template <typename Backend>
class StoreContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Backend::SetUpSuite(); }
  static void TearDownTestSuite() { Backend::TearDownSuite(); }

  void SetUp() override {
    if (std::string(Backend::kName) == "etcd" && !EtcdProcess::Available()) {
      GTEST_SKIP() << "*** SKIPPED: " << testing::kEtcdBinary
                   << " is not installed (Debian package etcd-server) ***";
    }
    auto store = Backend::Open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    prefix_ = std::string("/contract/") +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/";
  }
  void TearDown() override {
    store_.reset();
    Backend::Close();
  }

  std::string K(const std::string& name) const { return prefix_ + name; }
  std::string Get(const std::string& key, int64_t revision = 0) {
    RangeOptions options;
    options.revision = revision;
    auto result = store_->Range(key, options);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok() || result->kvs.empty()) return "<none>";
    return result->kvs[0].value;
  }
  int64_t MustPut(const std::string& key, const std::string& value, int64_t lease = 0) {
    auto revision = store_->Put(key, value, lease);
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.value_or(-1);
  }

  std::unique_ptr<Store> store_;
  std::string prefix_;
};

struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
using Backends = ::testing::Types<SqliteBackend, EtcdBackend>;
TYPED_TEST_SUITE(StoreContractTest, Backends, BackendNames);

TYPED_TEST(StoreContractTest, PutGetAndRevisionBookkeeping) {
  auto& store = *this->store_;
  auto before = store.CurrentRevision();
  ASSERT_TRUE(before.ok());
  int64_t r1 = this->MustPut(this->K("a"), "v1");
  EXPECT_EQ(r1, *before + 1);
  EXPECT_EQ(*store.CurrentRevision(), r1);
  int64_t r2 = this->MustPut(this->K("a"), "v2");
  EXPECT_EQ(r2, r1 + 1);

  auto got = store.Range(this->K("a"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, this->K("a"));
  EXPECT_EQ(got->kvs[0].value, "v2");
  EXPECT_EQ(got->kvs[0].create_revision, r1);
  EXPECT_EQ(got->kvs[0].mod_revision, r2);
  EXPECT_EQ(got->kvs[0].version, 2);
  EXPECT_EQ(got->count, 1);
  EXPECT_EQ(got->revision, r2);

  // Deleting and re-creating starts a new life: version 1, new create revision.
  auto deleted = store.Delete(this->K("a"));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1);
  int64_t r4 = this->MustPut(this->K("a"), "v3");
  EXPECT_EQ(r4, r2 + 2);
  got = store.Range(this->K("a"));
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].create_revision, r4);
  EXPECT_EQ(got->kvs[0].version, 1);

  auto missing = store.Range(this->K("missing"));
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->kvs.empty());
  EXPECT_EQ(missing->count, 0);
  // Binary keys and values survive untouched.
  std::string binary("\x00\xff\x01", 3);
  this->MustPut(this->K(binary), binary);
  EXPECT_EQ(this->Get(this->K(binary)), binary);
}

TYPED_TEST(StoreContractTest, RangePrefixWithLimitAndMore) {
  auto& store = *this->store_;
  for (const char* name : {"p/c", "p/a", "p/e", "p/b", "p/d"}) this->MustPut(this->K(name), name);
  this->MustPut(this->K("p0"), "outside");  // PrefixEnd("p/") is "p0": excluded
  this->MustPut(this->K("p"), "outside");

  RangeOptions options;
  options.end = PrefixEnd(this->K("p/"));
  options.limit = 2;
  auto page = store.Range(this->K("p/"), options);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->kvs.size(), 2u);
  EXPECT_EQ(page->kvs[0].key, this->K("p/a"));
  EXPECT_EQ(page->kvs[1].key, this->K("p/b"));
  EXPECT_EQ(page->count, 5);
  EXPECT_TRUE(page->more);

  // Next page from just after the last key.
  auto next = store.Range(page->kvs[1].key + std::string(1, '\0'), options);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->kvs.size(), 2u);
  EXPECT_EQ(next->kvs[0].key, this->K("p/c"));
  EXPECT_TRUE(next->more);

  options.limit = 0;
  auto all = store.Range(this->K("p/"), options);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->kvs.size(), 5u);
  EXPECT_FALSE(all->more);
  EXPECT_EQ(all->count, 5);
  for (size_t i = 1; i < all->kvs.size(); ++i) EXPECT_LT(all->kvs[i - 1].key, all->kvs[i].key);
  EXPECT_EQ(all->kvs[4].value, "p/e");

  options.keys_only = true;
  auto keys = store.Range(this->K("p/"), options);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->kvs.size(), 5u);
  EXPECT_TRUE(keys->kvs[0].value.empty());

  options.keys_only = false;
  options.count_only = true;
  auto counted = store.Range(this->K("p/"), options);
  ASSERT_TRUE(counted.ok());
  EXPECT_TRUE(counted->kvs.empty());
  EXPECT_EQ(counted->count, 5);

  EXPECT_EQ(PrefixEnd("a/"), "a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TYPED_TEST(StoreContractTest, RangeAtOldRevision) {
  auto& store = *this->store_;
  int64_t r1 = this->MustPut(this->K("k"), "v1");
  int64_t r2 = this->MustPut(this->K("k"), "v2");
  this->MustPut(this->K("other"), "x");
  ASSERT_TRUE(store.Delete(this->K("k")).ok());
  int64_t r4 = *store.CurrentRevision();

  EXPECT_EQ(this->Get(this->K("k"), r1), "v1");
  EXPECT_EQ(this->Get(this->K("k"), r2), "v2");
  EXPECT_EQ(this->Get(this->K("k"), r4), "<none>");
  EXPECT_EQ(this->Get(this->K("k")), "<none>");

  RangeOptions options;
  options.revision = r1;
  auto at_r1 = store.Range(this->K("k"), options);
  ASSERT_TRUE(at_r1.ok());
  ASSERT_EQ(at_r1->kvs.size(), 1u);
  EXPECT_EQ(at_r1->kvs[0].mod_revision, r1);
  EXPECT_EQ(at_r1->kvs[0].version, 1);

  options.end = PrefixEnd(this->prefix_);
  options.revision = r2;
  auto prefix_at_r2 = store.Range(this->prefix_, options);
  ASSERT_TRUE(prefix_at_r2.ok());
  ASSERT_EQ(prefix_at_r2->kvs.size(), 1u);  // "other" did not exist yet
  EXPECT_EQ(prefix_at_r2->kvs[0].value, "v2");

  options.revision = r4 + 1000;
  auto future = store.Range(this->K("k"), options);
  EXPECT_EQ(future.status().code(), StatusCode::kOutOfRange);
}

TYPED_TEST(StoreContractTest, CompactionMakesOldRevisionsOutOfRange) {
  auto& store = *this->store_;
  int64_t r1 = this->MustPut(this->K("k"), "v1");
  int64_t r2 = this->MustPut(this->K("k"), "v2");
  this->MustPut(this->K("gone"), "x");
  ASSERT_TRUE(store.Delete(this->K("gone")).ok());
  int64_t r3 = this->MustPut(this->K("k"), "v3");

  ASSERT_TRUE(store.Compact(r2).ok());
  auto compacted = store.CompactedRevision();
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  EXPECT_EQ(*compacted, r2);

  RangeOptions options;
  options.revision = r1;
  EXPECT_EQ(store.Range(this->K("k"), options).status().code(), StatusCode::kOutOfRange);
  // The compaction revision itself stays readable, as in etcd.
  EXPECT_EQ(this->Get(this->K("k"), r2), "v2");
  EXPECT_EQ(this->Get(this->K("k"), r3), "v3");
  EXPECT_EQ(this->Get(this->K("gone"), r3), "<none>");
  EXPECT_EQ(this->Get(this->K("k")), "v3");
  auto latest = store.Range(this->K("k"));
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->kvs[0].version, 3);
  EXPECT_EQ(latest->kvs[0].create_revision, r1);

  EXPECT_EQ(store.Compact(r1).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(store.Compact(r3 + 1000).code(), StatusCode::kOutOfRange);
}

TYPED_TEST(StoreContractTest, TxnCompareAndSwap) {
  auto& store = *this->store_;
  // Create-if-absent: create revision of a missing key is 0.
  TxnRequest create;
  create.compares.push_back(
      {this->K("k"), Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  create.success.push_back({TxnOp::Type::kPut, this->K("k"), "v1", "", 0, 0});
  auto created = store.Txn(create);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->succeeded);
  int64_t r1 = created->revision;
  auto again = store.Txn(create);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->succeeded);
  EXPECT_EQ(again->revision, r1);  // nothing written

  TxnRequest swap;
  swap.compares.push_back(
      {this->K("k"), Compare::Target::kModRevision, Compare::Op::kEqual, r1, ""});
  swap.success.push_back({TxnOp::Type::kPut, this->K("k"), "v2", "", 0, 0});
  swap.success.push_back({TxnOp::Type::kPut, this->K("k2"), "w", "", 0, 0});
  swap.failure.push_back({TxnOp::Type::kRange, this->K("k"), "", "", 0, 0});
  auto swapped = store.Txn(swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_TRUE(swapped->succeeded);
  EXPECT_EQ(swapped->revision, r1 + 1);
  // Both puts of one txn share its revision.
  auto k2 = store.Range(this->K("k2"));
  ASSERT_TRUE(k2.ok());
  ASSERT_EQ(k2->kvs.size(), 1u);
  EXPECT_EQ(k2->kvs[0].mod_revision, r1 + 1);

  auto lost = store.Txn(swap);
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(lost->succeeded);
  ASSERT_EQ(lost->ranges.size(), 1u);
  ASSERT_EQ(lost->ranges[0].kvs.size(), 1u);
  EXPECT_EQ(lost->ranges[0].kvs[0].value, "v2");
  EXPECT_EQ(lost->ranges[0].kvs[0].mod_revision, r1 + 1);

  TxnRequest by_value;
  by_value.compares.push_back(
      {this->K("k"), Compare::Target::kValue, Compare::Op::kEqual, 0, "v2"});
  by_value.compares.push_back(
      {this->K("k"), Compare::Target::kVersion, Compare::Op::kGreater, 1, ""});
  by_value.compares.push_back({this->K("k"), Compare::Target::kVersion, Compare::Op::kLess, 3, ""});
  by_value.success.push_back({TxnOp::Type::kDelete, this->K("k"), "", "", 0, 0});
  auto deleted = store.Txn(by_value);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->succeeded);
  EXPECT_EQ(deleted->deleted, 1);
  EXPECT_EQ(this->Get(this->K("k")), "<none>");

  // A value compare on a missing key never holds, whatever the operator.
  TxnRequest missing;
  missing.compares.push_back(
      {this->K("nokey"), Compare::Target::kValue, Compare::Op::kNotEqual, 0, "x"});
  auto result = store.Txn(missing);
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result->succeeded);
}

TYPED_TEST(StoreContractTest, AppendLogFollowsTheBranchTakenAndReadsNewestLast) {
  Store& store = *this->store_;
  // One stream per test (and per run: etcd keeps its data across the suite's tests).
  const std::string stream = "contract-" + RandomHex(6);
  TxnRequest create;
  create.compares.push_back(
      {this->K("k"), Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
  create.success.push_back({TxnOp::Type::kPut, this->K("k"), "v", "", 0, 0});
  create.success.push_back({TxnOp::Type::kAppend, stream, "created", "", 0, 0});
  create.failure.push_back({TxnOp::Type::kAppend, stream, "refused", "", 0, 0});
  ASSERT_TRUE(store.Txn(create).ok());
  ASSERT_TRUE(store.Txn(create).ok());
  // Several records of one txn keep their order; a txn of appends only is fine.
  TxnRequest two;
  two.success.push_back({TxnOp::Type::kAppend, stream, "first of two", "", 0, 0});
  two.success.push_back({TxnOp::Type::kAppend, stream, "second of two", "", 0, 0});
  auto appended = store.Txn(two);
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_TRUE(appended->succeeded);

  auto all = store.ReadLog(stream, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all,
            (std::vector<std::string>{"created", "refused", "first of two", "second of two"}));
  auto tail = store.ReadLog(stream, 2);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, (std::vector<std::string>{"first of two", "second of two"}));
  auto other = store.ReadLog(stream + "-other", 0);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
  EXPECT_FALSE(store.ReadLog("", 0).ok());
  // The records are not part of the watched key space of the txn's keys.
  auto k = store.Range(this->K("k"));
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->kvs.size(), 1u);
  EXPECT_EQ(k->kvs[0].version, 1);
}

// Appends each record in a txn of its own, so each has its own time (and order) on every backend.
void AppendEach(Store& store, const std::string& stream, const std::vector<std::string>& values) {
  for (const auto& v : values) {
    TxnRequest txn;
    txn.success.push_back({TxnOp::Type::kAppend, stream, v, "", 0, 0});
    ASSERT_TRUE(store.Txn(txn).ok());
  }
}

std::vector<std::string> Numbered(const std::string& tag, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(tag + std::to_string(i));
  return out;
}

TYPED_TEST(StoreContractTest, LogPagesWalkBackAndCoverEveryRecordOnce) {
  Store& store = *this->store_;
  const std::string stream = "pages-" + RandomHex(6);
  AppendEach(store, stream, Numbered("r", 0, 25));
  auto first = store.ReadLogPage(stream, {.limit = 10});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->records, Numbered("r", 15, 25));  // the newest, oldest first
  ASSERT_FALSE(first->next.empty());
  // Records appended between pages do not shift the pages already started.
  AppendEach(store, stream, Numbered("late", 0, 3));
  auto second = store.ReadLogPage(stream, {.limit = 10, .before = first->next});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->records, Numbered("r", 5, 15));
  ASSERT_FALSE(second->next.empty());
  auto third = store.ReadLogPage(stream, {.limit = 10, .before = second->next});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->records, Numbered("r", 0, 5));
  EXPECT_TRUE(third->next.empty());
  // A page that ends exactly at the oldest record says so.
  auto exact = store.ReadLogPage(stream, {.limit = 5, .before = second->next});
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->records, Numbered("r", 0, 5));
  EXPECT_TRUE(exact->next.empty());
  // No limit: everything before the position.
  auto rest = store.ReadLogPage(stream, {.before = first->next});
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->records, Numbered("r", 0, 15));
  EXPECT_TRUE(rest->next.empty());
  EXPECT_EQ(store.ReadLogPage(stream, {.limit = 10, .before = "no such/position"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store.ReadLogPage(stream, {.limit = -1}).status().code(), StatusCode::kInvalidArgument);
}

TYPED_TEST(StoreContractTest, TrimLogKeepsTheNewestByCountAndByAge) {
  Store& store = *this->store_;
  const std::string stream = "trim-" + RandomHex(6);
  const std::string other = stream + "-other";
  AppendEach(store, other, {"untouched"});
  AppendEach(store, stream, Numbered("r", 0, 10));
  auto by_count = store.TrimLog(stream, {.max_records = 6});
  ASSERT_TRUE(by_count.ok()) << by_count.status();
  EXPECT_EQ(*by_count, 4);
  EXPECT_EQ(*store.ReadLog(stream, 0), Numbered("r", 4, 10));
  EXPECT_EQ(*store.TrimLog(stream, {.max_records = 6}), 0);
  EXPECT_EQ(*store.TrimLog(stream, {}), 0);  // no limit at all: nothing goes

  // By age: what was appended before `cutoff` goes, what came after stays.
  auto cutoff = std::chrono::system_clock::now();
  AppendEach(store, stream, {"after-1", "after-2"});
  auto by_age = store.TrimLog(stream, {.appended_before = cutoff});
  ASSERT_TRUE(by_age.ok()) << by_age.status();
  EXPECT_EQ(*by_age, 6);
  EXPECT_EQ(*store.ReadLog(stream, 0), (std::vector<std::string>{"after-1", "after-2"}));
  // Both limits: whichever removes more.
  EXPECT_EQ(*store.TrimLog(stream, {.max_records = 1, .appended_before = cutoff}), 1);
  EXPECT_EQ(*store.ReadLog(stream, 0), std::vector<std::string>{"after-2"});
  EXPECT_EQ(*store.ReadLog(other, 0), std::vector<std::string>{"untouched"});
  EXPECT_FALSE(store.TrimLog("", {.max_records = 1}).ok());
  EXPECT_EQ(store.TrimLog(stream, {.max_records = -1}).status().code(),
            StatusCode::kInvalidArgument);
}

TYPED_TEST(StoreContractTest, TrimLogRemovesMoreThanOneStepsWorth) {
  Store& store = *this->store_;
  const std::string stream = "bigtrim-" + RandomHex(6);
  // 10,050 records in txns of 125 appends: more than a trim step removes on either backend.
  for (int t = 0; t * 125 < 10050; ++t) {
    TxnRequest txn;
    for (int i = 0; i < 125 && t * 125 + i < 10050; ++i) {
      txn.success.push_back(
          {TxnOp::Type::kAppend, stream, "n" + std::to_string(t * 125 + i), "", 0, 0});
    }
    ASSERT_TRUE(store.Txn(txn).ok());
  }
  auto trimmed = store.TrimLog(stream, {.max_records = 50});
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 10000);
  auto left = store.ReadLog(stream, 0);
  ASSERT_TRUE(left.ok());
  std::set<std::string> got(left->begin(), left->end());
  auto newest = Numbered("n", 10000, 10050);
  EXPECT_EQ(got, std::set<std::string>(newest.begin(), newest.end()));
}

// Many creates in flight at once, none of them waited for by a thread: each callback gets its
// own outcome exactly once, and exactly one create of each name wins.
TYPED_TEST(StoreContractTest, TxnAsyncAnswersEachRequestOnce) {
  Store& store = *this->store_;
  constexpr int kNames = 50, kTries = 2;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, won = 0, lost = 0, failed = 0;
  for (int t = 0; t < kTries; ++t) {
    for (int i = 0; i < kNames; ++i) {
      const std::string key = this->K("n" + std::to_string(i));
      TxnRequest txn;
      txn.compares.push_back({key, Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""});
      txn.success.push_back({TxnOp::Type::kPut, key, "try" + std::to_string(t), "", 0, 0});
      store.TxnAsync(std::move(txn), [&](StatusOr<TxnResult> r) {
        std::lock_guard lock(mu);
        ++answered;
        if (!r.ok()) {
          ++failed;
        } else if (r->succeeded) {
          ++won;
        } else {
          ++lost;
        }
        cv.notify_all();
      });
    }
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return answered == kNames * kTries; }))
        << answered << " answered";
  }
  std::this_thread::sleep_for(50ms);  // a second answer to any request would show now
  std::lock_guard lock(mu);
  EXPECT_EQ(answered, kNames * kTries);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(won, kNames);
  EXPECT_EQ(lost, kNames * (kTries - 1));
  auto all = store.Range(this->K(""), {.end = PrefixEnd(this->prefix_)});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->kvs.size(), static_cast<size_t>(kNames));
}

// Closing the store with txns in flight answers every one of them (done or failed), once.
TYPED_TEST(StoreContractTest, ClosingTheStoreAnswersTxnsInFlight) {
  constexpr int kTxns = 200;
  auto answered = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < kTxns; ++i) {
    TxnRequest txn;
    txn.success.push_back({TxnOp::Type::kPut, this->K("k" + std::to_string(i)), "v", "", 0, 0});
    this->store_->TxnAsync(std::move(txn), [answered](StatusOr<TxnResult>) { ++*answered; });
  }
  this->store_.reset();
  EXPECT_EQ(answered->load(), kTxns);
}

TYPED_TEST(StoreContractTest, ConcurrentCompareAndSwapIsSerial) {
  auto& store = *this->store_;
  const std::string key = this->K("counter");
  this->MustPut(key, "0");
  constexpr int kThreads = 8;
  constexpr int kIncrements = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kIncrements;) {
        auto current = store.Range(key);
        if (!current.ok() || current->kvs.empty()) {
          ++failures;
          return;
        }
        int value = std::stoi(current->kvs[0].value);
        TxnRequest txn;
        txn.compares.push_back({key, Compare::Target::kModRevision, Compare::Op::kEqual,
                                current->kvs[0].mod_revision, ""});
        txn.success.push_back({TxnOp::Type::kPut, key, std::to_string(value + 1), "", 0, 0});
        auto result = store.Txn(txn);
        if (!result.ok()) {
          ++failures;
          return;
        }
        if (result->succeeded) ++done;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(this->Get(key), std::to_string(kThreads * kIncrements));
}

TYPED_TEST(StoreContractTest, DeleteRange) {
  auto& store = *this->store_;
  for (const char* name : {"d/a", "d/b", "d/c", "e"}) this->MustPut(this->K(name), "x");
  int64_t before = *store.CurrentRevision();
  auto deleted = store.Delete(this->K("d/"), PrefixEnd(this->K("d/")));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 3);
  EXPECT_EQ(*store.CurrentRevision(), before + 1);  // one revision for the whole range
  RangeOptions options;
  options.end = PrefixEnd(this->prefix_);
  auto left = store.Range(this->prefix_, options);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->kvs.size(), 1u);
  EXPECT_EQ(left->kvs[0].key, this->K("e"));

  auto none = store.Delete(this->K("nothing"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(*store.CurrentRevision(), before + 1);  // deleting nothing writes nothing
}

TYPED_TEST(StoreContractTest, WatchReplaysHistoryThenLiveEvents) {
  auto& store = *this->store_;
  int64_t r1 = this->MustPut(this->K("w/a"), "1");
  this->MustPut(this->K("w/b"), "2");
  this->MustPut(this->K("outside"), "x");
  ASSERT_TRUE(store.Delete(this->K("w/a")).ok());

  WatchCollector collector;
  auto watch = store.Watch(this->K("w/"), PrefixEnd(this->K("w/")), r1, collector.OnEvents(),
                           collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();
  WatchCollector live_only;
  auto now_watch = store.Watch(this->K("w/"), PrefixEnd(this->K("w/")), 0, live_only.OnEvents(),
                               live_only.OnError());
  ASSERT_TRUE(now_watch.ok()) << now_watch.status();

  int64_t r5 = this->MustPut(this->K("w/c"), "3");
  int64_t r6 = this->MustPut(this->K("w/b"), "4");
  auto events = collector.WaitFor(5, 10s);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].kv.key, this->K("w/a"));
  EXPECT_EQ(events[0].kv.mod_revision, r1);
  EXPECT_EQ(events[0].kv.version, 1);
  EXPECT_EQ(events[1].kv.key, this->K("w/b"));
  EXPECT_EQ(events[1].kv.value, "2");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, this->K("w/a"));
  EXPECT_EQ(events[3].kv.key, this->K("w/c"));
  EXPECT_EQ(events[3].kv.mod_revision, r5);
  EXPECT_EQ(events[4].kv.key, this->K("w/b"));
  EXPECT_EQ(events[4].kv.mod_revision, r6);
  EXPECT_EQ(events[4].kv.version, 2);
  EXPECT_EQ(events[4].kv.create_revision, r1 + 1);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(events[i - 1].kv.mod_revision, events[i].kv.mod_revision);
  }

  auto live = live_only.WaitFor(2, 10s);
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].kv.mod_revision, r5);
  EXPECT_EQ(live[1].kv.mod_revision, r6);

  // After Cancel nothing more arrives.
  (*watch)->Cancel();
  this->MustPut(this->K("w/d"), "5");
  live_only.WaitFor(3, 10s);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(collector.Events().size(), 5u);
  EXPECT_FALSE(collector.Error().has_value());
}

TYPED_TEST(StoreContractTest, WatchUnderConcurrentWritesHasNoGapsOrDuplicates) {
  auto& store = *this->store_;
  const std::string key = this->K("g/x");
  int64_t start = this->MustPut(key, "0");
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 1; i <= 200 && !stop; ++i) (void)store.Put(key, std::to_string(i));
  });
  // Started while writes go on: the switch from history to live must be seamless.
  std::this_thread::sleep_for(20ms);
  WatchCollector collector;
  auto watch = store.Watch(key, "", start, collector.OnEvents(), collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();
  writer.join();
  auto events = collector.WaitFor(201, 20s);
  ASSERT_EQ(events.size(), 201u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.value, std::to_string(i));
    EXPECT_EQ(events[i].kv.version, static_cast<int64_t>(i) + 1);
  }
}

TYPED_TEST(StoreContractTest, WatchFromCompactedRevisionIsOutOfRange) {
  auto& store = *this->store_;
  int64_t r1 = this->MustPut(this->K("c"), "1");
  this->MustPut(this->K("c"), "2");
  int64_t r3 = this->MustPut(this->K("c"), "3");
  ASSERT_TRUE(store.Compact(r3).ok());
  WatchCollector collector;
  auto watch = store.Watch(this->K("c"), "", r1, collector.OnEvents(), collector.OnError());
  ASSERT_FALSE(watch.ok());
  EXPECT_EQ(watch.status().code(), StatusCode::kOutOfRange) << watch.status();

  // From the compaction revision itself the watch works and replays it.
  WatchCollector from_compacted;
  auto ok_watch =
      store.Watch(this->K("c"), "", r3, from_compacted.OnEvents(), from_compacted.OnError());
  ASSERT_TRUE(ok_watch.ok()) << ok_watch.status();
  auto events = from_compacted.WaitFor(1, 10s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.value, "3");
}

TYPED_TEST(StoreContractTest, LeaseExpiryDeletesKeysWithDeleteEvents) {
  auto& store = *this->store_;
  auto lease = store.GrantLease(3);
  ASSERT_TRUE(lease.ok()) << lease.status();
  auto ttl = store.LeaseTimeToLive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(*ttl, 0);
  EXPECT_LE(*ttl, 3);
  int64_t first = this->MustPut(this->K("l/a"), "1", *lease);
  this->MustPut(this->K("l/b"), "2", *lease);
  this->MustPut(this->K("l/keep"), "3");

  // From the first put, so the test sees every event however slow the machine is.
  WatchCollector collector;
  auto watch = store.Watch(this->K("l/"), PrefixEnd(this->K("l/")), first, collector.OnEvents(),
                           collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();
  auto events = collector.WaitFor(5, 15s);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].kv.lease, *lease);
  EXPECT_EQ(events[2].kv.lease, 0);
  EXPECT_EQ(events[3].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[3].kv.key, this->K("l/a"));
  EXPECT_EQ(events[4].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[4].kv.key, this->K("l/b"));
  EXPECT_EQ(events[3].kv.mod_revision, events[4].kv.mod_revision);  // one revision
  EXPECT_EQ(this->Get(this->K("l/a")), "<none>");
  EXPECT_EQ(this->Get(this->K("l/b")), "<none>");
  EXPECT_EQ(this->Get(this->K("l/keep")), "3");
  EXPECT_EQ(store.LeaseTimeToLive(*lease).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.KeepAlive(*lease).code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Put(this->K("l/late"), "x", *lease).status().code(), StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, KeepAliveExtendsLease) {
  auto& store = *this->store_;
  auto lease = store.GrantLease(3);
  ASSERT_TRUE(lease.ok()) << lease.status();
  this->MustPut(this->K("ka"), "1", *lease);
  auto until = std::chrono::steady_clock::now() + 4500ms;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(store.KeepAlive(*lease).ok());
    std::this_thread::sleep_for(300ms);
  }
  // Well past the TTL, the key lives on.
  EXPECT_EQ(this->Get(this->K("ka")), "1");
  auto ttl = store.LeaseTimeToLive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(*ttl, 0);
  EXPECT_TRUE(store.RevokeLease(*lease).ok());
}

TYPED_TEST(StoreContractTest, RevokeDeletesKeys) {
  auto& store = *this->store_;
  auto lease = store.GrantLease(60);
  ASSERT_TRUE(lease.ok()) << lease.status();
  this->MustPut(this->K("r/a"), "1", *lease);
  this->MustPut(this->K("r/b"), "2", *lease);
  WatchCollector collector;
  auto watch = store.Watch(this->K("r/"), PrefixEnd(this->K("r/")), 0, collector.OnEvents(),
                           collector.OnError());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store.RevokeLease(*lease).ok());
  EXPECT_EQ(this->Get(this->K("r/a")), "<none>");
  EXPECT_EQ(this->Get(this->K("r/b")), "<none>");
  auto events = collector.WaitFor(2, 10s);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(store.RevokeLease(*lease).code(), StatusCode::kNotFound);
  EXPECT_EQ(store.KeepAlive(*lease).code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Put(this->K("r/c"), "x", *lease).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Put(this->K("r/c"), "x", 12345).status().code(), StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, RefusesEmptyKeysAndBadTtl) {
  auto& store = *this->store_;
  EXPECT_EQ(store.Put("", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Range("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Delete("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store
                .Watch(
                    "", "", 0, [](const std::vector<WatchEvent>&) {}, nullptr)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store.GrantLease(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.GrantLease(9'000'000'001).status().code(), StatusCode::kOutOfRange);
  TxnRequest duplicate;
  duplicate.success.push_back({TxnOp::Type::kPut, this->K("d"), "1", "", 0, 0});
  duplicate.success.push_back({TxnOp::Type::kPut, this->K("d"), "2", "", 0, 0});
  EXPECT_EQ(store.Txn(duplicate).status().code(), StatusCode::kInvalidArgument);
  TxnRequest put_in_deleted_range;
  put_in_deleted_range.failure.push_back(
      {TxnOp::Type::kDelete, this->K(""), "", PrefixEnd(this->prefix_), 0, 0});
  put_in_deleted_range.failure.push_back({TxnOp::Type::kPut, this->K("d"), "1", "", 0, 0});
  // Checked on both branches, even the one that would not run.
  EXPECT_EQ(store.Txn(put_in_deleted_range).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(this->Get(this->K("d")), "<none>");
}

TYPED_TEST(StoreContractTest, ClosingTheStoreEndsWatches) {
  WatchCollector collector;
  auto watch =
      this->store_->Watch(this->K("closing"), "", 0, collector.OnEvents(), collector.OnError());
  ASSERT_TRUE(watch.ok()) << watch.status();
  this->store_.reset();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!collector.Error().has_value() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(collector.Error().has_value());
  EXPECT_EQ(collector.Error()->code(), StatusCode::kUnavailable) << *collector.Error();
  (*watch)->Cancel();  // harmless after the store is gone
}

}  // namespace
}  // namespace photon::store
