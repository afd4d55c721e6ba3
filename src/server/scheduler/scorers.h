// Scorers rank feasible nodes; each returns a value in about [-1, 1] and the pipeline sums
// them. Stateless; thread-safe given a Context that is not shared.
#pragma once

#include "server/scheduler/request.h"

namespace photon::scheduler {

// Bin-pack (fill the fullest node that fits) or least-allocated (fill the emptiest), on the
// mean of vcpu and memory utilisation after placing.
double ResourceScore(const Context& c, int node);
// Soft anti-affinity: any member already in the node's domain costs at least half a point.
double SoftAntiAffinityScore(const Context& c, int node);
// Soft affinity: the mirror image, a bonus for joining members.
double SoftAffinityScore(const Context& c, int node);
// Even spread of the group over the spread key (zones by default).
double SpreadScore(const Context& c, int node);
// policy.clusterWeights: higher weight preferred.
double ClusterWeightScore(const Context& c, int node);

double TotalScore(const Context& c, int node);

}  // namespace photon::scheduler
