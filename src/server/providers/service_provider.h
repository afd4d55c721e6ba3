// Server-side service providers: how photon-server realizes cluster-wide services (DNS zones,
// buckets) that belong to no node, in the manner of OpenStack Designate's pool backends or a
// Kubernetes external controller. A provider speaks to one backend (flashdns, lightningstor)
// and makes it match the stored objects; the ServiceController (service_controller.h) decides
// when, retries, and writes the status.
//
// Contract for implementations:
//  - Apply is idempotent and level-triggered: it reads the backend, changes only what differs,
//    and may be called any number of times for the same object.
//  - Remove is idempotent: something already gone is success. It must only touch what this
//    provider created (backends tag what photon creates; see ManagedRef).
//  - ListManaged returns everything the backend holds that this provider created, so objects
//    deleted while photon-server was down are cleaned up after a restart.
// Calls come from the controller's one worker thread; a provider need not be thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/resource.pb.h"

namespace photon::server {

// What Apply saw; the controller copies it into the object's status.
struct Observed {
  resource::ResourceStatus::Phase phase = resource::ResourceStatus::PENDING;
  std::string message;
  // Written to status.details. Also handed back to Remove (through ManagedRef) after the
  // object is deleted, so keep here whatever locates the backend state (e.g. the zone name).
  std::map<std::string, std::string> details;
  // Written to status.addresses (a LoadBalancer's VIP).
  std::vector<std::string> addresses;
  // Transient failure (backend unreachable): the controller retries with backoff.
  bool retry = false;
  // Apply again after this long even when nothing changed (a GlobalService's health checks);
  // 0: only on changes, retries and resyncs.
  std::chrono::milliseconds requeue_after{0};
  // Registry keys (/registry/<plural>/<ns>/<name>) of other objects this one was built from;
  // a change to any of them applies this object again (a DnsRecord follows its DnsZone).
  std::vector<std::string> depends_on;
};

// Backend state made for one object, identified by that object's kind, namespace and name.
struct ManagedRef {
  std::string kind;  // plural: "dnszones"
  std::string ns;
  std::string name;
  std::map<std::string, std::string> details;  // as in Observed::details
};

// Reads another object from the watch cache; nullptr when it does not exist.
using ObjectLookup = std::function<std::shared_ptr<const google::protobuf::Message>(
    const std::string& plural, const std::string& ns, const std::string& name)>;

class ServiceProvider {
 public:
  virtual ~ServiceProvider() = default;
  // The driver name in the config ("flashdns").
  virtual std::string driver() const = 0;
  // Plural kind names this provider realizes ("dnszones", "dnsrecords").
  virtual std::vector<std::string> kinds() const = 0;
  virtual Observed Apply(const google::protobuf::Message& object, const ObjectLookup& lookup) = 0;
  virtual Status Remove(const ManagedRef& ref) = 0;
  virtual StatusOr<std::vector<ManagedRef>> ListManaged() = 0;
};

// Zones photon-server derives from other objects instead of DnsZone objects: a VPC's private
// DNS (docs/networking.md "Private DNS"). A driver that realizes dnszones may offer one; it is
// its own instance (CreateZoneBackend), called from the private DNS controller's one thread.
// A zone and its records carry the owner tag of `ref` (kind, namespace, name), so zones of
// DnsZone objects, zone files and other API clients are never touched.
class ZoneBackend {
 public:
  virtual ~ZoneBackend() = default;
  // Makes the zone exist and hold exactly `a_records` (lower-case FQDN → IPv4) with `ttl`,
  // changing only what differs. FAILED_PRECONDITION: the zone is someone else's;
  // UNAVAILABLE: the backend is unreachable (retry).
  virtual Status SyncZone(const ManagedRef& ref, const std::string& zone,
                          const std::map<std::string, std::string>& a_records, uint32_t ttl) = 0;
  // Changes only the named records (FQDN → IPv4; "" removes the name) and leaves every other
  // record as it is: the cost of one instance's change must not grow with the zone. Makes the
  // zone when it is missing. Errors as SyncZone's; after one, the caller syncs the whole zone.
  virtual Status UpdateRecords(const ManagedRef& ref, const std::string& zone,
                               const std::map<std::string, std::string>& changes, uint32_t ttl) = 0;
  // Removes the zone if it is ref's; gone already is success.
  virtual Status RemoveZone(const ManagedRef& ref, const std::string& zone) = 0;
  // Zones owned by objects of `kind`, each with details["zone"].
  virtual StatusOr<std::vector<ManagedRef>> ListZones(const std::string& kind) = 0;
};

// One entry of the `providers:` list in photon-server's config: the driver and its own keys
// (string values; each driver refuses keys it does not know, naming them).
struct ProviderConfig {
  std::string driver;
  std::map<std::string, std::string> settings;
};

using ProviderFactory =
    std::function<StatusOr<std::unique_ptr<ServiceProvider>>(const ProviderConfig& config)>;

// The drivers compiled in (registry.cc holds the one list). Unknown driver → INVALID_ARGUMENT
// naming the known ones.
StatusOr<std::unique_ptr<ServiceProvider>> CreateProvider(const ProviderConfig& config);
std::vector<std::string> ProviderDrivers();
// The driver's ZoneBackend, or nullptr when the driver has none.
StatusOr<std::unique_ptr<ZoneBackend>> CreateZoneBackend(const ProviderConfig& config);

}  // namespace photon::server
