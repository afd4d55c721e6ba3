// photon-bench-lb-l4-create: time from `photon create` of a RegionService with an L4
// LoadBalancer to the first HTTP 200 through its VIP (issue 20's target: <= 1 s after its member
// is RUNNING), on the bed of net_lb_rs_l4_tests (tests/net/lb_rs_l4_fixture.h): real
// photon-server with the fiberlb provider, two real fiberlb L4 nodes with BIRD2 behind the ECMP
// router, photon-agents in mode shared, a client behind the router. Needs root.
//   sudo build/bench/lb/photon-bench-lb-l4-create        (ROUNDS=5 in the environment)
//   MEMBERS=ports: the agents in mode ports, the replica in a port namespace (L3DSR to its VPC
//   address, a security group admitting 8081); the direct peer is then its VPC address.
// Each round creates a RegionService with one replica (an HTTP answer on 8081) and an L4
// listener (tcp check every 200 ms, rise 1), then polls as fast as it can, recording when
//   running   the replica is RUNNING (photon-server's API),
//   direct    a GET to the replica at its node's address answers 200 (the peer: the same
//             client and router, no LB; the replica's own readiness),
//   announced the router has a route for the VIP (an LB node's table holds the member),
//   ok        a GET through the VIP answers 200,
// then deletes it and waits until its VIP is withdrawn. Medians, with the load average.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "tests/net/lb_rs_l4_fixture.h"

namespace photon::agent::testing {
namespace {

// A replica answering every connection with an HTTP 200 carrying its name (SO_REUSEPORT: the
// replicas of a node share the port).
constexpr char kHttpMember[] =
    "import socket,os\n"
    "n=os.environ['PHOTON_INSTANCE'].encode()\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\n"
    "s.bind(('0.0.0.0',8081)); s.listen(64)\n"
    "while True:\n"
    "  c,a=s.accept()\n"
    "  try:\n"
    "    c.recv(4096); c.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s'"
    " % (len(n), n))\n"
    "  except OSError: pass\n"
    "  c.close()\n";

// True when GET / to ip:kPort from the client answers 200 (one connection, 300 ms).
bool Get200(const std::string& client_ns, const std::string& ip) {
  int fd = net_testing::ConnectFrom(client_ns, ip, kPort, 300ms);
  if (fd < 0) return false;
  const std::string req = "GET / HTTP/1.0\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  return ReadLine(fd, 300ms).rfind("HTTP/1.0 200", 0) == 0;
}

bool PortsMode() {
  const char* m = std::getenv("MEMBERS");
  return m != nullptr && std::string(m) == "ports";
}
// Before the suite's set-up (the fixture's constant-initialised mode).
const bool kMode = (PortsMode() && (LbRegionServiceL4Test::member_mode_ = "ports"), true);

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

TEST_F(LbRegionServiceL4Test, CreateToFirst200ThroughTheVip) {
  const char* env = std::getenv("ROUNDS");
  const int rounds = env != nullptr ? std::max(1, std::atoi(env)) : 5;
  const std::string client = bed_->NsPath("c");
  std::vector<double> running, direct, announced, ok, loads;
  ASSERT_TRUE(kMode);
  const std::string sg = Name("c2hsg");
  if (PortsMode()) {
    json rules = json::array(
        {{{"direction", "ingress"}, {"protocol", "tcp"}, {"portMin", kPort}, {"cidr", "0.0.0.0/0"}},
         {{"direction", "egress"}, {"protocol", "any"}, {"cidr", "0.0.0.0/0"}}});
    ASSERT_EQ(Call("POST", "/v1/namespaces/default/securitygroups",
                   {{"metadata", {{"name", sg}}}, {"spec", {{"rules", rules}}}})
                      .status /
                  100,
              2);
  }
  for (int r = 1; r <= rounds; ++r) {
    const std::string rs = Name("c2h" + std::to_string(r));
    json body = RsBody(rs, 1, kHttpMember);
    if (PortsMode()) body["spec"]["template"]["network"] = {{"securityGroups", {sg}}};
    body["spec"]["loadBalancer"]["healthCheck"] = {
        {"type", "tcp"}, {"intervalMs", 200}, {"rise", 1}, {"fall", 2}};
    loads.push_back(LoadAverage());
    const auto t0 = std::chrono::steady_clock::now();
    auto since = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto created = Call("POST", "/v1/namespaces/default/regionservices", body);
    ASSERT_EQ(created.status / 100, 2) << created.body;
    services_.push_back(rs);
    std::map<std::string, double> at;
    std::string vip;
    int host = 0;
    std::string direct_ip;  // the node's address, or in mode ports the replica's VPC address
    while (!at.count("ok") && since() < 60) {
      if (!at.count("running")) {
        auto run = Running(rs);
        if (!run.empty()) {
          at["running"] = since();
          host = run.begin()->second;
          direct_ip = NodeIp(host);
          if (PortsMode()) {
            json ci = Get(InstancePath(run.begin()->first));
            direct_ip = ci["status"].value("addresses", json::array())[0].get<std::string>();
          }
        }
      }
      if (vip.empty()) {
        json lb = Get(LbPath(rs));
        if (lb.is_object()) vip = lb["status"].value("details", json::object()).value("vip", "");
      }
      if (host != 0 && !at.count("direct") && Get200(client, direct_ip)) at["direct"] = since();
      if (!vip.empty() && !at.count("announced") && net_testing::LbRouterPaths(*bed_, vip) > 0)
        at["announced"] = since();
      if (!vip.empty() && Get200(client, vip)) at["ok"] = since();
    }
    ASSERT_TRUE(at.count("ok")) << "round " << r << ": no 200 through the VIP within 60 s";
    for (const char* k : {"running", "direct", "announced"}) {
      if (!at.count(k)) at[k] = at["ok"];
    }
    std::printf(
        "round %d (load %.1f): create -> RUNNING %.3f s; after RUNNING: direct 200 %.3f s, VIP "
        "announced %.3f s, first 200 through the VIP %.3f s\n",
        r, loads.back(), at["running"], at["direct"] - at["running"],
        at["announced"] - at["running"], at["ok"] - at["running"]);
    std::fflush(stdout);
    running.push_back(at["running"]);
    direct.push_back(at["direct"] - at["running"]);
    announced.push_back(at["announced"] - at["running"]);
    ok.push_back(at["ok"] - at["running"]);
    ASSERT_EQ(Call("DELETE", RsPath(rs)).status / 100, 2);
    ASSERT_TRUE(WaitFor([&] { return Call("GET", RsPath(rs)).status == 404; }, 60s));
    ASSERT_TRUE(WaitFor([&] { return net_testing::LbRouterPaths(*bed_, vip) == 0; }, 30s));
    services_.clear();
  }
  std::printf(
      "\nL4 create -> first 200 (members in mode %s), %d rounds, load average %.1f-%.1f (medians): "
      "create -> RUNNING "
      "%.3f s; RUNNING -> direct 200 (peer, no LB) %.3f s; RUNNING -> VIP announced %.3f s; "
      "RUNNING -> first 200 through the VIP %.3f s (target <= 1 s; the LB adds %.3f s over the "
      "direct path)\n",
      PortsMode() ? "ports" : "shared", rounds, *std::min_element(loads.begin(), loads.end()),
      *std::max_element(loads.begin(), loads.end()), Median(running), Median(direct),
      Median(announced), Median(ok), Median(ok) - Median(direct));
}

}  // namespace
}  // namespace photon::agent::testing
