#include "agent/net/ipv4.h"

#include <arpa/inet.h>

namespace photon::agent::net {

StatusOr<uint32_t> ParseIpv4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) {
    return absl::InvalidArgumentError("'" + text + "' is not an IPv4 address");
  }
  return ntohl(a.s_addr);
}

std::string FormatIpv4(uint32_t addr) {
  in_addr a{htonl(addr)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

static uint32_t Mask(int len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

bool Cidr::Contains(uint32_t addr) const { return (addr & Mask(len)) == base; }

std::string Cidr::ToString() const { return FormatIpv4(base) + "/" + std::to_string(len); }

StatusOr<Cidr> ParseCidr(const std::string& text, const std::string& field) {
  auto slash = text.find('/');
  Cidr c;
  c.len = 32;
  if (slash != std::string::npos) {
    std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != len.npos ||
        std::stoi(len) > 32) {
      return absl::InvalidArgumentError(field + ": '" + text + "' has no prefix length 0-32");
    }
    c.len = std::stoi(len);
  }
  auto addr = ParseIpv4(text.substr(0, slash));
  if (!addr.ok())
    return absl::InvalidArgumentError(field + ": " + std::string(addr.status().message()));
  if ((*addr & Mask(c.len)) != *addr) {
    return absl::InvalidArgumentError(field + ": '" + text + "' has host bits set (" +
                                      FormatIpv4(*addr & Mask(c.len)) + "/" +
                                      std::to_string(c.len) + "?)");
  }
  c.base = *addr;
  return c;
}

}  // namespace photon::agent::net
