#include "agent/instance_metrics.h"

#include <unistd.h>

#include <fstream>
#include <functional>
#include <iomanip>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/host/proc_util.h"
#include "common/util.h"

namespace photon::agent {

namespace {

using Clock = std::chrono::steady_clock;

// The first whitespace-separated number in `path`; nullopt when unreadable or "max".
std::optional<int64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  try {
    return std::stoll(word);
  } catch (...) {
    return std::nullopt;
  }
}

// A "KEY VALUE" line's value in a flat-keyed file (cpu.stat, meminfo).
std::optional<int64_t> ReadKey(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  int64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
    in.ignore(1 << 12, '\n');
  }
  return std::nullopt;
}

// Sums of io.stat's rbytes= and wbytes= over its devices.
void ReadIoStat(const std::string& path, int64_t* read, int64_t* write) {
  std::ifstream in(path);
  if (!in) return;
  *read = *write = 0;
  std::string word;
  while (in >> word) {
    if (word.rfind("rbytes=", 0) == 0) *read += std::stoll(word.substr(7));
    if (word.rfind("wbytes=", 0) == 0) *write += std::stoll(word.substr(7));
  }
}

// Prometheus label value: \ " and newline escaped.
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

// A counter of an optional reading, for the families below.
template <typename T>
std::optional<double> Opt(const std::optional<T>& reading, int64_t T::*field) {
  return reading ? std::optional<double>(static_cast<double>((*reading).*field)) : std::nullopt;
}

}  // namespace

InstanceMetrics::InstanceMetrics(std::string node, std::chrono::milliseconds interval,
                                 std::string cgroup_root)
    : node_(std::move(node)), interval_(interval) {
  for (const char* driver : {"process", "container"}) {
    drivers_.emplace(driver, CgroupManager("photon/" + node_ + "/" + driver, cgroup_root));
  }
}

InstanceUsage InstanceMetrics::Read(const CgroupManager& cgroups, const std::string& id) const {
  InstanceUsage u;
  if (cgroups.version() == CgroupVersion::kV2) {
    const std::string dir = cgroups.Dir(id, "");
    u.cpu_seconds = ReadKey(dir + "/cpu.stat", "usage_usec").value_or(0) / 1e6;
    u.memory_bytes = ReadNumber(dir + "/memory.current").value_or(-1);
    u.memory_limit_bytes = ReadNumber(dir + "/memory.max").value_or(0);
    ReadIoStat(dir + "/io.stat", &u.io_read_bytes, &u.io_write_bytes);
    return u;
  }
  const std::string mem = cgroups.Dir(id, "memory");
  u.memory_bytes = ReadNumber(mem + "/memory.usage_in_bytes").value_or(-1);
  // v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages).
  const int64_t limit = ReadNumber(mem + "/memory.limit_in_bytes").value_or(0);
  u.memory_limit_bytes = limit >= (int64_t{1} << 60) ? 0 : limit;
  for (const char* h : {"cpuacct", "cpu"}) {
    if (auto ns = ReadNumber(cgroups.Dir(id, h) + "/cpuacct.usage")) {
      u.cpu_seconds = *ns / 1e9;
      return u;
    }
  }
  for (pid_t p : cgroups.Pids(id)) u.cpu_seconds += ProcessCpuSeconds(p);
  return u;
}

std::optional<InstanceUsage> InstanceMetrics::ReadVmUsage(const std::string& id) {
  if (vm_dir_.empty()) return std::nullopt;
  auto vm = ReadVm(vm_dir_, id, std::chrono::milliseconds(1000));
  if (!vm) {
    last_block_.erase(id);
    return std::nullopt;
  }
  InstanceUsage u;
  u.cpu_seconds = vm->cpu_seconds;
  u.memory_bytes = vm->rss_bytes;
  if (vm->block) last_block_[id] = *vm->block;
  if (auto it = last_block_.find(id); it != last_block_.end()) u.block = it->second;
  return u;
}

