// Deterministic pseudo-fuzzing of the parsers that see untrusted bytes: XML bodies,
// aws-chunked bodies, Authorization headers, credentials, lifecycle documents. Each input must
// produce a value or an error, never a crash or a hang.
#include <gtest/gtest.h>

#include <random>

#include "lightningstor/body_readers.h"
#include "lightningstor/bucket_rules.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

// Mutates a seed: flips, inserts and deletes random bytes.
std::string Mutate(const std::string& seed, std::mt19937& rng) {
  std::string s = seed;
  int edits = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < edits; ++i) {
    size_t pos = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 3) {
      case 0:
        if (!s.empty()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(pos, 1, "<>/&;:=\r\n0aZ\""[rng() % 14]);
        break;
      default:
        if (!s.empty()) s.erase(pos, 1 + rng() % 4);
    }
  }
  return s;
}

class StringBody : public http::BodyReader {
 public:
  explicit StringBody(std::string data) : data_(std::move(data)) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - pos_);
    memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

TEST(Robustness, XmlAndLifecycle) {
  std::mt19937 rng(1);
  const std::string seeds[] = {
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
      "</CompleteMultipartUpload>",
      "<?xml "
      "version=\"1.0\"?><Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object></Delete>",
      "<LifecycleConfiguration><Rule><Filter><Prefix>x/</Prefix></Filter><Status>Enabled</Status>"
      "<Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>",
      "<a><![CDATA[x]]><!-- c --><b/>&#x41;&#66;</a>"};
  for (int i = 0; i < 20000; ++i) {
    std::string input = Mutate(seeds[i % 4], rng);
    (void)ParseXml(input);
    (void)ParseLifecycle(input);
  }
  std::string deep(100000, '<');
  EXPECT_FALSE(ParseXml(deep).ok());
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "<a>";
  EXPECT_FALSE(ParseXml(nested).ok());
}

TEST(Robustness, AwsChunked) {
  std::mt19937 rng(2);
  AuthInfo auth;
  auth.signing_key = std::string(32, 'k');
  auth.amz_date = "20240101T000000Z";
  auth.scope = "20240101/us-east-1/s3/aws4_request";
  auth.seed_signature = std::string(64, '0');
  const std::string seed = "5;chunk-signature=" + std::string(64, 'a') +
                           "\r\nhello\r\n0;chunk-signature=" + std::string(64, 'b') +
                           "\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
  char buf[64];
  for (int i = 0; i < 20000; ++i) {
    StringBody raw(Mutate(seed, rng));
    AwsChunkedReader reader(&raw, auth, i % 2 == 0);
    for (int steps = 0; steps < 10000; ++steps) {
      auto n = reader.Read(buf, sizeof buf);
      if (!n.ok() || *n == 0) break;
    }
  }
}

TEST(Robustness, AuthorizationHeaders) {
  std::mt19937 rng(3);
  const std::string seed =
      "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
      "SignedHeaders=host;range;x-amz-date, Signature=abcdef";
  for (int i = 0; i < 20000; ++i) {
    std::string input = Mutate(seed, rng);
    (void)sigv4::ParseAuthorizationHeader(input);
    (void)sigv4::ParseCredential(input);
    (void)sigv4::ParseAmzDate(input.substr(0, 16));
    (void)PolicyAllowsPublicRead(input);
  }
}

}  // namespace
}  // namespace photon::lightningstor
