// REST creates, updates and deletes are answered on commit, not held on a handler thread: how
// many of them one group commit carries does not depend on the server's REST thread count.
// Instance creates, which allocate an address in their transaction, too: and concurrent ones
// never get the same address, nor does a delete leave one behind.
#include <gtest/gtest.h>

#include <latch>
#include <set>
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

// Runs `call(i)` for i in [0, n) from n clients at once; returns the HTTP codes and bodies.
std::vector<cli::HttpResult> AllAtOnce(
    const TestServer& s, int n,
    const std::function<StatusOr<cli::HttpResult>(cli::HttpClient&, int)>& call) {
  std::latch go(n + 1);
  std::vector<cli::HttpResult> out(n);
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      auto c = s.Admin();
      c.set_timeout(std::chrono::seconds(60));
      go.arrive_and_wait();
      auto r = call(c, i);
      if (r.ok()) {
        out[i] = *r;
      } else {
        out[i].status = -1;
        out[i].body = r.status().ToString();
      }
    });
  }
  go.arrive_and_wait();
  for (auto& t : clients) t.join();
  return out;
}

std::string InstanceName(int i) { return "ci" + std::to_string(i); }

// Instance creates carry their address (network IPAM) in their transaction. 64 of them from 64
// clients over 2 REST threads: answered on commit, they share group commits, and no two get
// the same address. Then 64 concurrent deletes: shared commits too, and every Port (which
// goes with its address key, in the delete's transaction) is gone.
TEST(ConcurrentCreates, OfInstancesShareCommitsAndNeverShareAnAddress) {
  constexpr int kInstances = 64;
  server::ServerOptions opts;
  opts.http_threads = 2;
  TestServer s(opts);
  auto admin = s.Admin();
  // The namespace's default VPC and subnet come with its first instance: made before the burst.
  auto first = admin.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("seed"));
  ASSERT_TRUE(first.ok() && first->status == 202) << (first.ok() ? first->body : "");

  const CommitCount before = Commits(admin);
  auto created = AllAtOnce(s, kInstances, [](cli::HttpClient& c, int i) {
    return c.Do("POST", "/v1/namespaces/default/computeinstances",
                ProcessInstance(InstanceName(i)));
  });
  const CommitCount after = Commits(admin);
  std::set<std::string> addresses;
  for (int i = 0; i < kInstances; ++i) {
    ASSERT_EQ(created[i].status, 202) << InstanceName(i) << ": " << created[i].body;
    auto obj = Json(created[i])["object"];
    const std::string addr = obj["status"]["details"].value("network.address", "");
    EXPECT_FALSE(addr.empty()) << obj.dump();
    EXPECT_TRUE(addresses.insert(addr).second) << addr << " given twice";
  }
  std::printf("%d concurrent instance creates over 2 REST threads: %.0f commits\n", kInstances,
              after.batches - before.batches);
  EXPECT_LT(after.batches - before.batches, kInstances / 2)
      << "the creates were committed at most 2 at a time";
  auto ports = admin.Do("GET", "/v1/namespaces/default/ports");
  ASSERT_TRUE(ports.ok() && ports->status == 200);
  std::set<std::string> port_addresses;
  const nlohmann::json port_list = Json(*ports);  // kept: ranging over a temporary dangles
  for (const auto& p : port_list["items"]) {
    port_addresses.insert(p["spec"].value("ipAddress", ""));
  }
  EXPECT_EQ(port_addresses.size(), static_cast<size_t>(kInstances + 1));
  for (const auto& a : addresses) EXPECT_TRUE(port_addresses.count(a)) << a;

  const CommitCount before_delete = Commits(admin);
  auto deleted = AllAtOnce(s, kInstances, [](cli::HttpClient& c, int i) {
    return c.Do("DELETE", "/v1/namespaces/default/computeinstances/" + InstanceName(i));
  });
  const CommitCount after_delete = Commits(admin);
  for (int i = 0; i < kInstances; ++i) {
    EXPECT_EQ(deleted[i].status, 202) << InstanceName(i) << ": " << deleted[i].body;
  }
  std::printf("%d concurrent deletes over 2 REST threads: %.0f commits\n", kInstances,
              after_delete.batches - before_delete.batches);
  EXPECT_LT(after_delete.batches - before_delete.batches, kInstances / 2)
      << "the deletes were committed at most 2 at a time";
  ports = admin.Do("GET", "/v1/namespaces/default/ports");
  ASSERT_TRUE(ports.ok() && ports->status == 200);
  EXPECT_EQ(Json(*ports)["items"].size(), 1u) << "ports (and their addresses) left behind";
  auto gone = admin.Do("DELETE", "/v1/namespaces/default/computeinstances/" + InstanceName(0));
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->status, 404) << gone->body;
}

