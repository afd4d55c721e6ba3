// Zone loading, API-managed zones and snapshot publication; see zone_manager.h.
#include "flashdns/zone_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/util.h"
#include "flashdns/zone_parser.h"

namespace photon::flashdns {
namespace {

using nlohmann::json;

const std::string kRoot(1, '\0');

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return AsciiLower(c); });
  return s;
}

json RecordJson(const ApiRecord& r) {
  json j = {{"id", r.id}, {"name", r.name}, {"type", r.type}, {"ttl", r.ttl}, {"data", r.data}};
  if (!r.owner.empty()) j["owner"] = r.owner;
  if (r.check.port > 0) {
    j["health_check"] = {{"type", "tcp"},
                         {"port", r.check.port},
                         {"interval_ms", r.check.interval_ms},
                         {"timeout_ms", r.check.timeout_ms},
                         {"rise", r.check.rise},
                         {"fall", r.check.fall}};
  }
  return j;
}

}  // namespace

bool Snapshot::MayTransfer(std::string_view origin, const sockaddr_storage& peer) const {
  auto it = allow_transfer.find(Key(origin));
  if (it == allow_transfer.end()) return false;
  for (const auto& m : it->second) {
    if (m.Matches(peer)) return true;
  }
  return false;
}

ZoneManager::ZoneManager(Config config) : config_(std::move(config)) {}

std::shared_ptr<const Snapshot> ZoneManager::Current() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return current_;
}

Status ZoneManager::Load(bool initial) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> errors;
  for (const auto& zc : config_.zones) {
    auto origin = ParseName(zc.name, kRoot);
    if (!origin.ok()) return origin.status();
    auto zone = LoadZone(zc.file, *origin);
    if (!zone.ok()) {
      std::string msg = "zone " + zc.name + ": " + std::string(zone.status().message());
      if (initial) return absl::InvalidArgumentError(msg);
      bool kept = file_zones_.count(zc.name) > 0;
      spdlog::error("{} ({})", msg, kept ? "still serving the previous version" : "not served");
      errors.push_back(msg);
      continue;
    }
    auto old = file_zones_.find(zc.name);
    if (old == file_zones_.end() || old->second->serial() != (*zone)->serial() ||
        old->second->record_count() != (*zone)->record_count()) {
      spdlog::info("zone {} loaded from {}: {} records, serial {}", zc.name, zc.file,
                   (*zone)->record_count(), (*zone)->serial());
    }
    file_zones_[zc.name] = *zone;
  }
  if (initial) {
    Status s = LoadApiZones();
    if (!s.ok()) return s;
  }
  PublishLocked();
  // Parsing leaves large freed buffers behind; give them back so RSS reflects the zones.
  malloc_trim(0);
  if (!errors.empty()) {
    std::string joined;
    for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e;
    return absl::InvalidArgumentError(joined);
  }
  return absl::OkStatus();
}

void ZoneManager::PublishLocked() {
  auto snapshot = std::make_shared<Snapshot>();
  auto add_acl = [&](const std::string& origin, const std::vector<std::string>& list) {
    auto& matchers = snapshot->allow_transfer[origin];
    for (const auto& a : list) {
      auto m = AddressMatcher::Parse(a);
      if (m.ok()) matchers.push_back(*m);  // validated with the config
    }
  };
  for (const auto& zc : config_.zones) {
    auto it = file_zones_.find(zc.name);
    if (it == file_zones_.end()) continue;
    snapshot->zones.Add(it->second);
    add_acl(it->second->origin(), zc.allow_transfer);
  }
  for (const auto& [name, zone] : api_built_) {
    snapshot->zones.Add(zone);
    add_acl(zone->origin(), config_.api_allow_transfer);
  }
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    current_ = std::move(snapshot);
  }
  generation_.fetch_add(1, std::memory_order_release);
}

StatusOr<std::string> ZoneManager::CanonicalZone(const std::string& zone) const {
  std::string name = zone;
  if (name.empty() || name.back() != '.') name += '.';
  auto wire = ParseName(name, kRoot);
  if (!wire.ok())
    return absl::InvalidArgumentError("zone name: " + std::string(wire.status().message()));
  if (name == ".") return absl::InvalidArgumentError("zone name: the root zone is not allowed");
  return Lower(name);
}

