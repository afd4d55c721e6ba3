// The L4 VIP pool of the fiberlb provider (server/providers/fiberlb/vip_pool.h) on a real
// SQLite store, and the API's checks of an L4 load balancer spec (loadbalancer_rules.h).
#include "server/providers/fiberlb/vip_pool.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_util.h"
#include "server/providers/fiberlb/fiberlb_provider.h"
#include "server/providers/loadbalancer_rules.h"
#include "test_util.h"

namespace photon::server {
namespace {

TEST(VipPool, RefusesWhatIsNotAnAlignedIpv4Block) {
  for (const char* bad :
       {"10.0.0.1/30", "10.0.0.0", "10.0.0.0/8", "10.0.0.0/x", "fd00::/120", "10.0.0.0/30x"}) {
    auto p = VipPool::Parse("photon", bad);
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(p.status().message().find("vip_pool"), std::string::npos) << p.status();
  }
}

TEST(VipPool, NoDoublesGivenBackAndKeptAcrossARestart) {
  const std::string dir = testing::MakeTempDir("vip-pool");
  auto pool = VipPool::Parse("photon", "10.200.7.0/30");  // .1 and .2
  ASSERT_TRUE(pool.ok()) << pool.status();
  {
    auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(*pool->Acquire(store->get(), "a", "web"), "10.200.7.1");
    EXPECT_EQ(*pool->Acquire(store->get(), "b", "web"), "10.200.7.2");
    EXPECT_EQ(*pool->Acquire(store->get(), "a", "web"), "10.200.7.1");  // the same again
    auto full = pool->Acquire(store->get(), "c", "web");
    EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status();
    // Another owner (another photon cluster on the same store) has a pool of its own.
    auto other = VipPool::Parse("other", "10.200.7.0/30");
    EXPECT_EQ(*other->Acquire(store->get(), "c", "web"), "10.200.7.1");
  }
  auto store = store::OpenStore({.spec = "sqlite", .data_dir = dir});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*pool->Find(store->get(), "b", "web"), "10.200.7.2");  // after the restart
  ASSERT_TRUE(pool->Release(store->get(), "a", "web").ok());
  EXPECT_EQ(*pool->Find(store->get(), "a", "web"), "");
  EXPECT_EQ(*pool->Acquire(store->get(), "c", "web"), "10.200.7.1");  // given back, reused
  EXPECT_EQ(pool->Holders(store->get())->size(), 2u);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

network::LoadBalancerSpec L4Spec() {
  network::LoadBalancerSpec s;
  s.set_type(network::LoadBalancerSpec::L4);
  auto* l = s.add_listeners();
  l->set_port(8081);
  l->set_protocol("TCP");
  s.mutable_health_check()->set_type("tcp");
  return s;
}

TEST(L4LoadBalancerSpec, L7OptionsAndTranslatedPortsAreRefusedNamingTheField) {
  SetLoadBalancerL4Configured(false);
  auto st = ValidateLoadBalancerSpec(L4Spec(), "spec.loadBalancer");
  EXPECT_NE(st.message().find("spec.loadBalancer.type"), std::string::npos) << st;
  SetLoadBalancerL4Configured(true);
  EXPECT_TRUE(ValidateLoadBalancerSpec(L4Spec(), "spec.loadBalancer").ok());
  struct Case {
    std::string field;
    std::function<void(network::LoadBalancerSpec*)> change;
  };
  const std::vector<Case> cases = {
      {"listeners[0].routes",
       [](auto* s) { s->mutable_listeners(0)->add_routes()->set_path_prefix("/"); }},
      {"listeners[0].certificates",
       [](auto* s) { s->mutable_listeners(0)->add_certificates()->set_certificate("x"); }},
      {"listeners[0].protocol", [](auto* s) { s->mutable_listeners(0)->set_protocol("HTTPS"); }},
      {"listeners[0].targetPort", [](auto* s) { s->mutable_listeners(0)->set_target_port(80); }},
      {"healthCheck.type", [](auto* s) { s->mutable_health_check()->set_type("http"); }},
      {"healthCheck.type", [](auto* s) { s->mutable_listeners(0)->set_protocol("UDP"); }},
      {"listeners[1].port", [](auto* s) { *s->add_listeners() = s->listeners(0); }},
  };
  for (const auto& c : cases) {
    auto s = L4Spec();
    c.change(&s);
    auto r = ValidateLoadBalancerSpec(s, "spec.loadBalancer");
    EXPECT_EQ(r.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(r.message().find("spec.loadBalancer." + c.field), std::string::npos) << r;
  }
  // TCP and UDP on one port (UDP unchecked) and targetPort = port are fine.
  auto s = L4Spec();
  s.mutable_health_check()->set_type("none");
  auto* udp = s.add_listeners();
  udp->set_port(8081);
  udp->set_protocol("UDP");
  s.mutable_listeners(0)->set_target_port(8081);
  EXPECT_TRUE(ValidateLoadBalancerSpec(s, "spec.loadBalancer").ok());
  SetLoadBalancerL4Configured(false);
}

// l7_announce: L7 VIPs from vip_pool, announced; refused with listen_address or without a pool,
// and a value other than true/false is not read as either.
TEST(FiberLbProviderConfig, L7AnnounceNeedsThePoolAndNoListenAddress) {
  const std::string dir = testing::MakeTempDir("fiberlb-provider");
  ASSERT_TRUE(WriteFileAtomic(dir + "/api.token", "t\n", 0600).ok());
  auto make = [&](std::map<std::string, std::string> extra) {
    ProviderConfig c{"fiberlb",
                     {{"endpoint", "http://127.0.0.1:18090"}, {"token_file", dir + "/api.token"}}};
    c.settings.insert(extra.begin(), extra.end());
    return NewFiberLbProvider(c).status();
  };
  EXPECT_TRUE(make({{"l7_announce", "true"}, {"vip_pool", "10.200.9.0/29"}}).ok());
  EXPECT_TRUE(make({{"l7_announce", "false"}}).ok());
  for (const auto& [extra, field] :
       std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
           {{{"l7_announce", "true"}}, "l7_announce"},
           {{{"l7_announce", "yes"}, {"vip_pool", "10.200.9.0/29"}}, "l7_announce"},
           {{{"l7_announce", "true"},
             {"vip_pool", "10.200.9.0/29"},
             {"listen_address", "10.0.0.1"}},
            "l7_announce"},
           {{{"vip_pool", "10.200.9.0/29"}}, "l4_endpoints"},
           {{{"l7_announce", "true"}, {"vip_pool", "10.200.9.1/29"}}, "vip_pool"}}) {
    Status s = make(extra);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace photon::server
