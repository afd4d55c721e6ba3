// photon-bench-scheduler: placement throughput of the scheduler pipeline, C1M style.
// In-process, simulated nodes, no agents and no store: 10,000 nodes across 3 zones × 20
// racks, 1,000,000 instances in service groups of 10 with soft rack anti-affinity and zone
// spread. Each run is a forked child (so its peak RSS is its own); medians of 3 runs.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "server/scheduler/scheduler.h"

namespace {

using photon::scheduler::ClusterState;
using photon::scheduler::Decision;
using photon::scheduler::NodeState;
using photon::scheduler::Request;
using photon::scheduler::Scheduler;

struct Result {
  double placements_per_s = 0;
  double p50_us = 0, p99_us = 0;
  double peak_rss_mb = 0;
  long placed = 0, pending = 0;
  long overcommitted_nodes = 0;
  double rack_collision_pct = 0;  // members sharing a rack with an earlier member of the group
  double zone_imbalance = 0;      // mean over groups of (max - min) members per zone
};

Result RunOnce(int nodes, int instances, int group_size, int zones, int racks_per_zone,
               uint64_t seed) {
  ClusterState state;
  for (int i = 0; i < nodes; ++i) {
    NodeState n;
    n.name = "node-" + std::to_string(i);
    const int rack = i % (zones * racks_per_zone);
    n.labels["region"] = "r1";
    n.labels["zone"] = "z" + std::to_string(rack / racks_per_zone);
    n.labels["rack_az"] = "rack-" + std::to_string(rack);
    n.drivers = {"process", "container", "vm"};
    n.capacity = {128, 262144, 4000};
    n.ready = true;
    state.AddNode(std::move(n));
  }
  auto policy = std::make_shared<photon::compute::SchedulePolicy>();
  auto* anti = policy->add_anti_affinity();
  anti->set_topology_key("rack_az");
  anti->set_weight(100);
  std::shared_ptr<const photon::compute::SchedulePolicy> shared = policy;
  Scheduler sched(&state,
                  {.binpack = false, .candidate_limit = 16, .spread_key = "zone", .seed = seed});
  const int rack_key = state.KeyIndex("rack_az");
  const int zone_key = state.KeyIndex("zone");

  std::vector<float> latencies_us;
  latencies_us.reserve(instances);
  Result res;
  long collisions = 0;
  double imbalance_sum = 0;
  std::vector<int> group_racks, group_zones(zones);
  const auto t0 = std::chrono::steady_clock::now();
  Request req;
  req.need = {1, 2048, 20};
  req.driver = "process";
  req.group_size = group_size;
  req.policy = shared;
  for (int i = 0; i < instances; ++i) {
    const int g = i / group_size;
    if (i % group_size == 0) {
      req.group = "svc-" + std::to_string(g);
      group_racks.clear();
      std::fill(group_zones.begin(), group_zones.end(), 0);
    }
    req.name = req.group + "-" + std::to_string(i % group_size);
    const auto a = std::chrono::steady_clock::now();
    Decision d = sched.Place(req);
    const auto b = std::chrono::steady_clock::now();
    latencies_us.push_back(std::chrono::duration<float, std::micro>(b - a).count());
    if (d.kind != Decision::Kind::kPlaced) {
      ++res.pending;
      continue;
    }
    ++res.placed;
    const int rack = state.Domain(rack_key, d.node);
    if (std::find(group_racks.begin(), group_racks.end(), rack) != group_racks.end()) ++collisions;
    group_racks.push_back(rack);
    group_zones[state.Domain(zone_key, d.node)]++;
    if (i % group_size == group_size - 1) {
      auto [mn, mx] = std::minmax_element(group_zones.begin(), group_zones.end());
      imbalance_sum += *mx - *mn;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.placements_per_s = instances / secs;
  std::sort(latencies_us.begin(), latencies_us.end());
  res.p50_us = latencies_us[latencies_us.size() / 2];
  res.p99_us = latencies_us[latencies_us.size() * 99 / 100];
  for (const auto& n : state.nodes()) {
    if (n.allocated.vcpu > n.capacity.vcpu || n.allocated.memory_mb > n.capacity.memory_mb ||
        n.allocated.disk_gb > n.capacity.disk_gb)
      ++res.overcommitted_nodes;
  }
  res.rack_collision_pct = 100.0 * collisions / std::max<long>(1, res.placed);
  res.zone_imbalance = imbalance_sum / std::max(1, instances / group_size);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  res.peak_rss_mb = ru.ru_maxrss / 1024.0;
  return res;
}

// Other work on the machine skews the figures: print the 1-minute load average with them.
std::string LoadAverage() {
  FILE* f = fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char buf[64] = {0};
  if (!fgets(buf, sizeof(buf), f)) buf[0] = 0;
  fclose(f);
  std::string s(buf);
  return s.substr(0, s.find(' '));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = 10000, instances = 1000000, group_size = 10, runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--nodes"))
      nodes = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--instances"))
      instances = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--group-size"))
      group_size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--runs"))
      runs = atoi(argv[i + 1]);
  }
  printf(
      "photon-bench-scheduler: %d nodes (3 zones x 20 racks), %d instances, groups of %d, "
      "soft rack anti-affinity + zone spread, %d runs\n",
      nodes, instances, group_size, runs);
  std::vector<Result> results;
  for (int r = 0; r < runs; ++r) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      Result res = RunOnce(nodes, instances, group_size, 3, 20, 1000 + r);
      ssize_t w = write(fds[1], &res, sizeof(res));
      _exit(w == sizeof(res) ? 0 : 1);
    }
    close(fds[1]);
    Result res;
    ssize_t got = read(fds[0], &res, sizeof(res));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != sizeof(res)) {
      fprintf(stderr, "run %d failed\n", r);
      return 1;
    }
    printf(
        "run %d: %.0f placements/s, p50 %.1f us, p99 %.1f us, peak RSS %.0f MB, placed %ld, "
        "pending %ld, overcommitted nodes %ld, rack collisions %.2f%%, zone imbalance %.2f\n",
        r + 1, res.placements_per_s, res.p50_us, res.p99_us, res.peak_rss_mb, res.placed,
        res.pending, res.overcommitted_nodes, res.rack_collision_pct, res.zone_imbalance);
    fflush(stdout);
    results.push_back(res);
  }
  auto med = [&](double Result::*f) {
    std::vector<double> v;
    for (const auto& r : results) v.push_back(r.*f);
    return Median(v);
  };
  const double rate = med(&Result::placements_per_s);
  printf(
      "median: %.0f placements/s (target 20000: %.1fx; Nomad C1M ~3300/s: %.1fx), "
      "p99 decision %.1f us, peak RSS %.0f MB, rack collisions %.2f%%, zone imbalance %.2f "
      "(load average %s on %ld cores)\n",
      rate, rate / 20000, rate / 3300, med(&Result::p99_us), med(&Result::peak_rss_mb),
      med(&Result::rack_collision_pct), med(&Result::zone_imbalance), LoadAverage().c_str(),
      sysconf(_SC_NPROCESSORS_ONLN));
  return 0;
}
