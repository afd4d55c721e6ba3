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

const XmlNode* XmlNode::Child(std::string_view child_name) const {
  for (const auto& c : children)
    if (c->name == child_name) return c.get();
  return nullptr;
}

std::vector<const XmlNode*> XmlNode::Children(std::string_view child_name) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children)
    if (c->name == child_name) out.push_back(c.get());
  return out;
}

std::string XmlNode::ChildText(std::string_view child_name) const {
  const XmlNode* c = Child(child_name);
  return c ? c->text : "";
}

namespace {

constexpr int kMaxDepth = 32;

Status Malformed(std::string why) {
  return S3Error("MalformedXML", "The XML you provided was not well-formed: " + why);
}

// Decodes the five predefined entities and numeric references.
StatusOr<std::string> Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) return Malformed("bad entity");
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out += '&';
    else if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = 0;
      try {
        cp = (ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X'))
                 ? std::stoul(std::string(ent.substr(2)), nullptr, 16)
                 : std::stoul(std::string(ent.substr(1)), nullptr, 10);
      } catch (...) {
        return Malformed("bad character reference");
      }
      // UTF-8 encode.
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x110000) {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        return Malformed("bad character reference");
      }
    } else {
      return Malformed("unknown entity");
    }
    i = semi;
  }
  return out;
}

std::string LocalName(std::string_view qname) {
  size_t colon = qname.find(':');
  return std::string(colon == std::string_view::npos ? qname : qname.substr(colon + 1));
}

}  // namespace

StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc) {
  std::vector<XmlNode*> stack;
  std::unique_ptr<XmlNode> root;
  size_t i = 0;
  while (i < doc.size()) {
    if (doc[i] != '<') {
      size_t lt = doc.find('<', i);
      if (lt == std::string_view::npos) lt = doc.size();
      std::string_view text = doc.substr(i, lt - i);
      if (!stack.empty()) {
        PHOTON_ASSIGN_OR_RETURN(std::string unescaped, Unescape(text));
        stack.back()->text += unescaped;
      } else if (text.find_first_not_of(" \t\r\n") != std::string_view::npos) {
        return Malformed("text outside the root element");
      }
      i = lt;
      continue;
    }
    if (doc.compare(i, 4, "<!--") == 0) {
      size_t end = doc.find("-->", i + 4);
      if (end == std::string_view::npos) return Malformed("unterminated comment");
      i = end + 3;
      continue;
    }
    if (doc.compare(i, 9, "<![CDATA[") == 0) {
      size_t end = doc.find("]]>", i + 9);
      if (end == std::string_view::npos || stack.empty()) return Malformed("bad CDATA");
      stack.back()->text += doc.substr(i + 9, end - i - 9);
      i = end + 3;
      continue;
    }
    if (doc.compare(i, 2, "<?") == 0 || doc.compare(i, 2, "<!") == 0) {
      size_t end = doc.find('>', i);
      if (end == std::string_view::npos) return Malformed("unterminated declaration");
      i = end + 1;
      continue;
    }
    size_t gt = doc.find('>', i);
    if (gt == std::string_view::npos) return Malformed("unterminated tag");
    std::string_view tag = doc.substr(i + 1, gt - i - 1);
    i = gt + 1;
    if (!tag.empty() && tag[0] == '/') {
      std::string name = LocalName(tag.substr(1, tag.find_last_not_of(" \t\r\n")));
      if (stack.empty() || stack.back()->name != name) return Malformed("mismatched end tag");
      stack.pop_back();
      continue;
    }
    bool self_closing = !tag.empty() && tag.back() == '/';
    if (self_closing) tag.remove_suffix(1);
    size_t name_end = tag.find_first_of(" \t\r\n");
    std::string name = LocalName(tag.substr(0, name_end));
    if (name.empty()) return Malformed("empty tag name");
    auto node = std::make_unique<XmlNode>();
    node->name = name;
    XmlNode* raw = node.get();
    if (stack.empty()) {
      if (root) return Malformed("more than one root element");
      root = std::move(node);
    } else {
      stack.back()->children.push_back(std::move(node));
    }
    if (!self_closing) {
      if (stack.size() >= kMaxDepth) return Malformed("nested too deep");
      stack.push_back(raw);
    }
  }
  if (!root) return Malformed("no root element");
  if (!stack.empty()) return Malformed("unclosed element");
  return root;
}

}  // namespace photon::lightningstor
