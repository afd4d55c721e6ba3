#include "server/ops/rule_index.h"

#include <algorithm>

namespace photon::server::opsengine {

namespace {

// How few events a term on this label lets through, lower first: a check or a node names a
// few events of many; severity, namespace and source are shared by most.
int Selectivity(const std::string& key) {
  if (key == "check") return 0;
  if (key == "node") return 1;
  if (key == "severity" || key == "namespace" || key == "source") return 3;
  return 2;
}

}  // namespace

void RuleSet::Add(CompiledRule c) {
  const size_t i = rules.size();
  has_filter |= c.rule.spec().type() == photon::ops::EventRuleSpec::FILTER;
  const std::pair<std::string, std::vector<std::string>>* best = nullptr;
  std::vector<std::pair<std::string, std::vector<std::string>>> terms;
  if (c.match) terms = c.match->RequiredValues();
  for (const auto& t : terms) {
    if (!best || std::make_pair(Selectivity(t.first), t.second.size()) <
                     std::make_pair(Selectivity(best->first), best->second.size())) {
      best = &t;
    }
  }
  if (best) {
    auto& values = by_label[best->first];
    for (const auto& v : best->second) {
      auto& list = values[v];
      if (list.empty() || list.back() != i) list.push_back(i);  // "in (a,a)" once
    }
  } else {
    unindexed.push_back(i);
  }
  rules.push_back(std::move(c));
}

std::vector<const CompiledRule*> RuleSet::For(const Labels& labels) const {
  std::vector<size_t> idx = unindexed;
  bool merged = false;
  for (const auto& [key, value] : labels) {
    auto k = by_label.find(key);
    if (k == by_label.end()) continue;
    auto v = k->second.find(value);
    if (v == k->second.end()) continue;
    idx.insert(idx.end(), v->second.begin(), v->second.end());
    merged = true;
  }
  if (merged) std::sort(idx.begin(), idx.end());  // a rule is indexed under one label only
  std::vector<const CompiledRule*> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(&rules[i]);
  return out;
}

std::shared_ptr<const RuleSet> RuleIndex::For(const std::string& ns) {
  uint64_t want;
  auto current = [&]() -> std::shared_ptr<const RuleSet> {
    auto it = sets_.find(ns);
    return it != sets_.end() && it->second.generation >= want ? it->second.set : nullptr;
  };
  {
    std::lock_guard lock(mu_);
    want = generation_;
    if (auto set = current()) return set;
  }
  std::lock_guard build(build_mu_);
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    if (auto set = current()) return set;  // built while this waited
    generation = generation_;
  }
  auto set = std::make_shared<RuleSet>();
  for (auto& r : RulesFor(cache_, ns)) {
    CompiledRule c{.rule = std::move(r)};
    c.name = RuleName(c.rule);
    if (auto sel = LabelSelector::Parse(c.rule.spec().match()); sel.ok()) c.match = *sel;
    set->Add(std::move(c));
  }
  std::lock_guard lock(mu_);
  sets_[ns] = {set, generation};
  return set;
}

void RuleIndex::Invalidate() {
  std::lock_guard lock(mu_);
  ++generation_;
}

}  // namespace photon::server::opsengine
