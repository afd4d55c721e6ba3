// The `container` provider: OCI containers run by `runc` from a local Image (spec.sourcePath =
// a rootfs directory, mounted copy-on-write with overlayfs, or a .tar/.tar.gz rootfs, extracted
// per container). The provider writes config.json itself (namespaces, mounts, cgroup limits,
// env, args, cwd) and runs `runc run --detach` under a monitor process (host/spawn.h) that is
// the container's subreaper, so the exit code is recorded even while the agent is down.
// runc keeps its state under the provider's data dir (`runc --root`), which is what List reads.
//
// Tenants never reach the host: an Image's sourcePath must lie inside the node's images root
// (host/image_root.h), and unless an admin granted spec.security.privileged a container runs in
// a user namespace of its own — 65536 ids from `userns_base` + slot * 65536 (slots 0 to
// `userns_slots` - 1) — on a copy of its image shifted into that range (rootfs.h).
//
// Thread-safety: all methods may be called concurrently; one mutex per container id.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/host/dynamic_ids.h"
#include "agent/provider.h"

namespace photon::agent {

class ContainerProvider : public Provider {
 public:
  std::string Driver() const override { return "container"; }
  Status Initialize(const ProviderContext& context) override;
  StatusOr<std::map<std::string, std::string>> Fingerprint() override;
  StatusOr<Handle> Start(const compute::ComputeInstance& instance) override;
  Status Recover(const Handle& handle) override;
  Status Stop(const std::string& instance_id, std::chrono::seconds timeout) override;
  Status Destroy(const std::string& instance_id) override;
  StatusOr<Observed> Inspect(const std::string& instance_id) override;
  StatusOr<std::vector<Handle>> List() override;
  StatusOr<ActionResult> Execute(const std::string& instance_id, const std::string& action,
                                 const std::map<std::string, std::string>& params) override;

  // The cgroup path runc uses for a container (relative to each hierarchy root).
  std::string CgroupPath(const std::string& instance_id) const;

 private:
  std::string Bundle(const std::string& id) const;
  std::mutex* Lock(const std::string& id);
  // runc's view: "running", "created", "paused", "stopped" or "" when runc does not know it.
  std::string RuncStatus(const std::string& id, int* pid = nullptr);
  StatusOr<std::vector<std::string>> RuncArgs(std::vector<std::string> args);
  // The user namespace's first host id for a confined container; nullopt when privileged.
  using HostBase = std::optional<uid_t>;
  std::string RootfsDir(const std::string& id) const;
  StatusOr<std::string> UploadedRootfs(const compute::Image& image, const std::string& bundle);
  Status PrepareRootfs(const compute::ComputeInstance& instance, const std::string& bundle,
                       HostBase base);
  Status WriteConfig(const compute::ComputeInstance& instance, const std::string& bundle,
                     HostBase base);
  StatusOr<HostBase> AcquireUserns(const compute::ComputeInstance& instance);
  void ReleaseRootfs(const std::string& id);
  Status Run(const std::string& id);
  void KillAndDelete(const std::string& id, std::chrono::seconds timeout);
  void UnmountRootfs(const std::string& bundle);

  ProviderContext context_;
  std::string runc_;
  std::string runc_root_;
  std::string images_root_;
  std::string rootfs_root_;  // <rootfs_root option>/<node>
  uid_t userns_base_ = 3000000;
  std::unique_ptr<DynamicIds> userns_slots_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> locks_;
};

}  // namespace photon::agent
