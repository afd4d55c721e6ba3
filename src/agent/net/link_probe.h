// Asks the kernel whether a network interface exists, or is operationally up, in a namespace,
// over an rtnetlink socket opened once in that namespace (no process per question: PortManager
// asks it whether a deleted port's link has gone, Apply polls it while a new veth pair comes
// up), and deletes a port's /32 route there.
// Thread-safety: Exists may be called from several threads (one request at a time).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace photon::agent::net {

class LinkProbe {
 public:
  // netns: a namespace path, "" = this process's.
  static StatusOr<std::unique_ptr<LinkProbe>> Open(const std::string& netns);
  ~LinkProbe();
  StatusOr<bool> Exists(const std::string& ifname);
  // True once the interface's operational state is UP (NOT_FOUND when it does not exist). The
  // kernel sets it from its link-watch work, the same step that attaches the device's transmit
  // queue: until then a veth whose peer just came up drops what it sends.
  StatusOr<bool> OperUp(const std::string& ifname);
  // Deletes the IPv4 route ip/32 of kernel route protocol `protocol` (main table); a route
  // that is not there is OK.
  Status DeleteHostRoute(const std::string& ip, int protocol);

 private:
  explicit LinkProbe(int fd) : fd_(fd) {}
  // RTM_GETLINK for ifname: -1 when it does not exist, else its IFLA_OPERSTATE (IF_OPER_*).
  StatusOr<int> OperState(const std::string& ifname);
  std::mutex mu_;
  int fd_;
  uint32_t seq_ = 0;
};

}  // namespace photon::agent::net
