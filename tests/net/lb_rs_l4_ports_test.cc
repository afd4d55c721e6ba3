// L4 LoadBalancer members in port namespaces (issue 20, docs/fiberlb.md "L4 LoadBalancers"):
// the bed of net_lb_rs_l4_tests (lb_rs_l4_fixture.h: photon-server with the fiberlb provider,
// fiberlb L4 nodes h1 and h2 behind the ECMP router, a client behind the router) with the
// replicas' agents on h3 and h4 in network mode `ports`: each replica is a VPC instance in its
// own port namespace, reached by L3DSR at its VPC address. Needs root (namespaces).
//
// Asserted: scaled 2 → 4 → 1, both LB nodes' listener holds exactly the VPC addresses of the
// RUNNING replicas, each of them holds the VIP on its port namespace's loopback (the node's
// loopback never), and connections from the client through the VIP are answered, only by
// RUNNING replicas, from every node running one; another port on the same node still cannot
// send from the VIP; h3's agent killed (-9) and restarted adopts the state without duplicating
// it; deleted, no port loopback holds the VIP and the nodes' nft tables and routes are as before.
#include <poll.h>

#include <thread>

#include "tests/net/lb_rs_l4_fixture.h"

namespace photon::agent::testing {
namespace {

// Before the suite's set-up (constant-initialised member, overridden here).
// The members' nodes masquerade 10.0.0.0/8 (their VPC and the VIP pool) leaving the underlay:
// the VIP's answers must leave unNATed all the same.
const bool kPortsMode = (LbRegionServiceL4Test::member_mode_ = "ports",
                         LbRegionServiceL4Test::member_snat_cidrs_ = "10.0.0.0/8", true);

struct Replica {
  int host = 0;
  std::string address;  // VPC address
  std::string netns;    // its port namespace's path
};

class LbPortsL4Test : public LbRegionServiceL4Test {
 protected:
  // A security group admitting the listener's port from anywhere (the VIP's clients and the
  // LB nodes' health checks), egress anywhere.
  std::string MakeGroup() {
    const std::string sg = Name("lbsg");
    json rules = json::array(
        {{{"direction", "ingress"}, {"protocol", "tcp"}, {"portMin", kPort}, {"cidr", "0.0.0.0/0"}},
         {{"direction", "egress"}, {"protocol", "any"}, {"cidr", "0.0.0.0/0"}}});
    auto r = Call("POST", "/v1/namespaces/default/securitygroups",
                  {{"metadata", {{"name", sg}}}, {"spec", {{"rules", rules}}}});
    EXPECT_TRUE(r.status / 100 == 2 || r.status == 409) << r.body;  // 409: an earlier test's
    return sg;
  }
  json PortsRsBody(const std::string& name, int replicas, const std::string& sg,
                   const std::string& program = kMember) {
    json body = RsBody(name, replicas, program);
    body["spec"]["template"]["network"] = {{"securityGroups", {sg}}};
    return body;
  }
  // RUNNING replicas (not being deleted) wired to a port: name → where.
  std::map<std::string, Replica> Replicas(const std::string& rs) {
    std::map<std::string, Replica> out;
    auto list = Get(
        "/v1/namespaces/default/computeinstances?labelSelector=photon.io/regionservice%3D" + rs);
    if (!list.is_object()) return out;
    for (const auto& ci : list.value("items", json::array())) {
      const auto& st = ci.value("status", json::object());
      if (st.value("phase", "") != "RUNNING" ||
          !ci["metadata"].value("deletionTimestamp", "").empty())
        continue;
      const json d = st.value("details", json::object());
      Replica r;
      for (int h = 3; h <= 4; ++h) {
        if (d.value("node", "") == Node(h)) r.host = h;
      }
      const json addrs = st.value("addresses", json::array());
      if (r.host == 0 || addrs.empty() || d.value("network.netns", "").empty()) continue;
      r.address = addrs[0].get<std::string>();
      r.netns = "/run/netns/" + d.value("network.netns", "");
      out[ci["metadata"].value("name", "")] = r;
    }
    return out;
  }
  std::string LoVips(const std::string& netns) {
    return bed_->Run(netns, {"ip", "-4", "-o", "addr", "show", "dev", "lo", "label", "lo:plb"});
  }
  // Both LB nodes' listener holds exactly the RUNNING replicas' VPC addresses, each replica's
  // port holds the VIP (no node loopback does), and 30 connections through the VIP are all
  // answered by RUNNING replicas, from every node that runs one.
  bool Converged(const std::string& rs, const std::string& vip, size_t n, std::string* why) {
    auto running = Replicas(rs);
    if (running.size() != n) {
      *why = std::to_string(running.size()) + " RUNNING replicas";
      return false;
    }
    std::set<std::string> want;
    std::set<int> hosts;
    for (const auto& [name, r] : running) {
      want.insert(r.address);
      hosts.insert(r.host);
      if (LoVips(r.netns).find(" " + vip + "/32") == std::string::npos) {
        *why = name + "'s port does not hold the VIP";
        return false;
      }
    }
    for (int i = 1; i <= kLbNodes; ++i) {
      json ls = Listeners(i);
      if (!ls.is_array() || ls.size() != 1) {
        *why = "h" + std::to_string(i) + " listeners: " + (ls.is_null() ? "?" : ls.dump());
        return false;
      }
      std::set<std::string> have;
      for (const auto& m : ls[0]["members"]) have.insert(m.value("address", ""));
      if (have != want || ls[0].value("vip", "") != vip) {
        *why = "h" + std::to_string(i) + " listener: " + ls[0].dump();
        return false;
      }
    }
    for (int h = 3; h <= 4; ++h) {
      if (HasVipOnLo(h, vip)) {
        *why = "the VIP is on h" + std::to_string(h) + "'s own loopback";
        return false;
      }
    }
    std::set<int> answered;
    for (int k = 0; k < 30; ++k) {
      const std::string who = Hello(bed_->NsPath("c"), vip);
      auto it = running.find(who);
      if (it == running.end()) {
        *why = "a connection through the VIP was answered by '" + who + "'";
        return false;
      }
      answered.insert(it->second.host);
    }
    if (answered != hosts) {
      *why = "answers came from " + std::to_string(answered.size()) + " of " +
             std::to_string(hosts.size()) + " nodes";
      return false;
    }
    return true;
  }
  // The node's nft tables and routes, what a deleted LoadBalancer must leave as it found them.
  std::string NodeState(int h) {
    return bed_->Run(bed_->Host(h), {"nft", "list", "tables"}) +
           bed_->Run(bed_->Host(h), {"ip", "-4", "route", "show", "table", "all"});
  }
  // The nft counter `spoofed` of a port namespace (packets its anti-spoofing dropped).
  int64_t Spoofed(const std::string& netns) {
    std::string out = bed_->Run(netns, {"nft", "list", "counter", "inet", "photon", "spoofed"});
    size_t at = out.find("packets ");
    return at == std::string::npos ? -1 : std::atoll(out.c_str() + at + 8);
  }
};

TEST_F(LbPortsL4Test, ReplicasInPortNamespacesServeTheVipAndLeaveNothing) {
  ASSERT_TRUE(kPortsMode);
  const std::string sg = MakeGroup();
  // Another port on h3, there before the service: it must never send from the VIP.
  const std::string other = Name("other");
  json inst = {
      {"metadata", {{"name", other}, {"agentId", Node(3)}}},
      {"spec",
       {{"process",
         {{"command", {"/usr/bin/python3", "-c", "import time\nwhile True: time.sleep(60)"}},
          {"restartPolicy", "always"}}},
        {"schedule", {{"nodes", {Node(3)}}}},
        {"network", {{"securityGroups", {sg}}}}}}};
  auto made = Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_EQ(made.status / 100, 2) << made.body;
  created_.push_back(other);
  std::string other_ns;
  ASSERT_TRUE(WaitFor(
      [&] {
        json j = Get(InstancePath(other));
        const json st = j.is_object() ? j.value("status", json::object()) : json::object();
        other_ns = st.value("details", json::object()).value("network.netns", "");
        return st.value("phase", "") == "RUNNING" && !other_ns.empty();
      },
      60s))
      << Get(InstancePath(other)).dump();
  other_ns = "/run/netns/" + other_ns;
  const std::string before3 = NodeState(3), before4 = NodeState(4);

  const std::string rs = Name("web");
  auto r = Call("POST", "/v1/namespaces/default/regionservices", PortsRsBody(rs, 2, sg));
  ASSERT_EQ(r.status / 100, 2) << r.body;
  services_.push_back(rs);
  std::string vip;
  ASSERT_TRUE(WaitFor(
      [&] {
        json lb = Get(LbPath(rs));
        vip = lb.is_object() ? lb["status"].value("details", json::object()).value("vip", "") : "";
        return !vip.empty();
      },
      30s));
  for (int n : {2, 4, 1}) {
    if (n != 2) Scale(rs, n);
    std::string why;
    ASSERT_TRUE(WaitFor([&] { return Converged(rs, vip, n, &why); }, 90s))
        << n << " replicas: " << why << "\n"
        << Get(LbPath(rs)).dump() << "\n"
        << AgentLog(3).substr(AgentLog(3).size() > 3000 ? AgentLog(3).size() - 3000 : 0);
  }

  // The other port: its anti-spoofing drops what it sends from the VIP (root in the test puts
  // the VIP on its loopback, which its workload could not), and the node admits no VIP from
  // its veth (not relaxed: the host check lists only the member's veth).
  bed_->Run(other_ns, {"ip", "addr", "add", vip + "/32", "dev", "lo"});
  const int64_t spoofed = Spoofed(other_ns);
  bed_->Run(other_ns, {"python3", "-c",
                       "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                       "s.bind(('" +
                           vip +
                           "',0))\n"
                           "for i in range(5):\n"
                           "  try: s.sendto(b'x',('" +
                           std::string(net_testing::kLbClientIp) +
                           "',9))\n"
                           "  except OSError: pass\n"});  // EPERM: dropped on the way out
  EXPECT_EQ(Spoofed(other_ns), spoofed + 5);
  bed_->Run(other_ns, {"ip", "addr", "del", vip + "/32", "dev", "lo"});
  const std::string relaxed =
      bed_->Run(bed_->Host(3), {"nft", "list", "set", "inet", "photon_vipsrc", "relaxed"});
  const std::string other_veth =
      bed_->Run(bed_->Host(3), {"sh", "-c",
                                "ip -o link 2>/dev/null | grep -F 'photon-port:" +
                                    Get(InstancePath(other))["metadata"].value("id", "") +
                                    "' | cut -d: -f2 | cut -d@ -f1 | tr -d ' '"});
  ASSERT_FALSE(other_veth.empty());
  EXPECT_EQ(relaxed.find(other_veth.substr(0, other_veth.size() - 1)), std::string::npos)
      << relaxed;
  EXPECT_EQ(
      bed_->Run(bed_->Host(3),
                {"sysctl", "-n",
                 "net.ipv4.conf." + other_veth.substr(0, other_veth.size() - 1) + ".rp_filter"}),
      "1\n");
  // The member's veth admits its address and the VIP only: with its port's own anti-spoofing
  // bypassed by the test for a third address (a rule inserted first), 5 datagrams from that
  // address never reach the client, while 5 from the VIP do (counted in the client's namespace).
  {
    const Replica m = Replicas(rs).begin()->second;
    const std::string spoof = "10.254.254.254", c = bed_->NsPath("c");
    const std::string inserted =
        bed_->Run(m.netns, {"nft", "--echo", "--handle", "insert", "rule", "inet", "photon",
                            "egress", "ip", "saddr", spoof, "accept"});
    const size_t h = inserted.find("# handle ");
    ASSERT_NE(h, std::string::npos) << inserted;
    bed_->Run(c,
              {"sh", "-c",
               "printf '%s\\n' 'table ip lbtest {' 'counter spoof {}' 'counter vip {}' 'chain in "
               "{' 'type filter hook prerouting priority 0;' 'ip saddr " +
                   spoof + " udp dport 9 counter name spoof' 'ip saddr " + vip +
                   " udp dport 9 counter name vip' '}' '}' | nft -f -"});
    auto send_from = [&](const std::string& from) {
      bed_->Run(m.netns, {"python3", "-c",
                          "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                          "s.bind(('" +
                              from +
                              "',0))\n"
                              "for i in range(5): s.sendto(b'x',('" +
                              std::string(net_testing::kLbClientIp) + "',9))\n"});
    };
    bed_->Run(m.netns, {"ip", "addr", "add", spoof + "/32", "dev", "lo"});
    send_from(spoof);
    send_from(vip);
    bed_->Run(m.netns, {"ip", "addr", "del", spoof + "/32", "dev", "lo"});
    bed_->Run(m.netns, {"nft", "delete", "rule", "inet", "photon", "egress", "handle",
                        std::to_string(std::atoi(inserted.c_str() + h + 9))});
    auto seen = [&](const std::string& counter) {
      std::string out = bed_->Run(c, {"nft", "list", "counter", "ip", "lbtest", counter});
      size_t at = out.find("packets ");
      return at == std::string::npos ? -1 : std::atoll(out.c_str() + at + 8);
    };
    EXPECT_TRUE(WaitFor([&] { return seen("vip") == 5; }, 5s)) << seen("vip");
    EXPECT_EQ(seen("spoof"), 0);
    bed_->Run(c, {"nft", "delete", "table", "ip", "lbtest"});
  }

  // The VIP lost behind the agent's back: the next change of the port (a rule added to its
  // security group) has the agent read what the port holds again and restore it.
  std::string lost;
  const Replica member0 = Replicas(rs).begin()->second;
  bed_->Run(member0.netns, {"ip", "addr", "del", vip + "/32", "dev", "lo"});
  for (int attempt = 0; attempt < 5; ++attempt) {
    json cur = Get("/v1/namespaces/default/securitygroups/" + sg);
    cur["spec"]["rules"].push_back(
        {{"direction", "ingress"}, {"protocol", "tcp"}, {"portMin", 9999}, {"cidr", "10.0.0.0/8"}});
    if (Call("PUT", "/v1/namespaces/default/securitygroups/" + sg, cur).status / 100 == 2) break;
  }
  EXPECT_TRUE(WaitFor([&] { return Converged(rs, vip, 1, &lost); }, 30s)) << lost;
  EXPECT_NE(
      bed_->Run(member0.netns, {"nft", "list", "set", "inet", "photon", "in_ports"}).find("9999"),
      std::string::npos);

  // h3's agent killed (-9) and back: it adopts the ports' VIP state, duplicating nothing.
  // Once the scale-down's leaving replicas are gone (their drain over): only then is the
  // node's state the member's alone.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto all =
            Get("/v1/namespaces/default/computeinstances?labelSelector=photon.io/regionservice%3D" +
                rs);
        return all.is_object() && all.value("items", json::array()).size() == 1;
      },
      60s));
  auto running = Replicas(rs);
  ASSERT_EQ(running.size(), 1u);
  const Replica member = running.begin()->second;
  const std::string host_rules =
      bed_->Run(bed_->Host(member.host), {"nft", "-s", "list", "table", "inet", "photon_vipsrc"});
  const std::string port_rules = bed_->Run(member.netns, {"nft", "-s", "list", "ruleset"});
  // The restarted agent's adoption of the port logs that it holds the VIP again: waited for,
  // so the state compared is the one it left.
  const std::string held = Get(InstancePath(running.begin()->first))["metadata"].value("id", "") +
                           " holds L4 VIP " + vip;
  auto times_held = [&] {
    const std::string log = AgentLog(member.host);
    int n = 0;
    for (size_t at = log.find(held); at != std::string::npos; at = log.find(held, at + 1)) ++n;
    return n;
  };
  const int held_before = times_held();
  agents_[member.host]->Kill(SIGKILL);
  ASSERT_TRUE(StartAgent(member.host)) << AgentLog(member.host);
  EXPECT_TRUE(WaitFor([&] { return times_held() > held_before; }, 30s)) << held;
  std::string why;
  EXPECT_TRUE(WaitFor([&] { return Converged(rs, vip, 1, &why); }, 60s)) << why;
  EXPECT_EQ(
      bed_->Run(bed_->Host(member.host), {"nft", "-s", "list", "table", "inet", "photon_vipsrc"}),
      host_rules);
  EXPECT_EQ(bed_->Run(member.netns, {"nft", "-s", "list", "ruleset"}), port_rules);
  EXPECT_EQ(CountLines(LoVips(member.netns), "inet "), 1);
  // Deleted: no port loopback holds the VIP, the nodes' tables and routes are as before.
  ASSERT_EQ(Call("DELETE", RsPath(rs)).status / 100, 2);
  EXPECT_TRUE(WaitFor([&] { return Call("GET", LbPath(rs)).status == 404; }, 60s));
  EXPECT_TRUE(WaitFor([&] { return Call("GET", RsPath(rs)).status == 404; }, 60s));
  for (int h = 3; h <= 4; ++h) {
    std::string state;
    EXPECT_TRUE(WaitFor(
        [&] {
          state = NodeState(h);
          return state == (h == 3 ? before3 : before4);
        },
        30s))
        << "h" << h << " now:\n"
        << state << "before:\n"
        << (h == 3 ? before3 : before4)
        << bed_->Run(bed_->Host(h), {"nft", "list", "table", "inet", "photon_vipsrc"})
        << bed_->Run(bed_->Host(h), {"ip", "-o", "link"}) << AgentLog(h);
    const std::string vips =
        bed_->Run(bed_->Host(h),
                  {"sh", "-c",
                   "for n in $(ip netns list | cut -d' ' -f1 | grep -F '" + Prefix(h) +
                       "'); do ip -n $n -4 -o addr show dev lo label lo:plb 2>/dev/null; done"});
    EXPECT_EQ(vips, "") << "h" << h;
  }
  EXPECT_EQ(Hello(bed_->NsPath("c"), vip), "");
}

// The scale-down drain of a member in a port namespace: its agent counts the connections to
// the VIP in the port's namespace (not the node's) and keeps it running while one is open.
TEST_F(LbPortsL4Test, ScaleDownDrainsTheLeavingPortsConnections) {
  const std::string rs = Name("drain");
  ScaleDownKeepsTheLeavingReplicasFlow(rs, PortsRsBody(rs, 1, MakeGroup(), kEchoMember));
}

}  // namespace
}  // namespace photon::agent::testing
