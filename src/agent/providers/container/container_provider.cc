#include "agent/providers/container/container_provider.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "agent/host/cgroup.h"
#include "agent/host/image_root.h"
#include "agent/host/proc_util.h"
#include "agent/host/run.h"
#include "agent/host/spawn.h"
#include "agent/host/stop_timeout.h"
#include "agent/providers/container/rootfs.h"
#include "common/file_util.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
namespace fs = std::filesystem;
using json = nlohmann::json;
using resource::ResourceStatus;

namespace {

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.' || id[0] == '-') return false;
  for (char c : id) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

constexpr uid_t kIdsPerContainer = 65536;

// Options of the user-namespace range, validated with the option named.
StatusOr<uint64_t> NumberOption(const std::map<std::string, std::string>& config,
                                const std::string& key, uint64_t fallback) {
  auto it = config.find(key);
  if (it == config.end()) return fallback;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v == 0) {
    return absl::InvalidArgumentError(key + ": want a positive number, got '" + it->second + "'");
  }
  return v;
}

json DefaultMounts(bool confined) {
  // In a user namespace without a network namespace of its own, sysfs cannot be mounted anew:
  // the host's is bound read-only instead (as rootless runtimes do).
  json sys = confined ? json{{"destination", "/sys"},
                             {"type", "none"},
                             {"source", "/sys"},
                             {"options", {"rbind", "nosuid", "noexec", "nodev", "ro"}}}
                      : json{{"destination", "/sys"},
                             {"type", "sysfs"},
                             {"source", "sysfs"},
                             {"options", {"nosuid", "noexec", "nodev", "ro"}}};
  return json::array({
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
      {{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
      {{"destination", "/dev/shm"},
       {"type", "tmpfs"},
       {"source", "shm"},
       {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
      {{"destination", "/dev/mqueue"},
       {"type", "mqueue"},
       {"source", "mqueue"},
       {"options", {"nosuid", "noexec", "nodev"}}},
      sys,
      {{"destination", "/tmp"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "nodev", "mode=1777"}}},
  });
}

}  // namespace

Status ContainerProvider::Initialize(const ProviderContext& context) {
  context_ = context;
  runc_root_ = context_.data_dir + "/runc";
  PHOTON_RETURN_IF_ERROR(MakeDirs(runc_root_, 0700));
  PHOTON_RETURN_IF_ERROR(MakeDirs(context_.data_dir + "/bundles", 0700));
  std::string runtime = "runc";
  if (auto it = context_.config.find("runtime"); it != context_.config.end()) runtime = it->second;
  runc_ = ResolveExecutable(runtime, {});
  images_root_ = ImagesRootFrom(context_.config);
  auto it = context_.config.find("rootfs_root");
  rootfs_root_ =
      (it == context_.config.end() ? std::string("/var/lib/photon/containers") : it->second) + "/" +
      context_.node_name;
  PHOTON_ASSIGN_OR_RETURN(uint64_t base, NumberOption(context_.config, "userns_base", 3000000));
  PHOTON_ASSIGN_OR_RETURN(uint64_t slots, NumberOption(context_.config, "userns_slots", 1024));
  if (base < 65536 || base + slots * kIdsPerContainer > 0xFFFFFFFEull) {
    return absl::InvalidArgumentError(
        "userns_base/userns_slots: the range must start at 65536 or above and not wrap");
  }
  userns_base_ = static_cast<uid_t>(base);
  userns_slots_ = std::make_unique<DynamicIds>(0, static_cast<uid_t>(slots));
  PHOTON_RETURN_IF_ERROR(MakeDirs(rootfs_root_, 0711));
  // Slots of the containers an earlier agent run started.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(context_.data_dir + "/bundles", ec)) {
    auto meta = ReadFile(e.path().string() + "/meta.json");
    json j = json::parse(meta.ok() ? *meta : "", nullptr, false);
    if (j.is_object() && j.contains("usernsSlot")) {
      userns_slots_->Adopt(j.value("usernsSlot", 0u), e.path().filename().string());
    }
  }
  return absl::OkStatus();
}

namespace {
// True when / appears as a mount point in our mount table (false under a chroot).
bool RootIsMountPoint() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    if (fields >> id >> parent >> dev >> root >> mount_point && mount_point == "/") return true;
  }
  return false;
}
}  // namespace

