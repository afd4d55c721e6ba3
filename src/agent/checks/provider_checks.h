// Built-in checks of the agent's own providers (seed 003: the agent checks its node through
// its providers), probed from outside the providers on an interval:
//  - `vm-qmp`: every QEMU this node's vm driver runs (its state.json under the driver's
//    instances dir) greets on its QMP socket within a timeout; a stopped or hung QEMU does not.
//  - `container-runc`: a container instance of this node whose start failed in runc (its status
//    is ERROR with runc's complaint) — the instance list comes from the agent's informer.
//  - `bird-session`: every BGP protocol of the node's BIRD (its control socket, read as birdc
//    does) is Established; a BIRD that does not answer is Critical too.
// Each key reports after `occurrences` equal results in a row, and only when its severity
// changes (a healthy start reports nothing; a key that vanishes while failing reports Success).
// Each round is cheap: one connect and one short read per VM, one control-socket query.
// Thread-safety: Start/Stop/RunOnce from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace photon::agent::checks {

struct ProviderCheckOptions {
  std::string vm_instances_dir;  // the vm driver's <data>/instances; "" = no vm-qmp check
  std::string bird_socket;       // the node's BIRD control socket; "" = no bird-session check
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds qmp_timeout{2000};
  int occurrences = 3;
};

// One result of a round: severity 0 Success, 1 Warning, 2 Critical.
struct ProbeResult {
  std::string check;
  int severity = 0;
  std::string output;
  std::map<std::string, std::string> labels;
};

// Receives a transition (check, dedup key, severity, output, labels): CheckRunner::Report.
using ProbeReporter =
    std::function<void(const std::string&, const std::string&, int, const std::string&,
                       const std::map<std::string, std::string>&)>;
// This node's ComputeInstances as the API has them (spec and status).
using InstanceLister = std::function<std::vector<nlohmann::json>()>;

class ProviderChecks {
 public:
  ProviderChecks(ProviderCheckOptions options, ProbeReporter report, InstanceLister instances);
  ~ProviderChecks();
  void Start();
  void Stop();
  // One round of every probe, reporting transitions (the loop's body; tests call it directly).
  void RunOnce();

  // The probes, by dedup key (public for tests).
  std::map<std::string, ProbeResult> ProbeVms() const;
  std::map<std::string, ProbeResult> ProbeContainers() const;
  std::map<std::string, ProbeResult> ProbeBird() const;

 private:
  struct KeyState {
    int last = -1, streak = 0;
    int reported = 0;  // what the server was last told (Success until told otherwise)
  };
  void Apply(const std::map<std::string, ProbeResult>& results);

  ProviderCheckOptions options_;
  ProbeReporter report_;
  InstanceLister instances_;
  std::map<std::string, KeyState> states_;
  std::map<std::string, ProbeResult> last_results_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace photon::agent::checks
