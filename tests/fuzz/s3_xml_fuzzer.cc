// libFuzzer target for the XML request bodies (CreateBucketConfiguration,
// VersioningConfiguration, LifecycleConfiguration, CompleteMultipartUpload, Delete), read the
// way the handlers read them, and for the bucket policy JSON and bucket names. Also checks that
// escaping round-trips: any text written by XmlWriter parses back to itself.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lightningstor/bucket_rules.h"
#include "lightningstor/xml.h"

using namespace photon::lightningstor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = ParseXml(text);
  if (doc.ok()) {
    const XmlNode& root = **doc;
    (void)root.ChildText("LocationConstraint");
    (void)root.ChildText("Status");
    (void)root.ChildText("Quiet");
    for (const XmlNode* part : root.Children("Part")) {
      (void)part->ChildText("PartNumber");
      (void)part->ChildText("ETag");
    }
    for (const XmlNode* obj : root.Children("Object")) {
      (void)obj->ChildText("Key");
      (void)obj->ChildText("VersionId");
    }
  }
  (void)ParseLifecycle(text);
  (void)PolicyAllowsPublicRead(text);
  (void)ValidateBucketName(text);
  // Escaping round trip (XML 1.0 cannot carry most control characters; those are skipped).
  bool representable = true;
  for (unsigned char c : text) representable &= (c >= 0x20 || c == '\t' || c == '\n');
  if (representable) {
    XmlWriter w;
    w.Element("Key", text);
    auto back = ParseXml(w.Take());
    if (!back.ok() || (*back)->text != text) abort();
  }
  return 0;
}