StatusOr<std::map<std::string, std::string>> ContainerProvider::Fingerprint() {
  if (runc_.empty()) return absl::UnavailableError("runc is not installed");
  // runc makes the container's root private and pivots into it, which needs our / to be a
  // mount point; under a chroot it is not, and every container would fail, so do not offer
  // the driver. (/proc/1/root cannot be compared: reading it needs ptrace rights over init.)
  if (!RootIsMountPoint())
    return absl::UnavailableError("runc cannot run containers inside a chroot");
  PHOTON_ASSIGN_OR_RETURN(RunResult r, RunCommand({runc_, "--version"}, std::chrono::seconds(10)));
  if (r.exit_code != 0) return absl::UnavailableError("runc --version failed: " + r.output);
  std::string version = r.output.substr(0, r.output.find('\n'));
  if (auto sp = version.rfind(' '); sp != std::string::npos) version = version.substr(sp + 1);
  CgroupManager probe("photon");
  return std::map<std::string, std::string>{{"container.runtime", "runc"},
                                            {"container.runtime_version", version},
                                            {"container.cgroup", probe.VersionName()}};
}

std::string ContainerProvider::Bundle(const std::string& id) const {
  return context_.data_dir + "/bundles/" + id;
}

std::string ContainerProvider::CgroupPath(const std::string& id) const {
  return "photon/" + context_.node_name + "/container/" + id;
}

std::mutex* ContainerProvider::Lock(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto& m = locks_[id];
  if (!m) m = std::make_unique<std::mutex>();
  return m.get();
}

StatusOr<std::vector<std::string>> ContainerProvider::RuncArgs(std::vector<std::string> args) {
  if (runc_.empty()) return absl::UnavailableError("runc is not installed");
  // runc makes the container's root private and pivots into it; under a chroot (no mount
  // namespace root of its own) that fails for every container, so do not offer the driver.
  struct stat root_here {
  }, root_init{};
  if (stat("/", &root_here) == 0 && stat("/proc/1/root", &root_init) == 0 &&
      (root_here.st_dev != root_init.st_dev || root_here.st_ino != root_init.st_ino)) {
    return absl::UnavailableError("runc cannot run containers inside a chroot");
  }
  args.insert(args.begin(), {runc_, "--root", runc_root_});
  return args;
}

std::string ContainerProvider::RuncStatus(const std::string& id, int* pid) {
  auto args = RuncArgs({"state", id});
  if (!args.ok()) return "";
  auto r = RunCommand(*args, std::chrono::seconds(20));
  if (!r.ok() || r->exit_code != 0) return "";
  json j = json::parse(r->output, nullptr, false);
  if (!j.is_object()) return "";
  if (pid != nullptr) *pid = j.value("pid", 0);
  return j.value("status", "");
}

std::string ContainerProvider::RootfsDir(const std::string& id) const {
  return rootfs_root_ + "/" + id;
}

StatusOr<ContainerProvider::HostBase> ContainerProvider::AcquireUserns(
    const compute::ComputeInstance& instance) {
  if (instance.spec().security().privileged()) return HostBase{};
  PHOTON_ASSIGN_OR_RETURN(uid_t slot, userns_slots_->Acquire(instance.metadata().id()));
  return HostBase{userns_base_ + slot * kIdsPerContainer};
}

void ContainerProvider::ReleaseRootfs(const std::string& id) {
  std::error_code ec;
  fs::remove_all(RootfsDir(id), ec);
  userns_slots_->Release(id);
}

// An uploaded rootfs-tar from the node's image cache, held by a link in the bundle and named
// by a symlink with a .tar suffix (the cache names files by digest alone).
StatusOr<std::string> ContainerProvider::UploadedRootfs(const compute::Image& image,
                                                        const std::string& bundle) {
  if (image.spec().format() != "rootfs-tar") {
    return absl::InvalidArgumentError("Image '" + image.metadata().name() + "' has format '" +
                                      image.spec().format() + "'; a container needs rootfs-tar");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string cached, context_.lookup->FetchImage(image, bundle));
  const std::string link = bundle + "/image.tar";
  ::unlink(link.c_str());
  if (::symlink(cached.c_str(), link.c_str()) != 0) {
    return absl::InternalError("symlink " + link + ": " + strerror(errno));
  }
  return link;
}

