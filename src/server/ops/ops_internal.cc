#include "server/ops/ops_internal.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/util.h"
#include "server/object_util.h"

namespace photon::server::opsengine {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t ParseMs(const std::string& ts) {
  std::tm tm{};
  if (ts.size() < 19 || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (ts.size() >= 23 && ts[19] == '.') ms += std::atoi(ts.substr(20, 3).c_str());
  return ms;
}

std::string EventName(const std::string& ns, const std::string& dedup_key) {
  return "ev-" + Sha256Hex(ns + "\n" + dedup_key).substr(0, 24);
}

std::string RuleName(const photon::ops::EventRule& rule) {
  return rule.metadata().namespace_() + "/" + rule.metadata().name();
}

std::vector<photon::ops::EventRule> RulesFor(const WatchCache* cache, const std::string& ns) {
  std::vector<photon::ops::EventRule> out;
  std::vector<std::string> spaces{"system"};
  if (ns != "system") spaces.push_back(ns);
  for (const std::string& n : spaces) {
    const std::string prefix = RegistryPrefix("eventrules", n);
    auto page = cache->List(prefix, store::PrefixEnd(prefix), 0, nullptr);
    for (const auto& o : page.items) {
      photon::ops::EventRule r;
      if (r.ParseFromString(o->value())) out.push_back(std::move(r));
    }
  }
  return out;
}

Labels MatchLabels(const std::string& ns, const event::Event& ev) {
  const auto& o = ev.spec().ops_event();
  Labels l = o.labels();
  l["severity"] = event::OpsEvent::Severity_Name(o.severity());
  if (!o.check().empty()) l["check"] = o.check();
  if (!o.node().empty()) l["node"] = o.node();
  l["source"] = ev.spec().source();
  l["namespace"] = ns;
  return l;
}

bool Matches(const photon::ops::EventRule& rule, const Labels& labels) {
  auto sel = LabelSelector::Parse(rule.spec().match());
  return sel.ok() && sel->Matches(labels);
}

store::Compare ModRevisionIs(const std::string& key, int64_t revision) {
  return {.key = key,
          .target = store::Compare::Target::kModRevision,
          .op = store::Compare::Op::kEqual,
          .number = revision};
}

store::Compare Absent(const std::string& key) {
  return {.key = key,
          .target = store::Compare::Target::kCreateRevision,
          .op = store::Compare::Op::kEqual,
          .number = 0};
}

namespace {

// What `photon events|alerts list -l/--severity` select on, server-side (labelSelector only
// reads metadata.labels): the event's or alert's own labels, photon.io/severity, and an
// alert's photon.io/state.
void SetSelectableLabels(google::protobuf::Message* msg, resource::ResourceMetadata* md) {
  auto* labels = md->mutable_labels();
  if (auto* a = dynamic_cast<photon::ops::Alert*>(msg)) {
    *labels = a->spec().labels();
    (*labels)["photon.io/severity"] = photon::ops::AlertSeverity_Name(a->spec().severity());
    (*labels)["photon.io/state"] = photon::ops::AlertStatus::State_Name(a->status().state());
  } else if (auto* e = dynamic_cast<event::Event*>(msg); e && e->spec().has_ops_event()) {
    *labels = e->spec().ops_event().labels();
    (*labels)["photon.io/severity"] =
        event::OpsEvent::Severity_Name(e->spec().ops_event().severity());
  }
}

}  // namespace

store::TxnOp PutOp(const std::string& key, const google::protobuf::Message& msg) {
  google::protobuf::Message* copy = msg.New();
  copy->CopyFrom(msg);
  MutableMetadata(copy)->clear_resource_version();
  SetSelectableLabels(copy, MutableMetadata(copy));
  store::TxnOp op{.type = store::TxnOp::Type::kPut, .key = key, .value = copy->SerializeAsString()};
  delete copy;
  return op;
}

store::TxnOp OutboxOp(const std::string& id, const photon::ops::RuleAction& action,
                      nlohmann::json body, const std::string& order) {
  static std::atomic<uint64_t> counter{0};
  char seq[48];
  snprintf(seq, sizeof seq, "%016lld-%010llu-", static_cast<long long>(NowMs()),
           static_cast<unsigned long long>(++counter % 10000000000ULL));
  body["deliveryId"] = id;
  nlohmann::json item{{"id", id},
                      {"order", order + "\n" + action.url()},
                      {"url", action.url()},
                      {"body", body.dump()},
                      {"attempts", 0},
                      {"maxAttempts", action.max_attempts() ? action.max_attempts() : 5},
                      {"nextMs", 0}};
  return {.type = store::TxnOp::Type::kPut,
          .key = std::string(kOutboxPrefix) + seq + id,
          .value = item.dump()};
}

void AddHistory(photon::ops::AlertStatus* status, const std::string& action, const std::string& by,
                const std::string& message) {
  // The first entry (who opened it) and the latest ones: a flapping key keeps it bounded.
  constexpr int kMaxHistory = 100;
  if (status->history_size() >= kMaxHistory) {
    status->mutable_history()->DeleteSubrange(1, 1);
  }
  auto* h = status->add_history();
  h->set_time(NowRfc3339());
  h->set_action(action);
  h->set_by(by);
  h->set_message(message);
}

}  // namespace photon::server::opsengine