void InstanceMetrics::Sample() {
  // Read outside the lock (QMP and namespaces take a moment; scrapes render meanwhile).
  std::vector<InstanceUsage> usage;
  std::vector<std::string> ids;
  const Informer* instances = instances_;
  for (const std::string& key : instances ? instances->Keys() : std::vector<std::string>{}) {
    auto obj = instances->Get(key);
    if (!obj) continue;
    const auto& md = (*obj)["metadata"];
    const std::string id = md.value("id", "");
    if (id.empty() || id.find('/') != std::string::npos || id[0] == '.') continue;
    std::optional<InstanceUsage> u;
    for (const auto& [driver, cgroups] : drivers_) {
      if (cgroups.version() == CgroupVersion::kNone || !cgroups.Exists(id)) continue;
      u = Read(cgroups, id);
      u->driver = driver;
      break;
    }
    if (!u && (u = ReadVmUsage(id))) u->driver = "vm";
    if (!u) continue;
    u->ns = md.value("namespace", "");
    u->name = md.value("name", "");
    if (netns_of_) {
      if (const std::string netns = netns_of_(id); !netns.empty()) u->net = ReadNetns(netns);
    }
    usage.push_back(std::move(*u));
    ids.push_back(id);
  }
  const auto now = Clock::now();
  std::map<std::string, Cpu> cpu;
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < usage.size(); ++i) {
    InstanceUsage& u = usage[i];
    if (auto it = last_cpu_.find(ids[i]); it != last_cpu_.end()) {
      const double dt = std::chrono::duration<double>(now - it->second.at).count();
      if (dt > 0) u.cpu_cores = std::max(0.0, (u.cpu_seconds - it->second.seconds) / dt);
    }
    cpu[ids[i]] = {u.cpu_seconds, now};
  }
  last_cpu_.swap(cpu);
  usage_.swap(usage);
  // The node: busy = all jiffies but idle and iowait (/proc/stat's first line).
  NodeUsage n;
  n.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream stat("/proc/stat");
  std::string cpu_word;
  int64_t v, total = 0, idle = 0;
  stat >> cpu_word;
  for (int i = 0; i < 8 && stat >> v; ++i) {
    total += v;
    if (i == 3 || i == 4) idle += v;
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const Cpu busy{(total - idle) / tick, now}, all{total / tick, now};
  if (sampled_ && all.seconds > last_node_total_.seconds) {
    const double wall = std::chrono::duration<double>(now - last_node_busy_.at).count();
    if (wall > 0) n.cpu_cores = (busy.seconds - last_node_busy_.seconds) / wall;
  }
  last_node_busy_ = busy;
  last_node_total_ = all;
  n.memory_total_bytes = ReadKey("/proc/meminfo", "MemTotal:").value_or(0) * 1024;
  n.memory_available_bytes = ReadKey("/proc/meminfo", "MemAvailable:").value_or(0) * 1024;
  node_usage_ = n;
  sampled_ = true;
}

