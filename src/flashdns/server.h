// The DNS transport: per-thread UDP sockets bound with SO_REUSEPORT and served with
// recvmmsg/sendmmsg batches, and TCP (RFC 7766 framing) with AXFR, on every listen address.
// Each worker answers from its cached Snapshot and refreshes it when the ZoneManager's
// generation moves, so the query path takes no lock.
// Thread-safety: Start/Stop from one controlling thread; the server runs its own threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "flashdns/query_stats.h"
#include "flashdns/rrl.h"
#include "flashdns/zone_manager.h"

namespace photon::flashdns {

struct DnsServerOptions {
  std::vector<std::string> listen;  // "HOST:PORT"; port 0 picks one (same for UDP and TCP)
  int workers = 1;                  // UDP sockets/threads per address
  int max_tcp_connections = 256;
  int tcp_idle_timeout_ms = 10000;
  // Response-rate limiting of UDP answers; null: off. Not owned; outlives the server.
  ResponseRateLimiter* rrl = nullptr;
};

class DnsServer {
 public:
  static StatusOr<std::unique_ptr<DnsServer>> Start(const DnsServerOptions& options,
                                                    ZoneManager* zones, QueryStats* stats);
  ~DnsServer();
  // Bound "HOST:PORT" per listen entry, in order.
  const std::vector<std::string>& bound() const { return bound_; }
  void Stop();

 private:
  DnsServer(ZoneManager* zones, QueryStats* stats) : zones_(zones), stats_(stats) {}
  Status Listen(const DnsServerOptions& options, const std::string& hostport);
  void UdpLoop(int fd, ThreadStats* stats, bool pktinfo);
  void TcpAcceptLoop(int fd);
  void TcpConnection(int fd, sockaddr_storage peer, ThreadStats* stats);

  ZoneManager* zones_;
  QueryStats* stats_;
  int tcp_idle_timeout_ms_ = 10000;
  int max_tcp_connections_ = 256;
  ResponseRateLimiter* rrl_ = nullptr;
  std::vector<std::string> bound_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::mutex conn_mu_;
  std::condition_variable conn_cv_;
  std::set<int> conn_fds_;
  int conn_count_ = 0;
};

}  // namespace photon::flashdns
