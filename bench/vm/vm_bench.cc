// vm driver benchmark (not a test): create → RUNNING latency of 10 sequential VMs split into
// our overhead (Start call → QEMU exec'd, plus guest-ready marker → RUNNING reported) and guest
// boot (QEMU exec → marker on the console), the VMM's host memory beyond guest RAM, and 4 VMs
// booted concurrently (time until all RUNNING). Prints medians.
//   vm_bench [--sequential N] [--concurrent M] [--memory-mb MB] [--accel kvm|tcg]
//            [--tb-size-mb MB]
// Memory: total RSS of QEMU minus the resident part of its guest-RAM mapping (found in
// /proc/PID/smaps as the anonymous mapping of exactly the guest RAM size), i.e. what the VMM
// itself costs (TCG translation cache, device models, QEMU's heap).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "vm_test_util.h"

namespace vmt = photon::agent::vm::testing;
using photon::agent::Observed;
using photon::agent::ProviderContext;
using photon::agent::VmProvider;
using photon::resource::ResourceStatus;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Resident KiB of the mapping whose size is exactly `guest_kib` (QEMU's guest RAM block).
int64_t GuestRamRssKib(int pid, int64_t guest_kib) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  bool in_guest = false;
  int64_t best = 0;
  while (std::getline(in, line)) {
    if (line.rfind("Size:", 0) == 0) {
      in_guest = std::strtoll(line.c_str() + 5, nullptr, 10) == guest_kib;
    } else if (in_guest && line.rfind("Rss:", 0) == 0) {
      best = std::max<int64_t>(best, std::strtoll(line.c_str() + 4, nullptr, 10));
    }
  }
  return best;
}

bool ConsoleHas(const std::string& path, const std::string& text) {
  return vmt::ReadAll(path).find(text) != std::string::npos;
}

