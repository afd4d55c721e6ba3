// The listing walk behind ListObjects (V1 and V2): prefix, delimiter (CommonPrefixes),
// a start marker and max-keys over a key-ordered source of latest versions. A common prefix
// is skipped in one seek rather than key by key, so a "directory" of a million keys costs one
// query. Pure logic over a fetch callback; thread-compatible.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "lightningstor/meta_store.h"

namespace photon::lightningstor {

// Returns up to `limit` latest-version entries under the prefix with key > from (>= when
// inclusive), in key order.
using ListFetch = std::function<StatusOr<std::vector<ListEntry>>(const std::string& from,
                                                                 bool inclusive, int limit)>;

struct ListParams {
  std::string prefix;
  std::string delimiter;
  std::string start_after;  // exclusive
  int max_keys = 1000;
};

struct ListOutcome {
  std::vector<ListEntry> contents;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string last;  // last key or common prefix returned (the next marker)
};

StatusOr<ListOutcome> ListWithDelimiter(const ListFetch& fetch, const ListParams& params);

// Smallest string greater than all strings with this prefix ("" when none exists).
std::string PrefixSuccessor(const std::string& prefix);

}  // namespace photon::lightningstor
