// The event rules, parsed once: their selectors compiled and indexed by one term each that an
// event must satisfy (`check=X`, `node in (a,b)`, `team=db`: the most selective such term), so
// an event is matched only against the rules that can match it — those indexed under one of
// its labels' values and those without such a term — instead of every rule of the cluster
// (docs/operations.md "Event rules"; 10,000 rules cost milliseconds per event that way).
// Rebuilt lazily after any change of a rule. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "photon/ops.pb.h"
#include "server/object_util.h"
#include "server/ops/ops_internal.h"
#include "server/watch_cache.h"

namespace photon::server::opsengine {

struct CompiledRule {
  photon::ops::EventRule rule;
  std::string name;                    // "ns/name"
  std::optional<LabelSelector> match;  // nullopt: the stored selector does not parse
  bool Matches(const Labels& labels) const { return match && match->Matches(labels); }
};

// The rules of one namespace and of "system", in name order, with their index.
struct RuleSet {
  std::vector<CompiledRule> rules;
  // label key → value → the rules that require the label to have that value
  std::unordered_map<std::string, std::unordered_map<std::string, std::vector<size_t>>> by_label;
  std::vector<size_t> unindexed;  // the rules without such a term (or whose match is invalid)
  bool has_filter = false;        // whether any rule is a FILTER (checked on every report)
  // The rules an event with these labels (MatchLabels) may match, in name order.
  std::vector<const CompiledRule*> For(const Labels& labels) const;
  void Add(CompiledRule rule);
};

class RuleIndex {
 public:
  explicit RuleIndex(const WatchCache* cache) : cache_(cache) {}
  // The rules of `ns` as of at least the last Invalidate before the call.
  std::shared_ptr<const RuleSet> For(const std::string& ns);
  // A rule changed: each set is built again when next asked for.
  void Invalidate();

 private:
  struct Built {
    std::shared_ptr<const RuleSet> set;
    uint64_t generation = 0;  // of the changes it holds (generation_ when its build began)
  };
  const WatchCache* cache_;
  std::mutex mu_;
  uint64_t generation_ = 1;  // changes seen
  std::unordered_map<std::string, Built> sets_;
  // One build at a time: callers that missed wait for it and take its set when it holds the
  // changes they saw (rules created by the thousand, each event was building all 10,000).
  std::mutex build_mu_;
};

}  // namespace photon::server::opsengine
