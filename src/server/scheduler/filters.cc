// See filters.h.
#include "server/scheduler/filters.h"

#include <algorithm>

#include "server/scheduler/network_filter.h"

namespace photon::scheduler {

const char* RejectName(Reject r) {
  switch (r) {
    case Reject::kNotReady:
      return "not Ready";
    case Reject::kCordoned:
      return "cordoned";
    case Reject::kDriver:
      return "without the driver";
    case Reject::kAttribute:
      return "without the required attributes";
    case Reject::kCluster:
      return "outside the allowed clusters";
    case Reject::kNodeFilter:
      return "excluded by node filters";
    case Reject::kVcpu:
      return "insufficient vcpu";
    case Reject::kMemory:
      return "insufficient memory";
    case Reject::kDisk:
      return "insufficient disk";
    case Reject::kHardAffinity:
      return "outside the hard affinity domain";
    case Reject::kHardAntiAffinity:
      return "in a domain that already holds a replica";
    case Reject::kNetworkMode:
      return "in a network mode that cannot give it a port";
    case Reject::kCount:
      break;
  }
  return "feasible";
}

bool MatchLabelFilter(const Labels& labels, const compute::LabelFilter& f) {
  auto it = labels.find(f.key());
  const bool has = it != labels.end();
  if (f.op() == "Exists") return has;
  if (f.op() == "DoesNotExist") return !has;
  const bool in =
      has && std::find(f.values().begin(), f.values().end(), it->second) != f.values().end();
  if (f.op() == "In") return in;
  if (f.op() == "NotIn") return !in;
  return false;
}

bool ReadyFilter(const Context& c, int node) { return c.state->nodes()[node].ready; }

bool SchedulableFilter(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  return !n.unschedulable && n.name != c.req->exclude_node;
}

bool DriverFilter(const Context& c, int node) {
  return c.req->driver.empty() || c.state->nodes()[node].HasDriver(c.req->driver);
}

bool AttributeFilter(const Context& c, int node) {
  const auto& attrs = c.state->nodes()[node].attributes;
  for (const auto& [k, v] : c.req->required_attributes) {
    auto it = attrs.find(k);
    if (it == attrs.end() || it->second != v) return false;
  }
  return true;
}

bool ClusterFilter(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  // A group never spans clusters (seed 003): its members follow the first one.
  if (c.group && !c.group->cluster.empty() && n.Cluster() != c.group->cluster) return false;
  if (!c.req->policy) return true;
  const auto& p = *c.req->policy;
  if (!p.clusters().empty() &&
      std::find(p.clusters().begin(), p.clusters().end(), n.Cluster()) == p.clusters().end())
    return false;
  // Cluster labels are carried by the cluster's nodes.
  for (const auto& f : p.cluster_label_filters())
    if (!MatchLabelFilter(n.labels, f)) return false;
  return true;
}

bool NodeFilter(const Context& c, int node) {
  if (!c.req->policy) return true;
  const auto& p = *c.req->policy;
  const auto& n = c.state->nodes()[node];
  if (!p.nodes().empty() &&
      std::find(p.nodes().begin(), p.nodes().end(), n.name) == p.nodes().end())
    return false;
  for (const auto& f : p.node_label_filters())
    if (!MatchLabelFilter(n.labels, f)) return false;
  return true;
}

namespace {
// allocated + need ≤ capacity, where a sum that overflows int64 does not fit (it must not wrap
// to a small number) and a negative need is no request at all.
bool Fits(int64_t allocated, int64_t need, int64_t capacity) {
  int64_t sum;
  if (need < 0 || __builtin_add_overflow(allocated, need, &sum)) return false;
  return sum <= capacity;
}
}  // namespace

bool VcpuFilter(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  return Fits(n.allocated.vcpu, c.req->need.vcpu, n.capacity.vcpu);
}

bool MemoryFilter(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  return Fits(n.allocated.memory_mb, c.req->need.memory_mb, n.capacity.memory_mb);
}

bool DiskFilter(const Context& c, int node) {
  const auto& n = c.state->nodes()[node];
  return Fits(n.allocated.disk_gb, c.req->need.disk_gb, n.capacity.disk_gb);
}

bool HardAffinityFilter(const Context& c, int node) {
  for (const auto& t : c.affinity) {
    if (!t.hard) continue;
    if (c.state->Domain(t.key, node) < 0) return false;
    // The first member anchors the group; the rest must share its domain.
    const bool anchored = t.selector_counts
                              ? std::any_of(t.selector_counts->begin(), t.selector_counts->end(),
                                            [](int v) { return v > 0; })
                              : c.group != nullptr;
    if (anchored && c.TermCount(t, node) == 0) return false;
  }
  return true;
}

bool HardAntiAffinityFilter(const Context& c, int node) {
  for (const auto& t : c.anti_affinity) {
    if (!t.hard) continue;
    // A node without the label cannot prove it is apart from the others.
    if (c.state->Domain(t.key, node) < 0) return false;
    if (c.TermCount(t, node) > 0) return false;
  }
  return true;
}

Reject RunStaticFilters(const Context& c, int node) {
  if (!ReadyFilter(c, node)) return Reject::kNotReady;
  if (!SchedulableFilter(c, node)) return Reject::kCordoned;
  if (!DriverFilter(c, node)) return Reject::kDriver;
  if (!AttributeFilter(c, node)) return Reject::kAttribute;
  if (!NetworkModeFilter(c, node)) return Reject::kNetworkMode;
  if (!ClusterFilter(c, node)) return Reject::kCluster;
  if (!NodeFilter(c, node)) return Reject::kNodeFilter;
  return Reject::kCount;
}

Reject RunFilters(const Context& c, int node) {
  Reject r = RunStaticFilters(c, node);
  if (r != Reject::kCount) return r;
  if (!VcpuFilter(c, node)) return Reject::kVcpu;
  if (!MemoryFilter(c, node)) return Reject::kMemory;
  if (!DiskFilter(c, node)) return Reject::kDisk;
  if (!HardAffinityFilter(c, node)) return Reject::kHardAffinity;
  if (!HardAntiAffinityFilter(c, node)) return Reject::kHardAntiAffinity;
  return Reject::kCount;
}

}  // namespace photon::scheduler
