// photon-bench-store: raw Store figures that the API's own benchmarks are compared against.
// Prints puts/s with 16 and 1 concurrent writers and the time of one range over 100,000 keys,
// for SqliteStore and, when /usr/bin/etcd exists, for a real etcd started here (same machine,
// same run). Each figure is the median of a few runs. On a shared machine run it while nothing
// else builds, e.g. `flock /tmp/photon-build.lock photon-bench-store`.
//   photon-bench-store [--seconds S] [--runs N] [--keys K] [--backend sqlite|etcd|all]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "etcd_process.h"
#include "store/store.h"

namespace {

using photon::store::Store;
using Clock = std::chrono::steady_clock;

struct Config {
  double seconds = 2.0;
  int runs = 3;
  int keys = 100000;
  std::string backend = "all";  // sqlite | etcd | all
};

// The figures depend on what else runs on the machine; print the load beside them.
std::string LoadAverage() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  if (file == nullptr) return "?";
  char buffer[128] = {};
  std::string load = std::fgets(buffer, sizeof(buffer), file) != nullptr ? buffer : "?";
  std::fclose(file);
  if (!load.empty() && load.back() == '\n') load.pop_back();
  return load;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Puts from `writers` threads for the configured time; returns acknowledged puts per second.
double PutsPerSecond(Store& store, int writers, const Config& config, const std::string& prefix) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  std::string value(100, 'v');
  auto stop_at = Clock::now() + std::chrono::duration<double>(config.seconds);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t) {
    threads.emplace_back([&, t] {
      std::string base = prefix + std::to_string(t) + "/";
      for (int64_t i = 0; Clock::now() < stop_at; ++i) {
        if (!store.Put(base + std::to_string(i), value).ok()) {
          failed = true;
          return;
        }
        ++done;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (failed) std::fprintf(stderr, "  (some puts failed)\n");
  return static_cast<double>(done.load()) / elapsed;
}

// Loads `keys` keys under prefix with multi-put txns from 4 threads.
bool LoadKeys(Store& store, const std::string& prefix, int keys) {
  constexpr int kPerTxn = 100;  // below etcd's default --max-txn-ops (128)
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::string value(100, 'v');
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int begin; (begin = next.fetch_add(kPerTxn)) < keys && !failed;) {
        photon::store::TxnRequest txn;
        for (int i = begin; i < std::min(keys, begin + kPerTxn); ++i) {
          char key[32];
          std::snprintf(key, sizeof(key), "%08d", i);
          txn.success.push_back({photon::store::TxnOp::Type::kPut, prefix + key, value, "", 0, 0});
        }
        if (!store.Txn(txn).ok()) failed = true;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return !failed;
}

struct Figures {
  double puts16 = 0;
  double puts1 = 0;
  double range_ms = 0;
  int64_t range_count = 0;
  double paged_ms = 0;  // same keys, pages of 10,000, at a past revision
  int64_t paged_count = 0;
};

Figures Measure(const std::function<std::unique_ptr<Store>()>& open, const Config& config) {
  Figures figures;
  std::vector<double> runs16, runs1, range_ms;
  for (int run = 0; run < config.runs; ++run) {
    auto store = open();
    if (!store) return figures;
    runs16.push_back(PutsPerSecond(*store, 16, config, "/bench/w16/" + std::to_string(run) + "/"));
    runs1.push_back(PutsPerSecond(*store, 1, config, "/bench/w1/" + std::to_string(run) + "/"));
  }
  auto store = open();
  if (!store) return figures;
  if (!LoadKeys(*store, "/bench/range/", config.keys)) {
    std::fprintf(stderr, "  loading %d keys failed\n", config.keys);
    return figures;
  }
  photon::store::RangeOptions options;
  options.end = photon::store::PrefixEnd("/bench/range/");
  for (int run = 0; run < std::max(config.runs, 5); ++run) {
    auto start = Clock::now();
    auto result = store->Range("/bench/range/", options);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!result.ok()) {
      std::fprintf(stderr, "  range failed: %s\n", result.status().ToString().c_str());
      return figures;
    }
    figures.range_count = static_cast<int64_t>(result->kvs.size());
    range_ms.push_back(ms);
  }
  // The server's start-up list: pages of 10,000 at one revision that is already in the past.
  auto snapshot = store->CurrentRevision();
  if (!snapshot.ok() || !store->Put("/bench/after", "x").ok()) return figures;
  std::vector<double> paged_ms;
  for (int run = 0; run < 3; ++run) {
    auto start = Clock::now();
    std::string from = "/bench/range/";
    int64_t seen = 0;
    for (;;) {
      photon::store::RangeOptions page;
      page.end = options.end;
      page.revision = *snapshot;
      page.limit = 10000;
      auto result = store->Range(from, page);
      if (!result.ok()) {
        std::fprintf(stderr, "  paged range failed: %s\n", result.status().ToString().c_str());
        return figures;
      }
      seen += static_cast<int64_t>(result->kvs.size());
      if (!result->more || result->kvs.empty()) break;
      from = result->kvs.back().key + std::string(1, '\0');
    }
    paged_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    figures.paged_count = seen;
  }
  figures.paged_ms = Median(paged_ms);
  figures.puts16 = Median(runs16);
  figures.puts1 = Median(runs1);
  figures.range_ms = Median(range_ms);
  return figures;
}

void Print(const char* backend, const Figures& figures, int keys) {
  std::printf("(load average now: %s)\n", LoadAverage().c_str());
  std::printf("%-7s puts/s 16 writers: %10.0f\n", backend, figures.puts16);
  std::printf("%-7s puts/s  1 writer : %10.0f\n", backend, figures.puts1);
  std::printf("%-7s range over %d keys: %8.1f ms (%lld returned)\n", backend, keys,
              figures.range_ms, static_cast<long long>(figures.range_count));
  std::printf("%-7s paged range (10,000 per page) at a past revision: %8.1f ms (%lld returned)\n",
              backend, figures.paged_ms, static_cast<long long>(figures.paged_count));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) config.seconds = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--runs") == 0) config.runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--keys") == 0) config.keys = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--backend") == 0) config.backend = argv[i + 1];
  }
  std::printf("store benchmark: %.1f s per put run, median of %d runs, 100-byte values\n",
              config.seconds, config.runs);
  std::printf("load average at start: %s\n", LoadAverage().c_str());

  Figures sqlite;
  if (config.backend != "etcd") {
    std::vector<std::string> dirs;
    auto open_sqlite = [&]() -> std::unique_ptr<Store> {
      dirs.push_back(photon::store::testing::MakeTempDir("bench-store"));
      auto store = photon::store::OpenStore({"sqlite", dirs.back()});
      if (!store.ok()) {
        std::fprintf(stderr, "sqlite: %s\n", store.status().ToString().c_str());
        return nullptr;
      }
      return std::move(*store);
    };
    sqlite = Measure(open_sqlite, config);
    for (const auto& dir : dirs) std::filesystem::remove_all(dir);
    Print("sqlite", sqlite, config.keys);
  }
  if (config.backend == "sqlite") return 0;

  if (!photon::store::testing::EtcdProcess::Available()) {
    std::printf("etcd    SKIPPED: %s not installed\n", photon::store::testing::kEtcdBinary);
    return 0;
  }
  auto etcd = photon::store::testing::EtcdProcess::Start();
  if (!etcd.ok()) {
    std::fprintf(stderr, "etcd: %s\n", etcd.status().ToString().c_str());
    return 1;
  }
  auto open_etcd = [&]() -> std::unique_ptr<Store> {
    auto store = photon::store::OpenStore({(*etcd)->spec(), ""});
    if (!store.ok()) {
      std::fprintf(stderr, "etcd: %s\n", store.status().ToString().c_str());
      return nullptr;
    }
    return std::move(*store);
  };
  Figures etcd_figures = Measure(open_etcd, config);
  etcd->reset();
  Print("etcd", etcd_figures, config.keys);
  if (etcd_figures.puts16 > 0 && sqlite.puts16 > 0) {
    std::printf("sqlite/etcd puts/s ratio, 16 writers: %.2f, 1 writer: %.2f\n",
                sqlite.puts16 / etcd_figures.puts16, sqlite.puts1 / etcd_figures.puts1);
  }
  return 0;
}
