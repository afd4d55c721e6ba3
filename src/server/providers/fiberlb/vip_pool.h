// The VIPs of L4 LoadBalancers (docs/fiberlb.md "L4 LoadBalancers"): allocated from the fiberlb
// provider's `vip_pool` (an IPv4 CIDR) and held in the state store under
// /fiberlb-vips/<owner>/<vip> = "<namespace>/<name>", outside /registry/ (no API reads it).
// Each allocation is a create-only transaction, so two LoadBalancers never get the same VIP,
// even from two servers; it survives a restart, and is given back when its LoadBalancer goes.
// Thread-compatible (the service controller's one worker calls it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace photon::server {

class VipPool {
 public:
  // INVALID_ARGUMENT unless `cidr` is an aligned IPv4 block of /16../32.
  static StatusOr<VipPool> Parse(const std::string& owner, const std::string& cidr);

  // The VIP held by namespace/name, allocating the lowest free one when it has none;
  // RESOURCE_EXHAUSTED when the pool is full.
  StatusOr<std::string> Acquire(store::Store* store, const std::string& ns,
                                const std::string& name) const;
  // The VIP held by namespace/name, "" when none.
  StatusOr<std::string> Find(store::Store* store, const std::string& ns,
                             const std::string& name) const;
  // Every holder, "<namespace>/<name>".
  StatusOr<std::vector<std::string>> Holders(store::Store* store) const;
  // Gives back what namespace/name holds (nothing held: OK).
  Status Release(store::Store* store, const std::string& ns, const std::string& name) const;

  const std::string& cidr() const { return cidr_; }

  // The L3DSR DSCP (1-63) marking `vip` on the way to members behind a router: derived from
  // its place in the pool, so every LB node and member agrees without storing it, and
  // distinct for every VIP of a pool of up to 63 addresses (larger pools reuse marks: a
  // member holds one VIP, so its restore stays unambiguous). 0 for an address not in the pool.
  int Dscp(const std::string& vip) const;

 private:
  VipPool(std::string prefix, std::string cidr, uint32_t first, uint32_t last)
      : prefix_(std::move(prefix)), cidr_(std::move(cidr)), first_(first), last_(last) {}
  StatusOr<store::RangeResult> List(store::Store* store) const;

  std::string prefix_;  // /fiberlb-vips/<owner>/
  std::string cidr_;
  uint32_t first_, last_;  // host byte order, inclusive
};

}  // namespace photon::server