std::string ZoneManager::ApiZonePath(const std::string& name) const {
  // Zone names may hold escapes; the file name is a hash-free, safe spelling of the name.
  std::string file;
  for (char c : name) {
    if (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_') {
      file += c;
    } else {
      char buf[4];
      snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      file += buf;
    }
  }
  return config_.data_dir + "/zones/" + file + "json";
}

StatusOr<std::shared_ptr<const Zone>> ZoneManager::BuildApiZone(const ApiZone& zone) const {
  PHOTON_ASSIGN_OR_RETURN(std::string origin, ParseName(zone.name, kRoot));
  std::vector<Record> records;
  std::string mname = zone.ns.empty() ? "ns1." + zone.name : zone.ns[0];
  std::string soa = mname + " hostmaster." + zone.name + " " + std::to_string(zone.serial) +
                    " 3600 600 1209600 300";
  PHOTON_ASSIGN_OR_RETURN(std::string soa_rdata, ParseRdataText(kTypeSoa, soa, origin));
  records.push_back(Record{origin, kTypeSoa, zone.ttl, soa_rdata, "SOA"});
  for (const auto& ns : zone.ns) {
    PHOTON_ASSIGN_OR_RETURN(std::string rdata, ParseRdataText(kTypeNs, ns, origin));
    records.push_back(Record{origin, kTypeNs, zone.ttl, rdata, "NS " + ns});
  }
  // Names and types with a healthy checked record (or an unchecked one): only there are the
  // unhealthy ones left out.
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& r : zone.records) {
    if (r.check.port == 0 || !unhealthy_.contains(r.id)) served.insert({Lower(r.name), r.type});
  }
  for (const auto& r : zone.records) {
    if (unhealthy_.contains(r.id) && served.contains({Lower(r.name), r.type})) continue;
    PHOTON_ASSIGN_OR_RETURN(std::string owner, ParseName(r.name, origin));
    uint16_t type = TypeFromText(r.type);
    PHOTON_ASSIGN_OR_RETURN(std::string rdata, ParseRdataText(type, r.data, origin));
    records.push_back(Record{owner, type, r.ttl, rdata, "record " + r.id});
  }
  return BuildZone(std::move(records), origin, "api:" + zone.name);
}

Status ZoneManager::SaveApiZone(const ApiZone& zone) const {
  json j;
  j["name"] = zone.name;
  j["serial"] = zone.serial;
  j["ttl"] = zone.ttl;
  j["ns"] = zone.ns;
  if (!zone.owner.empty()) j["owner"] = zone.owner;
  j["records"] = json::array();
  for (const auto& r : zone.records) j["records"].push_back(RecordJson(r));
  return WriteFileAtomic(ApiZonePath(zone.name), j.dump(2) + "\n", 0600);
}

Status ZoneManager::LoadApiZones() {
  std::string dir = config_.data_dir + "/zones";
  PHOTON_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::InternalError("cannot open " + dir);
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) files.push_back(dir + "/" + n);
  }
  closedir(d);
  for (const auto& path : files) {
    PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    ApiZone zone;
    try {
      json j = json::parse(text);
      zone.name = j.at("name").get<std::string>();
      zone.serial = j.at("serial").get<uint32_t>();
      zone.ttl = j.at("ttl").get<uint32_t>();
      zone.ns = j.at("ns").get<std::vector<std::string>>();
      zone.owner = j.value("owner", "");  // absent in files written before owners existed
      for (const auto& r : j.at("records")) {
        zone.records.push_back(
            ApiRecord{r.at("id").get<std::string>(), r.at("name").get<std::string>(),
                      r.at("type").get<std::string>(), r.at("ttl").get<uint32_t>(),
                      r.at("data").get<std::string>(), r.value("owner", ""), RecordCheck{}});
        if (r.contains("health_check")) {
          const json& h = r["health_check"];
          RecordCheck& c = zone.records.back().check;
          c.port = h.at("port").get<int>();
          c.interval_ms = h.at("interval_ms").get<int>();
          c.timeout_ms = h.at("timeout_ms").get<int>();
          c.rise = h.at("rise").get<int>();
          c.fall = h.at("fall").get<int>();
        }
      }
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(path + ": " + e.what());
    }
    auto built = BuildApiZone(zone);
    if (!built.ok())
      return absl::InvalidArgumentError(path + ": " + std::string(built.status().message()));
    std::string key = Lower(zone.name);
    for (const auto& r : zone.records) {
      if (r.check.port > 0) checked_zones_.insert(key);
    }
    api_built_[key] = *built;
    api_zones_[key] = std::move(zone);
  }
  return absl::OkStatus();
}

