// Helpers for agent tests: temp dirs, waiting, host inspection (processes by environment,
// cgroups, mounts) and a sweep that removes whatever a test left on the host.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/host/run.h"

// True when this process runs under a chroot (/ is not a mount point in its mount table),
// where runc cannot start containers: tests that need runc skip there, loudly.
inline bool InChroot() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    if (fields >> id >> parent >> dev >> root >> mount_point && mount_point == "/") return false;
  }
  return true;
}

namespace photon::agent::testing {

inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("photon-" + tag + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Pids whose environment holds every one of `entries` ("KEY=VALUE"), zombies excluded.
inline std::vector<pid_t> PidsWithEnv(const std::vector<std::string>& entries) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z') continue;
    std::string env = Slurp("/proc/" + std::to_string(pid) + "/environ");
    std::set<std::string> vars;
    std::istringstream in(env);
    std::string var;
    while (std::getline(in, var, '\0')) vars.insert(var);
    bool all = true;
    for (const auto& want : entries) all &= vars.count(want) > 0;
    if (all) out.push_back(pid);
  }
  closedir(d);
  return out;
}

// Every cgroup directory below photon/<node> in any hierarchy.
inline std::vector<std::string> CgroupDirsOf(const std::string& node) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& h : std::filesystem::directory_iterator("/sys/fs/cgroup", ec)) {
    std::string base = h.path().string() + "/photon/" + node;
    if (!std::filesystem::exists(base, ec)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(base, ec)) {
      if (e.is_directory()) out.push_back(e.path().string());
    }
  }
  if (std::filesystem::exists("/sys/fs/cgroup/photon/" + node, ec)) {
    out.push_back("/sys/fs/cgroup/photon/" + node);
  }
  return out;
}

// Groups that still hold an instance (leaf groups below .../process or .../container).
inline std::vector<std::string> InstanceCgroupsOf(const std::string& node) {
  std::vector<std::string> out;
  for (const auto& d : CgroupDirsOf(node)) {
    auto parent = std::filesystem::path(d).parent_path().filename().string();
    if (parent == "process" || parent == "container") out.push_back(d);
  }
  return out;
}

inline std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream in(Slurp("/proc/self/mounts"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string src, target;
    f >> src >> target;
    if (target.rfind(dir, 0) == 0) out.push_back(target);
  }
  return out;
}

// Removes what a test left behind: processes in the node's cgroups, runc containers under
// `data_dir`, overlay mounts, the cgroups, and the directory itself.
inline void SweepHost(const std::string& node, const std::string& data_dir) {
  std::error_code ec;
  if (!data_dir.empty()) {
    std::string runc_root = data_dir + "/providers/container/runc";
    if (std::filesystem::exists(runc_root, ec)) {
      for (const auto& c : std::filesystem::directory_iterator(runc_root, ec)) {
        (void)RunCommand(
            {"runc", "--root", runc_root, "delete", "--force", c.path().filename().string()});
      }
    }
    for (const auto& m : MountsUnder(data_dir)) umount2(m.c_str(), MNT_DETACH);
  }
  auto dirs = CgroupDirsOf(node);
  for (int round = 0; round < 50; ++round) {
    bool any = false;
    for (const auto& d : dirs) {
      std::ifstream procs(d + "/cgroup.procs");
      pid_t p;
      while (procs >> p) {
        kill(p, SIGKILL);
        any = true;
      }
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Deepest first.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
  for (const auto& h : std::filesystem::directory_iterator("/sys/fs/cgroup", ec)) {
    rmdir((h.path().string() + "/photon/" + node).c_str());
  }
  rmdir(("/sys/fs/cgroup/photon/" + node).c_str());
  if (!data_dir.empty()) std::filesystem::remove_all(data_dir, ec);
}

}  // namespace photon::agent::testing
