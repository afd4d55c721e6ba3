// The shared hex and percent encoders: every byte value, and the characters SigV4 and our REST
// paths treat specially.
#include "common/hex.h"

#include <gtest/gtest.h>

#include "common/util.h"

namespace photon {
namespace {

TEST(Hex, EncodesEveryByteInLowerCase) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string hex = HexEncode(all);
  ASSERT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(0x7f * 2, 6), "7f8081");
  EXPECT_EQ(hex.substr(508), "feff");
  EXPECT_EQ(HexEncode(""), "");
}

TEST(Hex, DigestsAndIdsUseIt) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(RandomHex(16).size(), 32u);
  const std::string uuid = NewUuid();
  ASSERT_EQ(uuid.size(), 36u);
  EXPECT_EQ(uuid[14], '4');
  EXPECT_EQ(uuid.find_first_not_of("0123456789abcdef-"), std::string::npos);
}

TEST(PercentEncode, KeepsUnreservedAndOptionallySlash) {
  EXPECT_EQ(PercentEncode("a b/c~d+é", false), "a%20b/c~d%2B%C3%A9");
  EXPECT_EQ(PercentEncode("a/b"), "a%2Fb");
  EXPECT_EQ(PercentEncode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(PercentEncode(std::string("\0\xff", 2)), "%00%FF");
}

}  // namespace
}  // namespace photon
