#include "server/ops/ops_engine.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/util.h"
#include "server/object_util.h"
#include "server/ops/alert_mirror.h"
#include "server/ops/maintenance.h"
#include "server/ops/ops_internal.h"
#include "server/ops/ops_validate.h"

namespace photon::server::opsengine {

using event::OpsEvent;
using nlohmann::json;
using photon::ops::Alert;
using photon::ops::AlertStatus;
using photon::ops::EventRule;
using photon::ops::EventRuleSpec;
using photon::ops::RuleAction;

struct OpsEngine::Work {
  std::string ns;
  event::Event ev;                          // normalised incoming event
  std::string key;                          // store key of the event
  std::shared_ptr<const RuleSet> rule_set;  // keeps `rules` alive
  std::vector<const CompiledRule*> rules;   // those that may match, in name order
  Labels labels;
  std::string maintenance;  // the record its node or instance is under, if any
  size_t stripe = 0;        // of key_mu_ and known_
  bool timed = false;       // its rule evaluation is timed (SampleRuleTime)
  IngestResult result;
};

OpsEngine::OpsEngine(ResourceManager* resources, EngineOptions options)
    : resources_(resources),
      options_(options),
      rules_(resources->cache()),
      stats_(resources->store(), options.stats) {
  if (options_.metrics) {
    rule_seconds_ = options_.metrics->GetCounter(
        "photon_ops_rule_evaluation_seconds_total",
        "CPU time spent matching a sample of the reported events (one in 16) against the event "
        "rules: index lookup, Filter check, for an issued event also the Silenced, Aggregate "
        "and Action match; not the actions' store work");
    rule_events_ = options_.metrics->GetCounter(
        "photon_ops_rule_evaluations_total",
        "Reported events (repeats included) timed in photon_ops_rule_evaluation_seconds_total");
  }
}

OpsEngine::~OpsEngine() { Stop(); }

namespace {

// The CPU time of the calling thread: what matching took, not the time it waited for a core
// (the server shares 2 cores with its clients) or for the rule index's lock.
int64_t ThreadCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// Normalises who reported what: an agent speaks for its own node only.
Status Normalise(const Principal& who, const std::string& ns, event::Event* ev) {
  OpsEvent* o = ev->mutable_spec()->mutable_ops_event();
  const std::string node = who.AgentNode();
  if (!node.empty()) {
    if (ns != "system") {
      return absl::PermissionDeniedError("an agent reports events in namespace 'system' only");
    }
    if (!o->node().empty() && o->node() != node) {
      return absl::PermissionDeniedError("the agent of node '" + node +
                                         "' may not report events of node '" + o->node() + "'");
    }
    o->set_node(node);
    ev->mutable_spec()->set_source("node:" + node);
  } else if (!who.Allowed(Verb::kCreate, "events", ns)) {
    return absl::PermissionDeniedError("'" + who.name + "' may not report events in namespace '" +
                                       ns + "'");
  } else if (ev->spec().source().empty()) {
    ev->mutable_spec()->set_source(who.name);
  }
  if (o->dedup_key().empty()) o->set_dedup_key(ev->spec().source() + "/" + o->check());
  // An agent's keys live under its node, so it cannot touch another node's events.
  const std::string prefix = "node:" + node + "/";
  if (!node.empty() && o->dedup_key().rfind(prefix, 0) != 0) {
    o->set_dedup_key(prefix + o->dedup_key());
  }
  ev->mutable_spec()->set_event_type("ops");
  return absl::OkStatus();
}

}  // namespace

StatusOr<bool> OpsEngine::Prepare(const Principal& who, Work& w) {
  if (!w.ev.spec().has_ops_event()) {
    return absl::InvalidArgumentError(
        "spec.opsEvent: required (other events are written by the system)");
  }
  PHOTON_RETURN_IF_ERROR(ValidateName("metadata.namespace", w.ns));
  PHOTON_RETURN_IF_ERROR(ValidateOpsEvent(w.ev.spec().ops_event()));
  PHOTON_RETURN_IF_ERROR(Normalise(who, w.ns, &w.ev));
  const std::string name = EventName(w.ns, w.ev.spec().ops_event().dedup_key());
  w.key = RegistryKey("events", w.ns, name);
  w.stripe = std::hash<std::string>{}(w.key) % kStripes;
  w.result.event_name = name;
  w.timed = rule_seconds_ && SampleRuleTime();
  const int64_t t0 = w.timed ? ThreadCpuNanos() : 0;
  w.rule_set = rules_.For(w.ns);
  w.labels = MatchLabels(w.ns, w.ev);
  w.rules = w.rule_set->For(w.labels);
  const CompiledRule* filter = nullptr;
  for (size_t i = 0; w.rule_set->has_filter && !filter && i < w.rules.size(); ++i) {
    const CompiledRule* r = w.rules[i];
    if (r->rule.spec().type() == EventRuleSpec::FILTER && r->Matches(w.labels)) filter = r;
  }
  if (w.timed) CountRuleTime(t0, 1);
  if (filter) {
    w.result.filtered = true;
    w.result.rule = filter->name;
    return false;
  }
  w.maintenance = MaintenanceFor(resources_->cache(), w.ns, w.ev, NowMs());
  return true;
}

StatusOr<IngestResult> OpsEngine::Ingest(const Principal& who, const std::string& ns,
                                         event::Event ev) {
  Work w;
  w.ns = ns;
  w.ev = std::move(ev);
  PHOTON_ASSIGN_OR_RETURN(bool go_on, Prepare(who, w));
  if (!go_on) return w.result;
  std::lock_guard lock(key_mu_[w.stripe]);
  for (int attempt = 0;; ++attempt) {
    Status st = IssueLocked(w, w.stripe);
    if (st.ok()) return w.result;
    known_[w.stripe].erase(w.key);  // read it from the store again
    if (st.code() != StatusCode::kAborted || attempt >= 32) return st;
  }
}

// The issues of a batch waiting to be committed together, and the store keys they touch.
struct OpsEngine::Group {
  struct Member {
    size_t index;  // into the batch
    event::Event next;
    store::TxnRequest txn;
  };
  std::vector<Member> members;
  std::set<std::string> keys;
  bool Touches(const store::TxnRequest& txn) const {
    for (const auto& c : txn.compares) {
      if (keys.count(c.key)) return true;
    }
    for (const auto& op : txn.success) {
      if (keys.count(op.key)) return true;
    }
    return false;
  }
  void Add(size_t index, event::Event next, store::TxnRequest txn) {
    for (const auto& c : txn.compares) keys.insert(c.key);
    for (const auto& op : txn.success) keys.insert(op.key);
    members.push_back({index, std::move(next), std::move(txn)});
  }
};

StatusOr<std::vector<StatusOr<IngestResult>>> OpsEngine::IngestBatch(
    const Principal& who, const std::string& ns, std::vector<event::Event> events) {
  PHOTON_RETURN_IF_ERROR(ValidateName("metadata.namespace", ns));
  if (who.AgentNode().empty() && !who.Allowed(Verb::kCreate, "events", ns)) {
    return absl::PermissionDeniedError("'" + who.name + "' may not report events in namespace '" +
                                       ns + "'");
  }
  if (!who.AgentNode().empty() && ns != "system") {
    return absl::PermissionDeniedError("an agent reports events in namespace 'system' only");
  }
  std::vector<StatusOr<IngestResult>> out(events.size(), IngestResult{});
  std::vector<Work> works(events.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < events.size(); ++i) {
    works[i].ns = ns;
    works[i].ev = std::move(events[i]);
    auto go_on = Prepare(who, works[i]);
    if (!go_on.ok()) {
      out[i] = go_on.status();
    } else if (!*go_on) {
      out[i] = works[i].result;  // filtered
    } else {
      todo.push_back(i);
    }
  }
  // A key's stripe is held from its decision until its issue is committed (a later report of
  // it, here or elsewhere, is decided on what that commits); a repeat lets go at once. Stripes
  // are taken in the batch's order without waiting while others are held: a busy one first
  // commits the group and lets go of all (so two batches never wait for each other). Holding
  // every stripe of a batch throughout made a thread preempted with them (2 cores, many
  // clients) stall the other reports of those stripes for as long.
  Group group;
  std::vector<size_t> held;
  std::vector<char> in_group(kStripes, 0);  // stripes with an issue waiting in the group
  auto commit = [&](size_t keep) {          // commits the group, lets go of all stripes but `keep`
    CommitGroup(group, works, out);
    std::fill(in_group.begin(), in_group.end(), 0);
    for (size_t s : held) {
      if (s != keep) key_mu_[s].unlock();
    }
    held.clear();
    if (keep < kStripes) held.push_back(keep);
  };
  for (size_t i : todo) {
    Work& w = works[i];
    // A key already waiting in the group: its next report is decided on what that commits.
    if (group.keys.count(w.key)) commit(kStripes);
    bool mine = std::find(held.begin(), held.end(), w.stripe) != held.end();
    if (!mine && !key_mu_[w.stripe].try_lock()) {
      commit(kStripes);
      key_mu_[w.stripe].lock();
    }
    if (!mine) held.push_back(w.stripe);
    for (int attempt = 0;; ++attempt) {
      event::Event next;
      store::TxnRequest txn;
      auto issue = Build(w, w.stripe, &next, &txn);
      if (issue.ok() && *issue && group.Touches(txn)) {
        commit(w.stripe);  // what it read is about to change: decide again after
        continue;
      }
      if (!issue.ok()) {
        known_[w.stripe].erase(w.key);
        if (issue.status().code() == StatusCode::kAborted && attempt < 32) continue;
        out[i] = issue.status();
      } else if (*issue) {
        group.Add(i, std::move(next), std::move(txn));
        in_group[w.stripe] = 1;
      } else {
        out[i] = w.result;
      }
      break;
    }
    // Not needed past its decision unless an issue of the group (this one or an earlier
    // report's of the same stripe) waits for its commit.
    if (!in_group[w.stripe]) {
      held.erase(std::find(held.begin(), held.end(), w.stripe));
      key_mu_[w.stripe].unlock();
    }
  }
  commit(kStripes);
  return out;
}

void OpsEngine::CommitGroup(Group& g, std::vector<Work>& works,
                            std::vector<StatusOr<IngestResult>>& out) {
  if (g.members.empty()) return;
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = g.members.size();
  std::vector<StatusOr<store::TxnResult>> results(g.members.size(),
                                                  absl::UnknownError("not committed"));
  // All handed over at once: the store's writer takes them into one group commit.
  for (size_t m = 0; m < g.members.size(); ++m) {
    resources_->store()->TxnAsync(g.members[m].txn, [&, m](StatusOr<store::TxnResult> r) {
      std::lock_guard lock(mu);
      results[m] = std::move(r);
      if (--pending == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return pending == 0; });
  }
  for (size_t m = 0; m < g.members.size(); ++m) {
    auto& member = g.members[m];
    Work& w = works[member.index];
    if (results[m].ok() && results[m]->succeeded) {
      Committed(w, w.stripe, std::move(member.next), member.txn, results[m]->revision);
      out[member.index] = w.result;
      continue;
    }
    if (!results[m].ok()) {
      known_[w.stripe].erase(w.key);
      out[member.index] = results[m].status();
      continue;
    }
    // Changed meanwhile by another writer: decided again on its own, as a single report is.
    Status st;
    for (int attempt = 0; attempt < 32; ++attempt) {
      known_[w.stripe].erase(w.key);
      st = IssueLocked(w, w.stripe);
      if (st.code() != StatusCode::kAborted) break;
    }
    out[member.index] = st.ok() ? StatusOr<IngestResult>(w.result) : StatusOr<IngestResult>(st);
  }
  g = Group{};
}

OpsEngine::Known* OpsEngine::Fresh(const Work& w, size_t stripe) {
  auto& known = known_[stripe];
  auto it = known.find(w.key);
  if (it == known.end()) return nullptr;
  // Another writer (housekeeping, an operator, another server) changed it since: the store
  // decides. The cache follows the store within milliseconds.
  // The cache's revision is read first: at or past ours, a missing key was deleted since.
  const int64_t seen = resources_->cache()->revision();
  auto cached = resources_->cache()->Get(w.key);
  const bool changed =
      cached ? cached->mod_revision() > it->second.revision : seen >= it->second.revision;
  if (it->second.flushing || !changed) return &it->second;
  known.erase(it);
  return nullptr;
}

Status OpsEngine::ReadStored(const Work& w, event::Event* prev, int64_t* revision) {
  PHOTON_ASSIGN_OR_RETURN(auto stored, resources_->store()->Range(w.key));
  *revision = 0;
  if (stored.kvs.empty()) return absl::OkStatus();
  if (!prev->ParseFromString(stored.kvs[0].value)) return absl::DataLossError("corrupt " + w.key);
  *revision = stored.kvs[0].mod_revision;
  return absl::OkStatus();
}

Status OpsEngine::IssueLocked(Work& w, size_t stripe) {
  event::Event next;
  store::TxnRequest txn;
  PHOTON_ASSIGN_OR_RETURN(bool issue, Build(w, stripe, &next, &txn));
  if (!issue) return absl::OkStatus();
  PHOTON_ASSIGN_OR_RETURN(auto r, resources_->store()->Txn(txn));
  if (!r.succeeded) return absl::AbortedError("event or alert changed meanwhile");
  Committed(w, stripe, std::move(next), txn, r.revision);
  return absl::OkStatus();
}

StatusOr<bool> OpsEngine::Build(Work& w, size_t stripe, event::Event* next_out,
                                store::TxnRequest* txn_out) {
  const int64_t now = NowMs();
  const std::string now_text = NowRfc3339();
  const OpsEvent& in = w.ev.spec().ops_event();
  // The key's last state: from memory when known (not copied: a repeat only counts there),
  // else from the store.
  Known* known = Fresh(w, stripe);
  event::Event stored;
  int64_t prev_rev = 0;
  if (known) {
    prev_rev = known->revision;
  } else {
    PHOTON_RETURN_IF_ERROR(ReadStored(w, &stored, &prev_rev));
  }
  const event::Event& prev = known ? known->ev : stored;
  const OpsEvent& p = prev.spec().ops_event();
  // A maintenance starting or ending issues the event again: its alerts wait for the end.
  const bool same = prev_rev && p.severity() == in.severity() && p.maintenance() == w.maintenance;
  if (same && now - ParseMs(p.issued_at()) < in.reissue_duration_seconds() * 1000) {
    // Already issued and within its reissue duration: only its time and count move, in
    // memory now and in the store with the next flush of repeats.
    if (!known) {
      known = &known_[stripe][w.key];
      *known = Known{.ev = std::move(stored), .revision = prev_rev};
    }
    Known& k = *known;
    OpsEvent* u = k.ev.mutable_spec()->mutable_ops_event();
    if (!k.reported) k.reported = ReportedCounter(w.ns, u->node());
    if (k.reported) k.reported->Inc();
    u->set_last_seen(now_text);
    u->set_count(u->count() + 1);
    u->set_output(in.output());
    u->set_exit_code(in.exit_code());
    k.dirty = true;
    w.result.issued = false;
    w.result.maintenance = u->maintenance();
    w.result.rule = u->rule();
    w.result.alert = u->alert();
    return false;
  }
  store::TxnRequest& txn = *txn_out;
  txn.compares.push_back(prev_rev ? ModRevisionIs(w.key, prev_rev) : Absent(w.key));
  event::Event& next = *next_out;
  next = w.ev;
  auto* md = next.mutable_metadata();
  md->set_name(w.result.event_name);
  md->set_namespace_(w.ns);
  md->set_id(prev_rev ? prev.metadata().id() : NewUuid());
  md->set_resource_type("Event");
  md->set_created_at(now_text);  // when it was last issued (housekeeping's event TTL)
  md->set_updated_at(now_text);
  md->set_created_by(prev_rev ? prev.metadata().created_by() : w.ev.spec().source());
  next.mutable_spec()->set_timestamp(now_text);
  OpsEvent* o = next.mutable_spec()->mutable_ops_event();
  o->set_issued_at(now_text);
  o->set_last_seen(now_text);
  o->set_count(1);
  o->set_alert(p.alert());
  o->set_alert_seq(p.alert_seq());
  w.result = IngestResult{.issued = true, .event_name = w.result.event_name};
  PHOTON_RETURN_IF_ERROR(Decide(w, now, &next, &txn));
  txn.success.push_back(PutOp(w.key, next));
  return true;
}

Counter* OpsEngine::ReportedCounter(const std::string& ns, const std::string& node) {
  if (!options_.metrics) return nullptr;
  return options_.metrics->GetCounter(
      "photon_ops_events_reported_total",
      "Events reported and stored (issued, or counted as a repeat), by namespace and node "
      "(\"\" for events of no node)",
      {{"namespace", ns}, {"node", node}});
}

void OpsEngine::Committed(const Work& w, size_t stripe, event::Event next,
                          const store::TxnRequest& txn, int64_t revision) {
  auto& known = known_[stripe];
  if (known.size() >= kKnownPerStripe) {
    std::erase_if(known, [](const auto& kv) { return !kv.second.dirty && !kv.second.flushing; });
  }
  if (options_.metrics) {
    // Issues only (repeats are counted in memory): a few a second per key at most.
    options_.metrics
        ->GetCounter("photon_ops_events_issued_total",
                     "Events processed by the rules (issued), by namespace and severity",
                     {{"namespace", w.ns},
                      {"severity", OpsEvent::Severity_Name(next.spec().ops_event().severity())}})
        ->Inc();
  }
  Counter* reported = ReportedCounter(w.ns, next.spec().ops_event().node());
  if (reported) reported->Inc();
  known[w.key] = Known{.ev = std::move(next), .revision = revision, .reported = reported};
  for (const auto& op : txn.success) {
    if (op.key.rfind(kOutboxPrefix, 0) == 0) return Wake();
  }
}

// One event in 16 is timed: reading the thread's CPU clock is a system call (~0.3 µs), as
// much as matching a few rules costs.
bool OpsEngine::SampleRuleTime() {
  thread_local uint32_t n = 0;
  return (++n & 15) == 0;
}

void OpsEngine::CountRuleTime(int64_t since_ns, int events) {
  rule_seconds_->Inc(static_cast<double>(ThreadCpuNanos() - since_ns) / 1e9);
  if (events) rule_events_->Inc(events);
}

OpsEngine::Verdict OpsEngine::Evaluate(const Work& w) {
  Verdict v;
  for (const CompiledRule* r : w.rules) {
    if (r->rule.spec().type() == EventRuleSpec::SILENCED && r->Matches(w.labels)) {
      v.silenced = r;
      return v;
    }
  }
  for (const CompiledRule* r : w.rules) {
    if (r->rule.spec().type() == EventRuleSpec::AGGREGATE && r->Matches(w.labels)) {
      v.aggregate = r;
      return v;
    }
  }
  for (const CompiledRule* r : w.rules) {
    if (r->rule.spec().type() == EventRuleSpec::ACTION && r->Matches(w.labels)) {
      v.actions.push_back(r);
    }
  }
  return v;
}

// The rules, in order: Silenced ends processing; the first matching Aggregate takes the event
// into its group; otherwise every matching Action rule acts.
Status OpsEngine::Decide(Work& w, int64_t now, event::Event* next, store::TxnRequest* txn) {
  OpsEvent* o = next->mutable_spec()->mutable_ops_event();
  if (!w.maintenance.empty()) {  // stored, marked, no rule acts on it
    o->set_maintenance(w.maintenance);
    o->set_silenced(true);
    w.result.maintenance = w.maintenance;
    return absl::OkStatus();
  }
  const int64_t t0 = w.timed ? ThreadCpuNanos() : 0;
  const Verdict v = Evaluate(w);
  if (w.timed) CountRuleTime(t0, 0);  // the same event as its Prepare: time only
  if (v.silenced) {
    o->set_silenced(true);
    o->set_rule(v.silenced->name);
    w.result.rule = o->rule();
    return absl::OkStatus();
  }
  if (v.aggregate) {
    o->set_rule(v.aggregate->name);
    w.result.rule = o->rule();
    return AddToAggregate(v.aggregate->rule, w.labels, w.ns, *next, now, txn);
  }
  for (const CompiledRule* r : v.actions) {
    o->set_rule(r->name);
    w.result.rule = o->rule();
    for (int i = 0; i < r->rule.spec().actions_size(); ++i) {
      PHOTON_RETURN_IF_ERROR(Act(r->rule, i, w.ns, next, txn));
    }
  }
  w.result.alert = o->alert();
  return absl::OkStatus();
}

// One action of a rule on one issued event, as operations added to `txn`.
Status OpsEngine::Act(const EventRule& rule, int index, const std::string& ns, event::Event* ev,
                      store::TxnRequest* txn) {
  const RuleAction& a = rule.spec().actions(index);
  OpsEvent* o = ev->mutable_spec()->mutable_ops_event();
  AlertTarget t{
      .ns = ns, .dedup_key = o->dedup_key(), .current = o->alert(), .seq = o->alert_seq()};
  if (a.type() == RuleAction::CREATE_ALERT) {
    t.severity =
        a.alert_severity() != photon::ops::ALERT_SEVERITY_UNSPECIFIED
            ? a.alert_severity()
            : (o->severity() == OpsEvent::CRITICAL ? photon::ops::CRITICAL : photon::ops::WARNING);
    t.summary = o->output();
    t.rule = RuleName(rule);
    t.labels = {o->labels().begin(), o->labels().end()};
    if (!o->node().empty()) t.labels["node"] = o->node();
    if (!o->check().empty()) t.labels["check"] = o->check();
    PHOTON_RETURN_IF_ERROR(RaiseAlert(&t, txn));
    o->set_alert(t.current);
    o->set_alert_seq(t.seq);
  } else if (a.type() == RuleAction::DELETE_ALERT) {
    PHOTON_RETURN_IF_ERROR(ResolveAlert(t, RuleName(rule), txn));
  } else if (a.type() == RuleAction::API_HOOK) {
    json body{{"rule", RuleName(rule)},
              {"event", json::parse(MessageToJson(*ev), nullptr, false)},
              {"alert", o->alert()}};
    const std::string id = Sha256Hex(o->dedup_key() + "\n" + o->issued_at() + "\n" +
                                     RuleName(rule) + "\n" + std::to_string(index))
                               .substr(0, 32);
    txn->success.push_back(OutboxOp(id, a, std::move(body), ns + "\n" + o->dedup_key()));
  }
  return absl::OkStatus();
}

// Opens the alert of t->dedup_key, or updates the open one: one open alert per key. Names are
// "al-<hash of the key>-<n>", n counting the key's alerts, so a retried issue finds its own.
Status OpsEngine::RaiseAlert(AlertTarget* t, store::TxnRequest* txn) {
  store::Store* store = resources_->store();
  const std::string base = "al-" + Sha256Hex(t->ns + "\n" + t->dedup_key).substr(0, 16) + "-";
  if (t->seq == 0) t->seq = 1;
  const std::string now = NowRfc3339();
  for (int guard = 0; guard < 10000; ++guard, ++t->seq) {
    const std::string name = base + std::to_string(t->seq);
    const std::string key = RegistryKey("alerts", t->ns, name);
    PHOTON_ASSIGN_OR_RETURN(auto cur, store->Range(key));
    Alert a;
    if (!cur.kvs.empty()) {
      if (!a.ParseFromString(cur.kvs[0].value)) return absl::DataLossError("corrupt " + key);
      if (a.status().state() == AlertStatus::CLOSED) continue;  // closed: the next number
      auto* s = a.mutable_status();
      s->set_last_raised(now);
      s->set_count(s->count() + 1);
      if (s->resolved()) AddHistory(s, "raised", t->rule, "raised again after it was resolved");
      s->set_resolved(false);
      a.mutable_spec()->set_summary(t->summary);
      if (t->severity > a.spec().severity()) a.mutable_spec()->set_severity(t->severity);
      *a.mutable_spec()->mutable_members() = {t->members.begin(), t->members.end()};
      a.mutable_metadata()->set_updated_at(now);
      txn->compares.push_back(ModRevisionIs(key, cur.kvs[0].mod_revision));
    } else {
      auto* md = a.mutable_metadata();
      md->set_id(NewUuid());
      md->set_name(name);
      md->set_namespace_(t->ns);
      md->set_resource_type("Alert");
      md->set_created_at(now);
      md->set_updated_at(now);
      md->set_created_by("system:ops");
      md->set_generation(1);
      auto* spec = a.mutable_spec();
      spec->set_severity(t->severity);
      spec->set_dedup_key(t->dedup_key);
      spec->set_summary(t->summary);
      spec->set_rule(t->rule);
      spec->mutable_labels()->insert(t->labels.begin(), t->labels.end());
      for (const auto& m : t->members) spec->add_members(m);
      auto* s = a.mutable_status();
      s->set_state(AlertStatus::OPEN);
      s->set_first_raised(now);
      s->set_last_raised(now);
      s->set_count(1);
      AddHistory(s, "opened", t->rule, t->summary);
      txn->compares.push_back(Absent(key));
    }
    AddMirrors(resources_->cache(), &a, txn);
    txn->success.push_back(PutOp(key, a));
    t->current = name;
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError("alerts of key '" + t->dedup_key + "': too many");
}

Status OpsEngine::ResolveAlert(const AlertTarget& t, const std::string& rule,
                               store::TxnRequest* txn) {
  if (t.current.empty()) return absl::OkStatus();
  const std::string key = RegistryKey("alerts", t.ns, t.current);
  PHOTON_ASSIGN_OR_RETURN(auto cur, resources_->store()->Range(key));
  if (cur.kvs.empty()) return absl::OkStatus();
  Alert a;
  if (!a.ParseFromString(cur.kvs[0].value)) return absl::DataLossError("corrupt " + key);
  if (a.status().state() != AlertStatus::OPEN || a.status().resolved()) return absl::OkStatus();
  a.mutable_status()->set_resolved(true);
  AddHistory(a.mutable_status(), "resolved", rule, "the condition ended; close it to confirm");
  a.mutable_metadata()->set_updated_at(NowRfc3339());
  txn->compares.push_back(ModRevisionIs(key, cur.kvs[0].mod_revision));
  AddMirrors(resources_->cache(), &a, txn);
  txn->success.push_back(PutOp(key, a));
  return absl::OkStatus();
}

StatusOr<Alert> OpsEngine::CloseAlert(const Principal& who, const std::string& ns,
                                      const std::string& name, const std::string& comment) {
  if (!who.IsAdmin() || !who.AgentNode().empty()) {
    return absl::PermissionDeniedError("alerts are closed by an operator (an admin), not '" +
                                       who.name + "'");
  }
  if (comment.empty() || comment.size() > 2048) {
    return absl::InvalidArgumentError("comment: required (1 to 2048 bytes): say what was done");
  }
  PHOTON_RETURN_IF_ERROR(ValidateName("name", name));
  std::lock_guard lock(mu_);
  const std::string key = RegistryKey("alerts", ns, name);
  PHOTON_ASSIGN_OR_RETURN(auto cur, resources_->store()->Range(key));
  if (cur.kvs.empty()) return absl::NotFoundError("Alert '" + name + "' not found");
  Alert a;
  if (!a.ParseFromString(cur.kvs[0].value)) return absl::DataLossError("corrupt " + key);
  if (auto it = a.metadata().annotations().find(kMirrorOf);
      it != a.metadata().annotations().end()) {
    return absl::FailedPreconditionError("Alert '" + name + "' is a copy of " + it->second +
                                         " shown to this namespace: close that one");
  }
  auto* s = a.mutable_status();
  if (s->state() == AlertStatus::CLOSED) {
    return absl::FailedPreconditionError("Alert '" + name + "' was closed by " + s->closed_by() +
                                         " at " + s->closed_at());
  }
  const std::string now = NowRfc3339();
  s->set_state(AlertStatus::CLOSED);
  s->set_closed_by(who.name);
  s->set_closed_at(now);
  s->set_comment(comment);
  AddHistory(s, "closed", who.name, comment);
  a.mutable_metadata()->set_updated_at(now);
  store::TxnRequest txn;
  txn.compares.push_back(ModRevisionIs(key, cur.kvs[0].mod_revision));
  AddMirrors(resources_->cache(), &a, &txn);
  txn.success.push_back(PutOp(key, a));
  PHOTON_ASSIGN_OR_RETURN(auto r, resources_->store()->Txn(txn));
  if (!r.succeeded) return absl::AbortedError("Alert '" + name + "' changed meanwhile; retry");
  resources_->AuditCall(who, "action:close", "alerts/" + ns + "/" + name, 200);
  a.mutable_metadata()->set_resource_version(std::to_string(r.revision));
  return a;
}

}  // namespace photon::server::opsengine
