// The operations pipeline (seed 003 EventData → EventRuleData → AlertData): events from
// checks, the platform and Prometheus go through Filter, Silenced, Aggregate and Action
// rules into alerts and webhooks. docs/operations.md describes it.
//
// Keyed and idempotent: one stored event per dedup key holds its latest state; an event is
// processed by the rules ("issued") when it is new, when its severity changed or when its
// reissue duration passed since it was last issued, and only updated otherwise. An issue
// commits the event, its alert and its webhook deliveries in one store transaction, so a
// crash leaves all of them or none. Webhooks go out from an outbox in the store, with retries
// and a delivery id the receiver can deduplicate on (at least once per transition).
// A repeat (same severity, within its reissue duration) only counts: it is decided from the
// event's state kept in memory and written in the next batch of repeats (every 20 ms), so a
// kill -9 may lose the last counts of repeats, never an issue, alert or webhook.
// Thread-safe: ingests of different key stripes run in parallel; the aggregate, delivery and
// repeat-flush workers run on their own threads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/http_server.h"
#include "common/metrics.h"
#include "common/status.h"
#include "photon/event.pb.h"
#include "photon/ops.pb.h"
#include "server/auth.h"
#include "server/ops/ops_internal.h"
#include "server/ops/rule_index.h"
#include "server/ops/stats.h"
#include "server/resource_manager.h"

namespace photon::server::opsengine {

struct IngestResult {
  bool filtered = false;  // dropped by a FILTER rule (not stored)
  bool issued = false;    // processed by the rules now
  std::string rule;       // the rule that decided, if any
  std::string event_name;
  std::string alert;        // the alert opened or updated
  std::string maintenance;  // "ns/name" of the maintenance it came under (no rule acted)
};

struct EngineOptions {
  std::chrono::milliseconds tick{200};           // aggregate windows and deliveries checked
  std::chrono::milliseconds hook_timeout{5000};  // one webhook attempt
  std::chrono::milliseconds hook_backoff{500};   // doubled after each failed attempt
  // Repeats counted in memory are written together at this interval (one transaction).
  std::chrono::milliseconds repeat_flush{20};
  StatsOptions stats;  // long-term statistics from Prometheus (stats.h); off without its URL
  // photon_ops_events_issued_total{namespace,severity} goes here (the statistics' event
  // counts); none when null.
  MetricsRegistry* metrics = nullptr;
};

class OpsEngine {
 public:
  OpsEngine(ResourceManager* resources, EngineOptions options = {});
  ~OpsEngine();
  void Start();
  void Stop();
  // Whether this server runs the background work: platform events, aggregate flushes, webhook
  // deliveries and maintenance drains. With several servers on one store only the leader does
  // (two delivery loops would send every webhook twice); ingest and the API run on all.
  void SetLeading(bool leading);
  // The standalone daemons photon-server drives (its service providers: driver → endpoint URL,
  // e.g. "flashdns" → "http://127.0.0.1:5380"), listed by the Prometheus discovery. Call
  // before serving.
  void SetDaemonEndpoints(std::vector<std::pair<std::string, std::string>> endpoints) {
    daemon_endpoints_ = std::move(endpoints);
  }

  // An event reported by `who` (an agent: forced to its own node, namespace "system").
  StatusOr<IngestResult> Ingest(const Principal& who, const std::string& ns, event::Event event);
  // Many events of one namespace at once, each validated and answered on its own (in order).
  // Their issues are committed together: all transactions of the batch are handed to the store
  // at once, which applies them in one of its group commits (one fsync), each still all or
  // nothing on its own compares. An event whose transaction would touch what an earlier one of
  // the batch touches (the same key, an aggregate group) waits for that one's commit.
  // The whole batch is refused only when `who` may not report in `ns`.
  StatusOr<std::vector<StatusOr<IngestResult>>> IngestBatch(const Principal& who,
                                                            const std::string& ns,
                                                            std::vector<event::Event> events);
  // An operator closes an open alert with a comment; history keeps who and why.
  StatusOr<photon::ops::Alert> CloseAlert(const Principal& who, const std::string& ns,
                                          const std::string& name, const std::string& comment);
  // The checks whose node selector matches node `node` (its labels as stored).
  StatusOr<std::vector<photon::ops::Check>> ChecksForNode(const Principal& who,
                                                          const std::string& node);
  // Routes owned by the operations module (authenticated here); nullopt for any other
  // request, which the REST gateway answers.
  std::optional<HttpResponse> Handle(HttpRequest& req, const Authenticator& auth);

