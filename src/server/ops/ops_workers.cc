// The engine's background work: aggregate windows that end, webhook deliveries, and the
// platform's own events (node Down, instance ERROR) fed into the same pipeline.
#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/http_client.h"
#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/node.pb.h"
#include "server/object_util.h"
#include "server/ops/maintenance.h"
#include "server/ops/ops_engine.h"

namespace photon::server::opsengine {

using event::OpsEvent;
using nlohmann::json;
using photon::ops::EventRule;
using photon::ops::EventRuleSpec;
using photon::ops::RuleAction;

namespace {

std::string GroupOf(const EventRule& rule, const Labels& labels) {
  std::string g;
  for (const auto& k : rule.spec().group_by()) {
    auto it = labels.find(k);
    g += (g.empty() ? "" : ",") + k + "=" + (it == labels.end() ? "" : it->second);
  }
  return g;
}

}  // namespace

// Adds the event to its rule's open group (opening it: the window starts now).
Status OpsEngine::AddToAggregate(const EventRule& rule, const Labels& labels, const std::string& ns,
                                 const event::Event& ev, int64_t now, store::TxnRequest* txn) {
  const std::string group = GroupOf(rule, labels);
  const std::string key = kAggregatePrefix + rule.metadata().namespace_() + "/" +
                          rule.metadata().name() + "/" + Sha256Hex(ns + "\n" + group).substr(0, 24);
  PHOTON_ASSIGN_OR_RETURN(auto cur, resources_->store()->Range(key));
  json b;
  if (cur.kvs.empty()) {
    b = json{{"ruleNamespace", rule.metadata().namespace_()},
             {"rule", rule.metadata().name()},
             {"namespace", ns},
             {"group", group},
             {"firstMs", now},
             {"dueMs", now + int64_t{rule.spec().window_seconds()} * 1000},
             {"severity", 0},
             {"members", json::array()}};
    txn->compares.push_back(Absent(key));
  } else {
    b = json::parse(cur.kvs[0].value, nullptr, false);
    if (!b.is_object()) return absl::DataLossError("corrupt " + key);
    txn->compares.push_back(ModRevisionIs(key, cur.kvs[0].mod_revision));
  }
  const auto& o = ev.spec().ops_event();
  bool known = false;
  for (const auto& m : b["members"]) known = known || m == o.dedup_key();
  if (!known) b["members"].push_back(o.dedup_key());
  b["severity"] = std::max(b.value("severity", 0), static_cast<int>(o.severity()));
  b["summary"] = o.output();
  txn->success.push_back({.type = store::TxnOp::Type::kPut, .key = key, .value = b.dump()});
  return absl::OkStatus();
}

// A group whose window ended: its rule's actions run once for all its events, and the group
// goes, in one transaction.
Status OpsEngine::FlushGroup(const store::KeyValue& kv, int64_t now) {
  json b = json::parse(kv.value, nullptr, false);
  if (!b.is_object() || now < b.value("dueMs", int64_t{0})) return absl::OkStatus();
  store::TxnRequest txn;
  txn.compares.push_back(ModRevisionIs(kv.key, kv.mod_revision));
  txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = kv.key});
  const std::string rule_key =
      RegistryKey("eventrules", b.value("ruleNamespace", ""), b.value("rule", ""));
  auto cached = resources_->cache()->Get(rule_key);
  EventRule rule;
  if (cached && rule.ParseFromString(cached->value())) {
    const std::string ns = b.value("namespace", "");
    const std::string dedup = "aggregate:" + RuleName(rule) + ":" + b.value("group", "");
    std::vector<std::string> members;
    for (const auto& m : b["members"]) members.push_back(m.get<std::string>());
    const auto severity =
        b.value("severity", 0) == OpsEvent::CRITICAL ? photon::ops::CRITICAL : photon::ops::WARNING;
    // The aggregate's own alert, found through its last one like an event's.
    const std::string state_key = RegistryKey("events", ns, EventName(ns, dedup));
    PHOTON_ASSIGN_OR_RETURN(auto st, resources_->store()->Range(state_key));
    event::Event state;
    if (!st.kvs.empty()) state.ParseFromString(st.kvs[0].value);
    txn.compares.push_back(st.kvs.empty() ? Absent(state_key)
                                          : ModRevisionIs(state_key, st.kvs[0].mod_revision));
    AlertTarget t{.ns = ns,
                  .dedup_key = dedup,
                  .current = state.spec().ops_event().alert(),
                  .seq = state.spec().ops_event().alert_seq()};
    for (int i = 0; i < rule.spec().actions_size(); ++i) {
      const RuleAction& a = rule.spec().actions(i);
      if (a.type() == RuleAction::CREATE_ALERT) {
        t.severity = a.alert_severity() ? a.alert_severity() : severity;
        t.summary = std::to_string(members.size()) + " events in " +
                    std::to_string(rule.spec().window_seconds()) + " s (" + b.value("group", "") +
                    "): " + b.value("summary", "");
        t.rule = RuleName(rule);
        t.members = members;
        PHOTON_RETURN_IF_ERROR(RaiseAlert(&t, &txn));
      } else if (a.type() == RuleAction::DELETE_ALERT) {
        PHOTON_RETURN_IF_ERROR(ResolveAlert(t, RuleName(rule), &txn));
      } else if (a.type() == RuleAction::API_HOOK) {
        json body{{"rule", RuleName(rule)},
                  {"group", b.value("group", "")},
                  {"members", members},
                  {"alert", t.current}};
        std::string id =
            Sha256Hex(kv.key + "\n" + std::to_string(kv.mod_revision) + "\n" + std::to_string(i))
                .substr(0, 32);
        txn.success.push_back(OutboxOp(id, a, std::move(body), ns + "\n" + dedup));
      }
    }
    // The aggregate's state: an event of the rule itself, naming its alert.
    auto* md = state.mutable_metadata();
    const std::string now_text = NowRfc3339();
    if (md->id().empty()) md->set_id(NewUuid());
    md->set_name(EventName(ns, dedup));
    md->set_namespace_(ns);
    md->set_resource_type("Event");
    md->set_created_at(now_text);
    md->set_updated_at(now_text);
    auto* spec = state.mutable_spec();
    spec->set_event_type("ops");
    spec->set_source("aggregate:" + RuleName(rule));
    spec->set_timestamp(now_text);
    OpsEvent* o = spec->mutable_ops_event();
    o->set_severity(static_cast<OpsEvent::Severity>(b.value("severity", 0)));
    o->set_dedup_key(dedup);
    o->set_output(t.summary);
    o->set_issued_at(now_text);
    o->set_last_seen(now_text);
    o->set_count(static_cast<int64_t>(members.size()));
    o->set_rule(RuleName(rule));
    o->set_alert(t.current);
    o->set_alert_seq(t.seq);
    txn.success.push_back(PutOp(state_key, state));
  }
  PHOTON_ASSIGN_OR_RETURN(auto r, resources_->store()->Txn(txn));
  if (!r.succeeded) return absl::AbortedError("aggregate " + kv.key + " changed meanwhile");
  return absl::OkStatus();
}

