// A local cache of one kind kept current by list + watch (the Kubernetes informer): lists
// once, then watches from the list's revision; on a broken stream it resumes from the last
// revision seen and on 410 (revision compacted) it relists, reporting objects that vanished
// meanwhile as changed keys too. Keys are "namespace/name".
// Thread-safety: Get/Keys from any thread; Sync and Run from one thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/api_client.h"

namespace photon::agent {

class Informer {
 public:
  // path: the collection, e.g. "/v1/computeinstances", with a query if it selects
  // ("?fieldSelector=metadata.agentId%3Dnode-1"). on_change is called for every key
  // that was added, modified or deleted (after the cache is updated).
  Informer(ApiClient* api, std::string path, std::function<void(const std::string&)> on_change);

  // Lists the collection into the cache (all pages).
  Status Sync();
  // Watches until *stop; reconnects and relists on its own.
  void Run(const std::atomic<bool>* stop);

  std::optional<nlohmann::json> Get(const std::string& key) const;
  std::vector<std::string> Keys() const;

  static std::string KeyOf(const nlohmann::json& object);

 private:
  const char* Sep() const;  // "?" or "&": what joins path_ and more query parameters

  ApiClient* api_;
  std::string path_;
  std::function<void(const std::string&)> on_change_;
  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> cache_;
  std::string resource_version_;
};

}  // namespace photon::agent
