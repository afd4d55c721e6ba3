// SigV4 against the worked examples of the AWS S3 documentation (header auth, presigned URL,
// streaming chunks), through the same Authenticator the server uses; the signer's own vectors
// are in tests/common/sigv4_test.cc.
#include "lightningstor/sigv4.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <filesystem>

#include "common/file_util.h"
#include "common/sigv4.h"
#include "common/util.h"
#include "lightningstor/auth.h"
#include "lightningstor/body_readers.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kAkid = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr int64_t kExampleTime = 1369353600;  // 2013-05-24T00:00:00Z

class SigV4Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sigv4_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::string keys =
        std::string("{\"keys\":[{\"id\":\"") + kAkid + "\",\"secret\":\"" + kSecret + "\"}]}";
    ASSERT_TRUE(WriteFileAtomic(dir_ / "keys.json", keys, 0600).ok());
    keys_ = std::make_unique<KeyStore>(dir_ / "keys.json");
    config_.data_dir = dir_;
    config_.region = "us-east-1";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<KeyStore> keys_;
  Config config_;
  ManualClock clock_{kExampleTime * 1000 + 5000};
};

http::Request ExampleGet() {
  http::Request req;
  req.method = "GET";
  req.path = "/test.txt";
  req.headers = {
      {"host", "examplebucket.s3.amazonaws.com"},
      {"range", "bytes=0-9"},
      {"x-amz-content-sha256", std::string(sigv4::kEmptySha256)},
      {"x-amz-date", "20130524T000000Z"},
      {"authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
       "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"}};
  return req;
}

TEST_F(SigV4Test, HeaderExampleFromAwsDocs) {
  Authenticator auth(&config_, keys_.get(), &clock_);
  auto info = auth.Authenticate(ExampleGet());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->anonymous);
  EXPECT_EQ(info->access_key, kAkid);
}

TEST_F(SigV4Test, TamperedHeaderFails) {
  Authenticator auth(&config_, keys_.get(), &clock_);
  http::Request req = ExampleGet();
  req.headers[1].second = "bytes=0-10";
  auto info = auth.Authenticate(req);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(S3Code(info.status()), "SignatureDoesNotMatch");
}

TEST_F(SigV4Test, WrongRegionIsMalformedHeader) {
  config_.region = "eu-west-1";
  Authenticator auth(&config_, keys_.get(), &clock_);
  auto info = auth.Authenticate(ExampleGet());
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(S3Code(info.status()), "AuthorizationHeaderMalformed");
  EXPECT_NE(std::string(info.status().message()).find("expecting 'eu-west-1'"), std::string::npos);
}

TEST_F(SigV4Test, UnknownKeyAndSkew) {
  Authenticator auth(&config_, keys_.get(), &clock_);
  http::Request req = ExampleGet();
  req.headers[4].second.replace(req.headers[4].second.find(kAkid), 20, "AKIAUNKNOWNKEY000000");
  EXPECT_EQ(S3Code(auth.Authenticate(req).status()), "InvalidAccessKeyId");
  ManualClock late(kExampleTime * 1000 + 3600 * 1000);
  Authenticator late_auth(&config_, keys_.get(), &late);
  EXPECT_EQ(S3Code(late_auth.Authenticate(ExampleGet()).status()), "RequestTimeTooSkewed");
}

http::Request ExamplePresigned() {
  http::Request req;
  req.method = "GET";
  req.path = "/test.txt";
  req.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  req.query = {
      {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
      {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"},
      {"X-Amz-Date", "20130524T000000Z"},
      {"X-Amz-Expires", "86400"},
      {"X-Amz-SignedHeaders", "host"},
      {"X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"}};
  return req;
}

TEST_F(SigV4Test, PresignedExampleAndExpiry) {
  Authenticator auth(&config_, keys_.get(), &clock_);
  auto info = auth.Authenticate(ExamplePresigned());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->presigned);
  ManualClock expired((kExampleTime + 86401) * 1000);
  Authenticator expired_auth(&config_, keys_.get(), &expired);
  auto late = expired_auth.Authenticate(ExamplePresigned());
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(S3Code(late.status()), "AccessDenied");
}

// The client half of the shared signer (what photon-server's S3 client sends) verifies here.
TEST_F(SigV4Test, ClientSignedRequestVerifies) {
  photon::sigv4::ClientRequest c{.method = "PUT",
                                 .host = "127.0.0.1:9000",
                                 .path = "/bucket/a key+é",
                                 .query = {{"tagging", ""}, {"versionId", "v 1"}},
                                 .body = "<Tagging/>",
                                 .amz_date = "20130524T000000Z"};
  auto signed_headers = photon::sigv4::SignRequestHeaders(
      {.access_key = kAkid, .region = "us-east-1", .service = "s3"}, kSecret, c);
  http::Request req;
  req.method = c.method;
  req.path = c.path;
  req.query = c.query;
  for (const auto& [k, v] : signed_headers) req.headers.emplace_back(k, v);
  Authenticator auth(&config_, keys_.get(), &clock_);
  auto info = auth.Authenticate(req);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->payload_hash, photon::Sha256Hex(c.body));
  req.path = "/bucket/other";
  EXPECT_EQ(S3Code(auth.Authenticate(req).status()), "SignatureDoesNotMatch");
}

