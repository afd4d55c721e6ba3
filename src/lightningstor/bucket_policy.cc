#include "lightningstor/bucket_policy.h"

#include <arpa/inet.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

struct ActionInfo {
  const char* name;
  bool object;      // applies to arn:aws:s3:::BUCKET/KEY (else to the bucket)
  bool owner_only;  // the bucket owner's alone, whatever a policy says
};

// The actions of the operations lightningstor has. A policy naming any other is refused: it
// would grant or deny something no request here ever asks for.
constexpr ActionInfo kActions[] = {
    {"s3:GetObject", true, false},
    {"s3:GetObjectVersion", true, false},
    {"s3:GetObjectAttributes", true, false},
    {"s3:GetObjectVersionAttributes", true, false},
    {"s3:PutObject", true, false},
    {"s3:DeleteObject", true, false},
    {"s3:DeleteObjectVersion", true, false},
    {"s3:AbortMultipartUpload", true, false},
    {"s3:ListMultipartUploadParts", true, false},
    {"s3:GetObjectAcl", true, false},
    {"s3:GetObjectVersionAcl", true, false},
    {"s3:PutObjectAcl", true, false},
    {"s3:PutObjectVersionAcl", true, false},
    {"s3:GetObjectTagging", true, false},
    {"s3:GetObjectVersionTagging", true, false},
    {"s3:PutObjectTagging", true, false},
    {"s3:PutObjectVersionTagging", true, false},
    {"s3:DeleteObjectTagging", true, false},
    {"s3:DeleteObjectVersionTagging", true, false},
    {"s3:GetObjectRetention", true, false},
    {"s3:PutObjectRetention", true, false},
    {"s3:GetObjectLegalHold", true, false},
    {"s3:PutObjectLegalHold", true, false},
    {"s3:ListBucket", false, false},
    {"s3:ListBucketVersions", false, false},
    {"s3:ListBucketMultipartUploads", false, false},
    {"s3:GetBucketAcl", false, false},
    {"s3:PutBucketAcl", false, false},
    {"s3:DeleteBucket", false, false},
    {"s3:GetBucketLocation", false, false},
    {"s3:GetBucketVersioning", false, false},
    {"s3:PutBucketVersioning", false, false},
    {"s3:GetLifecycleConfiguration", false, false},
    {"s3:PutLifecycleConfiguration", false, false},
    {"s3:GetBucketTagging", false, false},
    {"s3:PutBucketTagging", false, false},
    {"s3:GetBucketCORS", false, false},
    {"s3:PutBucketCORS", false, false},
    {"s3:GetBucketObjectLockConfiguration", false, false},
    {"s3:PutBucketObjectLockConfiguration", false, false},
    {"s3:GetBucketLogging", false, false},
    {"s3:PutBucketLogging", false, false},
    {"s3:GetEncryptionConfiguration", false, false},
    {"s3:PutEncryptionConfiguration", false, false},
    {"s3:GetBucketOwnershipControls", false, false},
    {"s3:PutBucketOwnershipControls", false, false},
    {"s3:GetBucketPolicy", false, true},
    {"s3:PutBucketPolicy", false, true},
    {"s3:DeleteBucketPolicy", false, true},
    {"s3:GetBucketPolicyStatus", false, true},
    {"s3:GetBucketPublicAccessBlock", false, true},
    {"s3:PutBucketPublicAccessBlock", false, true},
};

enum class KeyType { kString, kNumeric, kBool, kIp };

// The condition keys a request here carries (service.cc PolicyRequestOf fills them).
const std::map<std::string, KeyType>& ConditionKeys() {
  static const auto* keys = new std::map<std::string, KeyType>{
      {"aws:sourceip", KeyType::kIp},
      {"aws:securetransport", KeyType::kBool},
      {"aws:username", KeyType::kString},
      {"aws:userid", KeyType::kString},
      {"aws:useragent", KeyType::kString},
      {"aws:referer", KeyType::kString},
      {"s3:prefix", KeyType::kString},
      {"s3:delimiter", KeyType::kString},
      {"s3:max-keys", KeyType::kNumeric},
      {"s3:versionid", KeyType::kString},
      {"s3:x-amz-acl", KeyType::kString},
      {"s3:x-amz-server-side-encryption", KeyType::kString},
      {"s3:x-amz-content-sha256", KeyType::kString},
      {"s3:authtype", KeyType::kString},
      {"s3:signatureversion", KeyType::kString},
  };
  return *keys;
}

