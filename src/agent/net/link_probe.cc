#include "agent/net/link_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace photon::agent::net {

StatusOr<std::unique_ptr<LinkProbe>> LinkProbe::Open(const std::string& netns) {
  int fd = -1, err = 0;
  // setns applies to the calling thread only: a short-lived thread makes the socket, which
  // stays in the namespace it was made in.
  std::thread t([&] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
        err = errno;
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
    }
    fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) err = errno;
  });
  t.join();
  if (fd < 0) {
    return absl::InternalError("rtnetlink socket in " + (netns.empty() ? "this netns" : netns) +
                               ": " + strerror(err));
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return std::unique_ptr<LinkProbe>(new LinkProbe(fd));
}

LinkProbe::~LinkProbe() { ::close(fd_); }

StatusOr<bool> LinkProbe::Exists(const std::string& ifname) {
  PHOTON_ASSIGN_OR_RETURN(int state, OperState(ifname));
  return state >= 0;
}

StatusOr<bool> LinkProbe::OperUp(const std::string& ifname) {
  PHOTON_ASSIGN_OR_RETURN(int state, OperState(ifname));
  if (state < 0) return absl::NotFoundError("no interface " + ifname);
  return state == IF_OPER_UP;
}

Status LinkProbe::DeleteHostRoute(const std::string& ip, int protocol) {
  in_addr dst{};
  if (::inet_pton(AF_INET, ip.c_str(), &dst) != 1) {
    return absl::InvalidArgumentError("bad IPv4 address " + ip);
  }
  std::lock_guard<std::mutex> lock(mu_);
  struct {
    nlmsghdr nh;
    rtmsg rt;
    char attrs[32];
  } req{};
  rtattr* rta = reinterpret_cast<rtattr*>(req.attrs);
  rta->rta_type = RTA_DST;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(sizeof dst));
  ::memcpy(RTA_DATA(rta), &dst, sizeof dst);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg)) + RTA_ALIGN(rta->rta_len);
  req.nh.nlmsg_type = RTM_DELROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = ++seq_;
  req.rt.rtm_family = AF_INET;
  req.rt.rtm_dst_len = 32;
  req.rt.rtm_table = RT_TABLE_MAIN;
  req.rt.rtm_protocol = static_cast<unsigned char>(protocol);
  req.rt.rtm_scope = RT_SCOPE_NOWHERE;  // any scope
  req.rt.rtm_type = RTN_UNICAST;
  if (::send(fd_, &req, req.nh.nlmsg_len, 0) < 0) {
    return absl::InternalError(std::string("rtnetlink send: ") + strerror(errno));
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(std::string("rtnetlink recv: ") + strerror(errno));
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(n));
         nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_seq != seq_ || nh->nlmsg_type != NLMSG_ERROR) continue;
      int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
      if (e == 0 || e == ESRCH) return absl::OkStatus();
      return absl::InternalError("rtnetlink delete route " + ip + ": " + strerror(e));
    }
  }
}

StatusOr<int> LinkProbe::OperState(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError("bad interface name");
  }
  std::lock_guard<std::mutex> lock(mu_);
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
    char attrs[64];
  } req{};
  rtattr* rta = reinterpret_cast<rtattr*>(req.attrs);
  rta->rta_type = IFLA_IFNAME;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(ifname.size() + 1));
  ::memcpy(RTA_DATA(rta), ifname.c_str(), ifname.size() + 1);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg)) + RTA_ALIGN(rta->rta_len);
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = ++seq_;
  req.ifi.ifi_family = AF_UNSPEC;
  if (::send(fd_, &req, req.nh.nlmsg_len, 0) < 0) {
    return absl::InternalError(std::string("rtnetlink send: ") + strerror(errno));
  }
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(std::string("rtnetlink recv: ") + strerror(errno));
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(n));
         nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_seq != seq_) continue;  // a late answer to an earlier question
      if (nh->nlmsg_type == RTM_NEWLINK) {
        auto* ifi = reinterpret_cast<ifinfomsg*>(NLMSG_DATA(nh));
        int len = static_cast<int>(IFLA_PAYLOAD(nh));
        for (auto* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
          if (a->rta_type == IFLA_OPERSTATE) return *reinterpret_cast<uint8_t*>(RTA_DATA(a));
        }
        return static_cast<int>(IF_OPER_UNKNOWN);
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
        if (e == ENODEV) return -1;
        return absl::InternalError(std::string("rtnetlink getlink: ") + strerror(e));
      }
    }
  }
}

}  // namespace photon::agent::net
