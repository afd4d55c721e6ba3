// XML for the S3 wire format: an escaping writer for responses and a small tolerant parser
// for the few request bodies S3 has (CompleteMultipartUpload, Delete, VersioningConfiguration,
// LifecycleConfiguration, Tagging-like documents). The parser ignores namespaces, the prolog,
// comments and processing instructions; it refuses unbalanced or unterminated documents and
// documents nested deeper than 32 levels. Thread-compatible (no shared state).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/xml_escape.h"

namespace photon::lightningstor {

class XmlWriter {
 public:
  XmlWriter();  // starts with the XML declaration
  void Open(std::string_view name, std::string_view xmlns = "");
  void Close(std::string_view name);
  void Element(std::string_view name, std::string_view text);
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

using photon::XmlEscape;  // common/xml_escape.h

struct XmlNode {
  std::string name;  // local name, namespace prefix removed
  std::string text;  // concatenated character data (unescaped)
  std::vector<std::unique_ptr<XmlNode>> children;

  // First child with this local name, or nullptr.
  const XmlNode* Child(std::string_view child_name) const;
  // All children with this local name.
  std::vector<const XmlNode*> Children(std::string_view child_name) const;
  // Text of the first child with this name, or "" when absent.
  std::string ChildText(std::string_view child_name) const;
};

// Parses a document; MalformedXML (as an S3 error) on bad input.
StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc);

}  // namespace photon::lightningstor