const std::map<std::string, KeyType>& Operators() {
  static const auto* ops = new std::map<std::string, KeyType>{
      {"StringEquals", KeyType::kString},
      {"StringNotEquals", KeyType::kString},
      {"StringEqualsIgnoreCase", KeyType::kString},
      {"StringNotEqualsIgnoreCase", KeyType::kString},
      {"StringLike", KeyType::kString},
      {"StringNotLike", KeyType::kString},
      {"NumericEquals", KeyType::kNumeric},
      {"NumericNotEquals", KeyType::kNumeric},
      {"NumericLessThan", KeyType::kNumeric},
      {"NumericLessThanEquals", KeyType::kNumeric},
      {"NumericGreaterThan", KeyType::kNumeric},
      {"NumericGreaterThanEquals", KeyType::kNumeric},
      {"Bool", KeyType::kBool},
      {"IpAddress", KeyType::kIp},
      {"NotIpAddress", KeyType::kIp},
  };
  return *ops;
}

bool Negated(const std::string& op) {
  return op == "StringNotEquals" || op == "StringNotEqualsIgnoreCase" || op == "StringNotLike" ||
         op == "NumericNotEquals" || op == "NotIpAddress";
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// '*' any run, '?' one character.
bool Glob(std::string_view pattern, std::string_view text, bool fold_case) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  auto eq = [&](char a, char b) {
    return fold_case ? std::tolower(static_cast<unsigned char>(a)) ==
                           std::tolower(static_cast<unsigned char>(b))
                     : a == b;
  };
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || eq(pattern[p], text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// An address or CIDR block as 16 bytes (IPv4 mapped into IPv6) and a prefix length.
struct Cidr {
  unsigned char addr[16] = {};
  int bits = 0;
};

bool ParseCidr(const std::string& text, Cidr* out) {
  std::string addr = text;
  int bits = -1;
  size_t slash = text.find('/');
  if (slash != std::string::npos) {
    addr = text.substr(0, slash);
    std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    bits = std::stoi(len);
  }
  in_addr v4;
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    if (bits > 32) return false;
    out->addr[10] = out->addr[11] = 0xff;
    std::memcpy(out->addr + 12, &v4, 4);
    out->bits = 96 + (bits < 0 ? 32 : bits);
    return true;
  }
  if (inet_pton(AF_INET6, addr.c_str(), out->addr) == 1) {
    if (bits > 128) return false;
    out->bits = bits < 0 ? 128 : bits;
    return true;
  }
  return false;
}

bool InCidr(const Cidr& block, const Cidr& ip) {
  for (int i = 0; i < block.bits; ++i) {
    int mask = 0x80 >> (i % 8);
    if ((block.addr[i / 8] & mask) != (ip.addr[i / 8] & mask)) return false;
  }
  return true;
}

bool ParseNumber(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// ${aws:username} and ${aws:userid} replaced by the caller; false when there is none.
bool Substitute(const std::string& text, const PolicyRequest& req, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find("${", i);
    if (open == std::string::npos) break;
    size_t close = text.find('}', open);
    out->append(text, i, open - i);
    // ValidateVariables let only ${aws:username} and ${aws:userid} in: both are the caller.
    if (req.caller.empty() || close == std::string::npos) return false;
    out->append(req.caller);
    i = close + 1;
  }
  out->append(text, std::min(i, text.size()), std::string::npos);
  return true;
}

Status ValidateVariables(const std::string& text) {
  size_t i = 0;
  while ((i = text.find("${", i)) != std::string::npos) {
    size_t close = text.find('}', i);
    std::string var = close == std::string::npos ? text.substr(i) : text.substr(i, close - i + 1);
    std::string name = Lower(var);
    if (name != "${aws:username}" && name != "${aws:userid}")
      return S3Error("MalformedPolicy", "Policy has an unsupported policy variable " + var);
    i = close;
  }
  return absl::OkStatus();
}

bool ValueMatches(const std::string& op, const std::string& want, const std::string& have) {
  if (op == "StringEquals" || op == "StringNotEquals") return want == have;
  if (op == "StringEqualsIgnoreCase" || op == "StringNotEqualsIgnoreCase")
    return strcasecmp(want.c_str(), have.c_str()) == 0;
  if (op == "StringLike" || op == "StringNotLike") return Glob(want, have, false);
  if (op == "Bool") return strcasecmp(want.c_str(), have.c_str()) == 0;
  if (op == "IpAddress" || op == "NotIpAddress") {
    Cidr block, ip;
    return ParseCidr(want, &block) && ParseCidr(have, &ip) && ip.bits == 128 && InCidr(block, ip);
  }
  double w = 0, h = 0;
  if (!ParseNumber(want, &w) || !ParseNumber(have, &h)) return false;
  if (op == "NumericEquals" || op == "NumericNotEquals") return h == w;
  if (op == "NumericLessThan") return h < w;
  if (op == "NumericLessThanEquals") return h <= w;
  if (op == "NumericGreaterThan") return h > w;
  return h >= w;  // NumericGreaterThanEquals
}

// AWS: several values of one key are alternatives (any matches); a negated operator holds
// when none matches, and also when the request lacks the key.
bool ConditionHolds(const PolicyCondition& c, const PolicyRequest& req, bool variables) {
  auto it = req.keys.find(c.key);
  if (c.op == "Null") return (it == req.keys.end()) == (Lower(c.values.front()) == "true");
  if (it == req.keys.end()) return c.if_exists || Negated(c.op);
  bool any = false;
  for (const auto& v : c.values) {
    std::string want = v;
    if (variables && c.op.rfind("String", 0) == 0 && !Substitute(v, req, &want)) continue;
    any = any || ValueMatches(c.op, want, it->second);
  }
  return Negated(c.op) ? !any : any;
}

bool StatementMatches(const PolicyStatement& st, const PolicyRequest& req) {
  if (!st.everyone && (req.caller.empty() ||
                       std::find(st.users.begin(), st.users.end(), req.caller) == st.users.end()))
    return false;
  if (!std::any_of(st.actions.begin(), st.actions.end(),
                   [&](const std::string& a) { return Glob(a, req.action, true); }))
    return false;
  bool resource = false;
  for (const auto& r : st.resources) {
    std::string pattern = r;
    if (st.variables && !Substitute(r, req, &pattern)) continue;
    if (Glob(pattern, req.resource, false)) resource = true;
  }
  if (!resource) return false;
  return std::all_of(st.conditions.begin(), st.conditions.end(), [&](const PolicyCondition& c) {
    return ConditionHolds(c, req, st.variables);
  });
}

std::vector<nlohmann::json> AsList(const nlohmann::json& v) {
  std::vector<nlohmann::json> out;
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e);
  } else {
    out.push_back(v);
  }
  return out;
}