Status ContainerProvider::PrepareRootfs(const compute::ComputeInstance& instance,
                                        const std::string& bundle, HostBase base) {
  const auto& name = instance.spec().container().image();
  if (name.empty()) return absl::InvalidArgumentError("spec.container.image is empty");
  if (context_.lookup == nullptr) return absl::FailedPreconditionError("no image lookup");
  auto image = context_.lookup->GetImage(instance.metadata().namespace_(), name);
  if (!image.ok()) {
    return absl::NotFoundError("spec.container.image: Image '" + name +
                               "' not found: " + std::string(image.status().message()));
  }
  std::string src;
  if (image->spec().source_path().empty()) {
    PHOTON_ASSIGN_OR_RETURN(src, UploadedRootfs(*image, bundle));
  } else {
    PHOTON_ASSIGN_OR_RETURN(src,
                            ResolveImageSource(images_root_, image->spec().source_path(), name));
  }
  std::error_code ec;
  const bool dir = fs::is_directory(src, ec);
  if (!dir && !IsTarball(src)) {
    return absl::InvalidArgumentError("Image '" + name + "': spec.sourcePath '" + src +
                                      "' is neither a directory nor a .tar/.tar.gz rootfs");
  }
  if (base) {
    // Searchable by root and by the container's root group only (see rootfs.h).
    const std::string top = RootfsDir(instance.metadata().id());
    fs::remove_all(top, ec);
    PHOTON_RETURN_IF_ERROR(MakeDirs(top, 0710));
    if (::chown(top.c_str(), 0, *base) != 0) {
      return absl::InternalError("chown " + top + ": " + strerror(errno));
    }
    return MakeShiftedRootfs(src, top + "/rootfs", *base);
  }
  if (dir) return MountOverlayRootfs(src, bundle);  // copy-on-write view per container
  std::string rootfs = bundle + "/rootfs";
  PHOTON_RETURN_IF_ERROR(MakeDirs(rootfs, 0755));
  PHOTON_ASSIGN_OR_RETURN(
      RunResult r,
      RunCommand({"tar", "-xf", src, "-C", rootfs, "--no-same-owner"}, std::chrono::seconds(300)));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError("extracting " + src + " failed: " + r.output);
  }
  return absl::OkStatus();
}

Status ContainerProvider::WriteConfig(const compute::ComputeInstance& instance,
                                      const std::string& bundle, HostBase base) {
  const auto& c = instance.spec().container();
  std::vector<std::string> args(c.command().begin(), c.command().end());
  args.insert(args.end(), c.args().begin(), c.args().end());
  if (args.empty()) return absl::InvalidArgumentError("spec.container.command is empty");
  std::vector<std::string> env;
  std::map<std::string, std::string> vars(c.env().begin(), c.env().end());
  if (!vars.count("PATH"))
    vars["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  vars.emplace("HOME", "/root");
  vars["PHOTON_INSTANCE"] = instance.metadata().name();
  for (const auto& [k, v] : vars) {
    if (k.empty() || k.find('=') != std::string::npos) {
      return absl::InvalidArgumentError("spec.container.env: bad variable name '" + k + "'");
    }
    env.push_back(k + "=" + v);
  }
  std::string cwd = c.working_dir().empty() ? "/" : c.working_dir();
  if (cwd[0] != '/')
    return absl::InvalidArgumentError("spec.container.workingDir must be absolute");
  const auto& res = instance.spec().resources();
  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (res.memory_mb() > 0) resources["memory"] = {{"limit", res.memory_mb() * 1024 * 1024}};
  if (res.vcpu() > 0) resources["cpu"] = {{"quota", res.vcpu() * 100000}, {"period", 100000}};
  json caps = {"CAP_AUDIT_WRITE", "CAP_KILL",   "CAP_NET_BIND_SERVICE", "CAP_CHOWN",
               "CAP_SETUID",      "CAP_SETGID", "CAP_DAC_OVERRIDE",     "CAP_FOWNER"};
  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (base) namespaces.push_back({{"type", "user"}});
  // The instance's port namespace, made by the agent before this start: the container's eth0
  // is the port's. It belongs to the host's user namespace, so even a privileged container's
  // root (CAP_NET_ADMIN is not in its capabilities) cannot change it.
  const std::string netns =
      context_.lookup != nullptr ? context_.lookup->PortNetns(instance.metadata().id()) : "";
  if (!netns.empty()) namespaces.push_back({{"type", "network"}, {"path", netns}});
  json config = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", args},
        {"env", env},
        {"cwd", cwd},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
        {"rlimits", json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
        {"noNewPrivileges", true}}},
      {"root",
       {{"path", base ? RootfsDir(instance.metadata().id()) + "/rootfs" : "rootfs"},
        {"readonly", false}}},
      {"hostname", instance.metadata().name()},
      {"mounts", DefaultMounts(base.has_value())},
      {"linux",
       {{"cgroupsPath", "/" + CgroupPath(instance.metadata().id())},
        {"resources", resources},
        // No network namespace listed: the node's network (hostNetwork, or network mode
        // "shared").
        {"namespaces", namespaces},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}},
  };
  if (base) {
    json map = json::array({{{"containerID", 0}, {"hostID", *base}, {"size", kIdsPerContainer}}});
    config["linux"]["uidMappings"] = map;
    config["linux"]["gidMappings"] = map;
  }
  json meta = {{"id", instance.metadata().id()},
               {"name", instance.metadata().namespace_() + "/" + instance.metadata().name()}};
  if (base) meta["usernsSlot"] = (*base - userns_base_) / kIdsPerContainer;
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(bundle + "/meta.json", meta.dump(), 0600));
  return WriteFileAtomic(bundle + "/config.json", config.dump(2), 0600);
}

