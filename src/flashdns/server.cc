// UDP/TCP DNS transport; see server.h.
#include "flashdns/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/http_server.h"
#include "common/util.h"
#include "flashdns/transfer.h"

namespace photon::flashdns {
namespace {

constexpr int kBatch = 32;
constexpr size_t kUdpBufferSize = 4096;
constexpr int kPollMs = 200;  // how often blocked threads notice Stop()

StatusOr<sockaddr_storage> MakeAddress(const std::string& host, int port, socklen_t* len) {
  sockaddr_storage ss{};
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError("listen: '" + host + "' is not an IP address");
  }
  return ss;
}

StatusOr<int> OpenSocket(const sockaddr_storage& addr, socklen_t len, int type) {
  int fd = socket(addr.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (type == SOCK_DGRAM) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  // v4 and v6 wildcards can then be listed side by side.
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(std::string("bind: ") + strerror(err));
  }
  if (type == SOCK_DGRAM) {
    timeval tv{0, kPollMs * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  } else if (listen(fd, 1024) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(std::string("listen: ") + strerror(err));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
}

// Reads exactly n bytes within timeout_ms in total, so a client trickling bytes cannot hold
// a connection thread for longer than that.
bool ReadFull(int fd, uint8_t* buf, size_t n, int timeout_ms, const std::atomic<bool>& stop) {
  size_t got = 0;
  const int64_t deadline = MonotonicNanos() + static_cast<int64_t>(timeout_ms) * 1000000;
  while (got < n) {
    if (stop.load(std::memory_order_relaxed) || MonotonicNanos() > deadline) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r == 0) continue;
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k <= 0) {
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return false;
    }
    got += static_cast<size_t>(k);
  }
  return true;
}

bool WriteFull(int fd, const uint8_t* buf, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    ssize_t k = send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    sent += static_cast<size_t>(k);
  }
  return true;
}

// Per-query log line at trace level only; the check is one comparison on the hot path.
void TraceQuery(const char* transport, const ParsedQuery& q, const AnswerInfo& info) {
  if (!spdlog::should_log(spdlog::level::trace)) return;
  std::string name =
      q.has_question
          ? NameToText(std::string_view(reinterpret_cast<const char*>(q.qname), q.qname_len))
          : "-";
  spdlog::trace("{} query {} {} -> rcode {}{}", transport, name, TypeToText(q.qtype),
                static_cast<int>(info.rcode), info.truncated ? " TC" : "");
}

}  // namespace

StatusOr<std::unique_ptr<DnsServer>> DnsServer::Start(const DnsServerOptions& options,
                                                      ZoneManager* zones, QueryStats* stats) {
  std::unique_ptr<DnsServer> server(new DnsServer(zones, stats));
  server->tcp_idle_timeout_ms_ = options.tcp_idle_timeout_ms;
  server->max_tcp_connections_ = options.max_tcp_connections;
  server->rrl_ = options.rrl;
  for (const auto& hostport : options.listen) {
    Status s = server->Listen(options, hostport);
    if (!s.ok()) {
      server->Stop();
      return absl::Status(s.code(), hostport + ": " + std::string(s.message()));
    }
  }
  return server;
}

DnsServer::~DnsServer() { Stop(); }

Status DnsServer::Listen(const DnsServerOptions& options, const std::string& hostport) {
  std::string host;
  int port = 0;
  PHOTON_RETURN_IF_ERROR(ParseHostPort(hostport, &host, &port));
  socklen_t len = 0;
  PHOTON_ASSIGN_OR_RETURN(sockaddr_storage addr, MakeAddress(host, port, &len));
  std::vector<int> udp;
  int tcp = -1;
  // With port 0 the kernel picks the UDP port; TCP must then get the same one.
  for (int attempt = 0; attempt < 20 && tcp < 0; ++attempt) {
    for (int fd : udp) close(fd);
    udp.clear();
    auto first = OpenSocket(addr, len, SOCK_DGRAM);
    if (!first.ok()) return first.status();
    udp.push_back(*first);
    int bound_port = BoundPort(*first);
    if (addr.ss_family == AF_INET) {
      reinterpret_cast<sockaddr_in&>(addr).sin_port = htons(static_cast<uint16_t>(bound_port));
    } else {
      reinterpret_cast<sockaddr_in6&>(addr).sin6_port = htons(static_cast<uint16_t>(bound_port));
    }
    auto t = OpenSocket(addr, len, SOCK_STREAM);
    if (t.ok()) {
      tcp = *t;
    } else if (port != 0) {
      for (int fd : udp) close(fd);
      return t.status();
    }
  }
  if (tcp < 0) {
    for (int fd : udp) close(fd);
    return absl::UnavailableError("no port free for both UDP and TCP");
  }
  for (int i = 1; i < std::max(1, options.workers); ++i) {
    auto fd = OpenSocket(addr, len, SOCK_DGRAM);
    if (!fd.ok()) {
      for (int f : udp) close(f);
      close(tcp);
      return fd.status();
    }
    udp.push_back(*fd);
  }
  int bound_port = BoundPort(tcp);
  std::string shown = addr.ss_family == AF_INET6 ? "[" + host + "]" : host;
  bound_.push_back(shown + ":" + std::to_string(bound_port));
  // On a wildcard address the answer must leave from the address the query came to (a
  // multi-homed host would otherwise pick the source by route): ask for the destination.
  bool wildcard = host == "0.0.0.0" || host == "::";
  for (int fd : udp) {
    if (wildcard) {
      int one = 1;
      if (addr.ss_family == AF_INET) {
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
      } else {
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
      }
    }
    fds_.push_back(fd);
    ThreadStats* ts = stats_->NewThread();
    threads_.emplace_back([this, fd, ts, wildcard] { UdpLoop(fd, ts, wildcard); });
  }
  fds_.push_back(tcp);
  threads_.emplace_back([this, tcp] { TcpAcceptLoop(tcp); });
  spdlog::info("serving DNS on udp+tcp {} ({} UDP workers)", bound_.back(), udp.size());
  return absl::OkStatus();
}

