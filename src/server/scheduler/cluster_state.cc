// See cluster_state.h.
#include "server/scheduler/cluster_state.h"

#include <algorithm>

namespace photon::scheduler {

namespace {
const std::string kEmpty;

bool MatchesSelector(const Labels& labels, const Labels& selector) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}
}  // namespace

const std::string& NodeState::Cluster() const {
  auto it = labels.find("cluster");
  return it == labels.end() ? kEmpty : it->second;
}

bool NodeState::HasDriver(const std::string& d) const {
  return std::find(drivers.begin(), drivers.end(), d) != drivers.end();
}

int ClusterState::AddNode(NodeState node) {
  const int i = static_cast<int>(nodes_.size());
  node_index_[node.name] = i;
  nodes_.push_back(std::move(node));
  // Keys interned before this node was added learn its domain now.
  for (auto& k : keys_) {
    auto it = nodes_[i].labels.find(k.key);
    int d = -1;
    if (it != nodes_[i].labels.end()) {
      auto [di, inserted] = k.domain_ids.emplace(it->second, k.domain_names.size());
      if (inserted) k.domain_names.push_back(it->second);
      d = di->second;
    }
    k.node_domain.push_back(d);
  }
  return i;
}

int ClusterState::NodeIndex(const std::string& name) const {
  auto it = node_index_.find(name);
  return it == node_index_.end() ? -1 : it->second;
}

int ClusterState::KeyIndex(const std::string& key) {
  auto it = key_index_.find(key);
  if (it != key_index_.end()) return it->second;
  Key k;
  k.key = key;
  k.node_domain.reserve(nodes_.size());
  for (const auto& n : nodes_) {
    auto l = n.labels.find(key);
    if (l == n.labels.end()) {
      k.node_domain.push_back(-1);
      continue;
    }
    auto [di, inserted] = k.domain_ids.emplace(l->second, k.domain_names.size());
    if (inserted) k.domain_names.push_back(l->second);
    k.node_domain.push_back(di->second);
  }
  const int idx = static_cast<int>(keys_.size());
  keys_.push_back(std::move(k));
  key_index_[key] = idx;
  // Existing groups learn the counts for the new key.
  for (auto& [name, g] : groups_) {
    auto& counts = g.by_key[idx];
    counts.assign(keys_[idx].domain_names.size(), 0);
    for (const auto& [node, c] : g.by_node) {
      int d = keys_[idx].node_domain[node];
      if (d >= 0) counts[d] += c;
    }
  }
  return idx;
}

const GroupCounts* ClusterState::Group(const std::string& group) const {
  auto it = groups_.find(group);
  return it == groups_.end() || it->second.total == 0 ? nullptr : &it->second;
}

int ClusterState::GroupInDomain(const GroupCounts* g, int key_index, int node) const {
  if (!g) return 0;
  const int d = keys_[key_index].node_domain[node];
  if (d < 0) return 0;
  auto it = g->by_key.find(key_index);
  if (it == g->by_key.end() || d >= static_cast<int>(it->second.size())) return 0;
  return it->second[d];
}

void ClusterState::CountInGroup(GroupCounts& g, int node, int delta) {
  g.total += delta;
  g.by_node[node] += delta;
  for (size_t k = 0; k < keys_.size(); ++k) {
    auto& counts = g.by_key[static_cast<int>(k)];
    if (counts.size() < keys_[k].domain_names.size()) counts.resize(keys_[k].domain_names.size());
    int d = keys_[k].node_domain[node];
    if (d >= 0) counts[d] += delta;
  }
  if (g.cluster.empty() && delta > 0) g.cluster = nodes_[node].Cluster();
  if (g.total == 0) g.cluster.clear();
}

void ClusterState::AddPlaced(const PlacedInstance& p) {
  const int i = NodeIndex(p.node);
  if (i < 0) return;
  Commit(p.group, p.labels, p.resources, i);
}

void ClusterState::Commit(const std::string& group, const Labels& labels, const Resources& r,
                          int node) {
  nodes_[node].allocated += r;
  CountInGroup(groups_[group], node, +1);
  if (!labels.empty()) {
    placed_.push_back({group, labels, r, nodes_[node].name});
    selector_cache_.clear();
  }
}

void ClusterState::Release(const std::string& group, const Labels& labels, const Resources& r,
                           int node) {
  nodes_[node].allocated -= r;
  CountInGroup(groups_[group], node, -1);
  if (!labels.empty()) {
    for (auto it = placed_.begin(); it != placed_.end(); ++it) {
      if (it->group == group && it->node == nodes_[node].name && it->labels == labels) {
        placed_.erase(it);
        break;
      }
    }
    selector_cache_.clear();
  }
}

const std::vector<int>& ClusterState::SelectorCounts(const Labels& selector, int key_index) {
  std::string sig;
  for (const auto& [k, v] : selector) sig += k + "=" + v + ",";
  auto [it, inserted] = selector_cache_.try_emplace({sig, key_index});
  if (!inserted) return it->second;
  auto& counts = it->second;
  counts.assign(keys_[key_index].domain_names.size(), 0);
  for (const auto& p : placed_) {
    if (!MatchesSelector(p.labels, selector)) continue;
    int n = NodeIndex(p.node);
    if (n < 0) continue;
    int d = keys_[key_index].node_domain[n];
    if (d >= 0) counts[d]++;
  }
  return counts;
}

}  // namespace photon::scheduler