StatusOr<std::string> ZoneManager::ListZonesJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = json::array();
  for (const auto& zc : config_.zones) {
    auto it = file_zones_.find(zc.name);
    json z = {{"name", zc.name}, {"source", "file"}, {"file", zc.file}};
    if (it != file_zones_.end()) {
      z["serial"] = it->second->serial();
      z["records"] = it->second->record_count();
    }
    out.push_back(z);
  }
  for (const auto& [key, zone] : api_zones_) {
    json z = {{"name", zone.name},
              {"source", "api"},
              {"serial", zone.serial},
              {"records", zone.records.size()}};
    if (!zone.owner.empty()) z["owner"] = zone.owner;
    out.push_back(z);
  }
  return json({{"zones", out}}).dump();
}

StatusOr<std::string> ZoneManager::GetZoneJson(const std::string& zone_name) const {
  PHOTON_ASSIGN_OR_RETURN(std::string key, CanonicalZone(zone_name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = api_zones_.find(key);
  if (it == api_zones_.end()) {
    for (const auto& zc : config_.zones) {
      if (Lower(zc.name) == key) {
        return json({{"name", zc.name}, {"source", "file"}, {"file", zc.file}}).dump();
      }
    }
    return absl::NotFoundError("zone " + key + " not found");
  }
  const ApiZone& zone = it->second;
  json records = json::array();
  for (const auto& r : zone.records) {
    records.push_back(RecordJson(r));
    if (r.check.port > 0) records.back()["healthy"] = !unhealthy_.contains(r.id);
  }
  json out = {{"name", zone.name}, {"source", "api"}, {"serial", zone.serial},
              {"ttl", zone.ttl},   {"ns", zone.ns},   {"records", records}};
  if (!zone.owner.empty()) out["owner"] = zone.owner;
  return out.dump();
}

Status ZoneManager::CreateZone(const std::string& zone_name, const std::vector<std::string>& ns,
                               uint32_t ttl, const std::string& owner) {
  PHOTON_ASSIGN_OR_RETURN(std::string key, CanonicalZone(zone_name));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& zc : config_.zones) {
    if (Lower(zc.name) == key) {
      return absl::AlreadyExistsError("zone " + key + " is served from file " + zc.file);
    }
  }
  if (auto it = api_zones_.find(key); it != api_zones_.end()) {
    return absl::AlreadyExistsError(
        "zone " + key + " exists" +
        (it->second.owner.empty() ? "" : " (owner '" + it->second.owner + "')"));
  }
  ApiZone zone;
  zone.name = key;
  zone.ttl = ttl;
  zone.ns = ns;
  zone.owner = owner;
  PHOTON_ASSIGN_OR_RETURN(auto built, BuildApiZone(zone));
  PHOTON_RETURN_IF_ERROR(SaveApiZone(zone));
  api_built_[key] = built;
  api_zones_[key] = std::move(zone);
  PublishLocked();
  spdlog::info("zone {} created through the API", key);
  return absl::OkStatus();
}

Status ZoneManager::DeleteZone(const std::string& zone_name) {
  PHOTON_ASSIGN_OR_RETURN(std::string key, CanonicalZone(zone_name));
  std::lock_guard<std::mutex> lock(mu_);
  if (!api_zones_.count(key)) {
    return absl::NotFoundError("zone " + key + " is not an API-managed zone");
  }
  if (unlink(ApiZonePath(key).c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError("cannot remove " + ApiZonePath(key));
  }
  // The removal is durable only once the directory entry is synced.
  int dir = open((config_.data_dir + "/zones").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  for (const auto& r : api_zones_[key].records) unhealthy_.erase(r.id);
  api_zones_.erase(key);
  api_built_.erase(key);
  checked_zones_.erase(key);
  PublishLocked();
  spdlog::info("zone {} deleted through the API", key);
  return absl::OkStatus();
}

StatusOr<ApiRecord> ZoneManager::AddRecord(const std::string& zone_name, ApiRecord record) {
  PHOTON_ASSIGN_OR_RETURN(std::string key, CanonicalZone(zone_name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = api_zones_.find(key);
  if (it == api_zones_.end()) {
    return absl::NotFoundError("zone " + key + " is not an API-managed zone");
  }
  uint16_t type = TypeFromText(record.type);
  if (type == 0 || type == kTypeSoa || type == kTypeOpt || type >= kTypeIxfr) {
    return absl::InvalidArgumentError("type: '" + record.type + "' cannot be added");
  }
  record.type = TypeToText(type);
  if (record.check.port > 0 && type != kTypeA && type != kTypeAaaa) {
    return absl::InvalidArgumentError("health_check: only A and AAAA records are checked");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string origin, ParseName(key, kRoot));
  PHOTON_ASSIGN_OR_RETURN(std::string owner, ParseName(record.name, origin));
  record.name = NameToText(owner);
  record.id = RandomHex(8);
  ApiZone updated = it->second;
  updated.records.push_back(record);
  ++updated.serial;  // secondaries see the change
  PHOTON_ASSIGN_OR_RETURN(auto built, BuildApiZone(updated));
  PHOTON_RETURN_IF_ERROR(SaveApiZone(updated));
  it->second = std::move(updated);
  api_built_[key] = built;
  if (record.check.port > 0) checked_zones_.insert(key);
  PublishLocked();
  return record;
}

Status ZoneManager::DeleteRecord(const std::string& zone_name, const std::string& id) {
  PHOTON_ASSIGN_OR_RETURN(std::string key, CanonicalZone(zone_name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = api_zones_.find(key);
  if (it == api_zones_.end()) {
    return absl::NotFoundError("zone " + key + " is not an API-managed zone");
  }
  ApiZone updated = it->second;
  auto rit = std::find_if(updated.records.begin(), updated.records.end(),
                          [&](const ApiRecord& r) { return r.id == id; });
  if (rit == updated.records.end()) return absl::NotFoundError("record " + id + " not found");
  unhealthy_.erase(rit->id);
  updated.records.erase(rit);
  ++updated.serial;
  PHOTON_ASSIGN_OR_RETURN(auto built, BuildApiZone(updated));
  PHOTON_RETURN_IF_ERROR(SaveApiZone(updated));
  it->second = std::move(updated);
  api_built_[key] = built;
  PublishLocked();
  return absl::OkStatus();
}

std::vector<ZoneManager::CheckTarget> ZoneManager::CheckTargets() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CheckTarget> out;
  for (const auto& key : checked_zones_) {
    auto zone = api_zones_.find(key);
    if (zone == api_zones_.end()) continue;
    for (const auto& r : zone->second.records) {
      if (r.check.port > 0) out.push_back({key, r.id, r.data, r.check});
    }
  }
  return out;
}

Status ZoneManager::SetRecordHealthy(const std::string& zone_key, const std::string& id,
                                     bool healthy) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = api_zones_.find(zone_key);
  if (it == api_zones_.end()) return absl::NotFoundError("zone " + zone_key + " is gone");
  bool was = !unhealthy_.contains(id);
  if (was == healthy) return absl::OkStatus();
  if (healthy) {
    unhealthy_.erase(id);
  } else {
    unhealthy_.insert(id);
  }
  ApiZone updated = it->second;
  ++updated.serial;
  auto built = BuildApiZone(updated);
  Status saved = built.ok() ? SaveApiZone(updated) : built.status();
  if (!saved.ok()) {
    if (healthy) {  // as it was
      unhealthy_.insert(id);
    } else {
      unhealthy_.erase(id);
    }
    return saved;
  }
  it->second = std::move(updated);
  api_built_[zone_key] = *built;
  PublishLocked();
  return absl::OkStatus();
}

}  // namespace photon::flashdns
