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

TEST(S3Client, ReadsAnswers) {
  s3::Reply list = s3::ReadAnswer(
      200,
      "<?xml version=\"1.0\"?><ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket>"
      "<Bucket><Name>b&amp;c</Name></Bucket></Buckets></ListAllMyBucketsResult>");
  ASSERT_EQ(list.xml_error, "");
  std::vector<std::string> names;
  for (const XmlNode* n : list.xml->Descendants("Name")) names.push_back(n->text);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b&c"}));

  s3::Reply err = s3::ReadAnswer(
      404, "<Error><Code>NoSuchBucket</Code><Message>gone &amp; lost</Message></Error>");
  EXPECT_EQ(err.code, "NoSuchBucket");
  EXPECT_EQ(err.message, "gone & lost");
  s3::Reply proxy = s3::ReadAnswer(502, "<html><body>Bad Gateway</body>");
  EXPECT_EQ(proxy.code, "");
  EXPECT_EQ(proxy.message, "<html><body>Bad Gateway</body>");

  // A success whose body is not XML is not taken as an empty answer.
  EXPECT_NE(s3::ReadAnswer(200, "<ListAllMyBucketsResult>").xml_error, "");
  EXPECT_EQ(s3::ReadAnswer(200, "").xml_error, "");
  EXPECT_EQ(s3::XmlEscape("a<&>'\""), "a&lt;&amp;&gt;&apos;&quot;");
}

}  // namespace
}  // namespace photon::server