void OpsEngine::FlushAggregates() {
  auto page =
      resources_->store()->Range(kAggregatePrefix, {.end = store::PrefixEnd(kAggregatePrefix)});
  if (!page.ok()) return;
  const int64_t now = NowMs();
  std::lock_guard lock(mu_);
  for (const auto& kv : page->kvs) {
    if (auto st = FlushGroup(kv, now); !st.ok()) {
      spdlog::warn("ops: aggregate {}: {}", kv.key, st.ToString());
    }
  }
}

// One delivery attempt; the item goes on 2xx or after its last attempt, else waits longer.
// True when the item is gone (delivered or given up).
StatusOr<bool> OpsEngine::Deliver(const store::KeyValue& kv, int64_t now) {
  json item = json::parse(kv.value, nullptr, false);
  if (!item.is_object()) return resources_->store()->Delete(kv.key).status().ok();
  if (now < item.value("nextMs", int64_t{0})) return false;
  const std::string url = item.value("url", "");
  const size_t slash = url.find('/', 7);
  const std::string base = slash == std::string::npos ? url : url.substr(0, slash);
  const std::string target = slash == std::string::npos ? "/" : url.substr(slash);
  Status outcome = absl::OkStatus();
  auto client = HttpClient::Create(base, "");
  if (!client.ok()) {
    outcome = client.status();
  } else {
    client->set_timeout(options_.hook_timeout);
    client->set_user_agent("photon-server");
    auto r = client->Do("POST", target, item.value("body", ""), "application/json",
                        {{"X-Photon-Delivery", item.value("id", "")}});
    if (!r.ok()) {
      outcome = r.status();
    } else if (r->status < 200 || r->status >= 300) {
      outcome = absl::UnavailableError("HTTP " + std::to_string(r->status));
    }
  }
  const int attempts = item.value("attempts", 0) + 1;
  store::TxnRequest txn;
  txn.compares.push_back(ModRevisionIs(kv.key, kv.mod_revision));
  const bool done = outcome.ok() || attempts >= item.value("maxAttempts", 5);
  if (done) {
    if (!outcome.ok()) {
      spdlog::error("ops: webhook {} to {} failed {} times, giving up: {}", item.value("id", ""),
                    url, attempts, outcome.ToString());
      // Best effort: the log line above already says it.
      (void)resources_->RecordEvent("system", "WebhookFailed", "webhooks/" + item.value("id", ""),
                                    url + ": " + outcome.ToString());
    }
    txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = kv.key});
  } else {
    item["attempts"] = attempts;
    item["lastError"] = outcome.ToString();
    item["nextMs"] = now + options_.hook_backoff.count() * (int64_t{1} << std::min(attempts, 10));
    txn.success.push_back({.type = store::TxnOp::Type::kPut, .key = kv.key, .value = item.dump()});
  }
  PHOTON_RETURN_IF_ERROR(resources_->store()->Txn(txn).status());
  return done;
}

