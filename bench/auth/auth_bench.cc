// photon-bench-auth: what authorizing one request costs with many role bindings.
//
//   photon-bench-auth [--policies N] [--iterations N]
//
// Builds, on a SQLite store in a temporary directory, a user in 10 groups, 100 custom roles
// and N role bindings (default 1,000) spread over 200 namespaces and 1,000 subjects, a few of
// them naming the user or its groups. Then times, per request:
//   1. Principal::Allowed alone on the resolved principal (the authorizer's decision);
//   2. Authenticator::Authenticate (token lookup, SHA-256 of the secret, the directory's
//      resolution of role bindings and groups) followed by Allowed: the whole per-request cost.
// Prints mean, p50 and p99 in microseconds; the target is 5 µs for the decision.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <vector>

#include "common/metrics.h"
#include "server/auth.h"
#include "server/identity/directory.h"
#include "store/store.h"

using namespace photon;
using namespace photon::server;
using nlohmann::json;

namespace {

void Check(const Status& st, const char* what) {
  if (!st.ok()) {
    std::cerr << what << ": " << st << "\n";
    exit(1);
  }
}

struct Stats {
  double mean_us, p50_us, p99_us;
};

template <typename F>
Stats Time(int iterations, F&& op) {
  std::vector<double> samples;
  samples.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    op(i);
    samples.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  double sum = 0;
  for (double s : samples) sum += s;
  std::sort(samples.begin(), samples.end());
  return {sum / iterations, samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

void Populate(identity::Directory& dir, const Principal& admin, int policies) {
  const auto* users = identity::FindIdentityKind("users");
  const auto* groups = identity::FindIdentityKind("groups");
  const auto* roles = identity::FindIdentityKind("roles");
  const auto* bindings = identity::FindIdentityKind("rolebindings");
  Check(
      dir.Put(admin, *users, "",
              {{"metadata", {{"name", "bench"}}}, {"spec", {{"password", "benchmark-pw"}}}}, false)
          .status(),
      "user");
  for (int g = 0; g < 10; ++g) {
    Check(dir.Put(admin, *groups, "",
                  {{"metadata", {{"name", "g" + std::to_string(g)}}},
                   {"spec", {{"members", {"bench", "someone" + std::to_string(g)}}}}},
                  false)
              .status(),
          "group");
  }
  const char* kinds[] = {"computeinstances", "vpcs", "volumes", "buckets", "subnets"};
  for (int r = 0; r < 100; ++r) {
    json rules = json::array({{{"verbs", {"get", "list"}}, {"kinds", {kinds[r % 5]}}},
                              {{"verbs", {"create", "delete"}}, {"kinds", {kinds[(r + 1) % 5]}}}});
    Check(dir.Put(admin, *roles, "",
                  {{"metadata", {{"name", "r" + std::to_string(r)}}}, {"spec", {{"rules", rules}}}},
                  false)
              .status(),
          "role");
  }
  for (int i = 0; i < policies; ++i) {
    std::string subject = i % 50 == 0   ? "user:bench"
                          : i % 50 == 1 ? "group:g" + std::to_string(i % 10)
                                        : "user:other" + std::to_string(i % 1000);
    Check(dir.Put(admin, *bindings, "",
                  {{"metadata", {{"name", "b" + std::to_string(i)}}},
                   {"spec",
                    {{"namespace", "ns" + std::to_string(i % 200)},
                     {"role", "r" + std::to_string(i % 100)},
                     {"subjects", {subject}}}}},
                  false)
              .status(),
          "binding");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"photon-bench-auth: authorization cost per request"};
  int policies = 1000, iterations = 200000;
  app.add_option("--policies", policies, "role bindings");
  app.add_option("--iterations", iterations, "requests timed");
  CLI11_PARSE(app, argc, argv);

  std::string tmpl = (std::filesystem::temp_directory_path() / "photon-bench-auth-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  MetricsRegistry metrics;
  auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir, .metrics = &metrics});
  Check(store.status(), "store");
  Authenticator auth(store->get(), {.data_dir = dir});
  Check(auth.Load(), "auth");
  identity::Directory directory(store->get(), &auth);
  Check(directory.Load(), "directory");
  auth.SetResolver([&](Principal* p) { return directory.Resolve(p); });
  Principal admin;
  admin.name = "admin";
  auth::RoleBinding all;
  all.set_namespace_("*");
  all.set_role("admin");
  admin.bindings.push_back(all);
  auto t0 = std::chrono::steady_clock::now();
  Populate(directory, admin, policies);
  std::cout << policies << " role bindings, 100 roles, 10 groups written in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s\n";

  auto token = auth.MintSession("user:bench", "access", std::chrono::hours(1));
  Check(token.status(), "token");
  const std::string header = "Bearer " + *token;
  auto who = auth.Authenticate(header);
  Check(who.status(), "authenticate");
  std::cout << "the user holds " << who->custom.size() << " grants from " << policies / 50 * 2
            << " of the bindings\n";
  int allowed = 0;
  Stats decide = Time(iterations, [&](int i) {
    allowed += who->Allowed(Verb::kCreate, "vpcs", "ns" + std::to_string(i % 200));
  });
  Stats full = Time(iterations, [&](int i) {
    auto p = auth.Authenticate(header);
    allowed += p.ok() && p->Allowed(Verb::kCreate, "vpcs", "ns" + std::to_string(i % 200));
  });
  std::cout.setf(std::ios::fixed);
  std::cout.precision(3);
  std::cout << "decision (Principal::Allowed):          mean " << decide.mean_us << " µs, p50 "
            << decide.p50_us << " µs, p99 " << decide.p99_us << " µs (target 5 µs)\n"
            << "per request (Authenticate + Allowed):   mean " << full.mean_us << " µs, p50 "
            << full.p50_us << " µs, p99 " << full.p99_us << " µs\n"
            << "(" << allowed << " allowed of " << 2 * iterations << ")\n";
  std::filesystem::remove_all(dir);
  return 0;
}
