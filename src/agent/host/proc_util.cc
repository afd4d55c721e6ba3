#include "agent/host/proc_util.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace photon::agent {
namespace {

// Fields of /proc/<pid>/stat after the command name (which may contain spaces and ')').
// Index 0 is field 3 (state).
std::vector<std::string> StatFields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  return fields;
}

}  // namespace

uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0) return 0;
  auto f = StatFields(pid);
  if (f.size() < 20 || f[0] == "Z" || f[0] == "X") return 0;
  return std::stoull(f[19]);  // field 22
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  uint64_t st = ProcessStartTime(pid);
  return st != 0 && (start_time == 0 || st == start_time);
}

pid_t ParentPid(pid_t pid) {
  auto f = StatFields(pid);
  return f.size() < 2 ? 0 : static_cast<pid_t>(std::stol(f[1]));  // field 4
}

uint64_t ProcessCpuTicks(pid_t pid) {
  auto f = StatFields(pid);
  if (f.size() < 13) return 0;
  return std::stoull(f[11]) + std::stoull(f[12]);  // fields 14, 15
}

double ProcessCpuSeconds(pid_t pid) {
  return static_cast<double>(ProcessCpuTicks(pid)) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace photon::agent