Status Malformed(const std::string& why) { return S3Error("MalformedPolicy", why); }
Status NotDone(const std::string& why) {
  return S3Error("NotImplemented", "lightningstor does not enforce " + why);
}

// A principal name as an account: "NAME", "arn:aws:iam::NAME:root".
std::string AccountOf(const std::string& p) {
  const std::string arn = "arn:aws:iam::";
  if (p.rfind(arn, 0) == 0 && p.size() > arn.size() + 5 && p.compare(p.size() - 5, 5, ":root") == 0)
    return p.substr(arn.size(), p.size() - arn.size() - 5);
  return p.find(':') == std::string::npos ? p : "";
}

Status ParsePrincipal(const nlohmann::json& p,
                      const std::function<bool(const std::string&)>& user_exists,
                      PolicyStatement* st) {
  if (p.is_string()) {
    if (p != "*") return Malformed("Invalid principal in policy");
    st->everyone = true;
    return absl::OkStatus();
  }
  if (!p.is_object() || p.empty()) return Malformed("Invalid principal in policy");
  for (const auto& [type, names] : p.items()) {
    if (type != "AWS" && type != "CanonicalUser")
      return NotDone("principals of type " + type + " (lightningstor has accounts only)");
    for (const auto& n : AsList(names)) {
      if (!n.is_string()) return Malformed("Invalid principal in policy");
      std::string name = n.get<std::string>();
      if (type == "AWS" && name == "*") {
        st->everyone = true;
        continue;
      }
      std::string account = type == "AWS" ? AccountOf(name) : name;
      if (account.empty() || (user_exists && !user_exists(account)))
        return Malformed("Invalid principal in policy: " + name);
      st->users.push_back(account);
    }
  }
  return absl::OkStatus();
}