void DnsServer::UdpLoop(int fd, ThreadStats* stats, bool pktinfo) {
  // Buffers are allocated once per thread; the loop itself does not allocate.
  std::vector<uint8_t> in(kBatch * kUdpBufferSize);
  std::vector<uint8_t> out(kBatch * kUdpBufferSize);
  mmsghdr in_msgs[kBatch];
  mmsghdr out_msgs[kBatch];
  iovec in_iov[kBatch];
  iovec out_iov[kBatch];
  sockaddr_storage peers[kBatch];
  constexpr size_t kControlSize = 64;
  alignas(cmsghdr) uint8_t control[kBatch][kControlSize];
  ParsedQuery q;
  std::shared_ptr<const Snapshot> snapshot;
  uint64_t generation = ~0ull;
  while (!stopping_.load(std::memory_order_relaxed)) {
    for (int i = 0; i < kBatch; ++i) {
      in_iov[i] = {in.data() + i * kUdpBufferSize, kUdpBufferSize};
      memset(&in_msgs[i].msg_hdr, 0, sizeof(msghdr));
      in_msgs[i].msg_hdr.msg_name = &peers[i];
      in_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
      in_msgs[i].msg_hdr.msg_iovlen = 1;
      if (pktinfo) {
        in_msgs[i].msg_hdr.msg_control = control[i];
        in_msgs[i].msg_hdr.msg_controllen = kControlSize;
      }
    }
    int n = recvmmsg(fd, in_msgs, kBatch, MSG_WAITFORONE, nullptr);
    if (n <= 0) continue;  // timeout (to check stopping_) or EINTR
    if (uint64_t g = zones_->Generation(); g != generation) {
      generation = g;
      snapshot = zones_->Current();
    }
    int m = 0;
    for (int i = 0; i < n; ++i) {
      int64_t start = MonotonicNanos();
      q = ParsedQuery();
      if (!ParseQuery(in.data() + i * kUdpBufferSize, in_msgs[i].msg_len, &q)) {
        stats->RecordDropped();
        continue;
      }
      AnswerInfo info;
      uint8_t* buf = out.data() + m * kUdpBufferSize;
      size_t len = BuildResponse(snapshot ? &snapshot->zones : nullptr, q, buf,
                                 std::min(UdpLimit(q), kUdpBufferSize), &info);
      if (len == 0) {
        stats->RecordDropped();
        continue;
      }
      // Only UDP is limited: over TCP the source address cannot be spoofed.
      RrlAction action = rrl_ ? rrl_->Account(peers[i], q, info, start) : RrlAction::kSend;
      if (action == RrlAction::kDrop) {
        stats->RecordRrlDropped();
        continue;
      }
      if (action == RrlAction::kSlip) len = TruncateToQuestion(q, buf);
      out_iov[m] = {buf, len};
      memset(&out_msgs[m].msg_hdr, 0, sizeof(msghdr));
      out_msgs[m].msg_hdr.msg_name = &peers[i];
      out_msgs[m].msg_hdr.msg_namelen = in_msgs[i].msg_hdr.msg_namelen;
      out_msgs[m].msg_hdr.msg_iov = &out_iov[m];
      out_msgs[m].msg_hdr.msg_iovlen = 1;
      if (pktinfo && in_msgs[i].msg_hdr.msg_controllen > 0) {
        // Send back from the query's destination address: reuse its PKTINFO.
        for (cmsghdr* c = CMSG_FIRSTHDR(&in_msgs[i].msg_hdr); c != nullptr;
             c = CMSG_NXTHDR(&in_msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            auto* info = reinterpret_cast<in_pktinfo*>(CMSG_DATA(c));
            info->ipi_spec_dst = info->ipi_addr;
            info->ipi_ifindex = 0;
          }
        }
        out_msgs[m].msg_hdr.msg_control = control[i];
        out_msgs[m].msg_hdr.msg_controllen = in_msgs[i].msg_hdr.msg_controllen;
      }
      ++m;
      if (action == RrlAction::kSlip) {
        stats->RecordRrlSlipped();
        continue;
      }
      stats->Record(q.qtype, info.rcode, info.truncated, MonotonicNanos() - start);
      TraceQuery("udp", q, info);
    }
    for (int sent = 0; sent < m;) {
      int r = sendmmsg(fd, out_msgs + sent, static_cast<unsigned>(m - sent), 0);
      if (r > 0) {
        sent += r;
      } else if (errno != EINTR) {
        ++sent;  // skip the message the kernel refused (e.g. unreachable peer)
      }
    }
  }
}

