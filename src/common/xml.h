// Reading XML documents into a small tree, over expat (Debian's libexpat). Used for S3's
// request bodies in lightningstor (which turns errors into MalformedXML) and for S3's answers
// in photon-server's Bucket provider.
//
// Why expat: the documents are small, flat and read once into this tree, so expat's streaming
// callbacks cost a few lines here while the library stays small (one C library, no DOM we would
// convert from), is already a dependency of half the base system, and guards against entity
// expansion attacks itself. DTDs are refused outright (no S3 document has one), so no entity
// is ever declared, external or internal. Element names lose their namespace prefix (S3 clients
// differ in how they qualify names); attributes are ignored; documents nested deeper than 32
// levels are refused. Thread-compatible (no shared state).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace photon {

struct XmlNode {
  std::string name;  // local name, namespace prefix removed
  std::string text;  // concatenated character data (unescaped), of this element only
  std::vector<std::unique_ptr<XmlNode>> children;

  // First child with this local name, or nullptr.
  const XmlNode* Child(std::string_view child_name) const;
  // All children with this local name.
  std::vector<const XmlNode*> Children(std::string_view child_name) const;
  // Text of the first child with this name, or "" when absent.
  std::string ChildText(std::string_view child_name) const;
  // Every element below this one with this local name, at any depth, in document order.
  std::vector<const XmlNode*> Descendants(std::string_view descendant_name) const;
  // Text of the first of Descendants(name), or "" when there is none.
  std::string DescendantText(std::string_view descendant_name) const;
};

// Parses a whole document; InvalidArgument naming expat's reason and the line on bad input.
StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc);

}  // namespace photon
