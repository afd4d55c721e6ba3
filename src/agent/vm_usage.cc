#include "agent/vm_usage.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agent/host/proc_util.h"
#include "agent/providers/vm/qmp_client.h"
#include "common/file_util.h"

namespace photon::agent {

using nlohmann::json;

namespace {

int64_t RssBytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      return in >> kb ? kb * 1024 : -1;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

std::optional<BlockCounters> QueryBlockStats(const std::string& socket,
                                             std::chrono::milliseconds timeout) {
  auto qmp = vm::QmpClient::Connect(socket, timeout);
  if (!qmp.ok()) return std::nullopt;
  auto stats = (*qmp)->Execute("query-blockstats");
  if (!stats.ok() || !stats->is_array()) return std::nullopt;
  BlockCounters b;
  for (const auto& dev : *stats) {
    const json& s = dev.value("stats", json::object());
    b.read_bytes += s.value("rd_bytes", int64_t{0});
    b.write_bytes += s.value("wr_bytes", int64_t{0});
    b.read_ops += s.value("rd_operations", int64_t{0});
    b.write_ops += s.value("wr_operations", int64_t{0});
  }
  return b;
}

}  // namespace

std::optional<VmReading> ReadVm(const std::string& instances_dir, const std::string& id,
                                std::chrono::milliseconds qmp_timeout) {
  auto text = ReadFile(instances_dir + "/" + id + "/state.json");
  if (!text.ok()) return std::nullopt;
  json st = json::parse(*text, nullptr, false);
  if (!st.is_object() || st.value("stopped", false) || st.value("launching", false)) {
    return std::nullopt;
  }
  const std::string sock = st.value("qmp_socket", "");
  VmReading r;
  r.pid = st.value("pid", 0);
  // The pid must still be this VM's QEMU (pids are reused).
  auto cmdline = r.pid > 0 ? ReadFile("/proc/" + std::to_string(r.pid) + "/cmdline")
                           : StatusOr<std::string>(absl::NotFoundError("no pid"));
  if (sock.empty() || !cmdline.ok() || cmdline->find(sock) == std::string::npos) {
    return std::nullopt;
  }
  r.cpu_seconds = ProcessCpuSeconds(r.pid);
  r.rss_bytes = RssBytes(r.pid);
  r.block = QueryBlockStats(sock, qmp_timeout);
  return r;
}

std::optional<NetCounters> ReadNetns(const std::string& netns_path) {
  std::optional<NetCounters> out;
  // setns changes the calling thread only: a thread of its own enters, reads and ends.
  std::thread reader([&] {
    const int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    const bool entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    if (!entered) return;
    std::ifstream in("/proc/thread-self/net/dev");
    std::string line;
    NetCounters n;
    bool read = false;
    while (std::getline(in, line)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;  // the two header lines
      std::string name = line.substr(0, colon);
      name.erase(0, name.find_first_not_of(' '));
      if (name == "lo") continue;
      std::istringstream f(line.substr(colon + 1));
      int64_t v[16] = {};
      for (auto& x : v) f >> x;
      n.rx_bytes += v[0];
      n.rx_packets += v[1];
      n.tx_bytes += v[8];
      n.tx_packets += v[9];
      read = true;
    }
    if (read || in.eof()) out = n;
  });
  reader.join();
  return out;
}

}  // namespace photon::agent