void DnsServer::TcpAcceptLoop(int listen_fd) {
  // Shared by this listener's connection threads, so it counts with atomic adds.
  ThreadStats* stats = stats_->NewThread(/*shared=*/true);
  while (!stopping_.load(std::memory_order_relaxed)) {
    pollfd p{listen_fd, POLLIN, 0};
    if (poll(&p, 1, kPollMs) <= 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::unique_lock<std::mutex> lock(conn_mu_);
    if (conn_count_ >= max_tcp_connections_) {
      lock.unlock();
      close(fd);  // RFC 7766 §6.2.2: shed load by closing
      continue;
    }
    ++conn_count_;
    conn_fds_.insert(fd);
    lock.unlock();
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::thread([this, fd, peer, stats] {
      TcpConnection(fd, peer, stats);
      std::lock_guard<std::mutex> guard(conn_mu_);
      conn_fds_.erase(fd);
      close(fd);
      --conn_count_;
      conn_cv_.notify_all();
    }).detach();
  }
}

void DnsServer::TcpConnection(int fd, sockaddr_storage peer, ThreadStats* stats) {
  std::vector<uint8_t> in(65535);
  std::vector<uint8_t> out(65537);
  ParsedQuery q;
  while (!stopping_.load(std::memory_order_relaxed)) {
    uint8_t prefix[2];
    if (!ReadFull(fd, prefix, 2, tcp_idle_timeout_ms_, stopping_)) return;
    size_t len = Load16(prefix);
    if (!ReadFull(fd, in.data(), len, tcp_idle_timeout_ms_, stopping_)) return;
    int64_t start = MonotonicNanos();
    q = ParsedQuery();
    if (!ParseQuery(in.data(), len, &q)) {
      stats->RecordDropped();
      continue;
    }
    std::shared_ptr<const Snapshot> snapshot = zones_->Current();
    if (q.has_question && q.rcode == kRcodeNoError &&
        (q.qtype == kTypeAxfr || q.qtype == kTypeIxfr)) {
      const Zone* zone = snapshot ? snapshot->zones.Find(std::string_view(
                                        reinterpret_cast<const char*>(q.lower), q.qname_len))
                                  : nullptr;
      bool at_apex = zone != nullptr && zone->origin().size() == q.qname_len;
      if (at_apex && snapshot->MayTransfer(zone->origin(), peer)) {
        // IXFR is answered with a full transfer (RFC 1995 §4).
        bool ok = WriteAxfr(*zone, q, [&](const uint8_t* msg, size_t n) {
          uint8_t lp[2];
          Store16(lp, static_cast<uint16_t>(n));
          return WriteFull(fd, lp, 2) && WriteFull(fd, msg, n);
        });
        stats->Record(q.qtype, kRcodeNoError, false, MonotonicNanos() - start);
        if (!ok) return;
        continue;
      }
      char addr[INET6_ADDRSTRLEN] = "?";
      if (peer.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in&>(peer).sin_addr, addr, sizeof(addr));
      } else {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6&>(peer).sin6_addr, addr, sizeof(addr));
      }
      spdlog::warn("zone transfer refused to {}", addr);
      q.rcode = kRcodeRefused;
    }
    AnswerInfo info;
    size_t n =
        BuildResponse(snapshot ? &snapshot->zones : nullptr, q, out.data() + 2, 65535, &info);
    stats->Record(q.qtype, info.rcode, info.truncated, MonotonicNanos() - start);
    TraceQuery("tcp", q, info);
    if (n == 0) continue;
    Store16(out.data(), static_cast<uint16_t>(n));
    if (!WriteFull(fd, out.data(), n + 2)) return;
  }
}

void DnsServer::Stop() {
  if (stopping_.exchange(true)) return;
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::unique_lock<std::mutex> lock(conn_mu_);
  for (int fd : conn_fds_) shutdown(fd, SHUT_RDWR);
  conn_cv_.wait(lock, [this] { return conn_count_ == 0; });
  lock.unlock();
  for (int fd : fds_) close(fd);
  fds_.clear();
}

}  // namespace photon::flashdns
