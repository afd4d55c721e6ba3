#include "common/xml.h"

#include <expat.h>

#include <climits>
#include <type_traits>

namespace photon {

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

std::vector<const XmlNode*> XmlNode::Descendants(std::string_view descendant_name) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children) {
    if (c->name == descendant_name) out.push_back(c.get());
    for (const XmlNode* d : c->Descendants(descendant_name)) out.push_back(d);
  }
  return out;
}

std::string XmlNode::DescendantText(std::string_view descendant_name) const {
  for (const auto& c : children) {
    if (c->name == descendant_name) return c->text;
    if (const auto found = c->Descendants(descendant_name); !found.empty()) {
      return found.front()->text;
    }
  }
  return "";
}

namespace {

constexpr size_t kMaxDepth = 32;

// The tree under construction, shared with expat's callbacks through the user data pointer.
struct Builder {
  XML_Parser parser;
  std::unique_ptr<XmlNode> root;
  std::vector<XmlNode*> stack;
  std::string refusal;  // why a callback stopped the parser ("" when expat itself failed)

  void Refuse(std::string why) {
    refusal = std::move(why);
    XML_StopParser(parser, XML_FALSE);
  }
};

std::string LocalName(const XML_Char* qname) {
  std::string_view name(qname);
  size_t colon = name.find(':');
  return std::string(colon == std::string_view::npos ? name : name.substr(colon + 1));
}

void OnStart(void* data, const XML_Char* name, const XML_Char** /*attributes*/) {
  auto* b = static_cast<Builder*>(data);
  if (b->stack.size() >= kMaxDepth) return b->Refuse("nested deeper than 32 elements");
  auto node = std::make_unique<XmlNode>();
  node->name = LocalName(name);
  XmlNode* raw = node.get();
  if (b->stack.empty()) {
    b->root = std::move(node);  // expat itself refuses a second root element
  } else {
    b->stack.back()->children.push_back(std::move(node));
  }
  b->stack.push_back(raw);
}

void OnEnd(void* data, const XML_Char* /*name*/) { static_cast<Builder*>(data)->stack.pop_back(); }

void OnText(void* data, const XML_Char* text, int len) {
  auto* b = static_cast<Builder*>(data);
  if (!b->stack.empty()) b->stack.back()->text.append(text, static_cast<size_t>(len));
}

void OnDoctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  static_cast<Builder*>(data)->Refuse("a DOCTYPE is not accepted");
}

}  // namespace

StatusOr<std::unique_ptr<XmlNode>> ParseXml(std::string_view doc) {
  if (doc.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("XML document too large");
  }
  // UTF-8 whatever the declaration says: the parsers S3 clients talk to assume nothing else.
  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> parser(
      XML_ParserCreate("UTF-8"), &XML_ParserFree);
  if (!parser) return absl::ResourceExhaustedError("XML parser: out of memory");
  Builder b{parser.get(), nullptr, {}, ""};
  XML_SetUserData(parser.get(), &b);
  XML_SetElementHandler(parser.get(), OnStart, OnEnd);
  XML_SetCharacterDataHandler(parser.get(), OnText);
  XML_SetStartDoctypeDeclHandler(parser.get(), OnDoctype);
  if (XML_Parse(parser.get(), doc.data(), static_cast<int>(doc.size()), XML_TRUE) !=
      XML_STATUS_OK) {
    std::string why =
        !b.refusal.empty() ? b.refusal : XML_ErrorString(XML_GetErrorCode(parser.get()));
    return absl::InvalidArgumentError(why + " (line " +
                                      std::to_string(XML_GetCurrentLineNumber(parser.get())) + ")");
  }
  return std::move(b.root);
}

}  // namespace photon
