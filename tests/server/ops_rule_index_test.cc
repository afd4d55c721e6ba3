// The event rules' index (src/server/ops/rule_index.*): an event is matched only against the
// rules that can match it, in name order, whatever term indexes them.
#include <gtest/gtest.h>

#include "server/ops/rule_index.h"

namespace photon::server::opsengine {
namespace {

CompiledRule Rule(const std::string& name, const std::string& match,
                  photon::ops::EventRuleSpec::Type type = photon::ops::EventRuleSpec::ACTION) {
  CompiledRule c;
  c.rule.mutable_metadata()->set_name(name);
  c.rule.mutable_spec()->set_match(match);
  c.rule.mutable_spec()->set_type(type);
  c.name = name;
  if (auto sel = LabelSelector::Parse(match); sel.ok()) c.match = *sel;
  return c;
}

std::vector<std::string> Candidates(const RuleSet& set,
                                    const std::map<std::string, std::string>& l) {
  Labels labels(l.begin(), l.end());
  std::vector<std::string> out;
  for (const CompiledRule* r : set.For(labels)) out.push_back(r->name);
  return out;
}

TEST(RuleIndex, AnEventMeetsOnlyTheRulesItsLabelsCanMatchInNameOrder) {
  RuleSet set;
  set.Add(Rule("a-any", "severity=CRITICAL"));              // indexed by severity
  set.Add(Rule("b-disk", "severity=CRITICAL,check=disk"));  // by check, not severity
  set.Add(Rule("c-node", "node in (n1, n2),team=db"));      // by node
  set.Add(Rule("d-team", "team=db,severity!=SUCCESS"));     // by team
  set.Add(Rule("e-none", "!silenced"));                     // no such term: tried always
  set.Add(Rule("f-bad", "team in (db"));                    // invalid: tried, never matches
  EXPECT_FALSE(set.has_filter);
  EXPECT_EQ(Candidates(set, {{"severity", "CRITICAL"}, {"check", "disk"}, {"node", "n2"}}),
            (std::vector<std::string>{"a-any", "b-disk", "c-node", "e-none", "f-bad"}));
  EXPECT_EQ(Candidates(set, {{"severity", "WARNING"}, {"check", "load"}, {"team", "db"}}),
            (std::vector<std::string>{"d-team", "e-none", "f-bad"}));
  EXPECT_EQ(Candidates(set, {{"node", "n3"}}), (std::vector<std::string>{"e-none", "f-bad"}));
  set.Add(Rule("g-drop", "check=noise", photon::ops::EventRuleSpec::FILTER));
  EXPECT_TRUE(set.has_filter);
}

TEST(RuleIndex, TenThousandRulesOnOtherNodesAreNotTried) {
  RuleSet set;
  for (int i = 0; i < 10000; ++i) {
    set.Add(Rule("r" + std::to_string(100000 + i),
                 "node=node" + std::to_string(i % 1000) + ",team=t" + std::to_string(i)));
  }
  EXPECT_EQ(Candidates(set, {{"node", "node7"}, {"team", "t7"}}).size(), 10u);
}

}  // namespace
}  // namespace photon::server::opsengine
