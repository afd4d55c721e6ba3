// The event rules, parsed once: their selectors compiled and indexed by the `check` they
// require, so an event is matched against the rules that can match it instead of parsing
// every rule of the cluster again (docs/operations.md "Event rules"; 10,000 rules cost
// milliseconds per event that way). Rebuilt lazily after any change of a rule.
// Thread-safe.
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

// The rules of one namespace and of "system", in name order, with their check index.
struct RuleSet {
  std::vector<CompiledRule> rules;
  std::unordered_map<std::string, std::vector<size_t>> by_check;  // rules requiring check=X
  std::vector<size_t> any_check;                                  // the others
  // The rules an event of `check` may match, in name order.
  std::vector<const CompiledRule*> For(const std::string& check) const;
};

class RuleIndex {
 public:
  explicit RuleIndex(const WatchCache* cache) : cache_(cache) {}
  std::shared_ptr<const RuleSet> For(const std::string& ns);
  // A rule changed: every set is built again when next asked for.
  void Invalidate();

 private:
  const WatchCache* cache_;
  std::mutex mu_;
  uint64_t generation_ = 0;
  std::unordered_map<std::string, std::shared_ptr<const RuleSet>> sets_;
};

// The value of the selector's `check=X` (or `check==X`) term, if it has one: a rule that
// requires it can match only events of that check.
std::optional<std::string> RequiredCheck(const std::string& match);

}  // namespace photon::server::opsengine
