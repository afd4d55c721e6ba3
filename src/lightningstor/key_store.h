// Access keys (id + secret) in one JSON file of mode 0600 in the data dir, written atomically.
// The CLI edits the file; the daemon reads it and re-reads it when an unknown key id shows up
// and the file changed, so keys created while it runs work at once. Thread-safe.
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
};

class KeyStore {
 public:
  explicit KeyStore(std::string path) : path_(std::move(path)) {}

  StatusOr<AccessKey> Create(const std::string& name);
  StatusOr<std::vector<AccessKey>> List();
  // NotFound when no key has this id.
  Status Delete(const std::string& id);
  // The secret for an access key id, or nullopt.
  std::optional<std::string> Secret(const std::string& id);

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
