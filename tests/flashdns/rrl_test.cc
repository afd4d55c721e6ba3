// Unit tests for response-rate limiting: the token bucket against an injected clock (no
// sleeps), the slip ratio, how clients and responses are grouped into keys, the exempt
// list and eviction in the bounded table; plus the answer kinds query.cc reports for RRL.
#include "flashdns/rrl.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "flashdns/config.h"
#include "flashdns/zone_parser.h"

namespace photon::flashdns {
namespace {

constexpr int64_t kSecond = 1000000000;
const std::string kWww("\3www\7example\3com\0", 17);
const std::string kMail("\4mail\7example\3com\0", 18);
const std::string kZone("\7example\3com\0", 13);

sockaddr_storage Addr(const char* text) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, text, &reinterpret_cast<sockaddr_in&>(ss).sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text, &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr), 1);
    ss.ss_family = AF_INET6;
  }
  return ss;
}

RrlOptions Options(uint32_t rate, uint32_t slip) {
  RrlOptions o;
  o.rate = rate;
  o.slip = slip;
  o.exempt.clear();
  return o;
}

std::unique_ptr<ResponseRateLimiter> Make(const RrlOptions& o) {
  auto rrl = ResponseRateLimiter::Create(o);
  EXPECT_TRUE(rrl.ok()) << rrl.status();
  return std::move(*rrl);
}

// Sends `n` alike responses at time `now` and counts what happened to them.
struct Tally {
  int sent = 0, dropped = 0, slipped = 0;
};
Tally Flood(ResponseRateLimiter& rrl, const char* client, int n, int64_t now,
            const std::string& name = kWww, uint16_t qtype = kTypeA) {
  Tally t;
  for (int i = 0; i < n; ++i) {
    switch (rrl.Account(Addr(client), AnswerKind::kAnswer, qtype, name, now)) {
      case RrlAction::kSend:
        ++t.sent;
        break;
      case RrlAction::kDrop:
        ++t.dropped;
        break;
      case RrlAction::kSlip:
        ++t.slipped;
        break;
    }
  }
  return t;
}

TEST(RrlTest, BurstThenRateThenSlipRatio) {
  auto rrl = Make(Options(10, 3));
  Tally t = Flood(*rrl, "192.0.2.1", 40, 5 * kSecond);
  EXPECT_EQ(t.sent, 10);     // the burst (default: one second's worth)
  EXPECT_EQ(t.slipped, 10);  // every 3rd of the 30 limited ones
  EXPECT_EQ(t.dropped, 20);
  // A tenth of a second refills one response, and no more.
  t = Flood(*rrl, "192.0.2.1", 5, 5 * kSecond + kSecond / 10);
  EXPECT_EQ(t.sent, 1);
  // After a full second the whole burst is back, never more than the burst.
  t = Flood(*rrl, "192.0.2.1", 30, 7 * kSecond);
  EXPECT_EQ(t.sent, 10);
}

TEST(RrlTest, SteadyRateIsNeverLimited) {
  auto rrl = Make(Options(100, 2));
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(Flood(*rrl, "192.0.2.1", 1, kSecond + i * (kSecond / 100)).sent, 1) << i;
  }
}

TEST(RrlTest, ExplicitBurst) {
  RrlOptions o = Options(10, 0);
  o.burst = 3;
  auto rrl = Make(o);
  Tally t = Flood(*rrl, "192.0.2.1", 10, kSecond);
  EXPECT_EQ(t.sent, 3);
  EXPECT_EQ(t.dropped, 7);  // slip 0: nothing goes out truncated
  EXPECT_EQ(t.slipped, 0);
}

TEST(RrlTest, SlipOneTruncatesEveryLimitedResponse) {
  Tally t = Flood(*Make(Options(5, 1)), "192.0.2.1", 20, kSecond);
  EXPECT_EQ(t.sent, 5);
  EXPECT_EQ(t.slipped, 15);
  EXPECT_EQ(t.dropped, 0);
}

TEST(RrlTest, ClientsShareTheirPrefix) {
  auto rrl = Make(Options(5, 0));
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond).sent, 5);
  EXPECT_EQ(Flood(*rrl, "192.0.2.200", 5, kSecond).sent, 0);  // same /24
  EXPECT_EQ(Flood(*rrl, "192.0.3.1", 5, kSecond).sent, 5);    // another /24
  EXPECT_EQ(Flood(*rrl, "2001:db8:0:ff::1", 5, kSecond).sent, 5);
  EXPECT_EQ(Flood(*rrl, "2001:db8:0:1::2", 5, kSecond).sent, 0);  // same /56
  EXPECT_EQ(Flood(*rrl, "2001:db8:0:100::1", 5, kSecond).sent, 5);
}

