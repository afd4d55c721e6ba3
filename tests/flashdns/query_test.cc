// Unit tests for query parsing and answering on malformed and edge-case packets: zero
// length, truncated, oversized, compression loops, plus the core answer shapes.
#include "flashdns/query.h"

#include <gtest/gtest.h>

#include <vector>

#include "flashdns/zone_parser.h"

namespace photon::flashdns {
namespace {

const std::string kOrigin("\7example\3com\0", 13);

std::vector<uint8_t> Query(const std::string& dotted, uint16_t qtype, bool edns = false,
                           uint16_t udp = 4096) {
  std::vector<uint8_t> p = {0xAB, 0xCD, 0, 0, 0, 1, 0, 0, 0, 0, 0, static_cast<uint8_t>(edns)};
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    p.push_back(static_cast<uint8_t>(dot - start));
    p.insert(p.end(), dotted.begin() + static_cast<long>(start),
             dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  p.push_back(0);
  p.insert(p.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  if (edns) {
    p.insert(p.end(), {0, 0, 41, static_cast<uint8_t>(udp >> 8), static_cast<uint8_t>(udp), 0, 0, 0,
                       0, 0, 0});
  }
  return p;
}

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto zone = LoadZone(std::string(FLASHDNS_TEST_DATA) + "/example.com.zone", kOrigin);
    ASSERT_TRUE(zone.ok()) << zone.status();
    zones_.Add(*zone);
  }
  // Returns the response length (0 = dropped); the response is in out_.
  size_t Answer(const std::vector<uint8_t>& packet, size_t limit = 0) {
    ParsedQuery q;
    if (!ParseQuery(packet.data(), packet.size(), &q)) return 0;
    info_ = AnswerInfo();
    return BuildResponse(&zones_, q, out_, limit ? limit : UdpLimit(q), &info_);
  }
  uint16_t Count(int i) const { return Load16(out_ + 4 + 2 * i); }

  ZoneSet zones_;
  uint8_t out_[65535];
  AnswerInfo info_;
};

TEST_F(QueryTest, ZeroLengthAndRuntPacketsAreDropped) {
  EXPECT_EQ(Answer({}), 0u);
  EXPECT_EQ(Answer({0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0}), 0u);
}

TEST_F(QueryTest, TruncatedQuestionIsFormErr) {
  auto p = Query("www.example.com", kTypeA);
  p.resize(p.size() - 3);  // cut into qtype/qclass
  ASSERT_GT(Answer(p), 0u);
  EXPECT_EQ(info_.rcode, kRcodeFormErr);
  EXPECT_EQ(Count(0), 0);  // no question echoed
  auto q = Query("www.example.com", kTypeA, true);
  q.resize(q.size() - 4);  // cut into the OPT record
  ASSERT_GT(Answer(q), 0u);
  EXPECT_EQ(info_.rcode, kRcodeFormErr);
}

TEST_F(QueryTest, CompressionLoopIsFormErr) {
  std::vector<uint8_t> p = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1};
  ASSERT_GT(Answer(p), 0u);
  EXPECT_EQ(info_.rcode, kRcodeFormErr);
  std::vector<uint8_t> forward = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 20, 0, 1, 0, 1};
  ASSERT_GT(Answer(forward), 0u);
  EXPECT_EQ(info_.rcode, kRcodeFormErr);
}

TEST_F(QueryTest, OversizedPacketIsHandled) {
  // A valid query followed by 64 KiB of junk, and counts claiming many records.
  auto p = Query("www.example.com", kTypeA);
  p.resize(65535, 0xFF);
  ASSERT_GT(Answer(p), 0u);
  EXPECT_EQ(info_.rcode, kRcodeNoError);
  auto q = Query("www.example.com", kTypeA);
  q[10] = 0xFF;  // ARCOUNT 65535, none present
  q[11] = 0xFF;
  ASSERT_GT(Answer(q), 0u);
  EXPECT_EQ(info_.rcode, kRcodeFormErr);
}

TEST_F(QueryTest, ResponsesAreIgnored) {
  auto p = Query("www.example.com", kTypeA);
  p[2] |= 0x80;
  EXPECT_EQ(Answer(p), 0u);
}

TEST_F(QueryTest, AnswerShapes) {
  ASSERT_GT(Answer(Query("www.example.com", kTypeA)), 0u);
  EXPECT_EQ(info_.rcode, kRcodeNoError);
  EXPECT_TRUE(out_[2] & 0x04);  // AA
  EXPECT_EQ(Count(1), 2);       // A records
  ASSERT_GT(Answer(Query("nx.example.com", kTypeA)), 0u);
  EXPECT_EQ(info_.rcode, kRcodeNxDomain);
  EXPECT_EQ(Count(2), 1);  // SOA in authority
  ASSERT_GT(Answer(Query("www.example.org", kTypeA)), 0u);
  EXPECT_EQ(info_.rcode, kRcodeRefused);
  ASSERT_GT(Answer(Query("x.sub.example.com", kTypeA)), 0u);
  EXPECT_FALSE(out_[2] & 0x04);  // referral: not authoritative
  EXPECT_EQ(Count(2), 2);
}

TEST_F(QueryTest, TruncatesToClientSize) {
  size_t n = Answer(Query("big.deep.example.com", kTypeTxt));
  EXPECT_LE(n, 512u);
  EXPECT_TRUE(info_.truncated);
  EXPECT_TRUE(out_[2] & 0x02);
  n = Answer(Query("big.deep.example.com", kTypeTxt, true, 4096));
  EXPECT_FALSE(info_.truncated);
  EXPECT_EQ(Count(1), 4);
  n = Answer(Query("big.deep.example.com", kTypeTxt), 65535);  // TCP
  EXPECT_FALSE(info_.truncated);
}

TEST(QueryLimit, UdpAnswersStayWithinOurAdvertisedSize) {
  // 8 × 200-byte TXT strings: about 1.7 KB, over 1232 even for a client offering 4096.
  std::string text = "@ SOA ns hm 1 2 3 4 5\n";
  for (int i = 0; i < 8; ++i) text += "huge TXT \"" + std::string(200, 'a' + i) + "\"\n";
  auto records = ParseZoneText(text, "huge.zone", kOrigin);
  ASSERT_TRUE(records.ok()) << records.status();
  auto zone = BuildZone(std::move(*records), kOrigin, "huge.zone");
  ASSERT_TRUE(zone.ok()) << zone.status();
  ZoneSet zones;
  zones.Add(*zone);
  auto packet = Query("huge.example.com", kTypeTxt, true, 4096);
  ParsedQuery q;
  ASSERT_TRUE(ParseQuery(packet.data(), packet.size(), &q));
  EXPECT_EQ(UdpLimit(q), kServerUdpSize);
  static uint8_t out[65535];
  AnswerInfo info;
  EXPECT_LE(BuildResponse(&zones, q, out, UdpLimit(q), &info), kServerUdpSize);
  EXPECT_TRUE(info.truncated);
  EXPECT_GT(BuildResponse(&zones, q, out, 65535, &info), 1600u);  // TCP: the whole RRset
  EXPECT_FALSE(info.truncated);
}

TEST_F(QueryTest, BadEdnsVersion) {
  auto p = Query("www.example.com", kTypeA, true);
  p[p.size() - 5] = 1;  // version 1
  ASSERT_GT(Answer(p), 0u);
  EXPECT_EQ(info_.rcode, kRcodeBadVers);
}

}  // namespace
}  // namespace photon::flashdns
