// Helpers shared by the files of NetworkManager (not part of its interface).
#pragma once

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <utility>

#include "common/status.h"
#include "photon/resource.pb.h"
#include "store/store.h"

namespace photon::server::prismnet {

inline store::Compare ModIs(const std::string& key, int64_t revision) {
  return {.key = key,
          .target = store::Compare::Target::kModRevision,
          .op = store::Compare::Op::kEqual,
          .number = revision};
}
inline store::Compare Absent(const std::string& key) {
  return {.key = key,
          .target = store::Compare::Target::kCreateRevision,
          .op = store::Compare::Op::kEqual,
          .number = 0};
}
inline store::TxnOp PutOp(const std::string& key, std::string value) {
  return {.type = store::TxnOp::Type::kPut, .key = key, .value = std::move(value)};
}
inline store::TxnOp DeleteOp(const std::string& key) {
  return {.type = store::TxnOp::Type::kDelete, .key = key};
}

// One stored object and its mod revision; nullopt when the key is absent.
template <typename T>
StatusOr<std::optional<std::pair<T, int64_t>>> ReadObject(store::Store* store,
                                                          const std::string& key) {
  auto r = store->Range(key);
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) return std::optional<std::pair<T, int64_t>>();
  T obj;
  if (!obj.ParseFromString(r->kvs[0].value)) return absl::DataLossError("corrupt object " + key);
  return std::make_optional(std::make_pair(std::move(obj), r->kvs[0].mod_revision));
}

// Sets (or adds) the condition `type` of `st`.
void SetCondition(resource::ResourceStatus* st, const std::string& type, bool ok,
                  const std::string& reason, const std::string& message);

std::string IpamKey(const std::string& ns, const std::string& subnet, uint32_t address);

}  // namespace photon::server::prismnet
