// GSLB in flashdns: health checks of the API records that carry one (RecordCheck). Every
// interval a TCP connect to the record's address at its port; `fall` failures in a row mark
// it unhealthy and `rise` successes healthy again, and ZoneManager leaves unhealthy records out
// of the answers (all of a name's records are served when all of them fail). A GlobalService's
// name thus answers with the VIPs of the regions whose load balancers accept connections, and
// a failed region's VIP leaves the answer within fall x interval plus the records' TTL in
// resolvers' caches.
// Thread-safety: one thread of its own; Start/Stop from one thread.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "flashdns/zone_manager.h"

namespace photon::flashdns {

class RecordHealth {
 public:
  explicit RecordHealth(ZoneManager* zones) : zones_(zones) {}
  ~RecordHealth() { Stop(); }
  void Start();
  void Stop();

 private:
  struct State {
    int successes = 0, failures = 0;
    bool healthy = true;
    std::chrono::steady_clock::time_point next{};
  };
  void Loop();

  ZoneManager* zones_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<std::string, State> state_;  // record id → its checks (the thread's only)
};

}  // namespace photon::flashdns