Status ContainerProvider::Run(const std::string& id) {
  std::string bundle = Bundle(id);
  PHOTON_ASSIGN_OR_RETURN(auto args, RuncArgs({"run", "--detach", "--bundle", bundle, id}));
  SpawnSpec spec;
  spec.argv = args;
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  spec.working_dir = bundle;
  spec.log_path = bundle + "/output.log";
  spec.exit_path = bundle + "/exit";
  spec.subreaper = true;
  PHOTON_ASSIGN_OR_RETURN(Spawned s, SpawnMonitored(spec));
  (void)WriteFileAtomic(bundle + "/monitor",
                        std::to_string(s.monitor_pid) + " " + std::to_string(s.monitor_start),
                        0600);
  // `runc run --detach` returns once the container runs (or failed to start).
  for (int i = 0; i < 3000 && ProcessAlive(s.pid, s.start_time); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string st = RuncStatus(id);
  if (st.empty()) {
    auto code = ReadExitCode(bundle + "/exit");
    // The monitor writes runc's exit status a moment after runc is gone: a failed start read
    // too early looked like a start that worked (and then "exited with code 1").
    for (int i = 0;
         i < 500 && absl::IsNotFound(code.status()) && ProcessAlive(s.monitor_pid, s.monitor_start);
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      code = ReadExitCode(bundle + "/exit");
    }
    if (code.ok() && *code != 0) {
      std::string out = TailFile(bundle + "/output.log", 5);
      while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
      return absl::FailedPreconditionError("runc run failed (exit " + std::to_string(*code) +
                                           "): " + out);
    }
  }
  (void)::unlink((bundle + "/stopped").c_str());
  return absl::OkStatus();
}

StatusOr<Handle> ContainerProvider::Start(const compute::ComputeInstance& instance) {
  const std::string& id = instance.metadata().id();
  if (!ValidId(id)) return absl::InvalidArgumentError("metadata.id: not a valid container id");
  if (!instance.spec().has_container()) {
    return absl::InvalidArgumentError("spec.container is missing");
  }
  const auto& res = instance.spec().resources();
  if (res.memory_mb() < 0) {
    return absl::InvalidArgumentError("spec.resources.memoryMb must not be negative");
  }
  if (res.vcpu() < 0) return absl::InvalidArgumentError("spec.resources.vcpu must not be negative");
  std::lock_guard<std::mutex> l(*Lock(id));
  std::string bundle = Bundle(id);
  Handle h{id, Driver(), json{{"container", id}, {"bundle", bundle}}.dump()};
  std::string st = RuncStatus(id);
  if (st == "running" || st == "created" || st == "paused") return h;  // never a duplicate
  if (!st.empty()) {
    auto args = RuncArgs({"delete", "--force", id});
    if (args.ok()) (void)RunCommand(*args);
  }
  UnmountRootfs(bundle);
  std::error_code ec;
  fs::remove_all(bundle, ec);
  auto base = AcquireUserns(instance);
  Status s = base.status();
  if (s.ok()) s = MakeDirs(bundle, 0700);
  if (s.ok()) s = PrepareRootfs(instance, bundle, *base);
  if (s.ok()) s = WriteConfig(instance, bundle, *base);
  if (s.ok()) s = Run(id);
  if (!s.ok()) {
    KillAndDelete(id, std::chrono::seconds(0));
    UnmountRootfs(bundle);
    fs::remove_all(bundle, ec);
    ReleaseRootfs(id);
    return s;
  }
  spdlog::info("container {}: started", instance.metadata().name());
  return h;
}

Status ContainerProvider::Recover(const Handle& handle) {
  if (!ValidId(handle.instance_id)) return absl::InvalidArgumentError("bad container handle");
  std::error_code ec;
  if (!fs::exists(Bundle(handle.instance_id), ec) && RuncStatus(handle.instance_id).empty()) {
    return absl::NotFoundError("container " + handle.instance_id + " is gone");
  }
  return absl::OkStatus();
}

void ContainerProvider::KillAndDelete(const std::string& id, std::chrono::seconds timeout) {
  std::string st = RuncStatus(id);
  if (st == "running" || st == "paused" || st == "created") {
    if (auto a = RuncArgs({"kill", id, "TERM"}); a.ok() && timeout.count() > 0)
      (void)RunCommand(*a);
    int64_t deadline = MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
    while (MonotonicNanos() < deadline && RuncStatus(id) == "running") {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (auto a = RuncArgs({"kill", "--all", id, "KILL"}); a.ok()) (void)RunCommand(*a);
  }
  if (!st.empty()) {
    for (int i = 0; i < 50; ++i) {
      auto a = RuncArgs({"delete", "--force", id});
      if (!a.ok()) break;
      auto r = RunCommand(*a);
      if (r.ok() && r->exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // The monitor records the exit and ends by itself; wait for it so the exit file is there.
  auto mon = ReadFile(Bundle(id) + "/monitor");
  if (mon.ok()) {
    std::istringstream in(*mon);
    int pid = 0;
    uint64_t start = 0;
    in >> pid >> start;
    for (int i = 0; i < 100 && pid > 0 && ProcessAlive(pid, start); ++i) {
      if (i == 50) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void ContainerProvider::UnmountRootfs(const std::string& bundle) {
  std::string rootfs = bundle + "/rootfs";
  ::umount2(rootfs.c_str(), MNT_DETACH);
}

Status ContainerProvider::Stop(const std::string& instance_id, std::chrono::seconds timeout) {
  if (!ValidId(instance_id)) return absl::InvalidArgumentError("bad container id");
  std::lock_guard<std::mutex> l(*Lock(instance_id));
  std::error_code ec;
  if (!fs::exists(Bundle(instance_id), ec))
    return absl::NotFoundError("no container " + instance_id);
  (void)WriteFileAtomic(Bundle(instance_id) + "/stopped", "", 0600);
  KillAndDelete(instance_id, timeout);
  return absl::OkStatus();
}

Status ContainerProvider::Destroy(const std::string& instance_id) {
  if (!ValidId(instance_id)) return absl::InvalidArgumentError("bad container id");
  {
    std::lock_guard<std::mutex> l(*Lock(instance_id));
    KillAndDelete(instance_id, std::chrono::seconds(2));
    std::string bundle = Bundle(instance_id);
    UnmountRootfs(bundle);
    std::error_code ec;
    fs::remove_all(bundle, ec);
    if (ec) return absl::InternalError("cannot remove " + bundle + ": " + ec.message());
    ReleaseRootfs(instance_id);
    CgroupManager cg("photon/" + context_.node_name + "/container");
    if (cg.Exists(instance_id)) (void)cg.Remove(instance_id);
  }
  std::lock_guard<std::mutex> l(mu_);
  locks_.erase(instance_id);
  return absl::OkStatus();
}

namespace {
// The monitor recorded in bundle/monitor ("pid start-time") is still running.
bool MonitorAlive(const std::string& bundle) {
  auto mon = ReadFile(bundle + "/monitor");
  if (!mon.ok()) return false;
  std::istringstream in(*mon);
  int pid = 0;
  uint64_t start = 0;
  in >> pid >> start;
  return pid > 0 && ProcessAlive(pid, start);
}
}  // namespace

StatusOr<Observed> ContainerProvider::Inspect(const std::string& instance_id) {
  if (!ValidId(instance_id)) return absl::InvalidArgumentError("bad container id");
  std::lock_guard<std::mutex> l(*Lock(instance_id));
  std::string bundle = Bundle(instance_id);
  int pid = 0;
  std::string st = RuncStatus(instance_id, &pid);
  std::error_code ec;
  if (st.empty() && !fs::exists(bundle, ec)) {
    return absl::NotFoundError("no container " + instance_id);
  }
  Observed o;
  o.details["runtime"] = "runc";
  o.addresses.push_back("127.0.0.1");
  auto code = ReadExitCode(bundle + "/exit");
  if (code.ok()) o.exit_code = *code;
  if (st == "running" || st == "created") {
    o.phase = ResourceStatus::RUNNING;
    o.details["pid"] = std::to_string(pid);
    return o;
  }
  if (st == "paused") {
    o.phase = ResourceStatus::SUSPENDED;
    o.message = "paused";
    return o;
  }
  // The container ended but its monitor has not written the exit status yet: not over until
  // it has (an ERROR with no exit code would be reported for a clean exit).
  if (!code.ok() && MonitorAlive(bundle)) {
    o.phase = ResourceStatus::RUNNING;
    o.message = "exiting";
    return o;
  }
  if (fs::exists(bundle + "/stopped", ec)) {
    o.phase = ResourceStatus::SUSPENDED;
    o.message = "stopped";
  } else if (code.ok() && *code == 0) {
    o.phase = ResourceStatus::SUSPENDED;
    o.message = "exited with code 0";
  } else {
    o.phase = ResourceStatus::ERROR;
    o.message = code.ok() ? "exited with code " + std::to_string(*code) : "container is gone";
  }
  return o;
}

StatusOr<std::vector<Handle>> ContainerProvider::List() {
  std::set<std::string> ids;
  if (auto args = RuncArgs({"list", "--format", "json"}); args.ok()) {
    auto r = RunCommand(*args, std::chrono::seconds(30));
    if (r.ok() && r->exit_code == 0) {
      json j = json::parse(r->output, nullptr, false);
      if (j.is_array()) {
        for (const auto& c : j) ids.insert(c.value("id", ""));
      }
    }
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(context_.data_dir + "/bundles", ec)) {
    ids.insert(e.path().filename().string());
  }
  std::vector<Handle> out;
  for (const auto& id : ids) {
    if (!ValidId(id)) continue;
    out.push_back(Handle{id, Driver(), json{{"container", id}, {"bundle", Bundle(id)}}.dump()});
  }
  return out;
}

StatusOr<ActionResult> ContainerProvider::Execute(
    const std::string& instance_id, const std::string& action,
    const std::map<std::string, std::string>& params) {
  if (!ValidId(instance_id)) return absl::InvalidArgumentError("bad container id");
  std::string bundle = Bundle(instance_id);
  std::error_code ec;
  if (!fs::exists(bundle, ec)) return absl::NotFoundError("no container " + instance_id);
  ActionResult r;
  if (action == "logs") {
    int lines = 100;
    if (auto it = params.find("lines"); it != params.end()) {
      if (!absl::SimpleAtoi(it->second, &lines) || lines < 0) {
        return absl::InvalidArgumentError("lines: want a non-negative number");
      }
    }
    r.output = TailFile(bundle + "/output.log", lines);
    return r;
  }
  PHOTON_ASSIGN_OR_RETURN(auto timeout, StopTimeout(params));
  std::lock_guard<std::mutex> l(*Lock(instance_id));
  if (action == "stop" || action == "restart") {
    (void)WriteFileAtomic(bundle + "/stopped", "", 0600);
    KillAndDelete(instance_id, timeout);
    r.output = "stopped";
  }
  if (action == "start" || action == "restart") {
    std::string st = RuncStatus(instance_id);
    if (st != "running") {
      if (!st.empty()) KillAndDelete(instance_id, std::chrono::seconds(0));
      PHOTON_RETURN_IF_ERROR(Run(instance_id));
    }
    r.output = action == "start" ? "started" : "restarted";
  }
  if (r.output.empty()) {
    return absl::UnimplementedError("the container driver has no action '" + action + "'");
  }
  return r;
}

}  // namespace photon::agent
