// libFuzzer target for the XML request bodies (CreateBucketConfiguration,
// VersioningConfiguration, LifecycleConfiguration, CompleteMultipartUpload, Delete), read the
// way the handlers read them, and for the bucket policy JSON and bucket names. Also checks that
// escaping round-trips: any text written by XmlWriter parses back to itself.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lightningstor/bucket_rules.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/xml.h"

using namespace photon::lightningstor;

namespace {

// Valid UTF-8 (shortest form, no surrogates) of characters XML 1.0 allows.
bool XmlRepresentable(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\n') return false;
      ++i;
      continue;
    }
    const size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size()) return false;
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE ||
        cp == 0xFFFF) {
      return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

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
  (void)ParseBucketPolicy(text, "b");
  (void)CannedAclOf(text, "lightningstor", false);
  auto tags = ParseTagQuery(text);
  if (tags.ok() && CheckTags(*tags, 10).ok()) {
    // What is stored reads back as the same tags.
    auto again = ParseTagQuery(EncodeTagQuery(*tags));
    if (!again.ok() || *again != *tags) __builtin_trap();
  }
  (void)ValidateBucketName(text);
  // Escaping round trip for the texts XML 1.0 can carry: valid UTF-8 without most control
  // characters and without U+FFFE/U+FFFF (the parser rightly refuses the others).
  if (XmlRepresentable(text)) {
    XmlWriter w;
    w.Element("Key", text);
    auto back = ParseXml(w.Take());
    if (!back.ok() || (*back)->text != text) abort();
  }
  return 0;
}
