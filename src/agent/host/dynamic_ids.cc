#include "agent/host/dynamic_ids.h"

#include "absl/strings/numbers.h"

namespace photon::agent {

StatusOr<std::unique_ptr<DynamicIds>> DynamicIds::FromConfig(
    const std::map<std::string, std::string>& config) {
  uint64_t base = kDefaultBase, count = kDefaultCount;
  if (auto it = config.find("uid_base"); it != config.end()) {
    if (!absl::SimpleAtoi(it->second, &base) || base < 1000) {
      return absl::InvalidArgumentError("uid_base: want a number of at least 1000, got '" +
                                        it->second + "'");
    }
  }
  if (auto it = config.find("uid_count"); it != config.end()) {
    if (!absl::SimpleAtoi(it->second, &count) || count == 0) {
      return absl::InvalidArgumentError("uid_count: want a positive number, got '" + it->second +
                                        "'");
    }
  }
  // 65534 is nobody and (uid_t)-1 means "unchanged" to setresuid.
  if (base + count > 0xFFFFFFFEull || (base <= 65534 && 65534 < base + count)) {
    return absl::InvalidArgumentError("uid_base/uid_count: the range must not wrap or hold 65534");
  }
  return std::make_unique<DynamicIds>(static_cast<uid_t>(base), static_cast<uid_t>(count));
}

StatusOr<uid_t> DynamicIds::Acquire(const std::string& owner) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [uid, o] : owners_) {
    if (o == owner) return uid;
  }
  uid_t next = base_;
  for (const auto& [uid, o] : owners_) {  // ordered: the first gap is the lowest free uid
    if (uid != next) break;
    ++next;
  }
  if (next - base_ >= count_) {
    return absl::ResourceExhaustedError("all " + std::to_string(count_) +
                                        " dynamic uids of this node are in use");
  }
  owners_[next] = owner;
  return next;
}

bool DynamicIds::Adopt(uid_t uid, const std::string& owner) {
  std::lock_guard<std::mutex> l(mu_);
  if (!InRange(uid)) return false;
  auto [it, inserted] = owners_.emplace(uid, owner);
  return inserted || it->second == owner;
}

void DynamicIds::Release(const std::string& owner) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = owners_.begin(); it != owners_.end(); ++it) {
    if (it->second == owner) {
      owners_.erase(it);
      return;
    }
  }
}

}  // namespace photon::agent
