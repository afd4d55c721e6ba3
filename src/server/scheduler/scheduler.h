// The placement pipeline (Nomad style, see docs/scheduler.md): for one request, visit nodes
// in a shuffled order, drop the infeasible ones with the filters, score the feasible ones
// until `candidate_limit` were seen, pick the best and commit it into the ClusterState.
// A request no node can take gets a reason naming the constraint; it is ERROR when it can
// never fit (bigger than every node, invalid policy), PENDING otherwise.
//
// Not thread-safe: one Scheduler per round (or per benchmark thread).
#pragma once

#include <random>
#include <string>
#include <vector>

#include "server/scheduler/cluster_state.h"
#include "server/scheduler/filters.h"
#include "server/scheduler/request.h"

namespace photon::scheduler {

struct SchedulerOptions {
  bool binpack = false;             // false: least-allocated (spread load over nodes)
  int candidate_limit = 16;         // feasible nodes scored per decision (all when fewer)
  std::string spread_key = "zone";  // groups spread over this label by default; "" = off
  uint64_t seed = 1;
};

struct Decision {
  enum class Kind { kPlaced, kPending, kError };
  Kind kind = Kind::kPending;
  int node = -1;
  std::string node_name;
  double score = 0;
  int feasible = 0;  // feasible nodes scored
  int visited = 0;
  std::string reason;  // why not placed; for placements a short summary
};

class Scheduler {
 public:
  Scheduler(ClusterState* state, SchedulerOptions options);
  // Decides and, when placed, commits the decision into the state.
  Decision Place(const Request& req);
  // Before placing the first unplaced member of a group: a hard anti-affinity that cannot be
  // met by the group as a whole fails every member (no silent partial placement). Returns an
  // empty string when the group can be placed.
  std::string CheckGroup(const Request& req);
  // The reason given when none of `total` nodes is Ready and schedulable.
  static std::string NoUsableNodes(size_t total);

 private:
  std::string Explain(const Context& c, const std::vector<int>& rejects);
  std::string Impossible(const Request& req) const;

  ClusterState* state_;
  SchedulerOptions options_;
  std::vector<int> order_;  // shuffled node order
  std::mt19937_64 rng_;
};

}  // namespace photon::scheduler
