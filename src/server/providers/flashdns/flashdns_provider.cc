// See flashdns_provider.h.
#include "server/providers/flashdns/flashdns_provider.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "photon/network.pb.h"
#include "server/object_util.h"
#include "server/providers/daemon_client.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {

using nlohmann::json;
using Phase = resource::ResourceStatus;

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

class FlashDnsProvider : public ServiceProvider, public ZoneBackend {
 public:
  FlashDnsProvider(std::string endpoint, std::string token_file, std::string owner,
                   std::vector<std::string> nameservers, uint32_t zone_ttl,
                   std::chrono::milliseconds timeout)
      : api_("flashdns", std::move(endpoint), std::move(token_file), timeout),
        owner_(std::move(owner)),
        nameservers_(std::move(nameservers)),
        zone_ttl_(zone_ttl) {}

  std::string driver() const override { return "flashdns"; }
  std::vector<std::string> kinds() const override { return {"dnszones", "dnsrecords"}; }

  Observed Apply(const google::protobuf::Message& object, const ObjectLookup& lookup) override {
    if (object.GetDescriptor() == network::DnsZone::descriptor())
      return ApplyZone(static_cast<const network::DnsZone&>(object));
    if (object.GetDescriptor() == network::DnsRecord::descriptor())
      return ApplyRecord(static_cast<const network::DnsRecord&>(object), lookup);
    Observed o;
    o.phase = Phase::ERROR;
    o.message = "flashdns provider: cannot realize " + object.GetDescriptor()->name();
    return o;
  }

  Status Remove(const ManagedRef& ref) override {
    auto zone = ref.details.find("zone");
    if (zone == ref.details.end() || zone->second.empty()) return absl::OkStatus();
    if (ref.kind == "dnszones") return RemoveZoneIfOwned(zone->second, Tag(ref));
    if (ref.kind == "dnsrecords") return RemoveRecords(zone->second, Tag(ref), {});
    return absl::OkStatus();
  }