// X-Amz-Date is parsed by hand: it must give what timegm gives, across leap days and
// centuries, and refuse what is not a date.
TEST(AmzDate, MatchesTimegmAndRefusesGarbage) {
  for (const char* s :
       {"19700101T000000Z", "20130524T000000Z", "20240229T235959Z", "20000301T120000Z",
        "21000228T010203Z", "20261205T183000Z", "20260231T000000Z"}) {
    std::tm tm{};
    ASSERT_NE(strptime(s, "%Y%m%dT%H%M%SZ", &tm), nullptr) << s;
    auto got = sigv4::ParseAmzDate(s);
    ASSERT_TRUE(got.ok()) << s << ": " << got.status();
    EXPECT_EQ(*got, static_cast<int64_t>(timegm(&tm))) << s;
  }
  EXPECT_EQ(*sigv4::ParseAmzDate("20130524T000000Z"), 1369353600);
  for (const char* s :
       {"2013052XT000000Z", "20131324T000000Z", "20130500T000000Z", "20130524T240000Z",
        "20130524T006000Z", "20130524T00000Z ", "20130524 000000Z", "2013-05-24T00:0Z"}) {
    EXPECT_EQ(S3Code(sigv4::ParseAmzDate(s).status()), "AccessDenied") << s;
  }
}

// Dates are formatted by hand (glibc's gmtime_r takes a process-wide lock): the same text as
// strftime over gmtime_r, and ParseHttpDate reads it back.
TEST(HttpDates, MatchStrftimeAndRoundTrip) {
  for (int64_t secs :
       {int64_t{0}, int64_t{951782400}, int64_t{1369353600}, int64_t{1709251199},
        int64_t{1709251200}, int64_t{4107542399}, int64_t{1796505000}, int64_t{253402300799}}) {
    time_t t = static_cast<time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char http[64], iso[64];
    strftime(http, sizeof http, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
    EXPECT_EQ(sigv4::FormatHttpDate(secs), http) << secs;
    EXPECT_EQ(sigv4::FormatIso8601(secs * 1000 + 7), std::string(iso) + ".007Z") << secs;
    auto back = sigv4::ParseHttpDate(http);
    ASSERT_TRUE(back.ok()) << http;
    EXPECT_EQ(*back, secs) << http;
  }
}

// Serves a fixed string as a request body.
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

std::string EncodeChunked(const std::string& key, const std::string& seed,
                          const std::vector<std::string>& chunks) {
  std::string out, prev = seed;
  std::string scope = "20130524/us-east-1/s3/aws4_request";
  for (const auto& c : chunks) {
    std::string sig = sigv4::ChunkSignature(key, "20130524T000000Z", scope, prev, c);
    char size[32];
    snprintf(size, sizeof size, "%zx", c.size());
    out += std::string(size) + ";chunk-signature=" + sig + "\r\n" + c + "\r\n";
    prev = sig;
  }
  return out;
}

TEST(AwsChunkedReader, DecodesAndVerifiesChunks) {
  AuthInfo auth;
  auth.signing_key = sigv4::SigningKey(kSecret, "20130524", "us-east-1", "s3");
  auth.amz_date = "20130524T000000Z";
  auth.scope = "20130524/us-east-1/s3/aws4_request";
  auth.seed_signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
  std::string body =
      EncodeChunked(auth.signing_key, auth.seed_signature, {std::string(70000, 'x'), "tail", ""});
  StringBody raw(body);
  AwsChunkedReader reader(&raw, auth, true);
  std::string decoded;
  char buf[4096];
  while (true) {
    auto n = reader.Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    decoded.append(buf, *n);
  }
  EXPECT_EQ(decoded, std::string(70000, 'x') + "tail");

  // One flipped byte in the data breaks that chunk's signature.
  body[body.find("tail")] = 'T';
  StringBody bad(body);
  AwsChunkedReader bad_reader(&bad, auth, true);
  Status st;
  while (true) {
    auto n = bad_reader.Read(buf, sizeof buf);
    if (!n.ok()) {
      st = n.status();
      break;
    }
    if (*n == 0) break;
  }
  EXPECT_EQ(S3Code(st), "SignatureDoesNotMatch");
}

}  // namespace
}  // namespace photon::lightningstor
