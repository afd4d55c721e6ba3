// Shared helpers of the vm driver tests: a temp data dir, the test guest (built once per test
// binary with scripts/make-vm-image.sh), an in-memory ResourceLookup standing in for the
// control plane, and waits on Inspect / the console.
// Thread-safety: the lookup is thread-safe; the rest is for the test's main thread.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "agent/provider.h"
#include "agent/providers/vm/accel.h"
#include "agent/providers/vm/vm_provider.h"
#include "agent/providers/vm/vm_util.h"

namespace photon::agent::vm::testing {

// The accelerator this host must get, found from the primitives rather than from DetectAccel
// (whose result it checks): KVM only on a CPU with vmx/svm where a probe guest really runs
// under KVM, TCG otherwise.
inline std::string ExpectedAccel(const std::string& work_dir) {
  if (!CpuHasHardwareVirtualization()) return "tcg";
  const Status kvm = ProbeAccel("qemu-system-x86_64", "kvm", work_dir + "/expected-accel",
                                std::chrono::seconds(10));
  return kvm.ok() ? "kvm" : "tcg";
}

class MapLookup : public ResourceLookup {
 public:
  StatusOr<compute::Image> GetImage(const std::string& ns, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = images_.find(ns + "/" + name);
    if (it == images_.end()) return absl::NotFoundError("images/" + ns + "/" + name);
    return it->second;
  }
  StatusOr<storage::Volume> GetVolume(const std::string& ns, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = volumes_.find(ns + "/" + name);
    if (it == volumes_.end()) return absl::NotFoundError("volumes/" + ns + "/" + name);
    return it->second;
  }
  void AddImage(const std::string& name, const std::string& path, const std::string& format,
                const std::string& sha256) {
    compute::Image image;
    image.mutable_metadata()->set_name(name);
    image.mutable_metadata()->set_namespace_("default");
    image.mutable_spec()->set_source_path(path);
    image.mutable_spec()->set_format(format);
    image.mutable_spec()->set_sha256(sha256);
    std::lock_guard<std::mutex> lock(mu_);
    images_["default/" + name] = image;
  }
  void AddVolume(const std::string& name, int64_t size_gb, const std::string& format) {
    storage::Volume volume;
    volume.mutable_metadata()->set_name(name);
    volume.mutable_metadata()->set_namespace_("default");
    volume.mutable_spec()->set_size_gb(size_gb);
    volume.mutable_spec()->set_format(format);
    std::lock_guard<std::mutex> lock(mu_);
    volumes_["default/" + name] = volume;
  }

 private:
  std::mutex mu_;
  std::map<std::string, compute::Image> images_;
  std::map<std::string, storage::Volume> volumes_;
};

// Reads a text file; drops the '\r' the guest's serial line discipline adds before '\n'.
inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  std::string text = out.str();
  std::erase(text, '\r');
  return text;
}

inline std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  return dir ? std::string(dir) : std::string();
}

// Builds the test guest into dir/image (vmlinuz, initrd.img and their .sha256).
inline bool BuildGuest(const std::string& dir) {
  std::string out = dir + "/image";
  auto r =
      RunCommand({PHOTON_SOURCE_DIR "/scripts/make-vm-image.sh", out}, std::chrono::seconds(120));
  if (!r.ok() || r->exit_code != 0) {
    ADD_FAILURE() << "make-vm-image.sh failed: " << (r.ok() ? r->output : r.status().ToString());
    return false;
  }
  return true;
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Registers the guest as Images "kernel"/"initrd" with their checksums.
inline void AddGuestImages(MapLookup* lookup, const std::string& dir) {
  lookup->AddImage("kernel", dir + "/image/vmlinuz", "kernel",
                   Trim(ReadAll(dir + "/image/vmlinuz.sha256")));
  lookup->AddImage("initrd", dir + "/image/initrd.img", "initrd",
                   Trim(ReadAll(dir + "/image/initrd.img.sha256")));
}

inline compute::ComputeInstance GuestInstance(const std::string& id, const std::string& name) {
  compute::ComputeInstance instance;
  instance.mutable_metadata()->set_id(id);
  instance.mutable_metadata()->set_name(name);
  instance.mutable_metadata()->set_namespace_("default");
  auto* vm = instance.mutable_spec()->mutable_vm();
  vm->set_kernel("kernel");
  vm->set_initrd("initrd");
  vm->set_kernel_args("console=ttyS0 quiet");
  instance.mutable_spec()->mutable_resources()->set_vcpu(1);
  instance.mutable_spec()->mutable_resources()->set_memory_mb(256);
  return instance;
}

// Polls Inspect until `phase` (or ERROR, or the timeout); returns the last observation.
inline Observed WaitPhase(Provider* provider, const std::string& id,
                          resource::ResourceStatus::Phase phase,
                          std::chrono::seconds timeout = std::chrono::seconds(240)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Observed last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto o = provider->Inspect(id);
    if (o.ok()) {
      last = *o;
      if (o->phase == phase) return last;
      if (o->phase == resource::ResourceStatus::ERROR && phase != o->phase) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

// Waits until the console log contains `text` at least `count` times.
inline bool WaitConsole(const std::string& console, const std::string& text, int count = 1,
                        std::chrono::seconds timeout = std::chrono::seconds(120)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = ReadAll(console);
    int n = 0;
    for (size_t pos = log.find(text); pos != std::string::npos; pos = log.find(text, pos + 1)) ++n;
    if (n >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// Pids of processes whose argv mentions `needle` (e.g. an instance directory).
inline std::vector<int> PidsMentioning(const std::string& needle) {
  std::vector<int> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    int pid = std::atoi(name.c_str());
    if (pid == getpid()) continue;
    if (ProcessAlive(pid) && CmdlineContains(pid, needle)) pids.push_back(pid);
  }
  return pids;
}

// Kills (SIGKILL) every QEMU left under `dir` and removes it: cleanup even after a failure.
inline void CleanupDir(const std::string& dir) {
  if (dir.empty()) return;
  for (int pid : PidsMentioning(dir)) kill(pid, SIGKILL);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace photon::agent::vm::testing
