// IPv4 addresses and CIDR blocks for prismnet's validation and IPAM. The routed design (seed
// 003) gives every instance a /32 of the one routing domain, so only IPv4 is accepted.
// Pure value types and functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace photon::server::prismnet {

struct Cidr {
  uint32_t base = 0;  // host order, host bits zero
  int prefix = 0;     // 0..32

  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  uint32_t last() const { return static_cast<uint32_t>(base + size() - 1); }
  bool Contains(uint32_t addr) const { return addr >= base && addr <= last(); }
  bool Contains(const Cidr& o) const { return o.base >= base && o.last() <= last(); }
  bool Overlaps(const Cidr& o) const { return base <= o.last() && o.base <= last(); }
  std::string ToString() const;
};

// "10.0.0.0/16". Refuses host bits set ("10.0.0.1/16 has host bits set; 10.0.0.0/16"), a
// missing prefix, IPv6 and anything else, naming `field`.
StatusOr<Cidr> ParseCidr(const std::string& field, const std::string& text);
// One dotted-quad address, naming `field` when it is not.
StatusOr<uint32_t> ParseAddress(const std::string& field, const std::string& text);
std::string FormatAddress(uint32_t addr);

// Addresses IPAM never hands out: the network address, the first address (.1, the
// conventional gateway), `gateway` when set elsewhere, and the broadcast address.
bool Reserved(const Cidr& subnet, uint32_t gateway, uint32_t addr);
// How many addresses of `subnet` IPAM can hand out.
uint64_t Usable(const Cidr& subnet, uint32_t gateway);

}  // namespace photon::server::prismnet
