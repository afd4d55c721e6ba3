// VIPs of L7 listeners marked `announce` (seed 003: a load balancer's VIP announced by BGP from
// every healthy LB node, ECMP at the router). Each such VIP is held on this node's loopback
// (label kL7VipLabel) for as long as a listener binds it, so HAProxy can bind it and the node
// accepts its packets; while the listener can serve, a `prohibit VIP/32 proto P` route in the
// main table tells the node's BIRD (which imports routes of protocol P, as prismnet's port
// routes and the L4 VIPs) to announce it. Local delivery is decided by the local table first,
// so the route never stops the node's own traffic to the VIP. The route type differs from the
// L4 path's blackhole routes, which that path adopts and withdraws as its own.
//
// Adopts what an earlier run left: addresses labelled kL7VipLabel and prohibit routes of P.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/status.h"

namespace photon::fiberlb {

inline constexpr char kL7VipLabel[] = "lo:flb";

class L7Vips {
 public:
  static StatusOr<std::unique_ptr<L7Vips>> Open(int route_protocol);

  // Puts every address of `vips` that is not there yet on the loopback.
  Status Hold(const std::set<std::string>& vips);
  // Withdraws, then takes off the loopback, every held VIP not in `keep`.
  Status ReleaseExcept(const std::set<std::string>& keep);
  // Announces exactly the held VIPs in `want`; withdraws the others.
  Status Announce(const std::set<std::string>& want);

  std::set<std::string> held() const;
  std::set<std::string> announced() const;

 private:
  explicit L7Vips(int route_protocol) : route_protocol_(route_protocol) {}
  Status Batch(const std::string& commands);

  const int route_protocol_;
  mutable std::mutex mu_;
  std::set<std::string> held_;
  std::set<std::string> announced_;
};

}  // namespace photon::fiberlb