void InstanceMetrics::Run(const std::atomic<bool>* stop) {
  SetThreadName("usage");
  auto next = Clock::now();
  while (!*stop) {
    if (Clock::now() >= next) {
      Sample();
      next = Clock::now() + interval_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // checks *stop
  }
}

std::string InstanceMetrics::Render() const {
  std::lock_guard lock(mu_);
  if (!sampled_) return "";
  std::ostringstream out;
  out << std::setprecision(15);
  const std::string node = "node=\"" + Escape(node_) + "\"";
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  family("photon_node_cpus", "gauge", "CPUs online on this node");
  out << "photon_node_cpus{" << node << "} " << node_usage_.cpus << '\n';
  if (node_usage_.cpu_cores >= 0) {
    family("photon_node_cpu_cores_used", "gauge", "Busy CPUs, average over the last interval");
    out << "photon_node_cpu_cores_used{" << node << "} " << node_usage_.cpu_cores << '\n';
  }
  family("photon_node_memory_total_bytes", "gauge", "MemTotal of /proc/meminfo");
  out << "photon_node_memory_total_bytes{" << node << "} " << node_usage_.memory_total_bytes
      << '\n';
  family("photon_node_memory_available_bytes", "gauge", "MemAvailable of /proc/meminfo");
  out << "photon_node_memory_available_bytes{" << node << "} " << node_usage_.memory_available_bytes
      << '\n';
  auto labels = [&](const InstanceUsage& u) {
    return "{namespace=\"" + Escape(u.ns) + "\",instance=\"" + Escape(u.name) + "\"," + node +
           ",driver=\"" + u.driver + "\"}";
  };
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    std::function<std::optional<double>(const InstanceUsage&)> value;
  };
  const std::vector<Family> families = {
      {"photon_instance_cpu_seconds_total", "counter", "CPU time of the instance's cgroup",
       [](const InstanceUsage& u) { return std::optional<double>(u.cpu_seconds); }},
      {"photon_instance_cpu_cores", "gauge", "CPUs used, average over the last interval",
       [](const InstanceUsage& u) {
         return u.cpu_cores < 0 ? std::nullopt : std::optional<double>(u.cpu_cores);
       }},
      {"photon_instance_memory_bytes", "gauge", "Memory charged to the instance's cgroup",
       [](const InstanceUsage& u) {
         return u.memory_bytes < 0 ? std::nullopt : std::optional<double>(u.memory_bytes);
       }},
      {"photon_instance_memory_limit_bytes", "gauge", "The cgroup's memory limit (when set)",
       [](const InstanceUsage& u) {
         return u.memory_limit_bytes <= 0 ? std::nullopt
                                          : std::optional<double>(u.memory_limit_bytes);
       }},
      {"photon_instance_io_read_bytes_total", "counter", "Bytes read (cgroup v2 io.stat)",
       [](const InstanceUsage& u) {
         return u.io_read_bytes < 0 ? std::nullopt : std::optional<double>(u.io_read_bytes);
       }},
      {"photon_instance_io_write_bytes_total", "counter", "Bytes written (cgroup v2 io.stat)",
       [](const InstanceUsage& u) {
         return u.io_write_bytes < 0 ? std::nullopt : std::optional<double>(u.io_write_bytes);
       }},
      {"photon_instance_block_read_bytes_total", "counter",
       "Bytes a VM read from its drives (QMP query-blockstats)",
       [](const InstanceUsage& u) { return Opt(u.block, &BlockCounters::read_bytes); }},
      {"photon_instance_block_write_bytes_total", "counter", "Bytes a VM wrote to its drives",
       [](const InstanceUsage& u) { return Opt(u.block, &BlockCounters::write_bytes); }},
      {"photon_instance_block_read_ops_total", "counter", "Read requests of a VM's drives",
       [](const InstanceUsage& u) { return Opt(u.block, &BlockCounters::read_ops); }},
      {"photon_instance_block_write_ops_total", "counter", "Write requests of a VM's drives",
       [](const InstanceUsage& u) { return Opt(u.block, &BlockCounters::write_ops); }},
      {"photon_instance_network_receive_bytes_total", "counter",
       "Bytes received on the port namespace's interfaces",
       [](const InstanceUsage& u) { return Opt(u.net, &NetCounters::rx_bytes); }},
      {"photon_instance_network_transmit_bytes_total", "counter",
       "Bytes sent on the port namespace's interfaces",
       [](const InstanceUsage& u) { return Opt(u.net, &NetCounters::tx_bytes); }},
      {"photon_instance_network_receive_packets_total", "counter",
       "Packets received on the port namespace's interfaces",
       [](const InstanceUsage& u) { return Opt(u.net, &NetCounters::rx_packets); }},
      {"photon_instance_network_transmit_packets_total", "counter",
       "Packets sent on the port namespace's interfaces",
       [](const InstanceUsage& u) { return Opt(u.net, &NetCounters::tx_packets); }},
  };
  for (const auto& f : families) {
    bool head = false;
    for (const auto& u : usage_) {
      auto v = f.value(u);
      if (!v) continue;
      if (!head) family(f.name, f.type, f.help);
      head = true;
      out << f.name << labels(u) << ' ' << *v << '\n';
    }
  }
  return out.str();
}

}  // namespace photon::agent