struct Sample {
  double create_to_running_ms = 0;
  double prepare_ms = 0;     // Start call → QEMU exec'd
  double boot_ms = 0;        // QEMU exec → PHOTON-READY on the console
  double report_ms = 0;      // PHOTON-READY seen → Inspect says RUNNING
  double start_call_ms = 0;  // duration of Start() (includes QEMU's daemonize)
  int64_t rss_kib = 0, guest_rss_kib = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int sequential = 10, concurrent = 4, memory_mb = 256;
  std::string accel, tb_size;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--sequential") sequential = std::atoi(argv[i + 1]);
    if (flag == "--concurrent") concurrent = std::atoi(argv[i + 1]);
    if (flag == "--memory-mb") memory_mb = std::atoi(argv[i + 1]);
    if (flag == "--accel") accel = argv[i + 1];
    if (flag == "--tb-size-mb") tb_size = argv[i + 1];
  }
  const std::string dir = vmt::MakeTempDir("vmbench");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { vmt::CleanupDir(dir); }
  } cleanup{dir};
  if (!vmt::BuildGuest(dir)) return 1;
  vmt::MapLookup lookup;
  vmt::AddGuestImages(&lookup, dir);
  ProviderContext ctx;
  ctx.node_name = "bench";
  ctx.lookup = &lookup;
  ctx.data_dir = dir + "/data";
  if (!accel.empty()) ctx.config["accel"] = accel;
  if (!tb_size.empty()) ctx.config["tcg_tb_size_mb"] = tb_size;
  VmProvider provider;
  if (auto st = provider.Initialize(ctx); !st.ok()) {
    std::fprintf(stderr, "initialize: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("accelerator: %s (%s), guest RAM %d MiB, tcg tb-size %s MiB\n",
              provider.accel().c_str(), provider.accel_reason().c_str(), memory_mb,
              tb_size.empty() ? "16" : tb_size.c_str());

  auto make = [&](int i) {
    auto instance = vmt::GuestInstance("bench-" + std::to_string(i), "b" + std::to_string(i));
    instance.mutable_spec()->mutable_resources()->set_memory_mb(memory_mb);
    instance.mutable_spec()->set_user_data("bench " + std::to_string(i));
    return instance;
  };

  std::vector<Sample> samples;
  for (int i = 0; i < sequential; ++i) {
    auto instance = make(i);
    const std::string id = instance.metadata().id();
    Sample s;
    auto t0 = Clock::now();
    auto handle = provider.Start(instance);
    auto t_started = Clock::now();
    if (!handle.ok()) {
      std::fprintf(stderr, "start: %s\n", handle.status().ToString().c_str());
      return 1;
    }
    const std::string vm_dir = ctx.data_dir + "/instances/" + id;
    const std::string console = vm_dir + "/console.log";
    auto timing = nlohmann::json::parse(vmt::ReadAll(vm_dir + "/timing.json"), nullptr, false);
    s.prepare_ms = timing.is_object() ? timing.value("prepare_us", 0) / 1000.0 : 0;
    s.start_call_ms = Ms(t_started - t0);
    Clock::time_point t_marker{}, t_running{};
    Observed o;
    while (Clock::now() - t0 < std::chrono::seconds(300)) {
      if (t_marker == Clock::time_point{} && ConsoleHas(console, "PHOTON-READY")) {
        t_marker = Clock::now();
      }
      auto obs = provider.Inspect(id);
      if (obs.ok() && obs->phase == ResourceStatus::RUNNING) {
        t_running = Clock::now();
        if (t_marker == Clock::time_point{}) t_marker = t_running;
        o = *obs;
        break;
      }
      if (obs.ok() && obs->phase == ResourceStatus::ERROR) {
        std::fprintf(stderr, "vm %s: %s\n", id.c_str(), obs->message.c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (t_running == Clock::time_point{}) {
      std::fprintf(stderr, "vm %s never RUNNING\n", id.c_str());
      return 1;
    }
    s.create_to_running_ms = Ms(t_running - t0);
    s.boot_ms = Ms(t_marker - t0) - s.prepare_ms;
    s.report_ms = Ms(t_running - t_marker);
    int pid = std::atoi(o.details["pid"].c_str());
    s.rss_kib = photon::agent::vm::ProcessRssBytes(pid) / 1024;
    s.guest_rss_kib = GuestRamRssKib(pid, int64_t{memory_mb} * 1024);
    std::printf(
        "vm %2d: create->RUNNING %7.0f ms | prepare %6.1f ms, boot %7.0f ms, ready->RUNNING "
        "%5.1f ms | RSS %4lld MiB, guest RAM resident %4lld MiB, VMM %3lld MiB\n",
        i, s.create_to_running_ms, s.prepare_ms, s.boot_ms, s.report_ms,
        static_cast<long long>(s.rss_kib / 1024), static_cast<long long>(s.guest_rss_kib / 1024),
        static_cast<long long>((s.rss_kib - s.guest_rss_kib) / 1024));
    samples.push_back(s);
    if (auto st = provider.Destroy(id); !st.ok()) {
      std::fprintf(stderr, "destroy: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const auto& s : samples) v.push_back(field(s));
    return Median(v);
  };
  double c2r = med([](const Sample& s) { return s.create_to_running_ms; });
  double prep = med([](const Sample& s) { return s.prepare_ms; });
  double boot = med([](const Sample& s) { return s.boot_ms; });
  double rep = med([](const Sample& s) { return s.report_ms; });
  double call = med([](const Sample& s) { return s.start_call_ms; });
  double rss = med([](const Sample& s) { return s.rss_kib / 1024.0; });
  double vmm = med([](const Sample& s) { return (s.rss_kib - s.guest_rss_kib) / 1024.0; });
  std::printf("\nmedians over %d sequential VMs (%s):\n", sequential, provider.accel().c_str());
  std::printf("  create -> RUNNING       %8.0f ms\n", c2r);
  std::printf(
      "  our overhead            %8.1f ms  (start -> QEMU exec %.1f ms + ready -> RUNNING "
      "%.1f ms) = %.2f%% of create -> RUNNING\n",
      prep + rep, prep, rep, 100.0 * (prep + rep) / c2r);
  std::printf("  guest boot              %8.0f ms  (QEMU exec -> PHOTON-READY)\n", boot);
  std::printf("  Start() call            %8.1f ms  (includes QEMU set-up until daemonized)\n",
              call);
  std::printf("  QEMU RSS                %8.1f MiB, beyond guest RAM %.1f MiB (target <= 64)\n",
              rss, vmm);
  std::printf(
      "  RSS - guest RAM size    %8.1f MiB (negative: the guest touched only part of "
      "its RAM)\n",
      rss - memory_mb);

  // Concurrent boots.
  auto t0 = Clock::now();
  std::vector<std::string> ids;
  for (int i = 0; i < concurrent; ++i) {
    auto instance = make(100 + i);
    if (auto h = provider.Start(instance); !h.ok()) {
      std::fprintf(stderr, "start: %s\n", h.status().ToString().c_str());
      return 1;
    }
    ids.push_back(instance.metadata().id());
  }
  std::vector<double> each(ids.size(), 0);
  size_t done = 0;
  while (done < ids.size() && Clock::now() - t0 < std::chrono::seconds(600)) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (each[i] > 0) continue;
      auto obs = provider.Inspect(ids[i]);
      if (obs.ok() && obs->phase == ResourceStatus::RUNNING) {
        each[i] = Ms(Clock::now() - t0);
        ++done;
      } else if (obs.ok() && obs->phase == ResourceStatus::ERROR) {
        std::fprintf(stderr, "vm %s: %s\n", ids[i].c_str(), obs->message.c_str());
        return 1;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  double all = Ms(Clock::now() - t0);
  std::printf(
      "\n%d VMs booted concurrently: all RUNNING after %.0f ms (median per VM %.0f ms, "
      "%.2fx one sequential boot)\n",
      concurrent, all, Median(each), all / c2r);
  for (const auto& id : ids) provider.Destroy(id).IgnoreError();
  return done == ids.size() ? 0 : 1;
}
