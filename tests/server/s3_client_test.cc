// The lightningstor provider's client-side SigV4 signer against the AWS documentation's worked
// example, its S3 name mapping, and its reading of S3 XML answers.
#include "server/providers/lightningstor/s3_client.h"

#include <gtest/gtest.h>

#include "server/providers/lightningstor/lightningstor_provider.h"

namespace photon::server {
namespace {

TEST(S3Client, SignsTheAwsGetBucketLifecycleExample) {
  // "Example: GET Bucket Lifecycle" of the AWS SigV4 header-based authentication page.
  s3::Credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
  auto h = s3::SignV4(creds, "us-east-1", "GET", "examplebucket.s3.amazonaws.com", "/",
                      {{"lifecycle", ""}}, "", "20130524T000000Z");
  EXPECT_EQ(h["x-amz-content-sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(h["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(S3Client, BucketNames) {
  EXPECT_EQ(*S3BucketName("team-a", "logs"), "team-a-logs");
  auto long_name = S3BucketName("team-a", std::string(60, 'n'));
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.status().message().find("S3 allows 63"), std::string::npos);
  EXPECT_FALSE(S3BucketName("xn--a", "b").ok());
  EXPECT_FALSE(S3BucketName("a", "b-s3alias").ok());
  EXPECT_EQ(S3BucketName(std::string(31, 'a'), std::string(31, 'b'))->size(), 63u);
}

TEST(S3Client, ReadsXml) {
  const std::string xml =
      "<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket><Bucket><Name>b&amp;c"
      "</Name></Bucket></Buckets><Empty/></ListAllMyBucketsResult>";
  EXPECT_EQ(s3::XmlTexts(xml, "Name"), (std::vector<std::string>{"a", "b&c"}));
  EXPECT_EQ(s3::XmlTexts(xml, "Empty"), (std::vector<std::string>{""}));
  EXPECT_EQ(s3::XmlText(xml, "Missing"), "");
  EXPECT_EQ(s3::XmlTexts(xml, "Bucket", true)[1], "<Name>b&amp;c</Name>");
  EXPECT_EQ(s3::XmlEscape("a<&>'\""), "a&lt;&amp;&gt;&apos;&quot;");
}

}  // namespace
}  // namespace photon::server
