#include "server/housekeeper.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "common/util.h"
#include "photon/event.pb.h"
#include "photon/operation.pb.h"
#include "server/object_util.h"

namespace photon::server {

namespace {

// Seconds since the epoch of an RFC 3339 UTC time stamp ("2026-11-22T03:04:05.678Z"); 0 if bad.
int64_t ParseTime(const std::string& ts) {
  std::tm tm{};
  if (ts.size() < 19 || !strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

void Housekeeper::Start() {
  thread_ = std::thread([this] {
    SetThreadName("housekeeper");
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, options_.interval, [&] { return stop_; });
      if (stop_) break;
      lock.unlock();
      RunOnce();
      lock.lock();
    }
  });
}

void Housekeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int Housekeeper::RunOnce() {
  WatchCache* cache = resources_->cache();
  store::Store* store = resources_->store();
  const int64_t now = Now();
  int removed_events = 0, removed_ops = 0, removed_audit = 0;

  auto events = cache->List(RegistryPrefix("events"), store::PrefixEnd(RegistryPrefix("events")), 0,
                            [&](const CachedObject& o) {
                              auto m = o.Decoded();
                              return m && now - ParseTime(GetMetadata(*m).created_at()) >
                                              options_.event_ttl.count();
                            });
  for (const auto& e : events.items) {
    if (store->Delete(e->key()).ok()) ++removed_events;
  }
  auto ops =
      cache->List(RegistryPrefix("operations"), store::PrefixEnd(RegistryPrefix("operations")), 0,
                  [&](const CachedObject& o) {
                    auto m = o.Decoded();
                    if (!m) return false;
                    const auto& op = static_cast<const operation::Operation&>(*m);
                    bool finished = op.status().state() == operation::OperationStatus::DONE ||
                                    op.status().state() == operation::OperationStatus::FAILED;
                    std::string when = op.status().done_at().empty() ? op.metadata().created_at()
                                                                     : op.status().done_at();
                    return finished && now - ParseTime(when) > options_.operation_ttl.count();
                  });
  for (const auto& o : ops.items) {
    if (store->Delete(o->key()).ok()) ++removed_ops;
  }
  resources_->FlushRefusals(false);
  auto trimmed = resources_->TrimAudit(
      {.max_records = options_.audit_max_records,
       .appended_before = std::chrono::system_clock::now() - options_.audit_ttl});
  if (trimmed.ok()) {
    removed_audit = static_cast<int>(*trimmed);
  } else {
    spdlog::warn("housekeeper: trimming the audit log failed: {}", trimmed.status().ToString());
  }

  int64_t compact_to = cache->revision() - options_.keep_revisions;
  auto compacted = store->CompactedRevision();
  if (compact_to > 0 && compacted.ok() && compact_to > *compacted) {
    if (auto st = store->Compact(compact_to); !st.ok()) {
      spdlog::warn("housekeeper: compaction to {} failed: {}", compact_to, st.ToString());
    } else {
      spdlog::info("housekeeper: compacted store history below revision {}", compact_to);
    }
  }
  int total = removed_events + removed_ops + removed_audit;
  if (total > 0) {
    spdlog::info("housekeeper: removed {} events, {} finished operations, {} audit records",
                 removed_events, removed_ops, removed_audit);
  }
  return total;
}

}  // namespace photon::server
