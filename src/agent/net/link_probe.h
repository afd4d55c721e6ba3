// rtnetlink in one network namespace, over a socket opened once there (it stays bound to that
// namespace, so no setns and no process per request): whether a link exists or is
// operationally up (PortManager asks whether a deleted port's link has gone, Apply polls a new
// veth pair), and the few changes that wire a fresh port (the veth pair, addresses, link
// flags, routes), each acknowledged by the kernel.
// Thread-safety: every method may be called from several threads (one request at a time).
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

  // Deletes the interface (a veth: both ends); one that does not exist is OK.
  Status DeleteLink(const std::string& ifname);
  // The interface's index (NOT_FOUND when it does not exist).
  StatusOr<int> IfIndex(const std::string& ifname);
  // Creates a veth pair: `name` here with MAC `mac`, its peer `peer` in the namespace open as
  // `peer_netns_fd`.
  Status AddVeth(const std::string& name, const std::string& mac, const std::string& peer,
                 int peer_netns_fd);
  // Sets the link up, and its alias when `alias` is not empty.
  Status SetUp(int ifindex, const std::string& alias = "");
  // Adds (or keeps) ip/32 on the link.
  Status ReplaceAddress(int ifindex, const std::string& ip);
  // Adds or replaces a route in the main table: `dst` "" is the default route; `gateway` ""
  // none (a link-scope route), else reached on-link.
  Status ReplaceRoute(const std::string& dst, const std::string& gateway, int oif, int protocol);

 private:
  explicit LinkProbe(int fd) : fd_(fd) {}
  // RTM_GETLINK for ifname: -1 when it does not exist, else its IFLA_OPERSTATE (IF_OPER_*).
  StatusOr<int> OperState(const std::string& ifname);
  // Sends one request (NLM_F_ACK added) and waits for the kernel's answer.
  // Sends one request and waits for its acknowledgement; done_errno (when not 0) counts as done.
  Status Talk(std::string request, const std::string& what, int done_errno = 0);
  std::mutex mu_;
  int fd_;
  uint32_t seq_ = 0;
};

}  // namespace photon::agent::net
