// OpenStore: picks the backend from the spec. PrefixEnd: etcd's prefix-to-range rule.
// Thread-safe (no shared state).
#include "store/store.h"

#include <string_view>

#include "store/etcd_store.h"
#include "store/sqlite_store.h"

namespace photon::store {

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    // 0xff cannot be incremented; carry into the previous byte.
    end.pop_back();
  }
  return std::string(1, '\0');
}

StatusOr<std::vector<std::string>> Store::ReadLog(const std::string& stream, int64_t limit) {
  PHOTON_ASSIGN_OR_RETURN(LogPage page, ReadLogPage(stream, {.limit = limit}));
  return std::move(page.records);
}

StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  constexpr std::string_view kEtcdScheme = "etcd://";
  if (options.spec == "sqlite" || options.spec.empty()) {
    if (options.data_dir.empty()) {
      return absl::InvalidArgumentError("store: sqlite backend needs a data_dir");
    }
    PHOTON_ASSIGN_OR_RETURN(
        auto store,
        SqliteStore::Open(options.data_dir + "/state.db",
                          SqliteStore::Options{options.group_commit_max_batch, options.metrics}));
    return std::unique_ptr<Store>(std::move(store));
  }
  if (options.spec.starts_with(kEtcdScheme)) {
    std::vector<std::string> endpoints;
    std::string_view rest = std::string_view(options.spec).substr(kEtcdScheme.size());
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view endpoint = rest.substr(0, comma);
      if (!endpoint.empty()) endpoints.emplace_back(endpoint);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (endpoints.empty()) {
      return absl::InvalidArgumentError("store: no endpoint in spec '" + options.spec + "'");
    }
    PHOTON_ASSIGN_OR_RETURN(auto store, EtcdStore::Open(endpoints));
    return std::unique_ptr<Store>(std::move(store));
  }
  return absl::InvalidArgumentError("store: unknown spec '" + options.spec +
                                    "' (want \"sqlite\" or \"etcd://host:port[,...]\")");
}

}  // namespace photon::store
