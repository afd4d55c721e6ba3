// Unit tests for the wire-format reader and writer: bounds, compression pointers, loops.
#include "flashdns/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace photon::flashdns {
namespace {

TEST(PacketReader, ReadsCompressedName) {
  // "example.com" at 12, then "www" + pointer to 12.
  std::vector<uint8_t> p(12, 0);
  const uint8_t name[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
  p.insert(p.end(), name, name + sizeof(name));
  size_t second = p.size();
  const uint8_t www[] = {3, 'w', 'w', 'w', 0xC0, 12};
  p.insert(p.end(), www, www + sizeof(www));
  PacketReader r(p.data(), p.size());
  r.Skip(second);
  uint8_t out[kMaxNameLength];
  size_t n = r.Name(out);
  ASSERT_EQ(n, 17u);
  EXPECT_EQ(NameToText(std::string_view(reinterpret_cast<char*>(out), n)), "www.example.com.");
  EXPECT_EQ(r.pos(), p.size());
}

TEST(PacketReader, RejectsCompressionLoops) {
  // A pointer to itself, and two pointers pointing at each other.
  std::vector<uint8_t> p(12, 0);
  p.push_back(0xC0);
  p.push_back(12);
  PacketReader r(p.data(), p.size());
  r.Skip(12);
  uint8_t out[kMaxNameLength];
  EXPECT_EQ(r.Name(out), 0u);
  EXPECT_FALSE(r.ok());

  std::vector<uint8_t> q(12, 0);
  q.insert(q.end(), {0xC0, 14, 0xC0, 12});
  PacketReader r2(q.data(), q.size());
  r2.Skip(14);
  EXPECT_EQ(r2.Name(out), 0u);
}

TEST(PacketReader, RejectsTruncatedAndOverlongNames) {
  const uint8_t truncated[] = {5, 'a', 'b'};
  PacketReader r(truncated, sizeof(truncated));
  uint8_t out[kMaxNameLength];
  EXPECT_EQ(r.Name(out), 0u);
  // 5 labels of 63 bytes: 320 octets, over the 255 limit.
  std::vector<uint8_t> big;
  for (int i = 0; i < 5; ++i) {
    big.push_back(63);
    big.insert(big.end(), 63, 'a');
  }
  big.push_back(0);
  PacketReader r2(big.data(), big.size());
  EXPECT_EQ(r2.Name(out), 0u);
  // Reserved label types 0x40/0x80.
  const uint8_t ext[] = {0x41, 'a', 0};
  PacketReader r3(ext, sizeof(ext));
  EXPECT_EQ(r3.Name(out), 0u);
}

TEST(PacketReader, ZeroLengthInput) {
  PacketReader r(nullptr, 0);
  uint8_t out[kMaxNameLength];
  EXPECT_EQ(r.U16(), 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Name(out), 0u);
}

TEST(PacketWriter, CompressesRepeatedSuffixes) {
  uint8_t buf[512];
  PacketWriter w(buf, sizeof(buf));
  w.Bytes("\0\0\0\0\0\0\0\0\0\0\0\0", 12);
  const uint8_t a[] = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
  const uint8_t b[] = {4,   'm', 'a', 'i', 'l', 7,   'E', 'X', 'A',
                       'M', 'P', 'L', 'E', 3,   'c', 'o', 'm', 0};
  ASSERT_TRUE(w.Name(a));
  size_t after_first = w.size();
  ASSERT_TRUE(w.Name(b));
  EXPECT_EQ(w.size() - after_first, 5u + 2u);  // "mail" + pointer
  ASSERT_TRUE(w.Name(a));
  EXPECT_EQ(w.size() - after_first, 9u);  // a second pointer only
  // Read back through the reader.
  PacketReader r(buf, w.size());
  r.Skip(after_first);
  uint8_t out[kMaxNameLength];
  size_t n = r.Name(out);
  EXPECT_EQ(NameToText(std::string_view(reinterpret_cast<char*>(out), n)), "mail.example.com.");
}

TEST(PacketWriter, NeverWritesPastLimit) {
  uint8_t buf[16];
  PacketWriter w(buf, 13);
  const uint8_t a[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
  EXPECT_TRUE(w.U8(1));
  EXPECT_FALSE(w.Name(a));
  EXPECT_EQ(w.size(), 1u);
}

TEST(Names, SubdomainAndText) {
  std::string zone("\7example\3com\0", 13);
  std::string www("\3www\7example\3com\0", 17);
  std::string other("\3www\7example\3org\0", 17);
  EXPECT_TRUE(IsSubdomain(www, zone));
  EXPECT_TRUE(IsSubdomain(zone, zone));
  EXPECT_FALSE(IsSubdomain(other, zone));
  EXPECT_FALSE(IsSubdomain(zone, www));
  EXPECT_EQ(TypeFromText("aaaa"), kTypeAaaa);
  EXPECT_EQ(TypeFromText("TYPE65280"), 65280);
  EXPECT_EQ(TypeToText(65280), "TYPE65280");
}

}  // namespace
}  // namespace photon::flashdns
