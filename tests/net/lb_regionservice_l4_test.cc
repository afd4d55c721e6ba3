// L4 LoadBalancers of RegionServices end to end on the multi-host bed (issue 20,
// docs/fiberlb.md "L4 LoadBalancers"): a real photon-server (fiberlb provider with two L4 LB
// nodes and a VIP pool), a real fiberlb with an `l4` section in each of h1 and h2 (their BIRD2
// announcing the VIP to an ECMP router, real nftables), photon-agents in network mode `shared`
// on h3 and h4 running the replicas (each answers a connection with its name), and a client
// behind the router. Needs root (namespaces).
//
// Asserted: a RegionService with an L4 LoadBalancer gets a VIP from the pool; scaled 2 → 5 → 1,
// at every step the L4 listener on both LB nodes holds exactly the addresses of the RUNNING
// replicas, the VIP on a node's loopback follows whether it runs a replica, and connections
// from the client through the VIP are all answered, only by RUNNING replicas, from every node
// that runs one; deleted, its LoadBalancer, listeners, VIP route and loopback VIPs are gone and
// the VIP is given back (the next L4 LoadBalancer gets it). Bad input is refused naming the
// field.
#include <poll.h>

#include "tests/net/lb_rs_l4_fixture.h"

namespace photon::agent::testing {
namespace {

TEST_F(LbRegionServiceL4Test, ScaleTwoFiveOneServesOnlyRunningReplicasAndDeleteRemovesAll) {
  const std::string rs = Name("web");
  auto r = Call("POST", "/v1/namespaces/default/regionservices", RsBody(rs, 2));
  ASSERT_EQ(r.status / 100, 2) << r.body;
  services_.push_back(rs);
  // The LoadBalancer gets the pool's first VIP, announced by both LB nodes once a member is
  // healthy.
  std::string vip;
  ASSERT_TRUE(WaitFor(
      [&] {
        json lb = Get(LbPath(rs));
        if (!lb.is_object()) return false;
        vip = lb["status"].value("details", json::object()).value("vip", "");
        return !vip.empty();
      },
      30s))
      << Get(LbPath(rs)).dump();
  EXPECT_EQ(vip, "10.200.7.1");
  for (int n : {2, 5, 1}) {
    if (n != 2) Scale(rs, n);
    std::string why;
    EXPECT_TRUE(WaitFor([&] { return Converged(rs, vip, n, &why); }, 90s))
        << n << " replicas: " << why << "\n"
        << Get(LbPath(rs)).dump();
    EXPECT_TRUE(WaitFor([&] { return net_testing::LbRouterPaths(*bed_, vip) == kLbNodes; }, 20s))
        << bed_->Run("r", {"ip", "route"});
    // The status: RUNNING, the VIP and each member's health as the L4 nodes see it.
    json lb;
    EXPECT_TRUE(WaitFor(
        [&] {
          lb = Get(LbPath(rs));
          if (lb["status"].value("phase", "") != "RUNNING" ||
              lb["status"].value("addresses", json::array()) != json::array({vip}))
            return false;
          int up = 0;
          const json details = lb["status"].value("details", json::object());
          for (const auto& [k, v] : details.items()) {
            if (k.rfind("member.", 0) == 0 &&
                v.get<std::string>().find(" UP on 2/2") != std::string::npos)
              ++up;
          }
          return up == n;
        },
        20s))
        << lb.dump();
  }
  // Deleted: the LoadBalancer, the listeners on both nodes, the VIP's route and the loopback
  // VIPs all go.
  ASSERT_EQ(Call("DELETE", RsPath(rs)).status / 100, 2);
  EXPECT_TRUE(WaitFor([&] { return Call("GET", LbPath(rs)).status == 404; }, 60s));
  EXPECT_TRUE(WaitFor(
      [&] {
        for (int i = 1; i <= kLbNodes; ++i) {
          json ls = Listeners(i);
          if (!ls.is_array() || !ls.empty()) return false;
        }
        return true;
      },
      60s))
      << Listeners(1).dump() << Listeners(2).dump();
  EXPECT_TRUE(WaitFor([&] { return net_testing::LbRouterPaths(*bed_, vip) == 0; }, 20s))
      << bed_->Run("r", {"ip", "route"});
  EXPECT_TRUE(WaitFor([&] { return !HasVipOnLo(3, vip) && !HasVipOnLo(4, vip); }, 60s));
  for (int i = 1; i <= kLbNodes; ++i) {
    EXPECT_EQ(bed_->Run(bed_->Host(i), {"ip", "route", "show", vip + "/32"}), "") << i;
  }
  EXPECT_EQ(Hello(bed_->NsPath("c"), vip), "");
  // The VIP was given back: the next L4 LoadBalancer gets it again.
  const std::string next = Name("next");
  r = Call("POST", "/v1/namespaces/default/regionservices", RsBody(next, 1));
  ASSERT_EQ(r.status / 100, 2) << r.body;
  services_.push_back(next);
  std::string again;
  EXPECT_TRUE(WaitFor(
      [&] {
        json lb = Get(LbPath(next));
        again =
            lb.is_object() ? lb["status"].value("details", json::object()).value("vip", "") : "";
        return !again.empty();
      },
      60s))
      << Get(LbPath(next)).dump() << "\n"
      << Get(RsPath(next)).dump() << "\n"
      << ServerLog("loadbalancer") << ServerLog(next) << ServerLog(" error ") << ServerLog(" warn");
  EXPECT_EQ(again, vip);
}

// Scale-down drain (issue 20) of replicas in their node's network
// (ScaleDownKeepsTheLeavingReplicasFlow in the fixture).
TEST_F(LbRegionServiceL4Test, ScaleDownDrainsTheLeavingReplicasConnections) {
  const std::string rs = Name("drain");
  ScaleDownKeepsTheLeavingReplicasFlow(rs, RsBody(rs, 1, kEchoMember));
}

// VIP sweep: the agent of a member's node is down while the RegionService (and so its
// LoadBalancer) is deleted; the VIP it had put on the node's loopback is removed when it
// comes back (at its start, no instance there needs it), not left until some later teardown.
TEST_F(LbRegionServiceL4Test, VipLeftByAnAgentThatWasDownIsRemovedOnItsReturn) {
  const std::string rs = Name("sweep");
  json body = RsBody(rs, 1);
  body["spec"]["schedule"]["nodes"] = {Node(4)};
  auto r = Call("POST", "/v1/namespaces/default/regionservices", body);
  ASSERT_EQ(r.status / 100, 2) << r.body;
  services_.push_back(rs);
  std::string vip;
  ASSERT_TRUE(WaitFor(
      [&] {
        json lb = Get(LbPath(rs));
        vip = lb.is_object() ? lb["status"].value("details", json::object()).value("vip", "") : "";
        return !vip.empty() && Running(rs).size() == 1 && HasVipOnLo(4, vip);
      },
      60s))
      << Get(LbPath(rs)).dump();
  agents_[4]->Kill(SIGKILL);
  ASSERT_EQ(Call("DELETE", RsPath(rs)).status / 100, 2);
  ASSERT_TRUE(WaitFor([&] { return Call("GET", LbPath(rs)).status == 404; }, 60s));
  EXPECT_TRUE(HasVipOnLo(4, vip)) << "the VIP should still be there while h4's agent is down";
  ASSERT_TRUE(StartAgent(4));
  EXPECT_TRUE(WaitFor([&] { return !HasVipOnLo(4, vip); }, 30s))
      << bed_->Run(bed_->Host(4), {"ip", "-4", "addr", "show", "dev", "lo"});
  EXPECT_TRUE(WaitFor([&] { return Call("GET", RsPath(rs)).status == 404; }, 60s));
}

TEST_F(LbRegionServiceL4Test, BadInputIsRefusedNamingTheField) {
  struct Case {
    std::string what, field;
    std::function<void(json*)> change;
  };
  const std::vector<Case> cases = {
      {"routes on L4", "spec.loadBalancer.listeners[0].routes",
       [](json* lb) {
         (*lb)["listeners"][0]["routes"] = {{{"pathPrefix", "/"}, {"targetPort", 9000}}};
       }},
      {"HTTP on L4", "spec.loadBalancer.listeners[0].protocol",
       [](json* lb) { (*lb)["listeners"][0]["protocol"] = "HTTP"; }},
      {"a translated port", "spec.loadBalancer.listeners[0].targetPort",
       [](json* lb) { (*lb)["listeners"][0]["targetPort"] = 9000; }},
      {"an http check", "spec.loadBalancer.healthCheck.type",
       [](json* lb) {
         (*lb)["healthCheck"] = {{"type", "http"}, {"path", "/"}};
       }},
      {"a tcp check of UDP", "spec.loadBalancer.healthCheck.type",
       [](json* lb) { (*lb)["listeners"][0]["protocol"] = "UDP"; }},
      {"the same port twice", "spec.loadBalancer.listeners[1].port",
       [](json* lb) {
         (*lb)["listeners"].push_back({{"port", kPort}, {"protocol", "TCP"}});
       }},
  };
  for (const auto& c : cases) {
    json body = RsBody(Name("bad"), 1);
    c.change(&body["spec"]["loadBalancer"]);
    auto r = Call("POST", "/v1/namespaces/default/regionservices", body);
    EXPECT_EQ(r.status, 400) << c.what << ": " << r.body;
    EXPECT_NE(r.body.find(c.field), std::string::npos) << c.what << ": " << r.body;
    if (r.status / 100 == 2) services_.push_back(Name("bad"));
  }
  // TCP and UDP on one port are two L4 listeners: accepted (UDP needs check none).
  json both = RsBody(Name("both"), 0);
  auto& lb = both["spec"]["loadBalancer"];
  lb["listeners"].push_back({{"port", kPort}, {"protocol", "UDP"}});
  lb["healthCheck"] = {{"type", "none"}};
  auto r = Call("POST", "/v1/namespaces/default/regionservices", both);
  EXPECT_EQ(r.status / 100, 2) << r.body;
  if (r.status / 100 == 2) services_.push_back(Name("both"));
}

}  // namespace
}  // namespace photon::agent::testing
