// See scorers.h.
#include "server/scheduler/scorers.h"

#include <algorithm>

namespace photon::scheduler {

namespace {
double Ratio(int64_t used, int64_t cap) {
  return cap <= 0 ? 1.0 : std::min(1.0, static_cast<double>(used) / static_cast<double>(cap));
}
}  // namespace

double ResourceScore(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  const double cpu = Ratio(SaturatingAdd(n.allocated.vcpu, c.req->need.vcpu), n.capacity.vcpu);
  const double mem =
      Ratio(SaturatingAdd(n.allocated.memory_mb, c.req->need.memory_mb), n.capacity.memory_mb);
  const double used = (cpu + mem) / 2;
  return c.binpack ? used : 1.0 - used;
}

double SoftAntiAffinityScore(const Context& c, int node) {
  const int total = c.group ? c.group->total : 0;
  double s = 0;
  for (const auto& t : c.anti_affinity) {
    if (t.hard) continue;
    const int n = c.TermCount(t, node);
    if (n > 0) s -= t.weight * (0.5 + 0.5 * n / std::max(1, total));
  }
  return s;
}

double SoftAffinityScore(const Context& c, int node) {
  const int total = c.group ? c.group->total : 0;
  double s = 0;
  for (const auto& t : c.affinity) {
    if (t.hard) continue;
    const int n = c.TermCount(t, node);
    if (n > 0) s += t.weight * (0.5 + 0.5 * n / std::max(1, total));
  }
  return s;
}

double SpreadScore(const Context& c, int node) {
  if (c.spread_key < 0 || !c.group) return 0;
  const int domains = c.state->DomainCount(c.spread_key);
  if (domains < 2) return 0;
  const double avg = static_cast<double>(c.group->total) / domains;
  const int here = c.state->GroupInDomain(c.group, c.spread_key, node);
  return std::clamp((avg - here) / (avg + 1), -1.0, 1.0);
}

double ClusterWeightScore(const Context& c, int node) {
  if (c.max_cluster_weight <= 0) return 0;
  const auto& weights = c.req->policy->cluster_weights();
  auto it = weights.find(c.state->nodes()[node].Cluster());
  return it == weights.end() ? 0 : it->second / c.max_cluster_weight;
}

double TotalScore(const Context& c, int node) {
  return ResourceScore(c, node) + SoftAntiAffinityScore(c, node) + SoftAffinityScore(c, node) +
         SpreadScore(c, node) + ClusterWeightScore(c, node);
}

}  // namespace photon::scheduler
