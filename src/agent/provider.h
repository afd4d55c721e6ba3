// The provider plugin interface (seed 000 §3.5 ResourceProviderPlugin, shaped like Nomad's task
// drivers): how the agent makes one kind of resource real on its host with one driver.
//
// A provider is told what should run (Start), asked what does run (List, Inspect), and told to
// stop or remove it (Stop, Destroy). Every call is idempotent and keyed by the instance id
// (metadata.id), so the agent can reconcile level-triggered: after its own restart it Lists
// what runs, Recovers what it should keep and Destroys orphans — never starting a duplicate.
// A Handle is what the provider needs to find an instance again; the agent persists it.
//
// Thread-safety: the agent may call any method from several threads, for different instances
// concurrently; providers serialise per instance themselves.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/instance_driver.h"  // DriverOf
#include "common/status.h"
#include "photon/compute.pb.h"
#include "photon/resource.pb.h"
#include "photon/storage.pb.h"

namespace photon::agent {

// Read access to other resources an instance refers to (images, volumes), served by the agent
// from the control plane. Thread-safe.
class ResourceLookup {
 public:
  virtual ~ResourceLookup() = default;
  virtual StatusOr<compute::Image> GetImage(const std::string& ns, const std::string& name) = 0;
  virtual StatusOr<storage::Volume> GetVolume(const std::string& ns, const std::string& name) = 0;
  // The verified local path of an uploaded image's content (an Image without sourcePath),
  // fetched into the node's image cache and held by a link in `holder`, a directory that goes
  // with the instance (agent/image_cache.h).
  virtual StatusOr<std::string> FetchImage(const compute::Image& image, const std::string& holder) {
    (void)holder;
    return absl::FailedPreconditionError("image " + image.metadata().name() +
                                         ": this node has no image cache");
  }
  // The network namespace the instance's workload runs in (its port namespace, made before
  // Start is called), or "" for the node's own network.
  virtual std::string PortNetns(const std::string& instance_id) {
    (void)instance_id;
    return "";
  }
};

struct ProviderContext {
  std::string node_name;
  ResourceLookup* lookup = nullptr;  // owned by the agent; outlives the provider
  std::string data_dir;              // the provider's own directory under the agent's data dir
  std::map<std::string, std::string> config;  // driver options from the agent config
};

// Enough to find a running instance again after an agent restart (pid + start time, container
// id, QMP socket path, ...). `data` is the provider's own encoding (JSON recommended).
struct Handle {
  std::string instance_id;
  std::string driver;
  std::string data;
};

// What the provider observes about an instance.
struct Observed {
  resource::ResourceStatus::Phase phase = resource::ResourceStatus::PENDING;
  std::string message;
  int exit_code = 0;
  std::vector<std::string> addresses;
  std::map<std::string, std::string> details;
};

struct ActionResult {
  std::string output;  // e.g. the log tail for "logs"
};

class Provider {
 public:
  virtual ~Provider() = default;

  // "process", "container", "vm".
  virtual std::string Driver() const = 0;
  // Kinds this provider realizes (plural, e.g. "computeinstances").
  virtual std::vector<std::string> Kinds() const { return {"computeinstances"}; }

  virtual Status Initialize(const ProviderContext& context) = 0;
  // What the host offers to this driver, reported as Node attributes ("vm.accel": "tcg").
  // UNAVAILABLE when the driver cannot run on this host (the agent then does not offer it).
  virtual StatusOr<std::map<std::string, std::string>> Fingerprint() = 0;

  // Starts the instance (or returns the handle of the one already running for this id).
  virtual StatusOr<Handle> Start(const compute::ComputeInstance& instance) = 0;
  // Whether a Start may take long (an image to unpack, a VM to boot): the agent then writes
  // phase CREATING before it. A driver whose Start returns within a moment says false, and its
  // instances go from PENDING to what Inspect sees after the start in one status write.
  virtual bool SlowStart() const { return true; }
  // Re-attaches to an instance found running after an agent restart.
  virtual Status Recover(const Handle& handle) = 0;
  // Stops it (gracefully, forced after timeout); it can be started again.
  virtual Status Stop(const std::string& instance_id, std::chrono::seconds timeout) = 0;
  // Stops it and removes every trace (processes, cgroups, files, sockets). NOT_FOUND is fine.
  virtual Status Destroy(const std::string& instance_id) = 0;
  virtual StatusOr<Observed> Inspect(const std::string& instance_id) = 0;
  // Every instance of this driver present on the host, including ones the agent forgot.
  virtual StatusOr<std::vector<Handle>> List() = 0;
  // start, stop, restart, logs, and driver-specific ones (console, pause, ...).
  virtual StatusOr<ActionResult> Execute(const std::string& instance_id, const std::string& action,
                                         const std::map<std::string, std::string>& params) = 0;
};

// Providers by driver name. Filled by an explicit list (RegisterBuiltinProviders), not static
// self-registration, which static libraries silently drop.
class ProviderRegistry {
 public:
  void Register(std::unique_ptr<Provider> provider) {
    std::string d = provider->Driver();
    providers_[d] = std::move(provider);
  }
  Provider* Find(const std::string& driver) const {
    auto it = providers_.find(driver);
    return it == providers_.end() ? nullptr : it->second.get();
  }
  const std::map<std::string, std::unique_ptr<Provider>>& all() const { return providers_; }

 private:
  std::map<std::string, std::unique_ptr<Provider>> providers_;
};

}  // namespace photon::agent
