#include "agent/host/cgroup.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/file_util.h"

namespace photon::agent {
namespace fs = std::filesystem;
namespace {

Status WriteControl(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  if (!out) return absl::InternalError("cannot open " + path);
  out << value;
  out.flush();
  if (!out) return absl::InternalError("cannot write '" + value + "' to " + path);
  return absl::OkStatus();
}

}  // namespace

CgroupManager::CgroupManager(std::string parent, std::string root)
    : parent_(std::move(parent)), root_(std::move(root)) {
  std::error_code ec;
  if (fs::exists(root_ + "/cgroup.controllers", ec)) {
    version_ = CgroupVersion::kV2;
  } else if (fs::exists(root_ + "/memory/cgroup.procs", ec) &&
             fs::exists(root_ + "/cpu/cgroup.procs", ec)) {
    version_ = CgroupVersion::kV1;
  }
}

std::string CgroupManager::VersionName() const {
  switch (version_) {
    case CgroupVersion::kV1:
      return "v1";
    case CgroupVersion::kV2:
      return "v2";
    default:
      return "none";
  }
}

std::vector<std::string> CgroupManager::Hierarchies() const {
  if (version_ == CgroupVersion::kV2) return {root_ + "/" + parent_};
  if (version_ == CgroupVersion::kV1) {
    return {root_ + "/cpu/" + parent_, root_ + "/memory/" + parent_};
  }
  return {};
}

std::string CgroupManager::Dir(const std::string& id, const std::string& controller) const {
  if (version_ == CgroupVersion::kV2) return root_ + "/" + parent_ + "/" + id;
  return root_ + "/" + controller + "/" + parent_ + "/" + id;
}

Status CgroupManager::Create(const std::string& id, const CgroupLimits& limits) {
  if (version_ == CgroupVersion::kNone) {
    return absl::UnavailableError("no cgroup hierarchy under " + root_);
  }
  if (version_ == CgroupVersion::kV2) {
    // Controllers must be enabled in every ancestor's subtree_control.
    std::string dir = root_;
    std::istringstream parts(parent_);
    std::string part;
    while (std::getline(parts, part, '/')) {
      if (part.empty()) continue;
      (void)WriteControl(dir + "/cgroup.subtree_control", "+cpu +memory");
      dir += "/" + part;
      PHOTON_RETURN_IF_ERROR(MakeDirs(dir));
    }
    (void)WriteControl(dir + "/cgroup.subtree_control", "+cpu +memory");
    std::string g = dir + "/" + id;
    PHOTON_RETURN_IF_ERROR(MakeDirs(g));
    if (limits.cpus > 0) {
      auto quota = static_cast<int64_t>(std::llround(limits.cpus * 100000));
      PHOTON_RETURN_IF_ERROR(WriteControl(g + "/cpu.max", std::to_string(quota) + " 100000"));
    }
    if (limits.memory_bytes > 0) {
      PHOTON_RETURN_IF_ERROR(WriteControl(g + "/memory.max", std::to_string(limits.memory_bytes)));
      (void)WriteControl(g + "/memory.swap.max", "0");
    }
    return absl::OkStatus();
  }
  std::string cpu = Dir(id, "cpu"), mem = Dir(id, "memory");
  PHOTON_RETURN_IF_ERROR(MakeDirs(cpu));
  PHOTON_RETURN_IF_ERROR(MakeDirs(mem));
  if (limits.cpus > 0) {
    auto quota = static_cast<int64_t>(std::llround(limits.cpus * 100000));
    PHOTON_RETURN_IF_ERROR(WriteControl(cpu + "/cpu.cfs_period_us", "100000"));
    PHOTON_RETURN_IF_ERROR(WriteControl(cpu + "/cpu.cfs_quota_us", std::to_string(quota)));
  }
  if (limits.memory_bytes > 0) {
    PHOTON_RETURN_IF_ERROR(
        WriteControl(mem + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
  }
  return absl::OkStatus();
}

std::vector<std::string> CgroupManager::ProcsFiles(const std::string& id) const {
  std::vector<std::string> out;
  for (const auto& h : Hierarchies()) out.push_back(h + "/" + id + "/cgroup.procs");
  return out;
}

std::vector<pid_t> CgroupManager::Pids(const std::string& id) const {
  std::set<pid_t> pids;
  for (const auto& f : ProcsFiles(id)) {
    std::ifstream in(f);
    pid_t p;
    while (in >> p) pids.insert(p);
  }
  return {pids.begin(), pids.end()};
}

bool CgroupManager::Exists(const std::string& id) const {
  std::error_code ec;
  for (const auto& h : Hierarchies()) {
    if (fs::exists(h + "/" + id, ec)) return true;
  }
  return false;
}

void CgroupManager::Signal(const std::string& id, int sig) const {
  for (pid_t p : Pids(id)) kill(p, sig);
}

Status CgroupManager::Remove(const std::string& id) {
  for (int i = 0; i < 100; ++i) {
    auto pids = Pids(id);
    if (pids.empty()) break;
    for (pid_t p : pids) kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Status result = absl::OkStatus();
  for (const auto& h : Hierarchies()) {
    std::string g = h + "/" + id;
    // v1 memory groups can stay busy for a while after their last task exited.
    for (int i = 0; i < 250 && ::access(g.c_str(), F_OK) == 0; ++i) {
      if (::rmdir(g.c_str()) == 0) break;
      // A killed process leaves the group a moment after it died.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (::access(g.c_str(), F_OK) == 0) result = absl::InternalError("cannot remove " + g);
  }
  return result;
}

std::vector<std::string> CgroupManager::List() const {
  std::set<std::string> ids;
  std::error_code ec;
  for (const auto& h : Hierarchies()) {
    for (const auto& e : fs::directory_iterator(h, ec)) {
      if (e.is_directory()) ids.insert(e.path().filename().string());
    }
  }
  return {ids.begin(), ids.end()};
}

int CgroupManager::SweepEmpty(const std::set<std::string>& keep) {
  int removed = 0;
  for (const auto& id : List()) {
    if (keep.count(id) || !Pids(id).empty()) continue;
    bool gone = true;
    for (const auto& h : Hierarchies()) {
      const std::string g = h + "/" + id;
      if (::access(g.c_str(), F_OK) == 0 && ::rmdir(g.c_str()) != 0) gone = false;
    }
    removed += gone ? 1 : 0;
  }
  return removed;
}

}  // namespace photon::agent