TEST(RrlTest, PrefixLengthsAreConfigurable) {
  RrlOptions o = Options(5, 0);
  o.ipv4_prefix = 32;
  o.ipv6_prefix = 128;
  auto rrl = Make(o);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond).sent, 5);
  EXPECT_EQ(Flood(*rrl, "192.0.2.2", 5, kSecond).sent, 5);
  EXPECT_EQ(Flood(*rrl, "2001:db8::1", 5, kSecond).sent, 5);
  EXPECT_EQ(Flood(*rrl, "2001:db8::2", 5, kSecond).sent, 5);
}

TEST(RrlTest, KeysSplitByNameTypeAndKind) {
  auto rrl = Make(Options(5, 0));
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond, kWww, kTypeA).sent, 5);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond, kWww, kTypeA).sent, 0);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond, kWww, kTypeAaaa).sent, 5);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 5, kSecond, kMail, kTypeA).sent, 5);
  auto peer = Addr("192.0.2.1");
  // NXDOMAIN for the zone is its own key, shared by every name in it.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(rrl->Account(peer, AnswerKind::kNxDomain, 0, kZone, kSecond), RrlAction::kSend);
  }
  EXPECT_EQ(rrl->Account(peer, AnswerKind::kNxDomain, 0, kZone, kSecond), RrlAction::kDrop);
  EXPECT_EQ(rrl->Account(peer, AnswerKind::kError, 0, kZone, kSecond), RrlAction::kSend);
}

TEST(RrlTest, ExemptClientsAreNeverLimited) {
  RrlOptions o = Options(2, 0);
  o.exempt = {"198.51.100.0/24", "::1"};
  auto rrl = Make(o);
  EXPECT_EQ(Flood(*rrl, "198.51.100.7", 100, kSecond).sent, 100);
  EXPECT_EQ(Flood(*rrl, "::1", 100, kSecond).sent, 100);
  EXPECT_EQ(Flood(*rrl, "198.51.101.7", 100, kSecond).sent, 2);
  o.exempt = {"not-an-address"};
  EXPECT_FALSE(ResponseRateLimiter::Create(o).ok());
  EXPECT_FALSE(ResponseRateLimiter::Create(Options(0, 2)).ok());
  // The default exempts loopback only.
  RrlOptions defaults;
  rrl = Make(defaults);
  EXPECT_EQ(Flood(*rrl, "127.0.0.1", 1000, kSecond).sent, 1000);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 1000, kSecond).sent, 200);
}

TEST(RrlTest, AFloodOfNewKeysDoesNotEvictTheLimitedOne) {
  RrlOptions o = Options(5, 0);
  o.table_size = 8;  // one group: every key competes for the same slots
  auto rrl = Make(o);
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 50, kSecond).sent, 5);
  char client[32];
  for (int i = 0; i < 500; ++i) {
    snprintf(client, sizeof(client), "10.%d.%d.1", i / 256, i % 256);
    Flood(*rrl, client, 1, kSecond);
  }
  EXPECT_EQ(Flood(*rrl, "192.0.2.1", 50, kSecond).sent, 0);
}

TEST(RrlTest, ConcurrentAccountingKeepsTheBudget) {
  auto rrl = Make(Options(1000, 0));
  std::atomic<int> sent{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] { sent += Flood(*rrl, "192.0.2.1", 5000, kSecond).sent; });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(sent.load(), 1000);
}

