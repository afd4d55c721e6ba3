// The shared XML reader (expat underneath): the S3 documents it reads, the S3 answers the
// Bucket provider reads, and what it refuses.
#include "common/xml.h"

#include <gtest/gtest.h>

namespace photon {
namespace {

TEST(Xml, ReadsAnS3AnswerWithNamespacesEntitiesAndCdata) {
  auto doc = ParseXml(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<s3:ListAllMyBucketsResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<s3:Buckets><s3:Bucket><s3:Name>a</s3:Name></s3:Bucket>"
      "<s3:Bucket><s3:Name>b&amp;c&#x41;&#66;<![CDATA[<d>]]></s3:Name></s3:Bucket>"
      "<!-- a comment --></s3:Buckets><Empty/></s3:ListAllMyBucketsResult>");
  ASSERT_TRUE(doc.ok()) << doc.status();
  const XmlNode& root = **doc;
  EXPECT_EQ(root.name, "ListAllMyBucketsResult");
  std::vector<std::string> names;
  for (const XmlNode* n : root.Descendants("Name")) names.push_back(n->text);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b&cAB<d>"}));
  EXPECT_EQ(root.Child("Buckets")->Children("Bucket").size(), 2u);
  EXPECT_EQ(root.DescendantText("Name"), "a");
  EXPECT_EQ(root.DescendantText("Missing"), "");
  EXPECT_NE(root.Child("Empty"), nullptr);
  EXPECT_EQ(root.ChildText("Empty"), "");
}

TEST(Xml, DescendantsAreInDocumentOrder) {
  auto doc = ParseXml("<r><a><x>1</x><b><x>2</x></b></a><x>3</x></r>");
  ASSERT_TRUE(doc.ok()) << doc.status();
  std::vector<std::string> xs;
  for (const XmlNode* n : (*doc)->Descendants("x")) xs.push_back(n->text);
  EXPECT_EQ(xs, (std::vector<std::string>{"1", "2", "3"}));
}

TEST(Xml, RefusesMalformedDocumentsWithTheReason) {
  for (const char* bad : {"", "<a>", "<a></b>", "<a><b></a></b>", "text", "<a>&bogus;</a>",
                          "<a/><b/>", "<a/>junk", "<a>\xff</a>"}) {
    auto doc = ParseXml(bad);
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(doc.status().message().find("(line "), std::string::npos) << doc.status();
  }
}

TEST(Xml, RefusesDtdsAndDeepNesting) {
  auto dtd = ParseXml(
      "<!DOCTYPE a [<!ENTITY x \"xxxxxxxxxx\"><!ENTITY y \"&x;&x;&x;&x;&x;\">]><a>&y;</a>");
  ASSERT_FALSE(dtd.ok());
  EXPECT_NE(dtd.status().message().find("DOCTYPE"), std::string::npos) << dtd.status();
  std::string nested;
  for (int i = 0; i < 32; ++i) nested += "<a>";
  for (int i = 0; i < 32; ++i) nested += "</a>";
  EXPECT_TRUE(ParseXml(nested).ok());
  auto deeper = ParseXml("<b>" + nested + "</b>");
  ASSERT_FALSE(deeper.ok());
  EXPECT_NE(deeper.status().message().find("deeper than 32"), std::string::npos);
}

}  // namespace
}  // namespace photon
