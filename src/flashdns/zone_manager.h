// Owns what flashdns serves: zones from files named in the config and zones managed through
// the API (persisted as JSON under DATA_DIR/zones/). Every change builds a new immutable
// Snapshot aside and publishes it with one pointer swap, so a reload never drops or mixes a
// query: workers keep answering from the old snapshot until they pick up the new one.
// Thread-safety: all methods are thread-safe. Generation()/Current() are cheap and meant for
// the query path; mutations are serialised by an internal mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "flashdns/config.h"
#include "flashdns/query.h"
#include "flashdns/transfer.h"

namespace photon::flashdns {

struct Snapshot {
  ZoneSet zones;
  // Lower-case wire origin → who may AXFR it.
  absl::flat_hash_map<std::string, std::vector<AddressMatcher>> allow_transfer;
  bool MayTransfer(std::string_view origin, const sockaddr_storage& peer) const;
};

// GSLB: an A or AAAA record with a check is served only while TCP connects to its address at
// `port` succeed (record_health.h). port 0: no check.
struct RecordCheck {
  int port = 0;
  int interval_ms = 1000;
  int timeout_ms = 500;
  int rise = 2;
  int fall = 2;
};

// A record as the API sees it.
struct ApiRecord {
  std::string id;
  std::string name;  // absolute presentation name
  std::string type;
  uint32_t ttl = 0;
  std::string data;  // RDATA in presentation format
  // Optional tag of the API client that made it (photon-server writes
  // "photon:<kind>/<namespace>/<name>"), so a client can find and clean up what it created
  // without touching records of others. flashdns only stores and returns it.
  std::string owner;
  RecordCheck check;
};

class ZoneManager {
 public:
  explicit ZoneManager(Config config);

  // Loads every zone. At start-up (`initial`) any failure is returned; on reload a zone
  // that fails is logged and keeps its previous version. Returns the list of errors joined.
  Status Load(bool initial);
  // Re-reads the zone files (SIGHUP, POST /v1/reload).
  Status Reload() { return Load(false); }

  uint64_t Generation() const { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const Snapshot> Current() const;

  // API operations. Names are presentation format; zone names get a trailing dot added.
  StatusOr<std::string> ListZonesJson() const;
  StatusOr<std::string> GetZoneJson(const std::string& zone) const;
  // owner: optional tag of the creating client, persisted and listed (see ApiRecord::owner).
  Status CreateZone(const std::string& zone, const std::vector<std::string>& ns, uint32_t ttl,
                    const std::string& owner = "");
  Status DeleteZone(const std::string& zone);
  StatusOr<ApiRecord> AddRecord(const std::string& zone, ApiRecord record);
  Status DeleteRecord(const std::string& zone, const std::string& id);

  // GSLB (record_health.h): the checked records, and their health. A record starts healthy;
  // an unhealthy one is left out of the answers unless every checked record of its name and
  // type is unhealthy (then all are served: an empty answer helps no client). The zone's serial
  // goes up with each change, so secondaries follow.
  struct CheckTarget {
    std::string zone;  // lower-case zone name
    std::string id;
    std::string address;
    RecordCheck check;
  };
  std::vector<CheckTarget> CheckTargets() const;
  Status SetRecordHealthy(const std::string& zone, const std::string& id, bool healthy);

 private:
  struct ApiZone {
    std::string name;  // presentation, trailing dot
    uint32_t serial = 1;
    uint32_t ttl = 3600;
    std::vector<std::string> ns;
    std::vector<ApiRecord> records;
    std::string owner;
  };

  StatusOr<std::shared_ptr<const Zone>> BuildApiZone(const ApiZone& zone) const;
  Status SaveApiZone(const ApiZone& zone) const;
  Status LoadApiZones();
  std::string ApiZonePath(const std::string& name) const;
  // Rebuilds the snapshot from file_zones_ and api_built_ and swaps it in. Needs mu_.
  void PublishLocked();
  StatusOr<std::string> CanonicalZone(const std::string& zone) const;

  const Config config_;
  mutable std::mutex mu_;
  std::set<std::string> unhealthy_;  // record ids whose checks fail
  // Zones holding a checked record: CheckTargets, called every 50 ms, looks only at these (an
  // API zone of the DNS provider may hold many unchecked records).
  std::set<std::string> checked_zones_;
  std::map<std::string, std::shared_ptr<const Zone>> file_zones_;  // by config name
  std::map<std::string, ApiZone> api_zones_;                       // by lower-case name
  std::map<std::string, std::shared_ptr<const Zone>> api_built_;
  mutable std::mutex snapshot_mu_;  // guards current_ only; held for a pointer copy
  std::shared_ptr<const Snapshot> current_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace photon::flashdns