Status ParseActions(const nlohmann::json& actions, PolicyStatement* st, bool* object,
                    bool* bucket) {
  for (const auto& a : AsList(actions)) {
    if (!a.is_string()) return Malformed("Action must be a string");
    std::string name = a.get<std::string>();
    if (strncasecmp(name.c_str(), "s3:", 3) != 0 && name != "*")
      return Malformed("Policy has invalid action " + name);
    bool wildcard = name.find_first_of("*?") != std::string::npos;
    int matched = 0;
    for (const auto& info : kActions) {
      if (!Glob(name == "*" ? "s3:*" : name, info.name, true)) continue;
      // A wildcard never reaches the owner's own actions; naming one is refused below.
      if (info.owner_only && wildcard) continue;
      if (info.owner_only && st->allow)
        return NotDone("an Allow of " + name + ": it stays the bucket owner's");
      if (st->allow && st->everyone && !ReadAction(info.name))
        return NotDone("an Allow of " + std::string(info.name) +
                       " for Principal \"*\": anonymous callers only read here; name the "
                       "accounts, or Allow only s3:Get* / s3:List* actions to \"*\"");
      ++matched;
      (info.object ? *object : *bucket) = true;
    }
    if (matched == 0) {
      if (wildcard) return Malformed("Policy has invalid action " + name);
      return NotDone("the action " + name + " (no such operation in lightningstor)");
    }
    st->actions.push_back(Lower(name == "*" ? "s3:*" : name));
  }
  return absl::OkStatus();
}

Status ParseResources(const nlohmann::json& resources, const std::string& bucket,
                      PolicyStatement* st, bool* object, bool* whole) {
  const std::string arn = "arn:aws:s3:::" + bucket;
  for (const auto& res : AsList(resources)) {
    if (!res.is_string()) return Malformed("Resource must be a string");
    std::string r = res.get<std::string>();
    if (r == arn) {
      *whole = true;
    } else if (r.rfind(arn + "/", 0) == 0) {
      *object = true;
    } else {
      return Malformed("Policy has invalid resource " + r);
    }
    if (st->variables) PHOTON_RETURN_IF_ERROR(ValidateVariables(r));
    st->resources.push_back(r);
  }
  return absl::OkStatus();
}

Status ParseConditionValues(const std::string& op, KeyType type, const nlohmann::json& values,
                            PolicyCondition* c, bool variables) {
  for (const auto& v : AsList(values)) {
    std::string text;
    if (v.is_string()) {
      text = v.get<std::string>();
    } else if (v.is_boolean()) {
      text = v.get<bool>() ? "true" : "false";
    } else if (v.is_number()) {
      text = v.dump();
    } else {
      return Malformed("Invalid Condition value for " + op + " " + c->key);
    }
    double n = 0;
    Cidr cidr;
    bool ok = type == KeyType::kString    ? true
              : type == KeyType::kNumeric ? ParseNumber(text, &n)
              : type == KeyType::kIp      ? ParseCidr(text, &cidr)
                                          : (Lower(text) == "true" || Lower(text) == "false");
    if (!ok) return Malformed("Invalid Condition value " + text + " for " + op + " " + c->key);
    if (variables && type == KeyType::kString) PHOTON_RETURN_IF_ERROR(ValidateVariables(text));
    c->values.push_back(text);
  }
  if (c->values.empty()) return Malformed("Condition " + op + " " + c->key + " has no value");
  return absl::OkStatus();
}

