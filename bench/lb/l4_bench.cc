// photon-bench-lb-l4: fiberlb's stateless L4 path on the multi-host bed (tests/net), figures for
// issue 20. Needs root.
//   sudo build/bench/lb/photon-bench-lb-l4 [--failovers N]
// - iperf3 TCP throughput and a UDP small-packet rate from a client behind the router to a member
//   through the VIP (router → LB node's nftables netdev → member, DSR back) and, in the same
//   run, straight to the member's own address (router → member): the peer without the LB hop.
//   Small packets with sendmmsg/recvmmsg; CPU per packet from the two threads' CPU time.
// - LB node death (netbed kill-host: underlay port down and BIRD killed, so only BFD tells the
//   router): time until every one of 64 UDP flows reaches a member again.
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "tests/net/lb_l4_bed.h"

namespace photon::fiberlb::l4 {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using photon::net_testing::Addr;
using photon::net_testing::LbMemberIp;
using photon::net_testing::NetBed;
using photon::net_testing::PollUntil;
using photon::net_testing::SocketIn;

constexpr char kVip[] = "10.200.0.20";
constexpr int kLbNodes = 3;

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(s.message()).c_str());
    std::exit(1);
  }
}

struct IperfResult {
  double gbps = -1;
};

// One iperf3 TCP run from the client to `ip` (a server in member m1).
IperfResult Iperf(const NetBed& bed, const std::string& ip) {
  agent::net::ExecOptions so;
  so.netns = bed.NsPath("m1");
  so.timeout = 30s;
  std::thread server([&] {
    (void)agent::net::Exec({"iperf3", "-s", "-1", "-B", ip, "-p", "5201"}, so);
  });
  IperfResult r;
  for (int attempt = 0; attempt < 50 && r.gbps < 0; ++attempt) {
    std::string out = bed.Run("c", {"iperf3", "-c", ip, "-p", "5201", "-t", "4", "-J"});
    std::smatch m;
    static const std::regex re("\"sum_received\":\\s*\\{[^}]*\"bits_per_second\":\\s*([0-9.e+]+)");
    if (std::regex_search(out, m, re)) {
      r.gbps = std::stod(m[1]) / 1e9;
    } else {
      std::this_thread::sleep_for(100ms);  // the server is not listening yet: retry
    }
  }
  server.join();
  return r;
}

double ThreadCpuS() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct PpsResult {
  double pps = 0;  // received
  double sent_pps = 0;
  double cpu_us_per_packet = 0;  // sender + receiver threads, softirq run in their context too
};

