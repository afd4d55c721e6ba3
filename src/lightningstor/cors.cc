#include "lightningstor/cors.h"

#include <algorithm>
#include <set>

#include "lightningstor/s3_error.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

StatusOr<CorsRule> ParseRule(const XmlNode& node) {
  static const std::set<std::string> kMethods = {"GET", "PUT", "POST", "DELETE", "HEAD"};
  CorsRule rule;
  for (const auto& c : node.children) {
    const std::string& n = c->name;
    if (n == "ID") {
      rule.id = c->text;
    } else if (n == "AllowedOrigin") {
      if (std::count(c->text.begin(), c->text.end(), '*') > 1) {
        return S3Error("InvalidRequest",
                       "AllowedOrigin \"" + c->text + "\" can not have more than one wildcard.");
      }
      rule.origins.push_back(c->text);
    } else if (n == "AllowedMethod") {
      if (!kMethods.count(c->text)) {
        return S3Error(
            "InvalidRequest",
            "Found unsupported HTTP method in CORS config. Unsupported method is " + c->text);
      }
      rule.methods.push_back(c->text);
    } else if (n == "AllowedHeader") {
      if (std::count(c->text.begin(), c->text.end(), '*') > 1) {
        return S3Error("InvalidRequest",
                       "AllowedHeader \"" + c->text + "\" can not have more than one wildcard.");
      }
      rule.headers.push_back(c->text);
    } else if (n == "ExposeHeader") {
      rule.expose.push_back(c->text);
    } else if (n == "MaxAgeSeconds") {
      try {
        size_t used = 0;
        int v = std::stoi(c->text, &used);
        if (used != c->text.size() || v < 0) throw std::invalid_argument("age");
        rule.max_age = v;
      } catch (...) {
        return S3Error("MalformedXML", "MaxAgeSeconds is a non-negative integer");
      }
    } else {
      return S3Error("MalformedXML", "unknown CORSRule element " + n);
    }
  }
  if (rule.origins.empty() || rule.methods.empty())
    return S3Error("MalformedXML", "a CORSRule needs an AllowedOrigin and an AllowedMethod");
  return rule;
}

}  // namespace

StatusOr<std::vector<CorsRule>> ParseCors(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "CORSConfiguration")
    return S3Error("MalformedXML", "expected CORSConfiguration");
  std::vector<CorsRule> rules;
  for (const auto& child : doc->children) {
    if (child->name != "CORSRule")
      return S3Error("MalformedXML", "unknown CORSConfiguration element " + child->name);
    PHOTON_ASSIGN_OR_RETURN(CorsRule rule, ParseRule(*child));
    rules.push_back(std::move(rule));
  }
  if (rules.empty()) return S3Error("MalformedXML", "a CORS configuration needs a CORSRule");
  if (rules.size() > 100)
    return S3Error("InvalidRequest", "A CORS configuration has at most 100 rules");
  return rules;
}

std::string CorsXml(const std::vector<CorsRule>& rules) {
  XmlWriter w;
  w.Open("CORSConfiguration", "http://s3.amazonaws.com/doc/2006-03-01/");
  for (const auto& r : rules) {
    w.Open("CORSRule");
    if (!r.id.empty()) w.Element("ID", r.id);
    for (const auto& v : r.headers) w.Element("AllowedHeader", v);
    for (const auto& v : r.methods) w.Element("AllowedMethod", v);
    for (const auto& v : r.origins) w.Element("AllowedOrigin", v);
    for (const auto& v : r.expose) w.Element("ExposeHeader", v);
    if (r.max_age >= 0) w.Element("MaxAgeSeconds", std::to_string(r.max_age));
    w.Close("CORSRule");
  }
  w.Close("CORSConfiguration");
  return w.Take();
}

bool WildcardMatch(const std::string& pattern, const std::string& value) {
  size_t star = pattern.find('*');
  if (star == std::string::npos) return pattern == value;
  std::string head = pattern.substr(0, star), tail = pattern.substr(star + 1);
  return value.size() >= head.size() + tail.size() && value.compare(0, head.size(), head) == 0 &&
         value.compare(value.size() - tail.size(), tail.size(), tail) == 0;
}

const CorsRule* MatchCors(const std::vector<CorsRule>& rules, const std::string& origin,
                          const std::string& method, const std::vector<std::string>& headers) {
  for (const auto& rule : rules) {
    bool origin_ok = std::any_of(rule.origins.begin(), rule.origins.end(),
                                 [&](const std::string& o) { return WildcardMatch(o, origin); });
    bool method_ok =
        std::find(rule.methods.begin(), rule.methods.end(), method) != rule.methods.end();
    bool headers_ok = std::all_of(headers.begin(), headers.end(), [&](const std::string& h) {
      return std::any_of(rule.headers.begin(), rule.headers.end(),
                         [&](const std::string& a) { return WildcardMatch(Lower(a), Lower(h)); });
    });
    if (origin_ok && method_ok && headers_ok) return &rule;
  }
  return nullptr;
}

}  // namespace photon::lightningstor
