// The `process` provider: runs a ComputeInstance's spec.process as a supervised host process.
//
// Each instance gets a directory under the provider's data dir (state.json, output.log, exit),
// a cgroup with its CPU and memory limits (v1 or v2, detected) and a monitor process that
// outlives the agent and records the exit status (host/spawn.h). A supervisor thread applies
// the restart policy (never, on-failure, always) with exponential back-off. After an agent
// restart the state files are read back and a process is recognised by pid + start time.
//
// Tenants never reach the host: unless an admin granted spec.security.privileged, an instance
// runs as a dynamic uid/gid of its own (host/dynamic_ids.h) with no_new_privs, in its own pid
// and mount namespaces, with <dir>/tmp (owned by that uid) as its private /tmp, HOME and
// default working directory. The instance directory itself (state, log, exit) stays root's.
//
// Thread-safety: all methods may be called concurrently; one mutex per instance serialises
// operations on it, a provider mutex guards the table.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/host/cgroup.h"
#include "agent/host/dynamic_ids.h"
#include "agent/host/spawn.h"
#include "agent/provider.h"

namespace photon::agent {

class ProcessProvider : public Provider {
 public:
  ProcessProvider() = default;
  ~ProcessProvider() override;

  std::string Driver() const override { return "process"; }
  Status Initialize(const ProviderContext& context) override;
  StatusOr<std::map<std::string, std::string>> Fingerprint() override;
  StatusOr<Handle> Start(const compute::ComputeInstance& instance) override;
  bool SlowStart() const override { return false; }  // a fork and an exec
  Status Recover(const Handle& handle) override;
  Status Stop(const std::string& instance_id, std::chrono::seconds timeout) override;
  Status Destroy(const std::string& instance_id) override;
  StatusOr<Observed> Inspect(const std::string& instance_id) override;
  StatusOr<std::vector<Handle>> List() override;
  StatusOr<ActionResult> Execute(const std::string& instance_id, const std::string& action,
                                 const std::map<std::string, std::string>& params) override;

  // For tests: the cgroup directory of an instance for `controller`.
  std::string CgroupDir(const std::string& instance_id, const std::string& controller) const;
  // Stops the supervisor thread (the processes keep running). Idempotent.
  void Shutdown();

 private:
  struct Instance {
    std::mutex mu;
    std::string id;
    std::string name;
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string working_dir;
    std::string restart_policy = "never";
    CgroupLimits limits;
    bool want_running = true;  // false after Stop
    int pid = 0;
    uint64_t start_time = 0;
    int monitor_pid = 0;
    uint64_t monitor_start = 0;
    int restarts = 0;
    int last_exit_code = 0;  // of the previous run, reported while a new one runs
    int consecutive_failures = 0;
    int64_t started_at_ns = 0;
    int64_t restart_at_ns = 0;  // >0: a restart is due then
    bool removed = false;
    bool privileged = false;  // admin-granted: root in the host's namespaces
    int64_t uid = -1;         // the dynamic uid (and gid) while confined; -1 before the first run
    std::string netns;        // the port namespace the workload runs in; "" = the node's network
  };

  std::string Dir(const std::string& id) const;
  std::string Encode(const Instance& inst) const;
  Status Decode(const std::string& data, Instance* inst) const;
  // Writes DIR/instances/<id>/state.json (inst.mu held). `sync`: fsynced as well, for what only
  // this file records (a stop). A start's state needs no sync: see ReplaceFile.
  Status Persist(const Instance& inst, bool sync = true) const;
  Status SpawnLocked(Instance* inst);
  StatusOr<SpawnSpec::Confinement> ConfineLocked(Instance* inst);
  void SettleLocked(const Instance& inst) const;
  bool AliveLocked(const Instance& inst) const;
  pid_t WorkloadPidLocked(const Instance& inst) const;
  void StopLocked(Instance* inst, std::chrono::seconds timeout);
  std::shared_ptr<Instance> Find(const std::string& id);
  void Supervise();
  void SweepCgroups();

  ProviderContext context_;
  std::unique_ptr<CgroupManager> cgroups_;
  std::unique_ptr<DynamicIds> ids_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Instance>> instances_;
  std::thread supervisor_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace photon::agent