// In commit order (the outbox keys sort so); a delivery waiting for its retry holds back the
// later ones of the same key and URL, so a receiver sees a key's transitions in order.
void OpsEngine::DeliverHooks() {
  auto page = resources_->store()->Range(kOutboxPrefix, {.end = store::PrefixEnd(kOutboxPrefix)});
  if (!page.ok()) return;
  std::set<std::string> held;
  for (const auto& kv : page->kvs) {
    const std::string order = json::parse(kv.value, nullptr, false).value("order", kv.key);
    if (held.count(order)) continue;
    auto gone = Deliver(kv, NowMs());
    if (!gone.ok()) spdlog::warn("ops: delivery {}: {}", kv.key, gone.status().ToString());
    if (!gone.ok() || !*gone) held.insert(order);
  }
}

// Runs on the cache's thread: only notes what changed.
void OpsEngine::OnPlatform(const std::vector<CacheEvent>& events) {
  std::vector<event::Event> out;
  for (const auto& e : events) {
    if (e.type == CacheEvent::Type::kDeleted) continue;
    auto msg = e.object->Decoded();
    if (!msg) continue;
    const auto& md = GetMetadata(*msg);
    event::Event ev;
    auto* o = ev.mutable_spec()->mutable_ops_event();
    o->set_reissue_duration_seconds(3600);
    if (msg->GetDescriptor() == node::Node::descriptor()) {
      const auto& n = static_cast<const node::Node&>(*msg);
      const bool down = n.node_status().condition() == node::NodeStatus::DOWN;
      o->set_check("node-down");
      o->set_node(md.name());
      o->set_severity(down ? OpsEvent::CRITICAL : OpsEvent::SUCCESS);
      o->set_output("node " + md.name() + " is " +
                    node::NodeStatus::Condition_Name(n.node_status().condition()));
      o->set_dedup_key("platform/node/" + md.name() + "/down");
      ev.mutable_metadata()->set_namespace_("system");
    } else {
      const auto* st = GetStatus(*msg);
      const bool error = st && st->phase() == resource::ResourceStatus::ERROR;
      o->set_check("instance-error");
      o->set_node(md.agent_id());
      o->set_severity(error ? OpsEvent::CRITICAL : OpsEvent::SUCCESS);
      o->set_output("instance " + md.namespace_() + "/" + md.name() + ": " +
                    (st ? resource::ResourceStatus::Phase_Name(st->phase()) + " " + st->message()
                        : std::string()));
      (*o->mutable_labels())["instance"] = md.name();
      o->set_dedup_key("platform/instance/" + md.namespace_() + "/" + md.name() + "/error");
      ev.mutable_metadata()->set_namespace_(md.namespace_());
    }
    std::lock_guard lock(platform_mu_);
    // Only transitions: heartbeats rewrite nodes every few seconds.
    int& last = last_condition_.try_emplace(o->dedup_key(), OpsEvent::SUCCESS).first->second;
    if (last == o->severity()) continue;
    last = o->severity();
    ev.mutable_spec()->set_source("photon-server");
    platform_.push_back(std::move(ev));
  }
}

