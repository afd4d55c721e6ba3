#include "lightningstor/xml.h"

#include "lightningstor/s3_error.h"

namespace photon::lightningstor {

XmlWriter::XmlWriter() { out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"; }

void XmlWriter::Open(std::string_view name, std::string_view xmlns) {
  out_ += '<';
  out_ += name;
  if (!xmlns.empty()) {
    out_ += " xmlns=\"";
    out_ += xmlns;
    out_ += '"';
  }
  out_ += '>';
}

void XmlWriter::Close(std::string_view name) {
  out_ += "</";
  out_ += name;
  out_ += '>';
}

void XmlWriter::Element(std::string_view name, std::string_view text) {
  Open(name);
  out_ += XmlEscape(text);
  Close(name);
}

StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc) {
  auto parsed = photon::ParseXml(doc);
  if (!parsed.ok()) {
    return S3Error("MalformedXML", "The XML you provided was not well-formed: " +
                                       std::string(parsed.status().message()));
  }
  return parsed;
}

}  // namespace photon::lightningstor
