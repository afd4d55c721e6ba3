// What one placement asks for, extracted from a ComputeInstance, and the per-decision context
// filters and scorers read (the request with its policy resolved against a ClusterState).
// Not thread-safe; a Context lives for one decision.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/compute.pb.h"
#include "server/scheduler/cluster_state.h"

namespace photon::scheduler {

// What an instance needs of its node's network (network_filter.h).
enum class PortNeed {
  kNone,               // hostNetwork: the node's own network
  kNodeNetworkWillDo,  // a port; an agent in mode shared runs it in the node's network instead
  kPort,               // a real port: a VM, or security groups to enforce
};

struct Request {
  std::string name;    // "namespace/name", for messages
  std::string group;   // instances that spread/attract as one (a RegionService)
  int group_size = 1;  // desired members of the group (replicas)
  Labels labels;       // the instance's own labels
  Resources need;
  std::string driver;          // process | container | vm
  Labels required_attributes;  // node attributes the spec needs, e.g. vm.accel=kvm
  PortNeed port = PortNeed::kNone;
  std::shared_ptr<const compute::SchedulePolicy> policy;  // may be null
  std::string exclude_node;  // being drained / declared down: never pick it
};

// Builds a Request from an instance. `group` empty = the instance is its own group.
Request RequestFromInstance(const compute::ComputeInstance& ci, const std::string& group,
                            int group_size,
                            std::shared_ptr<const compute::SchedulePolicy> policy = nullptr);

// Checks a SchedulePolicy, naming the offending field (prefix e.g. "spec.schedule").
Status ValidatePolicy(const compute::SchedulePolicy& p, const std::string& prefix);

// One affinity or anti-affinity term resolved to an interned topology key.
struct Term {
  int key = -1;
  bool hard = false;
  double weight = 1.0;                                // soft terms: weight/100, default 0.5
  const std::vector<int>* selector_counts = nullptr;  // null: count the request's group
};

struct Context {
  const Request* req = nullptr;
  ClusterState* state = nullptr;
  const GroupCounts* group = nullptr;  // null: no member placed yet
  std::vector<Term> affinity;
  std::vector<Term> anti_affinity;
  int spread_key = -1;  // even spread of the group over this key (-1 = off)
  double max_cluster_weight = 0;
  bool binpack = false;
  // Members counted by a term in the domain of `node`.
  int TermCount(const Term& t, int node) const;
};

// Resolves the request's policy against the state (interns keys, finds the group).
Context MakeContext(const Request& req, ClusterState* state, const std::string& spread_key,
                    bool binpack);

}  // namespace photon::scheduler
