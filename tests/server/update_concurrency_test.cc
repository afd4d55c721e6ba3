// REST updates are answered on commit, not held on a handler thread: how many updates one
// group commit carries does not depend on the server's REST thread count.
#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <vector>

#include "common/util.h"
#include "test_util.h"

namespace photon::testing {
namespace {

// The number after `name ` on its line of a Prometheus text page (-1 when absent).
double MetricValue(const std::string& page, const std::string& name) {
  size_t at = page.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + name.size() + 2));
}

struct CommitCount {
  double batches = 0;   // SQLite transactions (one fsync each)
  double requests = 0;  // write requests they carried
};

CommitCount Commits(cli::HttpClient& admin) {
  auto page = admin.Do("GET", "/metrics");
  EXPECT_TRUE(page.ok() && page->status == 200);
  return {MetricValue(page->body, "photon_store_sqlite_batch_requests_count"),
          MetricValue(page->body, "photon_store_sqlite_batch_requests_sum")};
}

std::string Flavor(const std::string& name, int memory_mb, const std::string& rv = "") {
  nlohmann::json j = {{"kind", "Flavor"},
                      {"metadata", {{"name", name}}},
                      {"spec", {{"vcpu", 1}, {"memoryMb", memory_mb}}}};
  if (!rv.empty()) j["metadata"]["resourceVersion"] = rv;
  return j.dump();
}

// With 2 REST threads each holding its update until the commit, no group commit could carry
// more than 2 of them: 64 updates needed at least 32 fsyncs one after the other. Answered on
// commit, they share a few.
TEST(ConcurrentUpdates, AreNotSerializedByTheRestThreads) {
  constexpr int kUpdates = 64;
  server::ServerOptions opts;
  opts.http_threads = 2;
  TestServer s(opts);
  auto admin = s.Admin();
  std::vector<std::string> versions(kUpdates);
  for (int i = 0; i < kUpdates; ++i) {
    auto r =
        admin.Do("POST", "/v1/namespaces/default/flavors", Flavor("f" + std::to_string(i), 512));
    ASSERT_TRUE(r.ok() && r->status == 202) << (r.ok() ? r->body : r.status().ToString());
    versions[i] = Json(*r)["object"]["metadata"]["resourceVersion"].get<std::string>();
  }

  const CommitCount before = Commits(admin);
  ASSERT_GE(before.batches, 0) << "no group-commit metrics";
  std::latch go(kUpdates + 1);
  std::vector<int> codes(kUpdates, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < kUpdates; ++i) {
    clients.emplace_back([&, i] {
      auto c = s.Admin();
      c.set_timeout(std::chrono::seconds(60));
      const std::string name = "f" + std::to_string(i);
      go.arrive_and_wait();
      auto r =
          c.Do("PUT", "/v1/namespaces/default/flavors/" + name, Flavor(name, 1024, versions[i]));
      codes[i] = r.ok() ? r->status : -1;
    });
  }
  go.arrive_and_wait();
  const int64_t t0 = MonotonicNanos();
  for (auto& t : clients) t.join();
  const double seconds = (MonotonicNanos() - t0) / 1e9;
  const CommitCount after = Commits(admin);

  for (int i = 0; i < kUpdates; ++i) EXPECT_EQ(codes[i], 200) << "update of f" << i;
  const double batches = after.batches - before.batches;
  const double requests = after.requests - before.requests;
  std::printf(
      "%d concurrent updates over 2 REST threads: %.1f ms, %.0f commits carrying %.0f "
      "write requests\n",
      kUpdates, seconds * 1e3, batches, requests);
  EXPECT_GE(requests, kUpdates);
  EXPECT_LT(batches, kUpdates / 2) << "the updates were committed at most 2 at a time";

  // Each update is stored, and a stale resourceVersion is still refused as a conflict.
  auto got = admin.Do("GET", "/v1/namespaces/default/flavors/f7");
  ASSERT_TRUE(got.ok() && got->status == 200);
  EXPECT_EQ(Json(*got)["spec"]["memoryMb"], "1024");  // int64: a JSON string
  auto stale =
      admin.Do("PUT", "/v1/namespaces/default/flavors/f7", Flavor("f7", 2048, versions[7]));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->status, 409) << stale->body;
}

}  // namespace
}  // namespace photon::testing
