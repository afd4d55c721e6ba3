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

// What reading a body to its end gave: the decoded bytes, or the error.
struct Drained {
  Status status;
  std::string data;
  bool overran = false;  // decoded more bytes than the input holds (an endless reader)
};

Drained Drain(http::BodyReader* reader, size_t input_size) {
  Drained out;
  char buf[64];
  while (out.data.size() <= input_size) {
    auto n = reader->Read(buf, sizeof buf);
    if (!n.ok()) {
      out.status = n.status();
      return out;
    }
    if (*n == 0) return out;
    out.data.append(buf, *n);
  }
  out.overran = true;
  return out;
}

TEST(Robustness, AwsChunked) {
  std::mt19937 rng(2);
  AuthInfo auth;
  auth.signing_key = std::string(32, 'k');
  auth.amz_date = "20240101T000000Z";
  auth.scope = "20240101/us-east-1/s3/aws4_request";
  auth.seed_signature = std::string(64, '0');
  // The chunk signatures are not the signer's: a signed read may never accept this body.
  const std::string seed = "5;chunk-signature=" + std::string(64, 'a') +
                           "\r\nhello\r\n0;chunk-signature=" + std::string(64, 'b') +
                           "\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
  {
    StringBody raw(seed);
    AwsChunkedReader reader(&raw, auth, /*signed_chunks=*/false);
    Drained d = Drain(&reader, seed.size());
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.data, "hello");
  }
  int unsigned_ok = 0, unsigned_refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = Mutate(seed, rng);
    StringBody raw(input);
    const bool signed_chunks = i % 2 == 0;
    AwsChunkedReader reader(&raw, auth, signed_chunks);
    Drained d = Drain(&reader, input.size());
    ASSERT_FALSE(d.overran) << "endless body from: " << input;
    if (signed_chunks) {
      ASSERT_FALSE(d.status.ok()) << "bad chunk signatures accepted: " << input;
    } else {
      ++(d.status.ok() ? unsigned_ok : unsigned_refused);
    }
    if (!d.status.ok()) {
      ASSERT_FALSE(d.status.message().empty()) << input;
    }
  }
  // Both outcomes were exercised (else the mutations tested nothing).
  EXPECT_GT(unsigned_ok, 0);
  EXPECT_GT(unsigned_refused, 0);
}

// A value is a parse of the input: what the parser returns was in the text it was given.
TEST(Robustness, AuthorizationHeaders) {
  std::mt19937 rng(3);
  const std::string seed =
      "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
      "SignedHeaders=host;range;x-amz-date, Signature=abcdef";
  auto parsed_seed = sigv4::ParseAuthorizationHeader(seed);
  ASSERT_TRUE(parsed_seed.ok()) << parsed_seed.status();
  EXPECT_EQ(parsed_seed->credential.Scope(), "20130524/us-east-1/s3/aws4_request");
  EXPECT_EQ(parsed_seed->signed_headers, (std::vector<std::string>{"host", "range", "x-amz-date"}));
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = Mutate(seed, rng);
    auto auth = sigv4::ParseAuthorizationHeader(input);
    if (auth.ok()) {
      ++parsed;
      EXPECT_FALSE(auth->credential.access_key.empty()) << input;
      EXPECT_NE(input.find(auth->credential.access_key + "/" + auth->credential.Scope()),
                std::string::npos)
          << input;
      EXPECT_FALSE(auth->signature.empty()) << input;
      EXPECT_NE(input.find(auth->signature), std::string::npos) << input;
      ASSERT_FALSE(auth->signed_headers.empty()) << input;
      for (const std::string& h : auth->signed_headers) {
        EXPECT_FALSE(h.empty()) << input;
        EXPECT_NE(input.find(h), std::string::npos) << h << " in " << input;
      }
    } else {
      EXPECT_NE(auth.status().message(), "") << input;
    }
    auto credential = sigv4::ParseCredential(input);
    if (credential.ok()) {
      EXPECT_NE(input.find(credential->Scope()), std::string::npos) << input;
    }
    // Never a date, never JSON: both refuse.
    EXPECT_FALSE(sigv4::ParseAmzDate(input.substr(0, 16)).ok()) << input;
    auto policy = ParseBucketPolicy(input, "b");
    ASSERT_FALSE(policy.ok()) << input;
    EXPECT_NE(policy.status().message().find("valid JSON"), std::string::npos) << policy.status();
  }
  // Most single edits leave a header that still parses; some break it.
  EXPECT_GT(parsed, 0);
  EXPECT_LT(parsed, 20000);
}

}  // namespace
}  // namespace photon::lightningstor
