// Unit tests for the master-file parser and zone builder: syntax, directives, errors with
// file:line.
#include "flashdns/zone_parser.h"

#include <gtest/gtest.h>

#include "flashdns/wire.h"

namespace photon::flashdns {
namespace {

const std::string kOrigin("\7example\3com\0", 13);

std::string Wire(const std::string& text) { return *ParseName(text, std::string(1, '\0')); }

TEST(ParseName, RelativeAbsoluteAndEscapes) {
  EXPECT_EQ(*ParseName("www", kOrigin), Wire("www.example.com."));
  EXPECT_EQ(*ParseName("www.example.org.", kOrigin), Wire("www.example.org."));
  EXPECT_EQ(*ParseName("@", kOrigin), kOrigin);
  auto esc = ParseName("a\\.b", kOrigin);
  ASSERT_TRUE(esc.ok());
  EXPECT_EQ((*esc)[0], 3);  // one label "a.b"
  EXPECT_EQ(*ParseName("\\065", kOrigin), Wire("A.example.com."));
  EXPECT_FALSE(ParseName("a..b", kOrigin).ok());
  EXPECT_FALSE(ParseName(std::string(64, 'a'), kOrigin).ok());
  EXPECT_FALSE(ParseName("\\999", kOrigin).ok());
}

TEST(ParseZoneText, DirectivesParenthesesComments) {
  auto records = ParseZoneText(
      "$TTL 1h\n"
      "@ IN SOA ns hostmaster ( 1 ; serial\n"
      "   2 3 4 5 )\n"
      "  NS ns\n"
      "www 60 IN A 192.0.2.1 ; trailing comment\n"
      "    IN 30 AAAA 2001:db8::1\n"
      "$ORIGIN sub.example.com.\n"
      "x CNAME @\n"
      "t TXT \"a b\" c \"d\\\"e\"\n",
      "t.zone", kOrigin);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 6u);
  EXPECT_EQ((*records)[0].type, kTypeSoa);
  EXPECT_EQ((*records)[0].ttl, 3600u);
  EXPECT_EQ((*records)[1].owner, kOrigin);  // blank owner repeats the previous one
  EXPECT_EQ((*records)[2].ttl, 60u);
  EXPECT_EQ((*records)[3].ttl, 30u);
  EXPECT_EQ((*records)[3].owner, Wire("www.example.com."));
  EXPECT_EQ((*records)[4].owner, Wire("x.sub.example.com."));
  EXPECT_EQ((*records)[4].rdata, Wire("sub.example.com."));
  EXPECT_EQ((*records)[5].rdata, std::string("\3a b\1c\3d\"e", 10));
}

TEST(ParseZoneText, ErrorsNameFileAndLine) {
  auto bad = ParseZoneText("$TTL 60\n@ SOA ns hm 1 2 3 4 5\nwww A 300.1.1.1\n", "z.zone", kOrigin);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).rfind("z.zone:3:", 0), 0u) << bad.status();
  auto paren = ParseZoneText("@ SOA ns hm ( 1 2 3 4 5\n", "p.zone", kOrigin);
  ASSERT_FALSE(paren.ok());
  EXPECT_NE(std::string(paren.status().message()).find("p.zone:1:"), std::string::npos);
  EXPECT_FALSE(ParseZoneText("www A\n", "z", kOrigin).ok());
  EXPECT_FALSE(ParseZoneText("www BOGUS x\n", "z", kOrigin).ok());
  EXPECT_FALSE(ParseZoneText("www MX 70000 mail\n", "z", kOrigin).ok());
  EXPECT_FALSE(ParseZoneText("www TXT \"unterminated\n", "z", kOrigin).ok());
}

TEST(BuildZone, ChecksZoneRules) {
  auto records =
      ParseZoneText("@ SOA ns hm 1 2 3 4 5\nwww CNAME x\nwww A 192.0.2.1\n", "c.zone", kOrigin);
  ASSERT_TRUE(records.ok());
  auto zone = BuildZone(*records, kOrigin, "c.zone");
  EXPECT_FALSE(zone.ok());
  records = ParseZoneText("www A 192.0.2.1\n", "n.zone", kOrigin);
  EXPECT_FALSE(BuildZone(*records, kOrigin, "n.zone").ok());  // no SOA
  records =
      ParseZoneText("@ SOA ns hm 1 2 3 4 5\nwww.example.org. A 192.0.2.1\n", "o.zone", kOrigin);
  auto outside = BuildZone(*records, kOrigin, "o.zone");
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(std::string(outside.status().message()).find("o.zone:2"), std::string::npos);
}

TEST(LoadZone, TestDataWithInclude) {
  auto zone = LoadZone(std::string(FLASHDNS_TEST_DATA) + "/example.com.zone", kOrigin);
  ASSERT_TRUE(zone.ok()) << zone.status();
  EXPECT_EQ((*zone)->serial(), 2024010101u);
  EXPECT_EQ((*zone)->negative_ttl(), 300u);
  EXPECT_TRUE((*zone)->FindNode(Wire("inc.example.com.")).valid());
  // Empty non-terminals exist as nodes.
  NodeView ent = (*zone)->FindNode(Wire("c.ent.example.com."));
  ASSERT_TRUE(ent.valid());
  EXPECT_TRUE(ent.empty());
  // Additional-section targets are resolved at build time.
  RRsetView mx = (*zone)->apex().Find(kTypeMx);
  ASSERT_TRUE(mx.valid());
  int resolved = 0;
  mx.ForEach([&](const Rdata& r) {
    resolved += r.target != nullptr;
    return true;
  });
  EXPECT_EQ(resolved, 1);  // mail.example.com yes, mail2.example.net is another zone
}

TEST(ParseRdataText, GenericForm) {
  auto rdata = ParseRdataText(65280, "\\# 3 abcdef", kOrigin);
  ASSERT_TRUE(rdata.ok()) << rdata.status();
  EXPECT_EQ(*rdata, std::string("\xab\xcd\xef", 3));
  EXPECT_FALSE(ParseRdataText(65280, "\\# 2 abcdef", kOrigin).ok());
}

}  // namespace
}  // namespace photon::flashdns
