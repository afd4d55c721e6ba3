#include "agent/net/link_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "absl/strings/match.h"
#include "agent/net/netns.h"

namespace photon::agent::net {

StatusOr<std::unique_ptr<LinkProbe>> LinkProbe::Open(const std::string& netns) {
  PHOTON_ASSIGN_OR_RETURN(int fd, NetlinkSocketIn(netns, NETLINK_ROUTE, "rtnetlink"));
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

namespace {

// A netlink request under construction: header, fixed part, attributes (nests by offset).
class Request {
 public:
  Request(uint16_t type, uint16_t flags, const void* fixed, size_t size) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    Append(&h, sizeof h);
    Append(fixed, size);
  }
  void Attr(uint16_t type, const void* data, size_t len) {
    rtattr a{static_cast<unsigned short>(RTA_LENGTH(len)), type};
    Append(&a, sizeof a);
    if (len > 0) Append(data, len);
  }
  void Attr(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
  void Attr32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }
  size_t Begin(uint16_t type) {
    size_t at = buf_.size();
    Attr(type, nullptr, 0);
    return at;
  }
  void End(size_t at) {
    auto* a = reinterpret_cast<rtattr*>(&buf_[at]);
    a->rta_len = static_cast<unsigned short>(buf_.size() - at);
  }
  // Appends raw bytes (a nested ifinfomsg) inside the current nest.
  void Append(const void* data, size_t len) {
    buf_.append(static_cast<const char*>(data), len);
    buf_.resize(NLMSG_ALIGN(buf_.size()), '\0');
  }
  std::string Done() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return buf_;
  }

 private:
  std::string buf_;
};

bool ParseMac(const std::string& text, unsigned char mac[6]) {
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5]) != 6) {
    return false;
  }
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<unsigned char>(v[i]);
  return true;
}

StatusOr<in_addr> ParseIp(const std::string& ip) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) {
    return absl::InvalidArgumentError("bad IPv4 address " + ip);
  }
  return a;
}

}  // namespace

Status LinkProbe::Talk(std::string request, const std::string& what, int done_errno) {
  std::lock_guard<std::mutex> lock(mu_);
  auto* h = reinterpret_cast<nlmsghdr*>(request.data());
  h->nlmsg_flags |= NLM_F_ACK;
  h->nlmsg_seq = ++seq_;
  if (::send(fd_, request.data(), request.size(), 0) < 0) {
    return absl::InternalError(std::string("rtnetlink send: ") + strerror(errno));
  }
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(std::string("rtnetlink recv: ") + strerror(errno));
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(n));
         nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_seq != seq_ || nh->nlmsg_type != NLMSG_ERROR) continue;
      int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
      if (e == 0 || (done_errno != 0 && e == done_errno)) return absl::OkStatus();
      return absl::InternalError("rtnetlink " + what + ": " + strerror(e));
    }
  }
}

Status LinkProbe::DeleteHostRoute(const std::string& ip, int protocol) {
  in_addr dst{};
  if (::inet_pton(AF_INET, ip.c_str(), &dst) != 1) {
    return absl::InvalidArgumentError("bad IPv4 address " + ip);
  }
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = 32;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = static_cast<unsigned char>(protocol);
  rt.rtm_scope = RT_SCOPE_NOWHERE;  // any scope
  rt.rtm_type = RTN_UNICAST;
  Request r(RTM_DELROUTE, 0, &rt, sizeof rt);
  r.Attr(RTA_DST, &dst, sizeof dst);
  return Talk(r.Done(), "delete route " + ip, /*done_errno=*/ESRCH);  // gone already: done
}

