#include "lightningstor/key_store.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/util.h"

namespace photon::lightningstor {
namespace {

int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

StatusOr<std::vector<AccessKey>> KeyStore::ReadLocked() {
  int64_t mtime = MtimeNs(path_);
  if (mtime < 0) {
    cache_.clear();
    cache_mtime_ns_ = -1;
    return cache_;
  }
  if (mtime == cache_mtime_ns_) return cache_;
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path_));
  std::vector<AccessKey> keys;
  try {
    auto doc = nlohmann::json::parse(text);
    for (const auto& k : doc.at("keys")) {
      keys.push_back({k.at("id").get<std::string>(), k.at("secret").get<std::string>(),
                      k.value("name", ""), k.value("created", "")});
    }
  } catch (const std::exception& e) {
    return absl::DataLossError("keys file " + path_ + " is corrupt: " + e.what());
  }
  cache_ = keys;
  cache_mtime_ns_ = mtime;
  return keys;
}

Status KeyStore::WriteLocked(const std::vector<AccessKey>& keys) {
  nlohmann::json doc;
  doc["keys"] = nlohmann::json::array();
  for (const auto& k : keys) {
    doc["keys"].push_back(
        {{"id", k.id}, {"secret", k.secret}, {"name", k.name}, {"created", k.created}});
  }
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path_, doc.dump(2) + "\n", 0600));
  chmod(path_.c_str(), 0600);
  cache_mtime_ns_ = -1;  // force a re-read
  return absl::OkStatus();
}

StatusOr<AccessKey> KeyStore::Create(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  PHOTON_ASSIGN_OR_RETURN(auto keys, ReadLocked());
  AccessKey key;
  std::string hex = RandomHex(9);
  for (auto& c : hex) c = static_cast<char>(toupper(c));
  key.id = "LS" + hex;
  key.secret = RandomHex(20);
  key.name = name;
  key.created = NowRfc3339();
  keys.push_back(key);
  PHOTON_RETURN_IF_ERROR(WriteLocked(keys));
  return key;
}

StatusOr<std::vector<AccessKey>> KeyStore::List() {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadLocked();
}

Status KeyStore::Delete(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  PHOTON_ASSIGN_OR_RETURN(auto keys, ReadLocked());
  auto it = std::find_if(keys.begin(), keys.end(), [&](const AccessKey& k) { return k.id == id; });
  if (it == keys.end()) return absl::NotFoundError("no access key with id " + id);
  keys.erase(it);
  return WriteLocked(keys);
}

std::optional<std::string> KeyStore::Secret(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto keys = ReadLocked();
  if (!keys.ok()) return std::nullopt;
  for (const auto& k : *keys)
    if (k.id == id) return k.secret;
  return std::nullopt;
}

}  // namespace photon::lightningstor
