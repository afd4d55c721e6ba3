#include "server/ops/rule_index.h"

#include <algorithm>

namespace photon::server::opsengine {

std::optional<std::string> RequiredCheck(const std::string& match) {
  // Terms are separated by commas outside parentheses ("check in (a,b)" is one term).
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= match.size(); ++i) {
    const char c = i < match.size() ? match[i] : ',';
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c != ',' || depth != 0) continue;
    std::string term = match.substr(start, i - start);
    start = i + 1;
    term.erase(std::remove(term.begin(), term.end(), ' '), term.end());
    for (const std::string op : {"==", "="}) {
      if (term.rfind("check" + op, 0) == 0 && term.find("!=") == std::string::npos) {
        return term.substr(5 + op.size());
      }
    }
  }
  return std::nullopt;
}

std::vector<const CompiledRule*> RuleSet::For(const std::string& check) const {
  std::vector<size_t> idx = any_check;
  if (auto it = by_check.find(check); it != by_check.end()) {
    idx.insert(idx.end(), it->second.begin(), it->second.end());
    std::sort(idx.begin(), idx.end());
  }
  std::vector<const CompiledRule*> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(&rules[i]);
  return out;
}

std::shared_ptr<const RuleSet> RuleIndex::For(const std::string& ns) {
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    if (auto it = sets_.find(ns); it != sets_.end()) return it->second;
    generation = generation_;
  }
  auto set = std::make_shared<RuleSet>();
  for (auto& r : RulesFor(cache_, ns)) {
    CompiledRule c{.rule = std::move(r)};
    c.name = RuleName(c.rule);
    if (auto sel = LabelSelector::Parse(c.rule.spec().match()); sel.ok()) c.match = *sel;
    const size_t i = set->rules.size();
    if (auto check = RequiredCheck(c.rule.spec().match())) {
      set->by_check[*check].push_back(i);
    } else {
      set->any_check.push_back(i);
    }
    set->rules.push_back(std::move(c));
  }
  std::lock_guard lock(mu_);
  // A rule changed while this set was read: answer it, but do not keep it.
  if (generation == generation_) sets_[ns] = set;
  return set;
}

void RuleIndex::Invalidate() {
  std::lock_guard lock(mu_);
  ++generation_;
  sets_.clear();
}

}  // namespace photon::server::opsengine
