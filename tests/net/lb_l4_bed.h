// The L4 load-balancing scene on the multi-host bed (tests/net/netbed.h), shared by fiberlb's
// L4 test and benchmark: the router made an ECMP router (BIRD's `merge paths`, L4 hash), a
// client namespace PFX-c behind the router (172.16.0.2), and DSR members PFX-m<i> on the
// underlay (192.168.10.2<i>) holding the VIP on their loopback. Everything is named under the
// bed's prefix, so the bed's teardown removes it.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "agent/net/bird.h"
#include "fiberlb/l4/l4_balancer.h"
#include "tests/net/netbed.h"

namespace photon::net_testing {

inline std::string LbMemberIp(int i) { return "192.168.10." + std::to_string(20 + i); }
inline constexpr char kLbClientIp[] = "172.16.0.2";

inline Status LbRun(const NetBed& bed, const std::string& node,
                    const std::vector<std::string>& argv) {
  int rc = 0;
  std::string out = bed.Run(node, argv, &rc);
  if (rc != 0) return absl::InternalError(argv[0] + " " + argv[1] + " in " + node + ": " + out);
  return absl::OkStatus();
}

// ECMP over equal BGP paths, hashed on the L4 5-tuple (fib_multipath_hash_policy=1).
inline Status LbEcmpRouter(const NetBed& bed) {
  PHOTON_RETURN_IF_ERROR(
      LbRun(bed, "r", {"sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"}));
  std::string path = "/run/photon-netbed/" + bed.prefix() + "/r.conf";
  std::ifstream in(path);
  std::stringstream conf;
  conf << in.rdbuf();
  std::string text = conf.str();
  const std::string anchor = "protocol kernel {";
  size_t at = text.find(anchor);
  if (at == std::string::npos) return absl::InternalError("router BIRD config: " + text);
  text.insert(at + anchor.size(), "\n  merge paths on;");
  return agent::net::ReconfigureBird(path, bed.BirdSocket("r"), text);
}

// The client sits behind the router on its own link, as the Internet would; source ports
// 40000-44999 are left to the suites' fixed-port probes.
inline Status LbClient(const NetBed& bed) {
  const std::string c = bed.Ns("c");
  for (const auto& [node, argv] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"", {"ip", "netns", "add", c}},
           {"r", {"ip", "link", "add", "cl0", "type", "veth", "peer", "name", "eth0", "netns", c}},
           {"r", {"ip", "addr", "add", "172.16.0.1/30", "dev", "cl0"}},
           {"r", {"ip", "link", "set", "cl0", "up"}},
           {"c", {"ip", "addr", "add", std::string(kLbClientIp) + "/30", "dev", "eth0"}},
           {"c", {"ip", "link", "set", "eth0", "up"}},
           {"c", {"ip", "link", "set", "lo", "up"}},
           {"c", {"ip", "route", "add", "default", "via", "172.16.0.1"}},
           // The suites probe flows from fixed source ports (40000-44999): the kernel must not
           // give one of them to another connection, whose TIME_WAIT would then refuse a probe
           // on the same 4-tuple for a minute (seen once in CI as "new flows found no member").
           {"c", {"sysctl", "-qw", "net.ipv4.ip_local_reserved_ports=40000-44999"}}}) {
    PHOTON_RETURN_IF_ERROR(LbRun(bed, node, argv));
  }
  return absl::OkStatus();
}

// Member i on the underlay (the LB nodes' L2 segment), `vip` on its loopback.
inline Status LbMember(const NetBed& bed, int i, const std::string& vip) {
  const std::string node = "m" + std::to_string(i), ns = bed.Ns(node);
  for (const auto& [where, argv] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"", {"ip", "netns", "add", ns}},
           {"ul", {"ip", "link", "add", node, "type", "veth", "peer", "name", "ul0", "netns", ns}},
           {"ul", {"ip", "link", "set", node, "master", "br0", "up"}},
           {node, {"ip", "addr", "add", LbMemberIp(i) + "/24", "dev", "ul0"}},
           {node, {"ip", "link", "set", "ul0", "up"}},
           {node, {"ip", "route", "add", "default", "via", "192.168.10.1"}}}) {
    PHOTON_RETURN_IF_ERROR(LbRun(bed, where, argv));
  }
  return fiberlb::l4::ConfigureDsrMember(bed.NsPath(node), vip);
}

// Member i behind the router on its own link (172.17.i.2/30): reached by L3DSR, `dscp` marking
// the VIP.
inline Status LbRoutedMember(const NetBed& bed, int i, const std::string& vip, uint8_t dscp) {
  const std::string node = "m" + std::to_string(i), ns = bed.Ns(node), link = node + "l";
  const std::string net = "172.17." + std::to_string(i) + ".";
  for (const auto& [where, argv] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"", {"ip", "netns", "add", ns}},
           {"r", {"ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns}},
           {"r", {"ip", "addr", "add", net + "1/30", "dev", link}},
           {"r", {"ip", "link", "set", link, "up"}},
           {node, {"ip", "addr", "add", net + "2/30", "dev", "eth0"}},
           {node, {"ip", "link", "set", "eth0", "up"}},
           {node, {"ip", "route", "add", "default", "via", net + "1"}}}) {
    PHOTON_RETURN_IF_ERROR(LbRun(bed, where, argv));
  }
  return fiberlb::l4::ConfigureDsrMember(bed.NsPath(node), vip, dscp, "eth0");
}

// Next hops of `vip` at the router (0: no route).
inline int LbRouterPaths(const NetBed& bed, const std::string& vip) {
  std::string out = bed.Run("r", {"ip", "route", "show", vip + "/32"});
  if (out.find(vip) == std::string::npos) return 0;
  int n = 0;
  for (size_t at = out.find("nexthop"); at != std::string::npos; at = out.find("nexthop", at + 1)) {
    ++n;
  }
  return n == 0 ? 1 : n;
}

// A bed of `hosts` hosts with the scene's ECMP router and client; null with `error` set when a
// step failed.
inline std::unique_ptr<NetBed> LbSceneUp(int hosts, std::string* error) {
  auto bed = NetBed::Up(hosts, error);
  if (bed == nullptr) return nullptr;
  Status s = LbEcmpRouter(*bed);
  if (s.ok()) s = LbClient(*bed);
  if (!s.ok()) {
    *error = std::string(s.message());
    return nullptr;
  }
  return bed;
}

// The next line (without its '\n') read from `fd` within `timeout`, "" on none; the connection
// stays open.
inline std::string LbReadLine(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) != 1) continue;
    char c;
    if (::recv(fd, &c, 1, 0) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

// The first line (without its '\n') that a new connection from `client_ns` to vip:port
// receives within 3 s, "" on failure. Closed with a reset: no TIME_WAIT left in the client.
inline std::string LbHelloFrom(const std::string& client_ns, const std::string& vip, int port) {
  int fd = SocketIn(client_ns, SOCK_STREAM | SOCK_NONBLOCK);
  if (fd < 0) return "";
  sockaddr_in dst = Addr(vip, port);
  std::string id;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 || errno == EINPROGRESS) {
    id = LbReadLine(fd, std::chrono::seconds(3));
  }
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
  return id;
}

}  // namespace photon::net_testing
