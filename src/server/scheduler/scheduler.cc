// See scheduler.h.
#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "server/scheduler/scorers.h"

namespace photon::scheduler {

Scheduler::Scheduler(ClusterState* state, SchedulerOptions options)
    : state_(state), options_(std::move(options)), rng_(options_.seed) {
  order_.resize(state_->nodes().size());
  std::iota(order_.begin(), order_.end(), 0);
  // Shuffled so that consecutive candidates are not neighbours in one rack.
  std::shuffle(order_.begin(), order_.end(), rng_);
}

std::string Scheduler::Impossible(const Request& req) const {
  if (state_->nodes().empty()) return "";
  Resources largest;
  for (const auto& n : state_->nodes()) {
    largest.vcpu = std::max(largest.vcpu, n.capacity.vcpu);
    largest.memory_mb = std::max(largest.memory_mb, n.capacity.memory_mb);
    largest.disk_gb = std::max(largest.disk_gb, n.capacity.disk_gb);
  }
  auto too_big = [&](const char* what, int64_t need, int64_t cap, const char* unit) {
    return std::string(what) + " " + std::to_string(need) + unit +
           " is larger than any node (largest " + std::to_string(cap) + unit + ")";
  };
  // Larger than any node in one dimension, or no single node large enough in all of them.
  if (req.need.memory_mb > largest.memory_mb)
    return too_big("spec.resources.memoryMb", req.need.memory_mb, largest.memory_mb, " MB");
  if (req.need.vcpu > largest.vcpu)
    return too_big("spec.resources.vcpu", req.need.vcpu, largest.vcpu, "");
  if (req.need.disk_gb > largest.disk_gb)
    return too_big("spec.resources.diskGb", req.need.disk_gb, largest.disk_gb, " GB");
  bool any = false;
  for (const auto& n : state_->nodes()) {
    if (n.capacity.vcpu >= req.need.vcpu && n.capacity.memory_mb >= req.need.memory_mb &&
        n.capacity.disk_gb >= req.need.disk_gb) {
      any = true;
      break;
    }
  }
  if (!any) return "spec.resources: no node is large enough in vcpu, memory and disk at once";
  return "";
}

Decision Scheduler::Place(const Request& req) {
  Decision d;
  if (req.policy) {
    if (auto st = ValidatePolicy(*req.policy, "spec.schedule"); !st.ok()) {
      d.kind = Decision::Kind::kError;
      d.reason = std::string(st.message());
      return d;
    }
  }
  Context c = MakeContext(req, state_, options_.spread_key, options_.binpack);
  const int n = static_cast<int>(order_.size());
  if (static_cast<int>(state_->nodes().size()) != n) {
    // Nodes were added after construction (tests): extend the order.
    for (int i = n; i < static_cast<int>(state_->nodes().size()); ++i) order_.push_back(i);
  }
  const int total = static_cast<int>(order_.size());
  std::vector<int> rejects(static_cast<int>(Reject::kCount), 0);
  const int start = total ? static_cast<int>(rng_() % total) : 0;
  double best = -1e300;
  for (int i = 0; i < total && d.feasible < options_.candidate_limit; ++i) {
    const int node = order_[(start + i) % total];
    ++d.visited;
    Reject r = RunFilters(c, node);
    if (r != Reject::kCount) {
      rejects[static_cast<int>(r)]++;
      continue;
    }
    ++d.feasible;
    const double s = TotalScore(c, node);
    if (s > best) {
      best = s;
      d.node = node;
    }
  }
  if (d.node < 0) {
    // Only when nothing fits: is it worth waiting at all? (A scan of every node, kept off
    // the path of successful decisions.)
    if (auto why = Impossible(req); !why.empty()) {
      d.kind = Decision::Kind::kError;
      d.reason = why;
      return d;
    }
    // Seed 003: a hard (anti-)affinity that leaves no node is an ERROR, not a wait. That is
    // the case when nodes with room were turned away by the constraint itself.
    const bool hard = rejects[static_cast<int>(Reject::kHardAntiAffinity)] > 0 ||
                      rejects[static_cast<int>(Reject::kHardAffinity)] > 0;
    d.kind = hard ? Decision::Kind::kError : Decision::Kind::kPending;
    d.reason = Explain(c, rejects);
    return d;
  }
  d.kind = Decision::Kind::kPlaced;
  d.score = best;
  d.node_name = state_->nodes()[d.node].name;
  state_->Commit(req.group, req.labels, req.need, d.node);
  return d;
}

std::string Scheduler::NoUsableNodes(size_t total) {
  return "no nodes available: 0 of " + std::to_string(total) + " nodes are Ready and schedulable";
}

std::string Scheduler::Explain(const Context& c, const std::vector<int>& rejects) {
  const auto& nodes = state_->nodes();
  int usable = 0;
  for (const auto& nd : nodes)
    if (nd.ready && !nd.unschedulable) ++usable;
  if (usable == 0) {
    return NoUsableNodes(nodes.size());
  }
  // The most specific reason first: a hard anti-affinity with too few domains.
  if (rejects[static_cast<int>(Reject::kHardAntiAffinity)] > 0) {
    for (const auto& t : c.anti_affinity) {
      if (!t.hard) continue;
      std::set<int> domains;
      for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
        if (RunStaticFilters(c, i) != Reject::kCount) continue;
        if (int dom = state_->Domain(t.key, i); dom >= 0) domains.insert(dom);
      }
      const std::string& key = state_->KeyName(t.key);
      if (static_cast<int>(domains.size()) < c.req->group_size) {
        return "hard anti-affinity on " + key + ": " + std::to_string(c.req->group_size) +
               " replicas but only " + std::to_string(domains.size()) + " " + key +
               " domains among eligible nodes";
      }
    }
  }
  std::string out = "0 of " + std::to_string(nodes.size()) + " nodes can take " + c.req->name +
                    " (needs " + std::to_string(c.req->need.vcpu) + " vcpu, " +
                    std::to_string(c.req->need.memory_mb) + " MB memory, " +
                    std::to_string(c.req->need.disk_gb) + " GB disk, driver " +
                    (c.req->driver.empty() ? "any" : c.req->driver) + "):";
  bool first = true;
  for (int r = 0; r < static_cast<int>(Reject::kCount); ++r) {
    if (rejects[r] == 0) continue;
    out += std::string(first ? " " : ", ") + std::to_string(rejects[r]) + " " +
           RejectName(static_cast<Reject>(r));
    if (static_cast<Reject>(r) == Reject::kHardAntiAffinity ||
        static_cast<Reject>(r) == Reject::kHardAffinity) {
      std::string keys;
      const auto& terms =
          static_cast<Reject>(r) == Reject::kHardAntiAffinity ? c.anti_affinity : c.affinity;
      for (const auto& t : terms)
        if (t.hard) keys += (keys.empty() ? "" : ",") + state_->KeyName(t.key);
      out += " (hard " +
             std::string(static_cast<Reject>(r) == Reject::kHardAntiAffinity ? "anti-" : "") +
             "affinity on " + keys + ")";
    }
    first = false;
  }
  return out;
}