Status ParseConditions(const nlohmann::json& cond, PolicyStatement* st) {
  if (!cond.is_object()) return Malformed("Condition must be an object");
  for (const auto& [op_name, block] : cond.items()) {
    std::string op = op_name;
    bool if_exists = op.size() > 8 && op.compare(op.size() - 8, 8, "IfExists") == 0;
    if (if_exists) op.resize(op.size() - 8);
    auto known = Operators().find(op);
    if ((known == Operators().end() && op != "Null") || (if_exists && op == "Null"))
      return Malformed("Policy has an unsupported condition operator " + op_name);
    if (!block.is_object() || block.empty())
      return Malformed("Condition " + op_name + " must map keys to values");
    for (const auto& [key_name, values] : block.items()) {
      PolicyCondition c{op, if_exists, Lower(key_name), {}};
      auto key = ConditionKeys().find(c.key);
      if (key == ConditionKeys().end())
        return Malformed("Policy has an unsupported condition key " + key_name);
      if (op == "Null") {
        PHOTON_RETURN_IF_ERROR(ParseConditionValues(op, KeyType::kBool, values, &c, false));
      } else {
        if (known->second != key->second)
          return Malformed("Condition operator " + op_name + " does not apply to " + key_name);
        PHOTON_RETURN_IF_ERROR(ParseConditionValues(op, key->second, values, &c, st->variables));
      }
      st->conditions.push_back(std::move(c));
    }
  }
  return absl::OkStatus();
}

Status ParseStatement(const nlohmann::json& j, const std::string& bucket, bool variables,
                      const std::function<bool(const std::string&)>& user_exists,
                      PolicyStatement* st) {
  if (!j.is_object()) return Malformed("Statement must be an object");
  // json::value() throws when the key holds another type; a policy is client input, so the
  // type is checked here and a wrong one is the client's MalformedPolicy, not an exception.
  if (!j.contains("Effect") || !j["Effect"].is_string() ||
      (j["Effect"] != "Allow" && j["Effect"] != "Deny")) {
    return Malformed("Statement Effect must be \"Allow\" or \"Deny\"");
  }
  for (const auto& [name, value] : j.items()) {
    if (name == "NotPrincipal" || name == "NotAction" || name == "NotResource")
      return NotDone("a statement with " + name);
    if (name != "Sid" && name != "Effect" && name != "Principal" && name != "Action" &&
        name != "Resource" && name != "Condition")
      return Malformed("Policy has an invalid element " + name);
  }
  if (!j.contains("Principal") || !j.contains("Action") || !j.contains("Resource"))
    return Malformed("Statements need a Principal, an Action and a Resource");
  st->allow = j["Effect"] == "Allow";
  st->variables = variables;
  PHOTON_RETURN_IF_ERROR(ParsePrincipal(j["Principal"], user_exists, st));
  bool object_actions = false, bucket_actions = false, objects = false, whole = false;
  PHOTON_RETURN_IF_ERROR(ParseActions(j["Action"], st, &object_actions, &bucket_actions));
  PHOTON_RETURN_IF_ERROR(ParseResources(j["Resource"], bucket, st, &objects, &whole));
  if (j.contains("Condition")) PHOTON_RETURN_IF_ERROR(ParseConditions(j["Condition"], st));
  // Some action must apply to some resource, as S3 checks.
  if (!((object_actions && objects) || (bucket_actions && whole)))
    return Malformed("Action does not apply to any resource(s) in statement");
  return absl::OkStatus();
}

}  // namespace

bool ReadAction(const std::string& action) {
  return strncasecmp(action.c_str(), "s3:Get", 6) == 0 ||
         strncasecmp(action.c_str(), "s3:List", 7) == 0;
}

bool OwnerOnlyAction(const std::string& action) {
  for (const auto& info : kActions)
    if (info.owner_only && strcasecmp(info.name, action.c_str()) == 0) return true;
  return false;
}

