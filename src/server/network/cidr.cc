#include "server/network/cidr.h"

#include <arpa/inet.h>

namespace photon::server::prismnet {

std::string FormatAddress(uint32_t addr) {
  in_addr a{htonl(addr)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string Cidr::ToString() const { return FormatAddress(base) + "/" + std::to_string(prefix); }

StatusOr<uint32_t> ParseAddress(const std::string& field, const std::string& text) {
  in_addr a{};
  // inet_pton takes only the four-part decimal form (no "10.1", no octal), as wanted.
  if (text.empty() || inet_pton(AF_INET, text.c_str(), &a) != 1) {
    if (text.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(field + ": '" + text +
                                        "' is IPv6; VPC networks are IPv4 only");
    }
    return absl::InvalidArgumentError(field + ": '" + text + "' is not an IPv4 address");
  }
  return ntohl(a.s_addr);
}

StatusOr<Cidr> ParseCidr(const std::string& field, const std::string& text) {
  const size_t slash = text.find('/');
  if (text.empty()) return absl::InvalidArgumentError(field + ": required");
  if (slash == std::string::npos) {
    return absl::InvalidArgumentError(field + ": '" + text +
                                      "' is not a CIDR block (want ADDRESS/PREFIX, e.g. "
                                      "10.0.0.0/16)");
  }
  PHOTON_ASSIGN_OR_RETURN(uint32_t addr, ParseAddress(field, text.substr(0, slash)));
  const std::string p = text.substr(slash + 1);
  if (p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(p) > 32) {
    return absl::InvalidArgumentError(field + ": '" + text + "' has no prefix length 0..32");
  }
  Cidr c{addr, std::stoi(p)};
  const uint32_t mask = c.prefix == 0 ? 0 : ~uint32_t{0} << (32 - c.prefix);
  if ((addr & mask) != addr) {
    c.base = addr & mask;
    return absl::InvalidArgumentError(field + ": '" + text + "' has host bits set; did you mean " +
                                      c.ToString() + "?");
  }
  return c;
}

bool Reserved(const Cidr& subnet, uint32_t gateway, uint32_t addr) {
  return addr == subnet.base || addr == subnet.base + 1 || addr == subnet.last() || addr == gateway;
}

uint64_t Usable(const Cidr& subnet, uint32_t gateway) {
  if (subnet.prefix > 30) return 0;
  uint64_t n = subnet.size() - 3;
  if (gateway != subnet.base + 1 && subnet.Contains(gateway) && !Reserved(subnet, 0, gateway)) {
    --n;
  }
  return n;
}

}  // namespace photon::server::prismnet