  StatusOr<std::vector<ManagedRef>> ListManaged() override {
    DaemonReply list = api_.Call("GET", "/v1/zones");
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(list, "list zones"));
    std::vector<ManagedRef> out;
    const std::string prefix = owner_ + ":";
    for (const auto& z : list.body.value("zones", json::array())) {
      std::string owner = z.value("owner", "");
      if (owner.rfind(prefix, 0) != 0) continue;
      const std::string zone = z.value("name", "");
      ManagedRef ref;
      if (ParseTag(owner, &ref) && ref.kind == "dnszones") {
        ref.details["zone"] = zone;
        out.push_back(ref);
      }
      DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
      if (got.reached && got.status == 404) continue;  // deleted meanwhile
      PHOTON_RETURN_IF_ERROR(api_.AsStatus(got, "get zone " + zone));
      std::set<std::string> seen;
      for (const auto& r : got.body.value("records", json::array())) {
        std::string rowner = r.value("owner", "");
        ManagedRef rref;
        if (rowner.rfind(prefix, 0) != 0 || !seen.insert(rowner).second) continue;
        if (!ParseTag(rowner, &rref) || rref.kind != "dnsrecords") continue;
        rref.details["zone"] = zone;
        out.push_back(rref);
      }
    }
    return out;
  }

  Status SyncZone(const ManagedRef& ref, const std::string& zone,
                  const std::map<std::string, std::string>& a_records, uint32_t ttl) override {
    const std::string tag = Tag(ref);
    records_.erase(zone);  // filled again from what this sync leaves
    PHOTON_ASSIGN_OR_RETURN(json got, EnsureOwnedZone(zone, tag));
    // Keep each of ours that matches a wanted record (once); delete the rest; add what misses.
    ZoneRecords kept;
    for (const auto& rec : got.value("records", json::array())) {
      if (rec.value("owner", "") != tag) continue;
      const std::string name = AsciiLower(rec.value("name", ""));
      auto want = a_records.find(name);
      if (want != a_records.end() && !kept.count(name) && rec.value("type", "") == "A" &&
          rec.value("ttl", 0u) == ttl && rec.value("data", "") == want->second) {
        kept[name] = {rec.value("id", ""), want->second};
        continue;
      }
      const std::string id = rec.value("id", "");
      DaemonReply del = api_.Call("DELETE", "/v1/zones/" + zone + "/records/" + id);
      if (del.reached && del.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(api_.AsStatus(del, "delete record " + id));
    }
    for (const auto& [name, address] : a_records) {
      if (kept.count(name)) continue;
      PHOTON_ASSIGN_OR_RETURN(std::string id, AddRecord(zone, tag, name, address, ttl));
      kept[name] = {id, address};
    }
    records_[zone] = std::move(kept);
    return absl::OkStatus();
  }

  // Works from the record ids the last sync or update of the zone left (records_), so a
  // change costs a DELETE and/or a POST, never a read of the whole zone; a record changed
  // behind photon's back is repaired by the next SyncZone (the resync).
  Status UpdateRecords(const ManagedRef& ref, const std::string& zone,
                       const std::map<std::string, std::string>& changes, uint32_t ttl) override {
    auto it = records_.find(zone);
    if (it == records_.end()) return SyncAll(ref, zone, changes, ttl);
    const std::string tag = Tag(ref);
    ZoneRecords& have = it->second;
    for (const auto& [name, address] : changes) {
      auto old = have.find(name);
      if (old != have.end() && old->second.address == address) continue;
      if (old != have.end()) {
        DaemonReply del = api_.Call("DELETE", "/v1/zones/" + zone + "/records/" + old->second.id);
        if (!(del.reached && del.status == 404)) {
          if (Status st = api_.AsStatus(del, "delete record " + name); !st.ok()) {
            records_.erase(zone);
            return st;
          }
        }
        have.erase(old);
      }
      if (address.empty()) continue;
      auto id = AddRecord(zone, tag, name, address, ttl);
      if (!id.ok()) {
        records_.erase(zone);
        return id.status();
      }
      have[name] = {*id, address};
    }
    return absl::OkStatus();
  }

  Status RemoveZone(const ManagedRef& ref, const std::string& zone) override {
    records_.erase(zone);
    return RemoveZoneIfOwned(zone, Tag(ref));
  }

  StatusOr<std::vector<ManagedRef>> ListZones(const std::string& kind) override {
    DaemonReply list = api_.Call("GET", "/v1/zones");
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(list, "list zones"));
    std::vector<ManagedRef> out;
    for (const auto& z : list.body.value("zones", json::array())) {
      const std::string owner = z.value("owner", "");
      ManagedRef ref;
      if (owner.rfind(owner_ + ":", 0) != 0 || !ParseTag(owner, &ref) || ref.kind != kind) continue;
      ref.details["zone"] = z.value("name", "");
      out.push_back(ref);
    }
    return out;
  }

 private:
  struct RecordRef {
    std::string id;
    std::string address;
  };
  using ZoneRecords = std::map<std::string, RecordRef>;  // FQDN → our A record in flashdns

  // An update of a zone this instance holds no ids of (first use, or after an error): one
  // SyncZone to what the zone holds of ours plus the changes, so no other record changes.
  Status SyncAll(const ManagedRef& ref, const std::string& zone,
                 const std::map<std::string, std::string>& changes, uint32_t ttl) {
    PHOTON_ASSIGN_OR_RETURN(json got, EnsureOwnedZone(zone, Tag(ref)));
    std::map<std::string, std::string> want;
    for (const auto& rec : got.value("records", json::array())) {
      if (rec.value("owner", "") == Tag(ref) && rec.value("type", "") == "A")
        want.emplace(AsciiLower(rec.value("name", "")), rec.value("data", ""));
    }
    for (const auto& [name, address] : changes) {
      if (address.empty()) {
        want.erase(name);
      } else {
        want[name] = address;
      }
    }
    return SyncZone(ref, zone, want, ttl);
  }

  // POSTs one A record of ours; its id.
  StatusOr<std::string> AddRecord(const std::string& zone, const std::string& tag,
                                  const std::string& name, const std::string& address,
                                  uint32_t ttl) {
    json body = {{"name", name}, {"type", "A"}, {"ttl", ttl}, {"data", address}, {"owner", tag}};
    DaemonReply made = api_.Call("POST", "/v1/zones/" + zone + "/records", body);
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(made, "add record " + name));
    return made.body.is_object() ? made.body.value("id", "") : std::string();
  }

  // The zone (with its records) held by `tag`, created when missing.

  StatusOr<json> EnsureOwnedZone(const std::string& zone, const std::string& tag) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
      if (got.reached && got.status == 404) {
        json body = {{"name", zone}, {"ttl", zone_ttl_}, {"owner", tag}};
        if (!nameservers_.empty()) body["ns"] = nameservers_;
        DaemonReply made = api_.Call("POST", "/v1/zones", body);
        if (made.reached && made.status == 409) continue;  // made meanwhile: look again
        PHOTON_RETURN_IF_ERROR(api_.AsStatus(made, "create zone " + zone));
        return json::object();  // new: none of our records yet
      }
      PHOTON_RETURN_IF_ERROR(api_.AsStatus(got, "get zone " + zone));
      if (got.body.value("source", "") == "file") {
        return absl::FailedPreconditionError("zone " + zone +
                                             " is served by flashdns from a zone file");
      }
      const std::string owner = got.body.value("owner", "");
      if (owner != tag) {
        return absl::FailedPreconditionError("zone " + zone + " is already taken by " +
                                             DescribeOwner(owner));
      }
      return got.body;
    }
    return absl::UnavailableError("zone " + zone + " changed while it was being created");
  }

  std::string Tag(const std::string& kind, const std::string& ns, const std::string& name) const {
    return owner_ + ":" + kind + "/" + ns + "/" + name;
  }
  std::string Tag(const ManagedRef& ref) const { return Tag(ref.kind, ref.ns, ref.name); }

  bool ParseTag(const std::string& tag, ManagedRef* ref) const {
    std::string rest = tag.substr(owner_.size() + 1);
    size_t a = rest.find('/'), b = a == std::string::npos ? a : rest.find('/', a + 1);
    if (b == std::string::npos) return false;
    ref->kind = rest.substr(0, a);
    ref->ns = rest.substr(a + 1, b - a - 1);
    ref->name = rest.substr(b + 1);
    return !ref->kind.empty() && !ref->ns.empty() && !ref->name.empty();
  }

  // "DnsZone 'web' in namespace 'team-a'" for an owner tag of ours; the raw tag otherwise.
  std::string DescribeOwner(const std::string& owner) const {
    ManagedRef ref;
    if (owner.rfind(owner_ + ":", 0) == 0 && ParseTag(owner, &ref)) {
      return (ref.kind == "dnszones" ? std::string("DnsZone") : ref.kind) + " '" + ref.name +
             "' in namespace '" + ref.ns + "'";
    }
    return owner.empty() ? "another flashdns API client" : "owner '" + owner + "'";
  }

  Status RemoveZoneIfOwned(const std::string& zone, const std::string& tag) {
    DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
    if (got.reached && got.status == 404) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(got, "get zone " + zone));
    if (got.body.value("owner", "") != tag) return absl::OkStatus();  // not ours: never touch
    DaemonReply del = api_.Call("DELETE", "/v1/zones/" + zone);
    if (del.reached && del.status == 404) return absl::OkStatus();
    return api_.AsStatus(del, "delete zone " + zone);
  }

  // Deletes records tagged `tag` in `zone`, except those whose id is in `keep`.
  Status RemoveRecords(const std::string& zone, const std::string& tag,
                       const std::set<std::string>& keep) {
    DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
    if (got.reached && got.status == 404) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(api_.AsStatus(got, "get zone " + zone));
    for (const auto& r : got.body.value("records", json::array())) {
      if (r.value("owner", "") != tag) continue;
      const std::string id = r.value("id", "");
      if (keep.count(id)) continue;
      DaemonReply del = api_.Call("DELETE", "/v1/zones/" + zone + "/records/" + id);
      if (del.reached && del.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(api_.AsStatus(del, "delete record " + id));
    }
    return absl::OkStatus();
  }

  Observed ApplyZone(const network::DnsZone& z) {
    const auto& md = z.metadata();
    const std::string zone = CanonicalZoneName(z.spec().name());
    const std::string tag = Tag("dnszones", md.namespace_(), md.name());
    Observed o;
    o.details["zone"] = zone;
    o.details["provider"] = "flashdns";
    // spec.name changed: the zone it used to be is ours to remove.
    auto prev = z.status().details().find("zone");
    if (prev != z.status().details().end() && !prev->second.empty() && prev->second != zone) {
      if (auto st = RemoveZoneIfOwned(prev->second, tag); !st.ok())
        return ObservedFromError(st, Phase::UPDATING);
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
      if (got.reached && got.status == 404) {
        json body = {{"name", zone}, {"ttl", zone_ttl_}, {"owner", tag}};
        if (!nameservers_.empty()) body["ns"] = nameservers_;
        DaemonReply made = api_.Call("POST", "/v1/zones", body);
        if (made.reached && made.status == 409) continue;  // someone made it meanwhile: look again
        if (auto st = api_.AsStatus(made, "create zone " + zone); !st.ok()) {
          Observed e = ObservedFromError(st, Phase::CREATING);
          e.details = o.details;
          return e;
        }
        o.phase = Phase::RUNNING;
        o.message = "zone " + zone + " served by flashdns";
        return o;
      }
      if (auto st = api_.AsStatus(got, "get zone " + zone); !st.ok()) {
        Observed e = ObservedFromError(st, Phase::CREATING);
        e.details = o.details;
        return e;
      }
      const std::string owner = got.body.value("owner", "");
      if (got.body.value("source", "") == "file") {
        o.phase = Phase::ERROR;
        o.message =
            "zone " + zone + " is served by flashdns from a zone file; photon cannot manage it";
      } else if (owner != tag) {
        o.phase = Phase::ERROR;
        o.message = "zone " + zone + " is already taken by " + DescribeOwner(owner) +
                    " (DNS zone names are global)";
      } else {
        o.phase = Phase::RUNNING;
        o.message = "zone " + zone + " served by flashdns";
      }
      return o;
    }
    o.phase = Phase::CREATING;
    o.message = "zone " + zone + " changed while it was being created; retrying";
    o.retry = true;
    return o;
  }

  Observed ApplyRecord(const network::DnsRecord& r, const ObjectLookup& lookup) {
    const auto& md = r.metadata();
    const std::string tag = Tag("dnsrecords", md.namespace_(), md.name());
    Observed o;
    o.depends_on.push_back(RegistryKey("dnszones", md.namespace_(), r.spec().zone()));
    auto prev = r.status().details().find("zone");
    const std::string prev_zone = prev == r.status().details().end() ? "" : prev->second;
    auto waiting = [&](const std::string& why) {
      o.phase = Phase::PENDING;
      o.message = why;
      if (!prev_zone.empty()) o.details["zone"] = prev_zone;  // still where our records are
      return o;
    };
    auto zone_obj = lookup("dnszones", md.namespace_(), r.spec().zone());
    if (!zone_obj) {
      // Records made in a zone that is gone (or renamed away) are removed with it.
      if (!prev_zone.empty()) {
        if (auto st = RemoveRecords(prev_zone, tag, {}); !st.ok())
          return ObservedFromError(st, Phase::PENDING);
        o.details.clear();
      }
      o.phase = Phase::PENDING;
      o.message = "waiting for DnsZone '" + r.spec().zone() + "' in namespace '" + md.namespace_() +
                  "' (spec.zone names a DnsZone object, not a DNS name)";
      return o;
    }
    const auto& dz = static_cast<const network::DnsZone&>(*zone_obj);
    if (dz.status().phase() != Phase::RUNNING) {
      return waiting("waiting for DnsZone '" + r.spec().zone() + "' (" +
                     Phase::Phase_Name(dz.status().phase()) + ": " + dz.status().message() + ")");
    }
    const std::string zone = CanonicalZoneName(dz.spec().name());
    o.details["zone"] = zone;
    auto fqdn = DnsRecordFqdn(r.spec().name(), zone);
    if (!fqdn.ok()) {
      o.phase = Phase::ERROR;
      o.message = std::string(fqdn.status().message());
      return o;
    }
    o.details["fqdn"] = *fqdn;
    if (!prev_zone.empty() && prev_zone != zone) {
      if (auto st = RemoveRecords(prev_zone, tag, {}); !st.ok())
        return ObservedFromError(st, Phase::UPDATING);
    }
    const std::string type = Upper(r.spec().type());
    const uint32_t ttl = r.spec().ttl() > 0 ? static_cast<uint32_t>(r.spec().ttl()) : 300;
    DaemonReply got = api_.Call("GET", "/v1/zones/" + zone);
    if (got.reached && got.status == 404) {
      Observed w = waiting("zone " + zone + " is not served by flashdns yet; retrying");
      w.retry = true;
      w.details = o.details;
      return w;
    }
    if (auto st = api_.AsStatus(got, "get zone " + zone); !st.ok()) {
      Observed e = ObservedFromError(st, Phase::CREATING);
      e.details = o.details;
      return e;
    }
    if (got.body.value("owner", "") != Tag("dnszones", md.namespace_(), r.spec().zone())) {
      return waiting("zone " + zone + " is not held by DnsZone '" + r.spec().zone() + "'");
    }
    // Keep records that already match a wanted value; delete the rest of ours; add what misses.
    std::vector<std::string> want;
    for (const auto& v : r.spec().values()) {
      if (std::find(want.begin(), want.end(), v) == want.end()) want.push_back(v);
    }
    std::set<std::string> keep;
    std::set<std::string> present;
    for (const auto& rec : got.body.value("records", json::array())) {
      if (rec.value("owner", "") != tag) continue;
      const std::string data = rec.value("data", "");
      if (AsciiLower(rec.value("name", "")) == *fqdn && rec.value("type", "") == type &&
          rec.value("ttl", 0u) == ttl && std::find(want.begin(), want.end(), data) != want.end() &&
          !present.count(data)) {
        keep.insert(rec.value("id", ""));
        present.insert(data);
      }
    }
    // Delete before adding: a CNAME must be alone at its name.
    if (auto st = RemoveRecords(zone, tag, keep); !st.ok())
      return ObservedFromError(st, Phase::UPDATING);
    for (size_t i = 0; i < want.size(); ++i) {
      if (present.count(want[i])) continue;
      json body = {
          {"name", *fqdn}, {"type", type}, {"ttl", ttl}, {"data", want[i]}, {"owner", tag}};
      DaemonReply made = api_.Call("POST", "/v1/zones/" + zone + "/records", body);
      if (auto st = api_.AsStatus(made, "add record"); !st.ok()) {
        Observed e = ObservedFromError(st, Phase::CREATING);
        if (e.phase == Phase::ERROR) {
          e.message = "spec.values[" + std::to_string(i) + "] '" + want[i] +
                      "' refused by flashdns: " + made.message;
        }
        e.details = o.details;
        return e;
      }
    }
    std::string values;
    for (const auto& v : want) values += (values.empty() ? "" : ", ") + v;
    o.phase = Phase::RUNNING;
    o.message = *fqdn + " " + type + " " + values;
    return o;
  }

  DaemonClient api_;
  const std::string owner_;
  const std::vector<std::string> nameservers_;
  const uint32_t zone_ttl_;
  std::map<std::string, ZoneRecords> records_;  // zone → ours, as the last sync/update left it
};

}  // namespace

