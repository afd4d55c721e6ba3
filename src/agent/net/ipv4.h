// IPv4 addresses and CIDR blocks as the node data path needs them: parsed strictly (a CIDR
// must be aligned: 10.0.0.1/8 is refused, not silently read as 10.0.0.0/8).
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace photon::agent::net {

StatusOr<uint32_t> ParseIpv4(const std::string& text);  // host byte order
std::string FormatIpv4(uint32_t addr);

struct Cidr {
  uint32_t base = 0;
  int len = 0;
  bool Contains(uint32_t addr) const;
  std::string ToString() const;
};

// "a.b.c.d/len" (len 0-32); a bare address is a /32. `field` names the input in errors.
StatusOr<Cidr> ParseCidr(const std::string& text, const std::string& field);

}  // namespace photon::agent::net
