// Feasibility filters: one per concern, each a pure function of (context, node). A node is
// feasible when every filter passes; the first filter that fails is counted so that a request
// nobody can take gets a reason naming the constraint.
// Stateless; thread-safe given a Context that is not shared.
#pragma once

#include <array>
#include <string>

#include "server/scheduler/request.h"

namespace photon::scheduler {

enum class Reject {
  kNotReady,
  kCordoned,
  kDriver,
  kAttribute,
  kCluster,
  kNodeFilter,
  kVcpu,
  kMemory,
  kDisk,
  kHardAffinity,
  kHardAntiAffinity,
  kNetworkMode,
  kCount,
};
const char* RejectName(Reject r);

bool ReadyFilter(const Context& c, int node);        // condition READY
bool SchedulableFilter(const Context& c, int node);  // not cordoned, not the excluded node
bool DriverFilter(const Context& c, int node);       // node runs the spec's driver
bool AttributeFilter(const Context& c, int node);    // e.g. spec.vm.accel=kvm → vm.accel=kvm
bool ClusterFilter(const Context& c, int node);      // clusters, clusterLabelFilters, no spanning
bool NodeFilter(const Context& c, int node);         // nodes, nodeLabelFilters
bool VcpuFilter(const Context& c, int node);         // free capacity, no overcommit
bool MemoryFilter(const Context& c, int node);
bool DiskFilter(const Context& c, int node);
bool HardAffinityFilter(const Context& c, int node);
bool HardAntiAffinityFilter(const Context& c, int node);

// Runs the filters in order; kCount when feasible, else the first that failed.
Reject RunFilters(const Context& c, int node);
// The same without the capacity and affinity filters: could the node ever take the request?
Reject RunStaticFilters(const Context& c, int node);

bool MatchLabelFilter(const Labels& labels, const compute::LabelFilter& f);

}  // namespace photon::scheduler
