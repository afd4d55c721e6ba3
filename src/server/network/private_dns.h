// Private DNS (docs/networking.md "Private DNS"): every VPC with spec.enableDnsHostnames gets
// the zone VPC.NAMESPACE.internal. in the DNS backend (flashdns, through the driver's
// ZoneBackend), holding one A record INSTANCE.VPC.NAMESPACE.internal. per instance of the VPC
// that holds an address. Zone names are global in the backend; VPC names only per namespace,
// hence the namespace in the name.
//
// A controller in the Kubernetes manner, incremental: the instance watch keeps, per VPC, the
// records its zone must hold (an index updated by each event, so nothing lists or decodes the
// VPC's instances again), and queues the names of the instances whose record changed, keyed
// by VPC and name (a burst of changes to one instance is one update). One worker applies a
// VPC's queued names with ZoneBackend::UpdateRecords: only those records, only when they
// differ from what the zone was last seen to hold (idempotent). A VPC event, a failure and
// the first sync of a VPC queue a whole-zone sync instead. Every `resync` all VPCs are synced
// whole again (repairing changes made behind photon's back) and zones of VPCs that are gone
// or no longer want DNS are removed (also those deleted while photon-server was down).
// The outcome is the VPC's condition DnsReady (True/Synced, or False with NoProvider,
// BackendUnavailable — retried with backoff — or ZoneConflict) and status.details["dns.zone"].
// Thread-safe: Start/Stop once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "server/providers/service_provider.h"
#include "server/resource_manager.h"

namespace photon::server::prismnet {

struct PrivateDnsOptions {
  std::chrono::milliseconds resync{60000};
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  uint32_t ttl = 60;  // of the A records: an address changes only with a new instance
};

inline constexpr char kDnsReady[] = "DnsReady";
inline constexpr char kDetailDnsZone[] = "dns.zone";

// "v1", "team-a" → "v1.team-a.internal."
std::string PrivateZoneName(const std::string& ns, const std::string& vpc);

class PrivateDnsController {
 public:
  // `backend` may be null (no DNS provider configured): VPCs that want DNS then say so.
  PrivateDnsController(ResourceManager* resources, std::unique_ptr<ZoneBackend> backend,
                       PrivateDnsOptions options = {});
  ~PrivateDnsController() { Stop(); }
  Status Start();
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  using Records = std::map<std::string, std::string>;  // FQDN → address
  struct Entry {  // an instance's record: its VPC's registry key, its name, its address
    std::string vpc_key, name, address;
    bool operator==(const Entry&) const = default;
  };
  void OnInstance(const CachedObject& o, bool deleted);
  // Queues a whole-zone sync of the VPC.
  void Mark(const std::string& vpc_key, Clock::time_point when = Clock::time_point{});
  void Run();
  void Reconcile(const std::string& vpc_key, bool force);
  // Applies the queued names of one VPC (only their records).
  void Update(const std::string& vpc_key, const std::set<std::string>& names);
  // The records the VPC's zone must hold, from the index.
  Records Desired(const std::string& vpc_key);
  void Backoff(const std::string& vpc_key);
  // Outcome of a sync as the VPC's condition; writes only a change.
  void Report(const std::string& vpc_key, bool ok, const std::string& reason,
              const std::string& message, const std::string& zone);
  void Sweep();

  ResourceManager* resources_;
  std::unique_ptr<ZoneBackend> backend_;
  PrivateDnsOptions options_;
  uint64_t vpc_sub_ = 0, instance_sub_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Clock::time_point> due_;        // VPC key → when to sync it whole
  std::map<std::string, std::set<std::string>> names_;  // VPC key → instances to update
  std::map<std::string, Entry> seen_;                   // instance key → its record
  std::map<std::string, std::map<std::string, std::string>> index_;  // VPC key → name → address
  bool stop_ = false;
  std::thread worker_;

  // Worker thread only.
  std::map<std::string, Records> synced_;  // VPC key → what its zone holds (last sync/update)
  std::map<std::string, int> failures_;
  Clock::time_point next_sweep_{};
};

}  // namespace photon::server::prismnet