std::string CanonicalZoneName(const std::string& name) {
  std::string z = AsciiLower(name);
  if (z.empty() || z.back() != '.') z += '.';
  return z;
}

StatusOr<std::string> DnsRecordFqdn(const std::string& name, const std::string& zone) {
  if (name.empty() || name == "@") return zone;
  std::string n = AsciiLower(name);
  if (n.back() != '.') return n + "." + zone;
  if (n != zone && (n.size() <= zone.size() ||
                    n.compare(n.size() - zone.size() - 1, std::string::npos, "." + zone) != 0)) {
    return absl::InvalidArgumentError("spec.name: '" + name + "' is not inside zone " + zone);
  }
  return n;
}

namespace {

StatusOr<std::unique_ptr<FlashDnsProvider>> NewFlashDns(const ProviderConfig& config) {
  std::string endpoint, token_file, owner = "photon";
  std::vector<std::string> nameservers;
  uint32_t zone_ttl = 3600;
  int timeout_ms = 2000;
  const std::string where = "providers (flashdns): ";
  try {
    for (const auto& [key, value] : config.settings) {
      if (key == "endpoint") {
        endpoint = value;
      } else if (key == "token_file") {
        token_file = value;
      } else if (key == "owner") {
        owner = value;
      } else if (key == "zone_ttl") {
        zone_ttl = static_cast<uint32_t>(std::stoul(value));
      } else if (key == "timeout_ms") {
        timeout_ms = std::stoi(value);
      } else if (key == "nameservers") {
        size_t i = 0;
        while (i <= value.size()) {
          size_t j = value.find(',', i);
          if (j == std::string::npos) j = value.size();
          std::string ns = AsciiTrim(value.substr(i, j - i));
          if (!ns.empty()) nameservers.push_back(CanonicalZoneName(ns));
          i = j + 1;
        }
      } else {
        return absl::InvalidArgumentError(where + "unknown key '" + key + "'");
      }
    }
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(where + "zone_ttl and timeout_ms want numbers");
  }
  PHOTON_RETURN_IF_ERROR(ValidateDaemonConfig(where, endpoint, token_file, timeout_ms));
  if (owner.empty() || owner.find_first_of(":/ ") != std::string::npos)
    return absl::InvalidArgumentError(where + "owner: a non-empty tag without ':', '/' or spaces");
  return std::make_unique<FlashDnsProvider>(endpoint, token_file, owner, std::move(nameservers),
                                            zone_ttl, std::chrono::milliseconds(timeout_ms));
}

}  // namespace

StatusOr<std::unique_ptr<ServiceProvider>> NewFlashDnsProvider(const ProviderConfig& config) {
  PHOTON_ASSIGN_OR_RETURN(auto p, NewFlashDns(config));
  return std::unique_ptr<ServiceProvider>(std::move(p));
}

StatusOr<std::unique_ptr<ZoneBackend>> NewFlashDnsZoneBackend(const ProviderConfig& config) {
  PHOTON_ASSIGN_OR_RETURN(auto p, NewFlashDns(config));
  return std::unique_ptr<ZoneBackend>(std::move(p));
}

}  // namespace photon::server