void OpsEngine::Loop() {
  SetThreadName("ops");
  std::unique_lock lock(stop_mu_);
  for (uint64_t round = 0; !stop_;) {
    stop_cv_.wait_for(lock, options_.tick, [&] { return stop_ || wake_; });
    if (stop_) break;
    wake_ = false;
    lock.unlock();
    if (!leading_) {
      KeepLatestPlatformEvents();
      lock.lock();
      continue;
    }
    std::vector<event::Event> platform;
    {
      std::lock_guard pl(platform_mu_);
      platform.swap(platform_);
    }
    for (auto& ev : platform) {
      const std::string ns = ev.metadata().namespace_();
      auto r = Ingest(SystemPrincipal(), ns, std::move(ev));
      if (!r.ok()) spdlog::warn("ops: platform event: {}", r.status().ToString());
    }
    FlushAggregates();
    DeliverHooks();
    if (++round % 10 == 0) ReconcileMaintenanceDrains(resources_, NowMs());
    lock.lock();
  }
}

// A follower keeps, per key, the latest platform change it saw: ingested if it comes to lead
// (ingest is idempotent per key), and bounded by the number of nodes and instances meanwhile.
void OpsEngine::KeepLatestPlatformEvents() {
  std::lock_guard pl(platform_mu_);
  std::map<std::string, size_t> last;
  for (size_t i = 0; i < platform_.size(); ++i) {
    last[platform_[i].spec().ops_event().dedup_key()] = i;
  }
  if (last.size() == platform_.size()) return;
  std::vector<event::Event> kept;
  for (size_t i = 0; i < platform_.size(); ++i) {
    if (last[platform_[i].spec().ops_event().dedup_key()] == i) kept.push_back(platform_[i]);
  }
  platform_.swap(kept);
}

