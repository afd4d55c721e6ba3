// XML for the S3 wire format: an escaping writer for responses, and the reading of the few
// request bodies S3 has (CompleteMultipartUpload, Delete, VersioningConfiguration,
// LifecycleConfiguration, Tagging-like documents) through common/xml.h's reader, whose errors
// become S3's MalformedXML here. Thread-compatible (no shared state).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/xml.h"
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

using photon::XmlNode;  // common/xml.h

// Parses a document; MalformedXML (as an S3 error) on bad input.
StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc);

}  // namespace photon::lightningstor
