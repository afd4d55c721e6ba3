#include "lightningstor/bucket_rules.h"

#include <nlohmann/json.hpp>

#include "lightningstor/s3_error.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {

Status ValidateBucketName(const std::string& name) {
  auto bad = [&](const std::string& why) {
    return S3Error("InvalidBucketName", "The specified bucket is not valid: " + why);
  };
  if (name.size() < 3 || name.size() > 63) return bad("length must be 3 to 63");
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return bad("only lower-case letters, digits, '.' and '-' are allowed");
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back()))
    return bad("must start and end with a letter or digit");
  if (name.find("..") != std::string::npos || name.find(".-") != std::string::npos ||
      name.find("-.") != std::string::npos) {
    return bad("adjacent periods or period next to hyphen");
  }
  if (name.rfind("xn--", 0) == 0 || name.rfind("sthree-", 0) == 0) return bad("reserved prefix");
  if (name.size() > 8 && name.compare(name.size() - 8, 8, "-s3alias") == 0)
    return bad("reserved suffix");
  int dots = 0;
  bool digits_and_dots = true;
  for (char c : name) {
    if (c == '.')
      ++dots;
    else if (!(c >= '0' && c <= '9'))
      digits_and_dots = false;
  }
  if (digits_and_dots && dots == 3) return bad("must not be formatted as an IP address");
  return absl::OkStatus();
}

StatusOr<bool> PolicyAllowsPublicRead(const std::string& policy_json) {
  auto doc = nlohmann::json::parse(policy_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("Statement")) {
    return S3Error("MalformedPolicy", "Policies must be valid JSON with a Statement");
  }
  auto as_list = [](const nlohmann::json& v) {
    std::vector<nlohmann::json> out;
    if (v.is_array()) {
      for (const auto& e : v) out.push_back(e);
    } else {
      out.push_back(v);
    }
    return out;
  };
  bool public_read = false;
  for (const auto& st : as_list(doc["Statement"])) {
    if (!st.is_object()) return S3Error("MalformedPolicy", "Statement must be an object");
    // json::value() throws when the key holds another type; a policy is client input, so the
    // type is checked here and a wrong one is the client's MalformedPolicy, not an exception.
    if (!st.contains("Effect") || !st["Effect"].is_string()) {
      return S3Error("MalformedPolicy", "Statement Effect must be \"Allow\" or \"Deny\"");
    }
    if (st["Effect"].get<std::string>() != "Allow") continue;
    bool everyone = false;
    if (st.contains("Principal")) {
      const auto& p = st["Principal"];
      if (p.is_string() && p.get<std::string>() == "*") everyone = true;
      if (p.is_object() && p.contains("AWS")) {
        for (const auto& a : as_list(p["AWS"]))
          if (a.is_string() && a.get<std::string>() == "*") everyone = true;
      }
    }
    bool get = false;
    if (st.contains("Action")) {
      for (const auto& a : as_list(st["Action"])) {
        if (!a.is_string()) continue;
        std::string s = a.get<std::string>();
        if (s == "s3:GetObject" || s == "s3:*" || s == "*" || s == "s3:Get*") get = true;
      }
    }
    if (everyone && get) public_read = true;
  }
  return public_read;
}

StatusOr<std::vector<LifecycleRule>> ParseLifecycle(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto root, ParseXml(xml));
  if (root->name != "LifecycleConfiguration")
    return S3Error("MalformedXML", "expected LifecycleConfiguration");
  std::vector<LifecycleRule> rules;
  auto parse_days = [](const std::string& text, int* out) -> Status {
    try {
      size_t used = 0;
      int v = std::stoi(text, &used);
      if (used != text.size() || v <= 0) throw std::invalid_argument("days");
      *out = v;
    } catch (...) {
      return S3Error("InvalidArgument", "'Days' for Expiration action must be a positive integer");
    }
    return absl::OkStatus();
  };
  for (const XmlNode* rule : root->Children("Rule")) {
    LifecycleRule r;
    r.id = rule->ChildText("ID");
    std::string status = rule->ChildText("Status");
    if (status != "Enabled" && status != "Disabled")
      return S3Error("MalformedXML", "Rule Status must be Enabled or Disabled");
    r.enabled = status == "Enabled";
    if (const XmlNode* filter = rule->Child("Filter")) {
      r.prefix = filter->ChildText("Prefix");
      if (const XmlNode* a = filter->Child("And")) r.prefix = a->ChildText("Prefix");
    } else {
      r.prefix = rule->ChildText("Prefix");
    }
    if (const XmlNode* exp = rule->Child("Expiration")) {
      if (exp->Child("Days"))
        PHOTON_RETURN_IF_ERROR(parse_days(exp->ChildText("Days"), &r.expiration_days));
    }
    if (const XmlNode* abort = rule->Child("AbortIncompleteMultipartUpload")) {
      PHOTON_RETURN_IF_ERROR(
          parse_days(abort->ChildText("DaysAfterInitiation"), &r.abort_upload_days));
    }
    rules.push_back(std::move(r));
  }
  if (rules.empty())
    return S3Error("MalformedXML", "a lifecycle configuration needs at least one Rule");
  return rules;
}

}  // namespace photon::lightningstor
