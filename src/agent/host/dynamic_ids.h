// Dynamic users for tenant workloads, as systemd's DynamicUser: each running instance gets a
// uid (and the gid of the same number) of its own from a range the node's owner reserves for
// PhotonCloud, so no workload runs as root or shares a user with another instance. The range
// is a driver option (`uid_base`, `uid_count`; default 2000000 + 65536, above the ranges
// Debian hands to people, system users and /etc/subuid).
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace photon::agent {

class DynamicIds {
 public:
  static constexpr uid_t kDefaultBase = 2000000;
  static constexpr uid_t kDefaultCount = 65536;

  // INVALID_ARGUMENT naming the option when `uid_base`/`uid_count` in `config` are not numbers,
  // the base is below 1000 (a system or human user) or the range wraps.
  static StatusOr<std::unique_ptr<DynamicIds>> FromConfig(
      const std::map<std::string, std::string>& config);

  DynamicIds(uid_t base, uid_t count) : base_(base), count_(count) {}

  // The uid of `owner` (allocated on first call, the lowest free one); RESOURCE_EXHAUSTED when
  // the range is full.
  StatusOr<uid_t> Acquire(const std::string& owner);
  // Records a uid found in a persisted handle. False when it is outside the range or taken.
  bool Adopt(uid_t uid, const std::string& owner);
  void Release(const std::string& owner);
  bool InRange(uid_t uid) const { return uid >= base_ && uid - base_ < count_; }

 private:
  uid_t base_;
  uid_t count_;
  mutable std::mutex mu_;
  std::map<uid_t, std::string> owners_;
};

}  // namespace photon::agent
