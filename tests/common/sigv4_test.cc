// The shared SigV4 signer against the worked examples of the AWS S3 documentation ("Signature
// Calculations for the Authorization Header" and "Signature Calculation: Transfer Payload in
// Multiple Chunks"), step by step for the verifier's building blocks and in one call for the
// client's SignRequestHeaders. tests/lightningstor/sigv4_test.cc runs the same examples through
// lightningstor's Authenticator and checks a client-signed request verifies.
#include "common/sigv4.h"

#include <gtest/gtest.h>

namespace photon::sigv4 {
namespace {

constexpr const char* kAkid = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr const char* kScope = "20130524/us-east-1/s3/aws4_request";

TEST(SigV4, GetObjectExampleStepByStep) {
  const std::vector<std::string> names = {"host", "range", "x-amz-content-sha256", "x-amz-date"};
  const std::string headers =
      CanonicalHeaders({{"host", "examplebucket.s3.amazonaws.com"},
                        {"range", "  bytes=0-9 "},  // trimmed, as the rules say
                        {"x-amz-content-sha256", std::string(kEmptySha256)},
                        {"x-amz-date", "20130524T000000Z"},
                        {"user-agent", "not signed"}},
                       names);
  EXPECT_EQ(headers,
            "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:"
            "20130524T000000Z\n");
  const std::string request =
      CanonicalRequest("GET", UriEncode("/test.txt", false), CanonicalQuery({}), headers,
                       "host;range;x-amz-content-sha256;x-amz-date", kEmptySha256);
  const std::string sts = StringToSign("20130524T000000Z", kScope, request);
  EXPECT_EQ(sts.substr(sts.rfind('\n') + 1),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(Sign(SigningKey(kSecret, "20130524", "us-east-1", "s3"), sts),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, ClientSignsGetBucketLifecycleExample) {
  ClientRequest req{.method = "GET",
                    .host = "examplebucket.s3.amazonaws.com",
                    .path = "/",
                    .query = {{"lifecycle", ""}},
                    .body = "",
                    .amz_date = "20130524T000000Z"};
  auto h = SignRequestHeaders({.access_key = kAkid, .region = "us-east-1", .service = "s3"},
                              kSecret, req);
  EXPECT_EQ(h["x-amz-content-sha256"], kEmptySha256);
  EXPECT_EQ(h["x-amz-date"], "20130524T000000Z");
  EXPECT_EQ(h["host"], "examplebucket.s3.amazonaws.com");
  EXPECT_EQ(h["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  // Any change to what is signed changes the signature.
  req.query = {{"versioning", ""}};
  EXPECT_EQ(SignRequestHeaders({.access_key = kAkid, .region = "us-east-1", .service = "s3"},
                               kSecret, req)["authorization"]
                .find("fea454ca"),
            std::string::npos);
}

TEST(SigV4, StreamingChunksExample) {
  const std::string key = SigningKey(kSecret, "20130524", "us-east-1", "s3");
  const std::string seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
  const std::string c1 =
      ChunkSignature(key, "20130524T000000Z", kScope, seed, std::string(65536, 'a'));
  EXPECT_EQ(c1, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
  const std::string c2 =
      ChunkSignature(key, "20130524T000000Z", kScope, c1, std::string(1024, 'a'));
  EXPECT_EQ(c2, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497");
  EXPECT_EQ(ChunkSignature(key, "20130524T000000Z", kScope, c2, ""),
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");
}

TEST(SigV4, UriEncodeAndCanonicalQuery) {
  EXPECT_EQ(UriEncode("a b/c~d+é", false), "a%20b/c~d%2B%C3%A9");
  EXPECT_EQ(UriEncode("a/b", true), "a%2Fb");
  EXPECT_EQ(CanonicalQuery({{"prefix", "x y"}, {"list-type", "2"}, {"acl", ""}}),
            "acl=&list-type=2&prefix=x%20y");
  EXPECT_EQ(CanonicalQuery({{"X-Amz-Signature", "s"}, {"a", "1"}}, "X-Amz-Signature"), "a=1");
}

}  // namespace
}  // namespace photon::sigv4
