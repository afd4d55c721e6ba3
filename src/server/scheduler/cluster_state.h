// The scheduler's view of the cluster: nodes, what is placed on them, and per-group counts
// per topology domain. Built from an immutable snapshot of Nodes and ComputeInstances at the
// start of a scheduling round; each decision is then committed into it so that the next
// decision of the same round sees it (no overcommit within a round).
//
// Allocation is derived, never stored: a node's allocation is the sum of the resources of the
// instances placed on it, so deleting or moving an instance releases capacity and nothing
// drifts.
//
// Not thread-safe: one round owns one ClusterState.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/scheduler/limits.h"

namespace photon::scheduler {

// Sums saturate (limits.h): a node whose allocation overflowed reads as full, never as free.
struct Resources {
  int64_t vcpu = 0;
  int64_t memory_mb = 0;
  int64_t disk_gb = 0;
  Resources& operator+=(const Resources& o) {
    vcpu = SaturatingAdd(vcpu, o.vcpu);
    memory_mb = SaturatingAdd(memory_mb, o.memory_mb);
    disk_gb = SaturatingAdd(disk_gb, o.disk_gb);
    return *this;
  }
  Resources& operator-=(const Resources& o) {
    vcpu = SaturatingSub(vcpu, o.vcpu);
    memory_mb = SaturatingSub(memory_mb, o.memory_mb);
    disk_gb = SaturatingSub(disk_gb, o.disk_gb);
    return *this;
  }
  // Each quantity within [0, its kMax…]: for values read from the store or a node.
  Resources Bounded() const {
    return {Clamp(vcpu, kMaxVcpu), Clamp(memory_mb, kMaxMemoryMb), Clamp(disk_gb, kMaxDiskGb)};
  }
};

using Labels = std::map<std::string, std::string>;

struct NodeState {
  std::string name;
  Labels labels;  // topology (region, zone, power_az, rack_az, network_az) + free
  std::vector<std::string> drivers;
  Labels attributes;  // e.g. vm.accel=kvm
  Resources capacity;
  Resources allocated;         // derived from placed instances
  bool ready = false;          // condition READY
  bool unschedulable = false;  // cordoned (or draining)
  std::string condition = "UNKNOWN";
  const std::string& Cluster() const;  // label "cluster", "" when unset
  bool HasDriver(const std::string& d) const;
};

// An instance already placed (counted in allocation and in its group's domains).
struct PlacedInstance {
  std::string group;
  Labels labels;
  Resources resources;
  std::string node;
};

// Group members per domain of one topology key.
struct GroupCounts {
  int total = 0;
  std::string cluster;                               // cluster of the first placed member
  std::unordered_map<int, std::vector<int>> by_key;  // key index → count per domain id
  std::unordered_map<int, int> by_node;              // node index → count
};

class ClusterState {
 public:
  int AddNode(NodeState node);
  // Counts an instance placed on `node` (by name); unknown nodes are ignored for allocation
  // but the group still remembers the member.
  void AddPlaced(const PlacedInstance& p);

  const std::vector<NodeState>& nodes() const { return nodes_; }
  NodeState& node(int i) { return nodes_[i]; }
  int NodeIndex(const std::string& name) const;

  // Topology keys are interned on first use; each node gets a domain id per key (-1 = the
  // node lacks the label).
  int KeyIndex(const std::string& key);
  int Domain(int key_index, int node) const { return keys_[key_index].node_domain[node]; }
  int DomainCount(int key_index) const {
    return static_cast<int>(keys_[key_index].domain_names.size());
  }
  const std::string& DomainName(int key_index, int domain) const {
    return keys_[key_index].domain_names[domain];
  }
  const std::string& KeyName(int key_index) const { return keys_[key_index].key; }

  // nullptr when the group has no placed member.
  const GroupCounts* Group(const std::string& group) const;
  // Members of `group` in the domain of `node` for key `key_index`.
  int GroupInDomain(const GroupCounts* g, int key_index, int node) const;

  // Instances matching `selector` (label subset) per domain of `key_index`: for affinity terms
  // with match_labels (across groups). Computed by a scan; cached per round.
  const std::vector<int>& SelectorCounts(const Labels& selector, int key_index);

  // Records a placement decision: allocation and group counts.
  void Commit(const std::string& group, const Labels& labels, const Resources& r, int node);
  // Removes a member (an instance moved away from `node`).
  void Release(const std::string& group, const Labels& labels, const Resources& r, int node);

 private:
  struct Key {
    std::string key;
    std::vector<int> node_domain;
    std::vector<std::string> domain_names;
    std::unordered_map<std::string, int> domain_ids;
  };
  void CountInGroup(GroupCounts& g, int node, int delta);

  std::vector<NodeState> nodes_;
  std::unordered_map<std::string, int> node_index_;
  std::vector<Key> keys_;
  std::unordered_map<std::string, int> key_index_;
  std::unordered_map<std::string, GroupCounts> groups_;
  std::vector<PlacedInstance> placed_;  // for selector counts
  std::map<std::pair<std::string, int>, std::vector<int>> selector_cache_;
};

}  // namespace photon::scheduler
