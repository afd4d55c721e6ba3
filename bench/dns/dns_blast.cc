// dns_blast: a minimal UDP DNS load generator for the benchmark. dnsperf needs more CPU per
// query than an authoritative server, so on a small machine it measures itself; this one
// sends precomputed queries with sendmmsg and reads answers with recvmmsg, keeping a fixed
// number outstanding, to find the server's own ceiling.
//   dns_blast PORT QUERY_FILE SECONDS [WINDOW=256]
// QUERY_FILE: dnsperf format, one "name type" per line. Prints
// "qps N sent N received N p50_us N p99_us N": the latencies are those of a saturated server
// (a full window), the tail a client sees when the server is the bottleneck.
// Single-threaded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint16_t TypeCode(const std::string& t) {
  static const struct {
    const char* name;
    uint16_t code;
  } kTypes[] = {{"A", 1},   {"NS", 2},   {"CNAME", 5}, {"SOA", 6},  {"PTR", 12},
                {"MX", 15}, {"TXT", 16}, {"AAAA", 28}, {"SRV", 33}, {"ANY", 255}};
  for (const auto& k : kTypes) {
    if (strcasecmp(k.name, t.c_str()) == 0) return k.code;
  }
  return 1;
}

std::string MakeQuery(const std::string& name, uint16_t type) {
  std::string q("\0\0\0\0\0\1\0\0\0\0\0\0", 12);
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    if (dot > start) {
      q.push_back(static_cast<char>(dot - start));
      q.append(name, start, dot - start);
    }
    start = dot + 1;
  }
  q.push_back('\0');
  q.push_back(static_cast<char>(type >> 8));
  q.push_back(static_cast<char>(type));
  q.push_back('\0');
  q.push_back('\1');
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: dns_blast PORT QUERY_FILE SECONDS [WINDOW]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[3]);
  int window = argc > 4 ? atoi(argv[4]) : 256;
  std::vector<std::string> queries;
  std::ifstream in(argv[2]);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, type;
    if (fields >> name >> type) queries.push_back(MakeQuery(name, TypeCode(type)));
  }
  if (queries.empty()) {
    fprintf(stderr, "dns_blast: no queries in %s\n", argv[2]);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    perror("connect");
    return 1;
  }
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  timeval tv{0, 1000};  // 1 ms: a lost answer only stalls the window briefly
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  constexpr int kBatch = 64;
  mmsghdr out[kBatch];
  iovec out_iov[kBatch];
  mmsghdr recv_msgs[kBatch];
  iovec recv_iov[kBatch];
  static uint8_t recv_buf[kBatch][4096];
  for (int i = 0; i < kBatch; ++i) {
    memset(&recv_msgs[i], 0, sizeof(mmsghdr));
    recv_iov[i] = {recv_buf[i], sizeof(recv_buf[i])};
    recv_msgs[i].msg_hdr.msg_iov = &recv_iov[i];
    recv_msgs[i].msg_hdr.msg_iovlen = 1;
  }
  // Send time by query ID; the window is far below 65536, so an ID is never reused while its
  // answer can still be expected.
  std::vector<double> sent_at(65536, 0.0);
  // Latency histogram in 1 µs buckets up to 1 s (the last bucket takes the rest): fixed
  // memory whatever the rate, exact to the microsecond where the percentiles fall.
  std::vector<uint64_t> hist(1000001, 0);
  uint64_t sent = 0, received = 0;
  size_t next = 0;
  uint16_t id = 0;
  int outstanding = 0;
  double start = Now(), end = start + seconds, last_answer = start;
  while (true) {
    double now = Now();
    if (now >= end) break;
    int n = 0;
    while (outstanding + n < window && n < kBatch) {
      std::string& q = queries[next];
      next = (next + 1) % queries.size();
      ++id;
      q[0] = static_cast<char>(id >> 8);
      q[1] = static_cast<char>(id);
      sent_at[id] = now;
      out_iov[n] = {q.data(), q.size()};
      memset(&out[n], 0, sizeof(mmsghdr));
      out[n].msg_hdr.msg_iov = &out_iov[n];
      out[n].msg_hdr.msg_iovlen = 1;
      ++n;
    }
    if (n > 0) {
      int k = sendmmsg(fd, out, static_cast<unsigned>(n), 0);
      if (k > 0) {
        sent += static_cast<uint64_t>(k);
        outstanding += k;
      }
    }
    int r = recvmmsg(fd, recv_msgs, kBatch, MSG_WAITFORONE, nullptr);
    if (r > 0) {
      double got = Now();
      for (int i = 0; i < r; ++i) {
        if (recv_msgs[i].msg_len < 2) continue;
        uint16_t rid = static_cast<uint16_t>(recv_buf[i][0] << 8 | recv_buf[i][1]);
        if (sent_at[rid] == 0.0) continue;
        auto us = static_cast<size_t>((got - sent_at[rid]) * 1e6);
        ++hist[std::min(us, hist.size() - 1)];
        sent_at[rid] = 0.0;
      }
      received += static_cast<uint64_t>(r);
      outstanding -= r;
      if (outstanding < 0) outstanding = 0;
      last_answer = now;
    } else if (now - last_answer > 0.05) {
      outstanding = 0;  // answers lost: refill the window
      last_answer = now;
    }
  }
  double elapsed = Now() - start;
  auto percentile = [&](double p) -> size_t {
    uint64_t total = 0;
    for (uint64_t c : hist) total += c;
    auto rank = static_cast<uint64_t>(p * static_cast<double>(total));
    uint64_t seen = 0;
    for (size_t us = 0; us < hist.size(); ++us) {
      seen += hist[us];
      if (seen > rank) return us;
    }
    return hist.size() - 1;
  };
  if (received == 0) {
    printf("qps 0 sent %llu received 0 p50_us nan p99_us nan\n",
           static_cast<unsigned long long>(sent));
    close(fd);
    return 1;
  }
  printf("qps %.0f sent %llu received %llu p50_us %zu p99_us %zu\n",
         static_cast<double>(received) / elapsed, static_cast<unsigned long long>(sent),
         static_cast<unsigned long long>(received), percentile(0.50), percentile(0.99));
  close(fd);
  return 0;
}
