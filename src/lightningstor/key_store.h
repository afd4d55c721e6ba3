// Access keys (id + secret, belonging to a user) in one JSON file of mode 0600 in the data dir,
// written atomically. The CLI edits the file; the daemon reads it and re-reads it when an unknown
// key id shows up and the file changed, so keys created while it runs work at once. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::lightningstor {

struct AccessKey {
  std::string id;
  std::string secret;
  std::string name;
  std::string created;  // RFC 3339
  // The account the key acts as (owner of what it creates). Keys made before accounts existed
  // belong to the default account, "lightningstor".
  std::string user;
};

// User names: 1-64 characters of a-z 0-9 . _ - starting with a letter or digit
// (InvalidArgument otherwise); they are the accounts' canonical IDs.
Status ValidateUserName(const std::string& user);

class KeyStore {
 public:
  explicit KeyStore(std::string path) : path_(std::move(path)) {}

  StatusOr<AccessKey> Create(const std::string& name, const std::string& user);
  StatusOr<std::vector<AccessKey>> List();
  // NotFound when no key has this id.
  Status Delete(const std::string& id);
  // The key with this id, or nullopt.
  std::optional<AccessKey> Lookup(const std::string& id);
  // Whether an account of this name exists: the default account, or a user with a key.
  bool UserExists(const std::string& user);

 private:
  StatusOr<std::vector<AccessKey>> ReadLocked();
  Status WriteLocked(const std::vector<AccessKey>& keys);

  // Re-reads the file if its mtime differs from the loaded one.
  void RefreshIfChanged();

  std::string path_;
  std::mutex mu_;               // serialises file reads and writes
  std::shared_mutex cache_mu_;  // guards cache_ for the request path
  std::vector<AccessKey> cache_;
  int64_t cache_mtime_ns_ = -1;
  std::atomic<int64_t> loaded_mtime_ns_{-2};  // -2: never loaded
};

}  // namespace photon::lightningstor
