// A fleet of hollow nodes (Kubernetes' kubemark for PhotonCloud): N simulated nodes in one
// process, each a real client of the control plane with its own credential. Each node joins
// (or reuses its stored credential), registers its Node the way photon-agent does, heartbeats
// at the agent's interval, lists and watches only its own ComputeInstances
// (fieldSelector=metadata.agentId=NODE), reports each one CREATING then RUNNING as an agent
// does once its workload starts (no workload runs), and finishes deletes.
//
// Nodes are spread over a few event loops (one thread each); a node never blocks its loop.
// Thread-safety: Start/Stop from one thread; Stats and Metrics from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::hollow {

struct FleetOptions {
  std::string server;           // http://HOST:PORT
  std::string join_token_file;  // the server's join.token
  std::string data_dir;         // one credential file per node (0600), reused on restart
  std::string name_prefix = "hollow";
  int nodes = 1;
  int first_index = 0;  // node names are PREFIX-INDEX from first_index on
  int heartbeat_seconds = 5;
  int vcpu = 8;
  int64_t memory_mb = 32768;
  int64_t disk_gb = 500;
  std::set<std::string> drivers = {"process", "container", "vm"};
  std::map<std::string, std::string> labels;
  std::string address;         // advertised /healthz address of every node ("" = none)
  int threads = 2;             // event loops
  int connections = 8;         // keep-alive connections per loop for unary calls
  int start_per_second = 500;  // nodes brought up per second (joins are not free)
};

// Counters and latency samples of the whole fleet.
struct FleetCounters {
  std::atomic<int64_t> nodes_ready{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> heartbeat_failures{0};
  std::atomic<int64_t> status_writes{0};
  std::atomic<int64_t> status_conflicts{0};
  std::atomic<int64_t> deletes{0};
  std::atomic<int64_t> watch_events{0};
  std::atomic<int64_t> foreign_events{0};  // events about another node's instance
  std::atomic<int64_t> relists{0};
  std::atomic<int64_t> running{0};
  std::atomic<int64_t> errors{0};
};

class Shard;

class Fleet {
 public:
  explicit Fleet(FleetOptions options);
  ~Fleet();

  Status Start();
  void Stop();

  // Counters and p50/p90/p99/max of the latency samples (heartbeat round trip; delivery of
  // changes stamped with the kSentAnnotation annotation), in ms. reset clears the samples.
  nlohmann::json Stats(bool reset);
  // Prometheus text.
  std::string Metrics();
  bool AllReady() const { return counters_.nodes_ready.load() == options_.nodes; }

  const FleetOptions& options() const { return options_; }
  FleetCounters& counters() { return counters_; }
  const std::string& join_token() const { return join_token_; }

  // An instance whose metadata.annotations carry this key (a Unix time in ns, set by whoever
  // changed it) has the time from then until its node's watch delivered it sampled.
  static constexpr const char* kSentAnnotation = "hollow.photon/sent-unix-ns";

 private:
  FleetOptions options_;
  std::string join_token_;
  FleetCounters counters_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace photon::hollow