PolicyDecision BucketPolicy::Evaluate(const PolicyRequest& req) const {
  bool allowed = false;
  for (const auto& st : statements) {
    if (!StatementMatches(st, req)) continue;
    if (!st.allow) return PolicyDecision::kDeny;
    allowed = true;
  }
  return allowed ? PolicyDecision::kAllow : PolicyDecision::kNone;
}

bool BucketPolicy::IsPublic() const {
  for (const auto& st : statements) {
    if (!st.allow || !st.everyone) continue;
    bool narrowed =
        std::any_of(st.conditions.begin(), st.conditions.end(), [](const PolicyCondition& c) {
          if (c.if_exists) return false;
          if (c.key == "aws:sourceip" && c.op == "IpAddress") {
            // S3 counts blocks of /8 and narrower (IPv6: /32) as fixed addresses.
            return std::all_of(c.values.begin(), c.values.end(), [](const std::string& v) {
              Cidr b;
              return ParseCidr(v, &b) && b.bits >= (v.find(':') == std::string::npos ? 104 : 32);
            });
          }
          if ((c.key == "aws:username" || c.key == "aws:userid") && c.op == "StringEquals") {
            return std::none_of(c.values.begin(), c.values.end(), [](const std::string& v) {
              return v.find_first_of("*?$") != std::string::npos;
            });
          }
          return false;
        });
    if (!narrowed) return true;
  }
  return false;
}

StatusOr<BucketPolicy> ParseBucketPolicy(
    const std::string& policy_json, const std::string& bucket,
    const std::function<bool(const std::string&)>& user_exists) {
  auto doc = nlohmann::json::parse(policy_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("Statement")) {
    return Malformed("Policies must be valid JSON with a Statement");
  }
  for (const auto& [name, value] : doc.items()) {
    if (name != "Version" && name != "Id" && name != "Statement")
      return Malformed("Policy has an invalid element " + name);
  }
  bool variables = false;
  if (doc.contains("Version")) {
    if (!doc["Version"].is_string() ||
        (doc["Version"] != "2012-10-17" && doc["Version"] != "2008-10-17"))
      return Malformed("Policy has an invalid Version");
    variables = doc["Version"] == "2012-10-17";
  }
  BucketPolicy policy;
  auto statements = AsList(doc["Statement"]);
  if (statements.empty()) return Malformed("Policy has no Statement");
  for (const auto& j : statements) {
    PolicyStatement st;
    PHOTON_RETURN_IF_ERROR(ParseStatement(j, bucket, variables, user_exists, &st));
    policy.statements.push_back(std::move(st));
  }
  return policy;
}

