// fiberlb's L4 Maglev table and nft rendering, without the kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "fiberlb/l4/l4_balancer.h"
#include "fiberlb/l4/maglev.h"

namespace photon::fiberlb::l4 {
namespace {

std::vector<MaglevBackend> Backends(int n, int first = 1) {
  std::vector<MaglevBackend> b;
  for (int i = first; i < first + n; ++i) b.push_back({"10.0.0." + std::to_string(i), 1});
  return b;
}

// The table as backend keys, so tables built from differently ordered lists compare equal.
std::vector<std::string> Keys(const std::vector<MaglevBackend>& b) {
  auto t = BuildMaglevTable(b);
  EXPECT_TRUE(t.ok()) << t.status();
  std::vector<std::string> keys;
  for (uint32_t i : *t) keys.push_back(b[i].key);
  return keys;
}

TEST(Maglev, IdenticalOnEveryComputationAndOrder) {
  auto b = Backends(7);
  auto first = Keys(b);
  EXPECT_EQ(first.size(), kMaglevTableSize);
  EXPECT_EQ(Keys(b), first);
  std::mt19937 rng(42);
  for (int i = 0; i < 3; ++i) {
    std::shuffle(b.begin(), b.end(), rng);
    EXPECT_EQ(Keys(b), first);
  }
}

// Pinned so that a change of the hashes (which would make LB nodes of two versions send the
// same flow to different members) cannot pass unnoticed.
TEST(Maglev, StableAcrossBuilds) {
  auto keys = Keys(Backends(3));
  uint64_t h = 0;
  for (const auto& k : keys) h = h * 31 + static_cast<uint64_t>(k.back() - '0');
  EXPECT_EQ(keys[0] + " " + keys[1] + " " + keys[65536], "10.0.0.2 10.0.0.3 10.0.0.2");
  EXPECT_EQ(h, 2489427863540296277u);
  EXPECT_EQ(MaglevHash("10.0.0.1", 1), 6975959636216478347u);
}

TEST(Maglev, BalancedWithinAFewPercent) {
  for (int n : {2, 3, 5, 10, 50}) {
    auto b = Backends(n);
    std::map<std::string, int> count;
    for (const auto& k : Keys(b)) ++count[k];
    ASSERT_EQ(count.size(), static_cast<size_t>(n));
    double fair = static_cast<double>(kMaglevTableSize) / n;
    for (const auto& [k, c] : count) {
      EXPECT_NEAR(c / fair, 1.0, 0.03) << n << " backends, " << k;
    }
  }
}

TEST(Maglev, WeightsGiveProportionalShares) {
  std::vector<MaglevBackend> b{{"10.0.0.1", 1}, {"10.0.0.2", 2}, {"10.0.0.3", 3}};
  std::map<std::string, int> count;
  for (const auto& k : Keys(b)) ++count[k];
  EXPECT_NEAR(count["10.0.0.1"] / (kMaglevTableSize / 6.0), 1.0, 0.03);
  EXPECT_NEAR(count["10.0.0.2"] / (kMaglevTableSize * 2 / 6.0), 1.0, 0.03);
  EXPECT_NEAR(count["10.0.0.3"] / (kMaglevTableSize * 3 / 6.0), 1.0, 0.03);
}

double Moved(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t moved = 0;
  for (size_t i = 0; i < a.size(); ++i) moved += a[i] != b[i];
  return static_cast<double>(moved) / a.size();
}

TEST(Maglev, AddingOrRemovingOneMovesAboutOneNth) {
  for (int n : {3, 5, 10}) {
    auto before = Keys(Backends(n));
    auto added = Keys(Backends(n + 1));
    // Ideal: 1/(n+1) of the slots go to the new backend; Maglev moves a little more.
    EXPECT_LE(Moved(before, added), 1.15 / (n + 1)) << n;
    EXPECT_GE(Moved(before, added), 0.95 / (n + 1)) << n;
    auto removed = Keys(Backends(n - 1, 2));  // 10.0.0.1 leaves
    EXPECT_LE(Moved(before, removed), 1.15 / n) << n;
    // Every slot of a surviving backend that moves is a disruption; the removed one's must move.
    for (size_t i = 0; i < before.size(); ++i) {
      if (before[i] == "10.0.0.1") {
        ASSERT_NE(removed[i], "10.0.0.1");
      }
    }
  }
}

TEST(Maglev, RefusesBadInput) {
  EXPECT_EQ(BuildMaglevTable({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(BuildMaglevTable({{"a", 1}, {"a", 1}}).ok());
  EXPECT_FALSE(BuildMaglevTable({{"a", 0}}).ok());
  EXPECT_FALSE(BuildMaglevTable({{"", 1}}).ok());
  EXPECT_FALSE(BuildMaglevTable({{"a", 1}}, 65536).ok());
  EXPECT_TRUE(BuildMaglevTable({{"a", 1}}, 13).ok());
}

L4BalancerOptions Opts() {
  L4BalancerOptions o;
  o.device = "ul0";
  o.hash_seed = 0xabcdef;
  return o;
}

TEST(L4Render, OneMapAndRulePerListenerWithTheFixedSeed) {
  L4Listener l{"10.200.0.10",
               80,
               L4Protocol::kTcp,
               {{"192.168.10.21", "02:00:00:00:00:21", 1, true},
                {"192.168.10.22", "02:00:00:00:00:22", 1, false},   // unhealthy: out
                {"192.168.10.23", "02:00:00:00:00:23", 0, true}}};  // drained: out
  auto s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NE(s->find("seed 0xabcdef vmap @m_tcp_10_200_0_10_80\n"), std::string::npos)
      << s->substr(s->size() - 600);
  EXPECT_NE(s->find("ether saddr set 02:00:00:00:00:01 ether daddr set 02:00:00:00:00:21 fwd to "
                    "\"ul0\""),
            std::string::npos);
  EXPECT_NE(s->find("meta pkttype host ip daddr 10.200.0.10 tcp dport 80"), std::string::npos);
  EXPECT_NE(s->find("65536 : jump tcp_10_200_0_10_80_0 }"), std::string::npos);
  EXPECT_EQ(s->find("02:00:00:00:00:22"), std::string::npos);
  EXPECT_EQ(s->find("02:00:00:00:00:23"), std::string::npos);
  EXPECT_EQ(s->find("ct "), std::string::npos);  // stateless: no conntrack
  // The counter is in a table of its own (reading it must not fetch the map's elements).
  const size_t stats = s->find("table netdev fiberlb_l4_stats {");
  ASSERT_NE(stats, std::string::npos);
  EXPECT_LT(stats, s->find("counter name \"c_tcp_10_200_0_10_80\""));
  EXPECT_LT(s->find("counter name \"c_tcp_10_200_0_10_80\""), s->find("table netdev fiberlb_l4 {"));
  // No eligible member: the listener has no rule (its VIP is not announced either).
  l.members.resize(1);
  l.members[0].healthy = false;
  s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->find("fwd"), std::string::npos);
}

TEST(L4Render, RefusesBadInputNamingTheField) {
  L4Listener l{"10.200.0.10", 80, L4Protocol::kUdp, {{"192.168.10.21", "02:00:00:00:00:21"}}};
  L4BalancerOptions o = Opts();
  o.device = "ul0\"; drop";
  EXPECT_FALSE(RenderL4Ruleset(o, "02:00:00:00:00:01", {l}).ok());
  l.vip = "10.200.0";
  auto s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  EXPECT_NE(s.status().message().find("vip"), std::string::npos) << s.status();
  l.vip = "10.200.0.10";
  l.members[0].mac = "zz";
  s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  EXPECT_NE(s.status().message().find("members[0].mac"), std::string::npos) << s.status();
  l.members[0].mac = "";
  EXPECT_FALSE(RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l}).ok());
  l.port = 0;
  EXPECT_FALSE(RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l}).ok());
  l.port = 80;
  l.members[0].forward = L4Forward::kL3;  // L3DSR without the listener's DSCP
  s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  EXPECT_NE(s.status().message().find("members[0].forward"), std::string::npos) << s.status();
  l.l3dsr_dscp = 10;
  s = RenderL4Ruleset(Opts(), "02:00:00:00:00:01", {l});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NE(s->find("ip daddr set 192.168.10.21 ip dscp set 10 accept"), std::string::npos);
}

}  // namespace
}  // namespace photon::fiberlb::l4
