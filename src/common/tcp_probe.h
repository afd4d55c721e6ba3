// A TCP connect as a health check: GSLB checkers in flashdns (record_health.h, /v1/probe) and
// photon-server (the gslb provider) judge a VIP by whether it accepts a connection.
#pragma once

#include <string>

namespace photon {

// "ok", or why a TCP connect to address:port (an IPv4 or IPv6 literal) failed within
// timeout_ms ("Connection refused", "timeout", "not an IP address", ...). The connection is
// closed at once; nothing is sent.
std::string CheckTcpConnect(const std::string& address, int port, int timeout_ms);

}  // namespace photon