// Small packets: 18-byte UDP payloads (64-byte frames) from 16 source ports, sendmmsg in
// batches of 64 for 3 s, counted by a recvmmsg receiver in member m1 bound to `ip`.
PpsResult Blast(const NetBed& bed, const std::string& ip, int port) {
  int rx = SocketIn(bed.NsPath("m1"), SOCK_DGRAM);
  sockaddr_in a = Addr(ip, port);
  int big = 8 << 20;
  ::setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  if (rx < 0 || ::bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(1);
  std::vector<int> tx;
  for (int i = 0; i < 16; ++i) {
    int fd = SocketIn(bed.NsPath("c"), SOCK_DGRAM);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(1);
    tx.push_back(fd);
  }
  std::atomic<bool> sending{true}, stop{false};
  uint64_t received = 0, sent = 0;
  double rx_cpu = 0, tx_cpu = 0;
  std::thread receiver([&] {
    double c0 = ThreadCpuS();
    char bufs[64][64];
    iovec iov[64];
    mmsghdr msgs[64]{};
    for (int i = 0; i < 64; ++i) {
      iov[i] = {bufs[i], sizeof bufs[i]};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!stop) {
      pollfd p{rx, POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      int n = ::recvmmsg(rx, msgs, 64, MSG_DONTWAIT, nullptr);
      if (n > 0) received += n;
    }
    rx_cpu = ThreadCpuS() - c0;
  });
  std::thread sender([&] {
    double c0 = ThreadCpuS();
    char payload[18] = {};
    iovec iov{payload, sizeof payload};
    mmsghdr msgs[64]{};
    for (auto& m : msgs) {
      m.msg_hdr.msg_iov = &iov;
      m.msg_hdr.msg_iovlen = 1;
    }
    auto end = Clock::now() + 3s;
    while (Clock::now() < end) {
      for (int fd : tx) {
        int n = ::sendmmsg(fd, msgs, 64, 0);
        if (n > 0) sent += n;
      }
    }
    tx_cpu = ThreadCpuS() - c0;
    sending = false;
  });
  sender.join();
  std::this_thread::sleep_for(300ms);  // what is still queued reaches the receiver
  stop = true;
  receiver.join();
  ::close(rx);
  for (int fd : tx) ::close(fd);
  PpsResult r;
  r.pps = received / 3.0;
  r.sent_pps = sent / 3.0;
  r.cpu_us_per_packet = received ? (rx_cpu + tx_cpu) * 1e6 / received : 0;
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Three rounds in which the direct path and the VIP take turns (the machine is shared: its
// load changes within seconds); medians and their ratios.
void Throughput(const NetBed& bed) {
  std::vector<double> d_gbps, v_gbps, d_pps, v_pps, d_sent, v_sent, d_cpu, v_cpu;
  for (int round = 0; round < 3; ++round) {
    d_gbps.push_back(Iperf(bed, LbMemberIp(1)).gbps);
    v_gbps.push_back(Iperf(bed, kVip).gbps);
    PpsResult d = Blast(bed, LbMemberIp(1), 5400);
    PpsResult v = Blast(bed, kVip, 5400);
    d_pps.push_back(d.pps);
    v_pps.push_back(v.pps);
    d_sent.push_back(d.sent_pps);
    v_sent.push_back(v.sent_pps);
    d_cpu.push_back(d.cpu_us_per_packet);
    v_cpu.push_back(v.cpu_us_per_packet);
  }
  std::printf("iperf3 TCP, client → member direct (router only):  %6.2f Gbit/s (median of 3)\n",
              Median(d_gbps));
  std::printf("iperf3 TCP, client → VIP (router → LB → member):   %6.2f Gbit/s (%.2f× direct)\n",
              Median(v_gbps), Median(v_gbps) / Median(d_gbps));
  std::printf("UDP 64 B frames, direct: %9.0f pps received of %9.0f sent, %.2f µs CPU per packet\n",
              Median(d_pps), Median(d_sent), Median(d_cpu));
  std::printf(
      "UDP 64 B frames, VIP:    %9.0f pps received of %9.0f sent, %.2f µs CPU per packet "
      "(%.2f× direct pps; the LB hop: %+.2f µs per packet = %.2f CPU-s per Mpps)\n",
      Median(v_pps), Median(v_sent), Median(v_cpu), Median(v_pps) / Median(d_pps),
      Median(v_cpu) - Median(d_cpu), Median(v_cpu) - Median(d_cpu));
}

// 64 UDP flows from the client, one datagram per flow every 2 ms; members record per flow
// (source port) when its datagrams arrive. Returns the longest gap of any flow around a kill.
class Flows {
 public:
  explicit Flows(const NetBed& bed) {
    for (int i = 1; i <= kLbNodes; ++i) {
      int fd = SocketIn(bed.NsPath("m" + std::to_string(i)), SOCK_DGRAM);
      sockaddr_in a = Addr(kVip, 5300);
      if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(1);
      receivers_.push_back(fd);
    }
    for (int i = 0; i < 64; ++i) {
      int fd = SocketIn(bed.NsPath("c"), SOCK_DGRAM);
      sockaddr_in a = Addr(kVip, 5300);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(1);
      senders_.push_back(fd);
    }
    recv_thread_ = std::thread([this] { Receive(); });
    send_thread_ = std::thread([this] { Send(); });
  }
  ~Flows() {
    stop_ = true;
    recv_thread_.join();
    send_thread_.join();
    for (int fd : receivers_) ::close(fd);
    for (int fd : senders_) ::close(fd);
  }
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    last_.clear();
    max_gap_.clear();
  }
  // The longest gap of any flow since Reset, and how many flows were seen.
  std::pair<double, size_t> MaxGapMs() {
    std::lock_guard<std::mutex> l(mu_);
    double g = 0;
    for (const auto& [port, gap] : max_gap_) g = std::max(g, gap);
    return {g, last_.size()};
  }

 private:
  void Send() {
    while (!stop_) {
      for (int fd : senders_) (void)::send(fd, "x", 1, MSG_DONTWAIT);
      std::this_thread::sleep_for(2ms);  // the flows' pace
    }
  }
  void Receive() {
    std::vector<pollfd> fds;
    for (int fd : receivers_) fds.push_back({fd, POLLIN, 0});
    while (!stop_) {
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      auto now = Clock::now();
      for (auto& p : fds) {
        if (!(p.revents & POLLIN)) continue;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        char b;
        while (::recvfrom(p.fd, &b, 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len) >=
               0) {
          std::lock_guard<std::mutex> l(mu_);
          int port = ntohs(from.sin_port);
          auto it = last_.find(port);
          if (it != last_.end()) {
            double gap = std::chrono::duration<double, std::milli>(now - it->second).count();
            max_gap_[port] = std::max(max_gap_[port], gap);
          }
          last_[port] = now;
        }
      }
    }
  }
  std::vector<int> receivers_, senders_;
  std::mutex mu_;
  std::map<int, Clock::time_point> last_;
  std::map<int, double> max_gap_;
  std::atomic<bool> stop_{false};
  std::thread recv_thread_, send_thread_;
};

void Failover(const NetBed& bed, std::vector<L4Balancer*> lbs, int rounds) {
  std::vector<L4Member> members;
  for (int i = 1; i <= kLbNodes; ++i) members.push_back({LbMemberIp(i), "", 1, true});
  for (auto* lb : lbs) Check(lb->Apply({kVip, 5300, L4Protocol::kUdp, members}), "apply udp");
  Flows flows(bed);
  for (int r = 0; r < rounds; ++r) {
    PollUntil([&] { return photon::net_testing::LbRouterPaths(bed, kVip) == kLbNodes; }, 20s);
    std::this_thread::sleep_for(500ms);  // flows settle on all three paths
    flows.Reset();
    std::this_thread::sleep_for(200ms);
    auto start = Clock::now();
    bed.KillHost(1);
    auto withdrawn = PollUntil(
        [&] { return photon::net_testing::LbRouterPaths(bed, kVip) == kLbNodes - 1; }, 10s);
    (void)start;
    std::this_thread::sleep_for(1000ms);  // let the last stalled flow resume
    auto [gap, seen] = flows.MaxGapMs();
    std::printf(
        "LB node death (BFD %d ms × %d): withdrawn at the router %.0f ms after the kill; "
        "longest flow interruption %.0f ms (%zu flows)\n",
        50, 5, withdrawn.count() / 1000.0, gap, seen);
    if (!bed.ReviveHost(1)) std::fprintf(stderr, "revive-host failed\n");
  }
}

int Main(int argc, char** argv) {
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--failovers" && i + 1 < argc) rounds = std::atoi(argv[++i]);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "needs root (network namespaces)\n");
    return 2;
  }
  std::string error;
  auto bed = NetBed::Up(kLbNodes, &error);
  if (!bed) {
    std::fprintf(stderr, "bed: %s\n", error.c_str());
    return 1;
  }
  Check(photon::net_testing::LbEcmpRouter(*bed), "router");
  Check(photon::net_testing::LbClient(*bed), "client");
  for (int i = 1; i <= kLbNodes; ++i) Check(photon::net_testing::LbMember(*bed, i, kVip), "member");
  std::vector<std::unique_ptr<L4Balancer>> lbs;
  std::vector<L4Balancer*> raw;
  for (int i = 1; i <= kLbNodes; ++i) {
    L4BalancerOptions o;
    o.netns = bed->NsPath(bed->Host(i));
    o.device = "ul0";
    auto lb = L4Balancer::Open(o);
    Check(lb.status(), "open");
    lbs.push_back(std::move(*lb));
    raw.push_back(lbs.back().get());
  }
  // Throughput: one member, so iperf3's control and data connections meet the same server.
  std::vector<L4Member> one{{LbMemberIp(1), "", 1, true}};
  for (auto* lb : raw) {
    Check(lb->Apply({kVip, 5201, L4Protocol::kTcp, one}), "apply tcp");
    Check(lb->Apply({kVip, 5400, L4Protocol::kUdp, one}), "apply udp");
  }
  PollUntil([&] { return photon::net_testing::LbRouterPaths(*bed, kVip) == kLbNodes; }, 20s);
  Throughput(*bed);
  Failover(*bed, raw, rounds);
  lbs.clear();
  return 0;  // the bed's destructor removes every namespace and BIRD
}

}  // namespace
}  // namespace photon::fiberlb::l4

int main(int argc, char** argv) { return photon::fiberlb::l4::Main(argc, argv); }
