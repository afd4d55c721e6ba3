// The housekeeper (seed 002 Chairman/Housekeeper): removes what the system no longer needs, by
// itself, and logs what it did. Every interval it
//  - deletes Events older than event_ttl,
//  - deletes finished Operations (DONE/FAILED) older than operation_ttl,
//  - trims the audit log to its retention: records older than audit_ttl go, and all but the
//    newest audit_max_records (both backends; see Store::TrimLog),
//  - records the counts of ended windows of refused credentials (RefusalThrottle),
//  - compacts the store's history below (cache revision - keep_revisions), so the store does
//    not grow without bound; API watchers resume from the watch cache, not from the store.
// Thread-safe; Start/Stop once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "server/resource_manager.h"

namespace photon::server {

struct HousekeeperOptions {
  std::chrono::seconds interval{30};
  std::chrono::seconds event_ttl{3600};
  std::chrono::seconds operation_ttl{3600};
  std::chrono::seconds audit_ttl{30 * 24 * 3600};
  int64_t audit_max_records = 100000;
  int64_t keep_revisions = 100000;
};

class Housekeeper {
 public:
  Housekeeper(ResourceManager* resources, HousekeeperOptions options)
      : resources_(resources), options_(options) {}
  ~Housekeeper() { Stop(); }
  void Start();
  void Stop();
  // One pass, for tests. Returns the number of records removed.
  int RunOnce();

 private:
  ResourceManager* resources_;
  HousekeeperOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace photon::server