 private:
  struct Work;
  HttpResponse Route(HttpRequest& req, const Principal& who);
  HttpResponse IngestBatchAnswer(const HttpRequest& req, const Principal& who,
                                 const std::string& ns);
  HttpResponse PrometheusAlerts(const HttpRequest& req, const Principal& who);
  HttpResponse PrometheusTargets(const HttpRequest& req, const Principal& who);
  HttpResponse Top(const HttpRequest& req, const Principal& who);  // top.cc
  // The last stored state of a recently seen event (dedup in memory): a repeat within its
  // reissue duration is decided and counted here and written with the other repeats at the
  // next flush, instead of one store write (and fsync) per report.
  struct Known {
    event::Event ev;              // as stored, plus the repeats counted since
    int64_t revision = 0;         // its mod revision in the store
    bool dirty = false;           // repeats counted and not yet written
    bool flushing = false;        // in a flush's transaction now
    Counter* reported = nullptr;  // photon_ops_events_reported_total of its namespace and node
  };
  // photon_ops_events_reported_total{namespace,node} (null without metrics): looked up once
  // per key's state, so a repeat only increments it.
  Counter* ReportedCounter(const std::string& ns, const std::string& node);
  struct Group;
  // Validates and normalises w.ev, matches its rules; false when a Filter rule dropped it.
  StatusOr<bool> Prepare(const Principal& who, Work& w);
  Status IssueLocked(Work& w, size_t stripe);
  // Decides w against the key's previous state: a repeat is counted in memory (false); an
  // issue fills *next and *txn (true), to be committed and then passed to Committed().
  StatusOr<bool> Build(Work& w, size_t stripe, event::Event* next, store::TxnRequest* txn);
  // An issue's transaction committed at `revision`: the key's state in memory follows.
  void Committed(const Work& w, size_t stripe, event::Event next, const store::TxnRequest& txn,
                 int64_t revision);
  // Commits the group's transactions together and finishes each (retrying alone a refused one).
  void CommitGroup(Group& g, std::vector<Work>& works, std::vector<StatusOr<IngestResult>>& out);
  // The key's state in memory, unless another writer changed the key since (then forgotten):
  // null when the store must be read.
  Known* Fresh(const Work& w, size_t stripe);
  // What the store holds for w.key: the event and its mod revision, 0 when absent.
  Status ReadStored(const Work& w, event::Event* prev, int64_t* revision);
  void FlushRepeats();
  void RepeatLoop();
  // The rules that act on an issued event (pure matching; Decide applies it).
  struct Verdict {
    const CompiledRule* silenced = nullptr;
    const CompiledRule* aggregate = nullptr;
    std::vector<const CompiledRule*> actions;
  };
  static Verdict Evaluate(const Work& w);
  // Whether this event's rule evaluation is timed (a sample), and adds the thread's CPU time
  // since `since_ns` (and `events` events) to the rule evaluation counters.
  static bool SampleRuleTime();
  void CountRuleTime(int64_t since_ns, int events);
  Status Decide(Work& w, int64_t now, event::Event* next, store::TxnRequest* txn);
  Status Act(const photon::ops::EventRule& rule, int index, const std::string& ns, event::Event* ev,
             store::TxnRequest* txn);
  Status RaiseAlert(AlertTarget* t, store::TxnRequest* txn);
  Status ResolveAlert(const AlertTarget& t, const std::string& rule, store::TxnRequest* txn);
  Status AddToAggregate(const photon::ops::EventRule& rule, const Labels& labels,
                        const std::string& ns, const event::Event& ev, int64_t now,
                        store::TxnRequest* txn);
  Status FlushGroup(const store::KeyValue& kv, int64_t now);
  StatusOr<bool> Deliver(const store::KeyValue& kv, int64_t now);
  void OnPlatform(const std::vector<CacheEvent>& events);
  void KeepLatestPlatformEvents();
  void Loop();
  void FlushAggregates();
  void DeliverHooks();
  void Wake();

  ResourceManager* resources_;
  EngineOptions options_;
  // One ingest (read, decide, commit) at a time per key stripe: different keys commit in
  // parallel (the store batches their fsyncs); what keys share (an aggregate group, an alert an
  // operator closes) is guarded by the transactions' revision compares, and retried.
  static constexpr size_t kStripes = 64;
  std::array<std::mutex, kStripes> key_mu_;
  static constexpr size_t kKnownPerStripe = 4096;  // then the clean entries are forgotten
  std::array<std::unordered_map<std::string, Known>, kStripes> known_;  // guarded by key_mu_
  std::thread repeat_thread_;
  std::mutex mu_;  // closes and aggregate flushes, one at a time
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  bool wake_ = false;  // a webhook waits in the outbox: deliver it now, not at the next tick
  std::atomic<bool> leading_{true};
  std::thread thread_;
  RuleIndex rules_;
  Counter* rule_seconds_ = nullptr;  // photon_ops_rule_evaluation_seconds_total (with metrics)
  Counter* rule_events_ = nullptr;   // photon_ops_rule_evaluations_total
  uint64_t rule_watch_ = 0;
  uint64_t node_watch_ = 0;
  uint64_t instance_watch_ = 0;
  // Platform events seen on the cache's thread, ingested on the engine's own.
  std::mutex platform_mu_;
  std::vector<event::Event> platform_;
  std::map<std::string, int> last_condition_;  // platform event name → last severity
  std::vector<std::pair<std::string, std::string>> daemon_endpoints_;
  StatsController stats_;
};

}  // namespace photon::server::opsengine