// The kinds query.cc reports, which decide the keys above.
class AnswerKindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto zone = LoadZone(std::string(FLASHDNS_TEST_DATA) + "/example.com.zone", kZone);
    ASSERT_TRUE(zone.ok()) << zone.status();
    zones_.Add(std::move(*zone));
  }
  AnswerInfo Ask(const std::string& wire_name, uint16_t qtype) {
    std::vector<uint8_t> p = {0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    p.insert(p.end(), wire_name.begin(), wire_name.end());
    p.insert(p.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
    // The query lives in the fixture: a referral's group name is a view into it.
    q_ = ParsedQuery();
    EXPECT_TRUE(ParseQuery(p.data(), p.size(), &q_));
    AnswerInfo info;
    out_.resize(4096);
    len_ = BuildResponse(&zones_, q_, out_.data(), 4096, &info);
    return info;
  }
  ZoneSet zones_;
  ParsedQuery q_;
  std::vector<uint8_t> out_;
  size_t len_ = 0;
};

TEST_F(AnswerKindTest, KindsAndGroupNames) {
  AnswerInfo info = Ask(kWww, kTypeA);
  EXPECT_EQ(info.kind, AnswerKind::kAnswer);
  info = Ask(kWww, kTypeMx);
  EXPECT_EQ(info.kind, AnswerKind::kNoData);
  info = Ask(std::string("\4nope\7example\3com\0", 18), kTypeA);
  EXPECT_EQ(info.kind, AnswerKind::kNxDomain);
  EXPECT_EQ(info.group_name, kZone);
  info = Ask(std::string("\1x\4wild\7example\3com\0", 20), kTypeA);
  EXPECT_EQ(info.kind, AnswerKind::kWildcard);
  EXPECT_EQ(info.group_name, kZone);
  info = Ask(std::string("\4host\3sub\7example\3com\0", 22), kTypeA);
  EXPECT_EQ(info.kind, AnswerKind::kReferral);
  EXPECT_EQ(info.group_name, std::string("\3sub\7example\3com\0", 17));
  info = Ask(std::string("\7example\3org\0", 13), kTypeA);
  EXPECT_EQ(info.kind, AnswerKind::kError);
  EXPECT_TRUE(info.group_name.empty());
}

TEST_F(AnswerKindTest, TruncateToQuestionKeepsHeaderAndQuestionWithTc) {
  Ask(kWww, kTypeA);
  ASSERT_GT(len_, kHeaderSize + kWww.size() + 4);
  size_t n = TruncateToQuestion(q_, out_.data());
  EXPECT_EQ(n, kHeaderSize + kWww.size() + 4);
  EXPECT_EQ(Load16(out_.data()), 0x1234);
  EXPECT_TRUE(Load16(out_.data() + 2) & kFlagTc);
  EXPECT_TRUE(Load16(out_.data() + 2) & kFlagQr);
  EXPECT_EQ(Load16(out_.data() + 4), 1);
  for (int section = 0; section < 3; ++section) EXPECT_EQ(Load16(out_.data() + 6 + 2 * section), 0);
}

TEST(RrlConfigTest, DefaultsAndKeys) {
  auto c = ParseConfig("", "/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rrl.rate, 200u);
  EXPECT_EQ(c->rrl.slip, 2u);
  EXPECT_EQ(c->rrl.ipv4_prefix, 24);
  EXPECT_EQ(c->rrl.ipv6_prefix, 56);
  EXPECT_EQ(c->rrl.exempt, (std::vector<std::string>{"127.0.0.0/8", "::1"}));
  c = ParseConfig(
      "rrl: {rate: 5, burst: 7, slip: 0, ipv4_prefix: 32, ipv6_prefix: 64, table_size: 1024, "
      "exempt: []}",
      "/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rrl.rate, 5u);
  EXPECT_EQ(c->rrl.burst, 7u);
  EXPECT_EQ(c->rrl.slip, 0u);
  EXPECT_EQ(c->rrl.ipv4_prefix, 32);
  EXPECT_EQ(c->rrl.ipv6_prefix, 64);
  EXPECT_EQ(c->rrl.table_size, 1024u);
  EXPECT_TRUE(c->rrl.exempt.empty());
}

TEST(RrlConfigTest, BadValuesNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"rrl: {rate: -1}", "rrl.rate"},
      {"rrl: {rate: lots}", "rrl.rate"},
      {"rrl: {burst: 0}", "rrl.burst"},
      {"rrl: {slip: 11}", "rrl.slip"},
      {"rrl: {ipv4_prefix: 33}", "rrl.ipv4_prefix"},
      {"rrl: {ipv6_prefix: 1.5}", "rrl.ipv6_prefix"},
      {"rrl: {table_size: 1}", "rrl.table_size"},
      {"rrl: {exempt: [\"10.0.0.0/33\"]}", "rrl.exempt"},
      {"rrl: {exempt: 10.0.0.1}", "rrl.exempt"},
      {"rrl: {ratelimit: 5}", "'ratelimit'"},
      {"rrl: 5", "rrl"},
  };
  for (const auto& [yaml, key] : cases) {
    auto c = ParseConfig(yaml, "/");
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << yaml << ": " << c.status();
  }
}

}  // namespace
}  // namespace photon::flashdns
