#include "lightningstor/key_store.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/util.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kDefaultUser = "lightningstor";

int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  // The file is replaced by rename on every change, so the inode number tells changes apart
  // even within one coarse mtime tick.
  uint64_t stamp = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u + st.st_mtim.tv_nsec;
  return static_cast<int64_t>((stamp * 31 + st.st_ino) & 0x7fffffffffffffffu);
}

}  // namespace

StatusOr<std::vector<AccessKey>> KeyStore::ReadLocked() {
  int64_t mtime = MtimeNs(path_);
  if (mtime < 0) {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    cache_.clear();
    cache_mtime_ns_ = -1;
    loaded_mtime_ns_.store(-1, std::memory_order_release);
    return cache_;
  }
  if (mtime == cache_mtime_ns_) return cache_;
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path_));
  std::vector<AccessKey> keys;
  try {
    auto doc = nlohmann::json::parse(text);
    for (const auto& k : doc.at("keys")) {
      keys.push_back({k.at("id").get<std::string>(), k.at("secret").get<std::string>(),
                      k.value("name", ""), k.value("created", ""),
                      k.value("user", std::string(kDefaultUser))});
    }
  } catch (const std::exception& e) {
    return absl::DataLossError("keys file " + path_ + " is corrupt: " + e.what());
  }
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    cache_ = keys;
  }
  cache_mtime_ns_ = mtime;
  loaded_mtime_ns_.store(mtime, std::memory_order_release);
  return keys;
}

Status KeyStore::WriteLocked(const std::vector<AccessKey>& keys) {
  nlohmann::json doc;
  doc["keys"] = nlohmann::json::array();
  for (const auto& k : keys) {
    doc["keys"].push_back({{"id", k.id},
                           {"secret", k.secret},
                           {"name", k.name},
                           {"created", k.created},
                           {"user", k.user}});
  }
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path_, doc.dump(2) + "\n", 0600));
  chmod(path_.c_str(), 0600);
  cache_mtime_ns_ = -1;  // force a re-read
  return absl::OkStatus();
}

Status ValidateUserName(const std::string& user) {
  bool ok = !user.empty() && user.size() <= 64 && isalnum(static_cast<unsigned char>(user[0]));
  for (char c : user) {
    ok = ok &&
         ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError("user name '" + user +
                                      "': 1-64 characters of a-z 0-9 . _ -, starting with a "
                                      "letter or digit");
  }
  return absl::OkStatus();
}

StatusOr<AccessKey> KeyStore::Create(const std::string& name, const std::string& user) {
  PHOTON_RETURN_IF_ERROR(ValidateUserName(user));
  std::lock_guard<std::mutex> lock(mu_);
  PHOTON_ASSIGN_OR_RETURN(auto keys, ReadLocked());
  AccessKey key;
  std::string hex = RandomHex(9);
  for (auto& c : hex) c = static_cast<char>(toupper(c));
  key.id = "LS" + hex;
  key.secret = RandomHex(20);
  key.name = name;
  key.created = NowRfc3339();
  key.user = user;
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

void KeyStore::RefreshIfChanged() {
  // One stat per call and no lock unless the file changed, so a deleted key stops working at
  // once without serialising requests.
  if (MtimeNs(path_) == loaded_mtime_ns_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(mu_);
  (void)ReadLocked();
}

std::optional<AccessKey> KeyStore::Lookup(const std::string& id) {
  RefreshIfChanged();
  std::shared_lock<std::shared_mutex> lock(cache_mu_);
  for (const auto& k : cache_)
    if (k.id == id) return k;
  return std::nullopt;
}

bool KeyStore::UserExists(const std::string& user) {
  if (user == kDefaultUser) return true;
  RefreshIfChanged();
  std::shared_lock<std::shared_mutex> lock(cache_mu_);
  for (const auto& k : cache_)
    if (k.user == user) return true;
  return false;
}

}  // namespace photon::lightningstor
