// AXFR (RFC 5936): a zone streamed as a sequence of DNS messages over TCP, starting and
// ending with the SOA. Access is checked against the zone's allow_transfer list.
// Thread-safety: free functions over immutable data.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "flashdns/query.h"
#include "flashdns/zone.h"

namespace photon::flashdns {

// An address or CIDR block ("192.0.2.1", "2001:db8::/32").
class AddressMatcher {
 public:
  static StatusOr<AddressMatcher> Parse(const std::string& text);
  bool Matches(const sockaddr_storage& addr) const;

 private:
  int family_ = AF_INET;
  uint8_t bytes_[16] = {};
  int prefix_ = 0;
};

// Sends the zone to `send` (one call per message, payload without the TCP length prefix);
// stops and returns false when `send` does.
bool WriteAxfr(const Zone& zone, const ParsedQuery& q,
               const std::function<bool(const uint8_t*, size_t)>& send);

}  // namespace photon::flashdns