std::string Scheduler::CheckGroup(const Request& req) {
  if (req.group_size <= 1 || !req.policy) return "";
  bool any_hard = false;
  for (const auto& t : req.policy->anti_affinity()) any_hard |= t.hard();
  if (!any_hard) return "";
  Context c = MakeContext(req, state_, options_.spread_key, options_.binpack);
  const auto& nodes = state_->nodes();
  for (const auto& t : c.anti_affinity) {
    if (!t.hard || t.selector_counts) continue;
    std::set<int> domains;
    for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
      // Domains already holding a member count, as do those a member could still go to.
      const bool holds = state_->GroupInDomain(c.group, t.key, i) > 0;
      if (!holds && RunStaticFilters(c, i) != Reject::kCount) continue;
      const auto& nd = nodes[i];
      if (!holds &&
          (nd.capacity.vcpu < req.need.vcpu || nd.capacity.memory_mb < req.need.memory_mb ||
           nd.capacity.disk_gb < req.need.disk_gb))
        continue;
      if (int dom = state_->Domain(t.key, i); dom >= 0) domains.insert(dom);
    }
    if (static_cast<int>(domains.size()) < req.group_size) {
      const std::string& key = state_->KeyName(t.key);
      return "hard anti-affinity on " + key + ": " + std::to_string(req.group_size) +
             " replicas but only " + std::to_string(domains.size()) + " " + key +
             " domains among eligible nodes";
    }
  }
  return "";
}

}  // namespace photon::scheduler