// Writes the repeats counted in memory: one transaction for all (each compared on the revision
// it was counted on), or key by key when another writer changed one meanwhile (that key's
// counts are then dropped: the store's version wins).
void OpsEngine::FlushRepeats() {
  struct Pending {
    size_t stripe;
    std::string key;
    event::Event ev;
    int64_t revision;
  };
  std::vector<Pending> batch;
  for (size_t s = 0; s < kStripes; ++s) {
    std::lock_guard lock(key_mu_[s]);
    for (auto& [key, k] : known_[s]) {
      if (!k.dirty) continue;
      batch.push_back({s, key, k.ev, k.revision});
      k.dirty = false;
      k.flushing = true;
    }
  }
  if (batch.empty()) return;
  auto commit = [&](size_t from, size_t to) -> int64_t {  // the new revision, 0 if refused
    store::TxnRequest txn;
    for (size_t i = from; i < to; ++i) {
      txn.compares.push_back(ModRevisionIs(batch[i].key, batch[i].revision));
      txn.success.push_back(PutOp(batch[i].key, batch[i].ev));
    }
    auto r = resources_->store()->Txn(txn);
    if (!r.ok()) spdlog::warn("ops: writing counted repeats: {}", r.status().ToString());
    return r.ok() && r->succeeded ? r->revision : 0;
  };
  // Chunks of 128 puts: the most one transaction may hold (etcd's default, the SQLite store's).
  constexpr size_t kChunk = 128;
  std::vector<int64_t> written(batch.size(), 0);
  for (size_t from = 0; from < batch.size(); from += kChunk) {
    const size_t to = std::min(batch.size(), from + kChunk);
    if (const int64_t rev = commit(from, to)) {
      std::fill(written.begin() + from, written.begin() + to, rev);
    } else {
      for (size_t i = from; i < to; ++i) written[i] = commit(i, i + 1);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    std::lock_guard lock(key_mu_[batch[i].stripe]);
    auto& known = known_[batch[i].stripe];
    auto it = known.find(batch[i].key);
    if (it == known.end() || it->second.revision != batch[i].revision) continue;  // re-issued
    it->second.flushing = false;
    if (written[i]) {
      it->second.revision = written[i];
    } else {
      known.erase(it);  // changed by another writer: read it from the store next time
    }
  }
}

void OpsEngine::RepeatLoop() {
  SetThreadName("ops-repeats");
  std::unique_lock lock(stop_mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, options_.repeat_flush, [&] { return stop_; });
    lock.unlock();
    FlushRepeats();  // also once more when stopping: a clean stop keeps every count
    lock.lock();
  }
}

void OpsEngine::SetLeading(bool leading) {
  leading_ = leading;
  stats_.SetLeading(leading);
  if (leading) Wake();
}

void OpsEngine::Wake() {
  {
    std::lock_guard lock(stop_mu_);
    wake_ = true;
  }
  stop_cv_.notify_all();
}

void OpsEngine::Start() {
  auto note = [this](const std::vector<CacheEvent>& events) { OnPlatform(events); };
  auto snapshot = [this](const std::vector<std::shared_ptr<const CachedObject>>& objects, int64_t) {
    std::vector<CacheEvent> events;
    for (const auto& o : objects) {
      events.push_back({CacheEvent::Type::kAdded, o->mod_revision(), o});
    }
    OnPlatform(events);
  };
  auto r = resources_->cache()->Subscribe(
      RegistryPrefix("eventrules"), 0, [this](const auto&, int64_t) { rules_.Invalidate(); },
      [this](const std::vector<CacheEvent>&) { rules_.Invalidate(); });
  if (r.ok()) rule_watch_ = *r;
  auto n = resources_->cache()->Subscribe(RegistryPrefix("nodes"), 0, snapshot, note);
  if (n.ok()) node_watch_ = *n;
  auto i = resources_->cache()->Subscribe(RegistryPrefix("computeinstances"), 0, snapshot, note);
  if (i.ok()) instance_watch_ = *i;
  thread_ = std::thread([this] { Loop(); });
  repeat_thread_ = std::thread([this] { RepeatLoop(); });
  stats_.Start();
}

void OpsEngine::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stop_) return;
    stop_ = true;
  }
  stop_cv_.notify_all();
  stats_.Stop();
  if (thread_.joinable()) thread_.join();
  if (repeat_thread_.joinable()) repeat_thread_.join();
  if (rule_watch_) resources_->cache()->Unsubscribe(rule_watch_);
  if (node_watch_) resources_->cache()->Unsubscribe(node_watch_);
  if (instance_watch_) resources_->cache()->Unsubscribe(instance_watch_);
}

}  // namespace photon::server::opsengine