std::string PolicyActionOf(const std::string& op, bool v) {
  static const auto* table = new std::map<std::string, std::pair<const char*, const char*>>{
      {"ListObjects", {"s3:ListBucket", nullptr}},
      {"ListObjectsV2", {"s3:ListBucket", nullptr}},
      {"HeadBucket", {"s3:ListBucket", nullptr}},
      {"ListObjectVersions", {"s3:ListBucketVersions", nullptr}},
      {"ListMultipartUploads", {"s3:ListBucketMultipartUploads", nullptr}},
      {"GetObject", {"s3:GetObject", "s3:GetObjectVersion"}},
      {"HeadObject", {"s3:GetObject", "s3:GetObjectVersion"}},
      {"GetObjectAttributes", {"s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"}},
      {"PutObject", {"s3:PutObject", nullptr}},
      {"CopyObject", {"s3:PutObject", nullptr}},
      {"CreateMultipartUpload", {"s3:PutObject", nullptr}},
      {"UploadPart", {"s3:PutObject", nullptr}},
      {"UploadPartCopy", {"s3:PutObject", nullptr}},
      {"CompleteMultipartUpload", {"s3:PutObject", nullptr}},
      {"DeleteObject", {"s3:DeleteObject", "s3:DeleteObjectVersion"}},
      {"DeleteObjects", {"s3:DeleteObject", "s3:DeleteObjectVersion"}},
      {"AbortMultipartUpload", {"s3:AbortMultipartUpload", nullptr}},
      {"ListParts", {"s3:ListMultipartUploadParts", nullptr}},
      {"GetObjectAcl", {"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}},
      {"PutObjectAcl", {"s3:PutObjectAcl", "s3:PutObjectVersionAcl"}},
      {"GetObjectTagging", {"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}},
      {"PutObjectTagging", {"s3:PutObjectTagging", "s3:PutObjectVersionTagging"}},
      {"DeleteObjectTagging", {"s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"}},
      {"GetObjectRetention", {"s3:GetObjectRetention", nullptr}},
      {"PutObjectRetention", {"s3:PutObjectRetention", nullptr}},
      {"GetObjectLegalHold", {"s3:GetObjectLegalHold", nullptr}},
      {"PutObjectLegalHold", {"s3:PutObjectLegalHold", nullptr}},
      {"GetBucketAcl", {"s3:GetBucketAcl", nullptr}},
      {"PutBucketAcl", {"s3:PutBucketAcl", nullptr}},
      {"DeleteBucket", {"s3:DeleteBucket", nullptr}},
      {"GetBucketLocation", {"s3:GetBucketLocation", nullptr}},
      {"GetBucketVersioning", {"s3:GetBucketVersioning", nullptr}},
      {"PutBucketVersioning", {"s3:PutBucketVersioning", nullptr}},
      {"GetBucketLifecycle", {"s3:GetLifecycleConfiguration", nullptr}},
      {"PutBucketLifecycle", {"s3:PutLifecycleConfiguration", nullptr}},
      {"DeleteBucketLifecycle", {"s3:PutLifecycleConfiguration", nullptr}},
      {"GetBucketTagging", {"s3:GetBucketTagging", nullptr}},
      {"PutBucketTagging", {"s3:PutBucketTagging", nullptr}},
      {"DeleteBucketTagging", {"s3:PutBucketTagging", nullptr}},
      {"GetBucketCors", {"s3:GetBucketCORS", nullptr}},
      {"PutBucketCors", {"s3:PutBucketCORS", nullptr}},
      {"DeleteBucketCors", {"s3:PutBucketCORS", nullptr}},
      {"GetObjectLockConfiguration", {"s3:GetBucketObjectLockConfiguration", nullptr}},
      {"PutObjectLockConfiguration", {"s3:PutBucketObjectLockConfiguration", nullptr}},
      {"GetBucketLogging", {"s3:GetBucketLogging", nullptr}},
      {"PutBucketLogging", {"s3:PutBucketLogging", nullptr}},
      {"GetBucketEncryption", {"s3:GetEncryptionConfiguration", nullptr}},
      {"PutBucketEncryption", {"s3:PutEncryptionConfiguration", nullptr}},
      {"DeleteBucketEncryption", {"s3:PutEncryptionConfiguration", nullptr}},
      {"GetBucketOwnershipControls", {"s3:GetBucketOwnershipControls", nullptr}},
      {"PutBucketOwnershipControls", {"s3:PutBucketOwnershipControls", nullptr}},
      {"DeleteBucketOwnershipControls", {"s3:PutBucketOwnershipControls", nullptr}},
      {"GetBucketPolicy", {"s3:GetBucketPolicy", nullptr}},
      {"PutBucketPolicy", {"s3:PutBucketPolicy", nullptr}},
      {"DeleteBucketPolicy", {"s3:DeleteBucketPolicy", nullptr}},
      {"GetBucketPolicyStatus", {"s3:GetBucketPolicyStatus", nullptr}},
      {"GetPublicAccessBlock", {"s3:GetBucketPublicAccessBlock", nullptr}},
      {"PutPublicAccessBlock", {"s3:PutBucketPublicAccessBlock", nullptr}},
      {"DeletePublicAccessBlock", {"s3:PutBucketPublicAccessBlock", nullptr}},
  };
  auto it = table->find(op);
  if (it == table->end()) return "";
  return v && it->second.second ? it->second.second : it->second.first;
}

}  // namespace photon::lightningstor
