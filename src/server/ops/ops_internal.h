// Helpers shared by the operations engine's files: rule matching, store operations, times.
// Stateless; thread-safe.
#pragma once

#include <google/protobuf/map.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "photon/event.pb.h"
#include "photon/ops.pb.h"
#include "server/watch_cache.h"
#include "store/store.h"

namespace photon::server::opsengine {

using Labels = google::protobuf::Map<std::string, std::string>;

// Where the engine keeps what is not a resource: aggregate groups and webhook deliveries.
inline constexpr char kAggregatePrefix[] = "/ops/aggregate/";
inline constexpr char kOutboxPrefix[] = "/ops/outbox/";

// What an alert action works on: the key's alert and the numbering of its alerts.
struct AlertTarget {
  std::string ns;
  std::string dedup_key;
  std::string current;  // name of the key's last alert ("" = none yet)
  int64_t seq = 0;
  photon::ops::AlertSeverity severity = photon::ops::WARNING;
  std::string summary;
  std::string rule;
  std::map<std::string, std::string> labels;
  std::vector<std::string> members;
};

int64_t NowMs();
// Milliseconds since the epoch of NowRfc3339()'s format; 0 when empty or malformed.
int64_t ParseMs(const std::string& rfc3339);

// "ev-<hash>": one stored event per namespace and dedup key.
std::string EventName(const std::string& ns, const std::string& dedup_key);
// "ns/name" of a rule, as events and alerts name it.
std::string RuleName(const photon::ops::EventRule& rule);
// Rules of namespace `ns` and of "system" (which apply everywhere), in key order.
std::vector<photon::ops::EventRule> RulesFor(const WatchCache* cache, const std::string& ns);
// The event's labels plus severity, check, node, source and namespace.
Labels MatchLabels(const std::string& ns, const event::Event& ev);
bool Matches(const photon::ops::EventRule& rule, const Labels& labels);

store::Compare ModRevisionIs(const std::string& key, int64_t revision);
store::Compare Absent(const std::string& key);
store::TxnOp PutOp(const std::string& key, const google::protobuf::Message& msg);
// A webhook delivery waiting in the store; `id` is its delivery id. Outbox keys sort in the
// order they were made (milliseconds, then a counter), and the deliveries of one `order`
// (namespace and dedup key) go out in that order.
store::TxnOp OutboxOp(const std::string& id, const photon::ops::RuleAction& action,
                      nlohmann::json body, const std::string& order);
void AddHistory(photon::ops::AlertStatus* status, const std::string& action, const std::string& by,
                const std::string& message);

}  // namespace photon::server::opsengine
