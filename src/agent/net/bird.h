// The node's BIRD2: the agent renders its configuration and has the running daemon load it.
//
// Choice: BIRD *learns* the port routes from the kernel (protocol kernel, `learn`, import only
// routes of the agent's protocol number, /32) instead of the agent rendering one static route
// per port. The kernel route is then the single truth: PortManager adds it when a port is
// ready and it vanishes with the port's veth, BIRD sees either at once through netlink, and a
// restarted agent has nothing to re-render. The configuration changes only when the node's
// peers or timers do, so a port create costs no `birdc configure`.
// Failure detection: BFD on each session (default 50 ms × 5 = 250 ms); BGP's hold timer (3 s
// at least) is the fallback.
// Thread-safety: pure functions, except ReconfigureBird (one caller at a time per config path).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::net {

struct BirdPeer {
  std::string address;  // the rack router (seed 003's rack-leaf) on the underlay
  uint32_t as = 0;
};

struct BirdOptions {
  std::string router_id;      // the node's underlay address
  std::string local_address;  // source of the BGP sessions ("" = BIRD picks)
  uint32_t local_as = 0;
  std::vector<BirdPeer> peers;  // at least one
  std::string bfd_interface = "*";
  int bfd_interval_ms = 50;
  int bfd_multiplier = 5;
  int route_protocol = 200;  // PortManagerOptions::route_protocol
  std::string log_path;      // "" = syslog
};

// INVALID_ARGUMENT naming the option when it cannot be rendered faithfully.
Status ValidateBirdOptions(const BirdOptions& options);

std::string RenderNodeBirdConfig(const BirdOptions& options);

// Writes `config` to `path` (0600, via a temporary file and rename), checks it with `bird -p`,
// then asks the BIRD behind control socket `socket` to load it (`birdc configure`). A config
// BIRD refuses leaves the old one running and the error names BIRD's complaint.
Status ReconfigureBird(const std::string& path, const std::string& socket,
                       const std::string& config);

}  // namespace photon::agent::net