StatusOr<int> LinkProbe::IfIndex(const std::string& ifname) {
  // if_nametoindex would ask this thread's namespace; ask the socket's.
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Request r(RTM_GETLINK, 0, &ifi, sizeof ifi);
  r.Attr(IFLA_IFNAME, ifname);
  std::string req = r.Done();
  std::lock_guard<std::mutex> lock(mu_);
  auto* h = reinterpret_cast<nlmsghdr*>(req.data());
  h->nlmsg_seq = ++seq_;
  if (::send(fd_, req.data(), req.size(), 0) < 0) {
    return absl::InternalError(std::string("rtnetlink send: ") + strerror(errno));
  }
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(std::string("rtnetlink recv: ") + strerror(errno));
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(n));
         nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_seq != seq_) continue;
      if (nh->nlmsg_type == RTM_NEWLINK) {
        return reinterpret_cast<ifinfomsg*>(NLMSG_DATA(nh))->ifi_index;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
        if (e == ENODEV) return absl::NotFoundError("no interface " + ifname);
        return absl::InternalError(std::string("rtnetlink getlink: ") + strerror(e));
      }
    }
  }
}

Status LinkProbe::AddVeth(const std::string& name, const std::string& mac, const std::string& peer,
                          int peer_netns_fd) {
  unsigned char addr[6];
  if (!ParseMac(mac, addr)) return absl::InvalidArgumentError("bad MAC address " + mac);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Request r(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  r.Attr(IFLA_IFNAME, name);
  r.Attr(IFLA_ADDRESS, addr, sizeof addr);
  size_t info = r.Begin(IFLA_LINKINFO);
  r.Attr(IFLA_INFO_KIND, "veth", 4);
  size_t data = r.Begin(IFLA_INFO_DATA);
  size_t peer_at = r.Begin(VETH_INFO_PEER);
  r.Append(&ifi, sizeof ifi);
  r.Attr(IFLA_IFNAME, peer);
  r.Attr32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  r.End(peer_at);
  r.End(data);
  r.End(info);
  return Talk(r.Done(), "add veth " + name + " peer " + peer);
}

Status LinkProbe::DeleteLink(const std::string& ifname) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Request r(RTM_DELLINK, 0, &ifi, sizeof ifi);
  r.Attr(IFLA_IFNAME, ifname);
  Status s = Talk(r.Done(), "delete link " + ifname);
  if (!s.ok() && absl::StrContains(s.message(), strerror(ENODEV))) return absl::OkStatus();
  return s;
}

Status LinkProbe::SetUp(int ifindex, const std::string& alias) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  Request r(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  if (!alias.empty()) r.Attr(IFLA_IFALIAS, alias.c_str(), alias.size());
  return Talk(r.Done(), "set link " + std::to_string(ifindex) + " up");
}

Status LinkProbe::ReplaceAddress(int ifindex, const std::string& ip) {
  PHOTON_ASSIGN_OR_RETURN(in_addr a, ParseIp(ip));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = 32;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<unsigned>(ifindex);
  Request r(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof ifa);
  r.Attr(IFA_LOCAL, &a, sizeof a);
  r.Attr(IFA_ADDRESS, &a, sizeof a);
  return Talk(r.Done(), "add address " + ip);
}

Status LinkProbe::ReplaceRoute(const std::string& dst, const std::string& gateway, int oif,
                               int protocol) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = dst.empty() ? 0 : 32;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = static_cast<unsigned char>(protocol);
  rt.rtm_type = RTN_UNICAST;
  rt.rtm_scope = gateway.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  if (!gateway.empty()) rt.rtm_flags = RTNH_F_ONLINK;
  Request r(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof rt);
  if (!dst.empty()) {
    PHOTON_ASSIGN_OR_RETURN(in_addr d, ParseIp(dst));
    r.Attr(RTA_DST, &d, sizeof d);
  }
  if (!gateway.empty()) {
    PHOTON_ASSIGN_OR_RETURN(in_addr g, ParseIp(gateway));
    r.Attr(RTA_GATEWAY, &g, sizeof g);
  }
  r.Attr32(RTA_OIF, static_cast<uint32_t>(oif));
  return Talk(r.Done(), "add route " + (dst.empty() ? std::string("default") : dst));
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