// Creates of one name racing each other: the first commit wins, the others learn that the
// name exists (the retry after their failed compare), and only one address is taken.
TEST(ConcurrentCreates, OfOneNameMakeOneInstanceAndOneAddress) {
  constexpr int kClients = 16;
  server::ServerOptions opts;
  opts.http_threads = 2;
  TestServer s(opts);
  auto admin = s.Admin();
  auto first = admin.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("seed"));
  ASSERT_TRUE(first.ok() && first->status == 202) << (first.ok() ? first->body : "");
  auto created = AllAtOnce(s, kClients, [](cli::HttpClient& c, int) {
    return c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("same"));
  });
  int accepted = 0;
  for (const auto& r : created) {
    if (r.status == 202) {
      ++accepted;
    } else {
      EXPECT_EQ(r.status, 409) << r.body;
    }
  }
  EXPECT_EQ(accepted, 1);
  auto ports = admin.Do("GET", "/v1/namespaces/default/ports");
  ASSERT_TRUE(ports.ok() && ports->status == 200);
  EXPECT_EQ(Json(*ports)["items"].size(), 2u) << ports->body;
  // Each refusal left its audit record, as the one create did.
  auto audit = admin.Do("GET", "/v1/auditevents?limit=5000");
  ASSERT_TRUE(audit.ok() && audit->status == 200);
  int refused = 0, created_records = 0;
  const nlohmann::json records = Json(*audit);
  for (const auto& e : records["items"]) {
    if (e.value("resourceId", "") != "computeinstances/default/same") continue;
    (e.value("success", false) ? created_records : refused)++;
  }
  EXPECT_EQ(created_records, 1);
  EXPECT_EQ(refused, kClients - 1);
}

// Creates of different instances asking for one fixed address at once: one gets it, the others
// are refused (it is taken), and one Port holds it.
TEST(ConcurrentCreates, OfOneFixedAddressGiveItOnce) {
  constexpr int kClients = 16;
  server::ServerOptions opts;
  opts.http_threads = 2;
  TestServer s(opts);
  auto admin = s.Admin();
  auto first = admin.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("seed"));
  ASSERT_TRUE(first.ok() && first->status == 202) << (first.ok() ? first->body : "");
  auto created = AllAtOnce(s, kClients, [](cli::HttpClient& c, int i) {
    auto body = nlohmann::json::parse(ProcessInstance(InstanceName(i)));
    body["spec"]["network"]["fixedIp"] = "10.0.0.100";
    return c.Do("POST", "/v1/namespaces/default/computeinstances", body.dump());
  });
  int accepted = 0;
  for (const auto& r : created) {
    if (r.status == 202) {
      ++accepted;
    } else {
      EXPECT_TRUE(r.status == 400 || r.status == 409) << r.status << " " << r.body;
    }
  }
  EXPECT_EQ(accepted, 1);
  auto ports = admin.Do("GET", "/v1/namespaces/default/ports");
  ASSERT_TRUE(ports.ok() && ports->status == 200);
  const nlohmann::json port_list = Json(*ports);
  int holders = 0;
  for (const auto& p : port_list["items"])
    holders += p["spec"].value("ipAddress", "") == "10.0.0.100";
  EXPECT_EQ(holders, 1) << ports->body;
}

}  // namespace
}  // namespace photon::testing
