#include "lightningstor/object_attrs.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "lightningstor/http/message.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

constexpr const char* kGroupPrefix = "http://acs.amazonaws.com/groups/global/";

struct PermissionName {
  unsigned bits;
  const char* name;
};
constexpr PermissionName kPermissionNames[] = {{kPermRead, "READ"},
                                               {kPermWrite, "WRITE"},
                                               {kPermReadAcp, "READ_ACP"},
                                               {kPermWriteAcp, "WRITE_ACP"},
                                               {kPermFullControl, "FULL_CONTROL"}};

std::optional<unsigned> PermissionBits(const std::string& name) {
  for (const auto& p : kPermissionNames)
    if (name == p.name) return p.bits;
  return std::nullopt;
}

const char* PermissionText(unsigned bits) {
  for (const auto& p : kPermissionNames)
    if (bits == p.bits) return p.name;
  return "READ";
}

Grant UserGrant(const std::string& id, unsigned permission) { return {false, id, permission}; }
Grant GroupGrant(const std::string& group, unsigned permission) {
  return {true, group, permission};
}

// Grants lightningstor can enforce. Anonymous callers only ever read (they are refused every
// write before any ACL is looked at), so a grant letting AllUsers write is refused rather than
// stored and not honoured. On objects S3 gives WRITE no meaning, so it is kept as S3 keeps it.
Status CheckGrant(const Grant& g, bool bucket, const UserExists& user_exists) {
  if (!g.group) {
    if (!user_exists(g.grantee)) return S3Error("InvalidArgument", "Invalid id: " + g.grantee);
    return absl::OkStatus();
  }
  if (g.grantee == "AuthenticatedUsers") return absl::OkStatus();
  if (g.grantee != "AllUsers") {
    if (g.grantee == "LogDelivery")
      return S3Error("NotImplemented", "lightningstor has no LogDelivery group");
    return S3Error("InvalidArgument", "Invalid group uri");
  }
  unsigned allowed = kPermRead | kPermReadAcp | (bucket ? 0u : unsigned{kPermWrite});
  if (g.permission & ~allowed) {
    return S3Error("NotImplemented", std::string("lightningstor does not let anonymous callers ") +
                                         PermissionText(g.permission) + " a " +
                                         (bucket ? "bucket" : "object"));
  }
  return absl::OkStatus();
}

StatusOr<Grant> GranteeFromXml(const XmlNode* grantee, unsigned permission) {
  if (grantee->Child("ID")) return UserGrant(grantee->ChildText("ID"), permission);
  if (grantee->Child("URI")) {
    std::string uri = grantee->ChildText("URI");
    if (uri.rfind(kGroupPrefix, 0) == 0)
      return GroupGrant(uri.substr(strlen(kGroupPrefix)), permission);
    if (uri == "http://acs.amazonaws.com/groups/s3/LogDelivery")
      return GroupGrant("LogDelivery", permission);
    return S3Error("InvalidArgument", "Invalid group uri");
  }
  if (grantee->Child("EmailAddress"))
    return S3Error("InvalidArgument", "Invalid id: lightningstor has no users by email address");
  return S3Error("MalformedACLError", "A Grantee needs an ID, a URI or an EmailAddress");
}

StatusOr<Acl> AclFromXml(const std::string& body, const std::string& owner) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  const XmlNode* list = doc->Child("AccessControlList");
  if (doc->name != "AccessControlPolicy" || !list)
    return S3Error("MalformedACLError",
                   "The XML you provided was not well-formed or did not validate against our "
                   "published schema");
  const XmlNode* owner_node = doc->Child("Owner");
  if (owner_node && owner_node->Child("ID") && owner_node->ChildText("ID") != owner)
    return S3Error("InvalidArgument", "Invalid id: the owner cannot be changed");
  Acl acl{owner, {}};
  for (const XmlNode* grant : list->Children("Grant")) {
    const XmlNode* grantee = grant->Child("Grantee");
    auto permission = PermissionBits(grant->ChildText("Permission"));
    if (!grantee || !permission)
      return S3Error("MalformedACLError", "A Grant needs a Grantee and a valid Permission");
    PHOTON_ASSIGN_OR_RETURN(Grant g, GranteeFromXml(grantee, *permission));
    acl.grants.push_back(std::move(g));
  }
  return acl;
}

// One x-amz-grant-* header: 'id="a", uri="http://...", emailAddress="x"'.
Status GrantsFromHeader(const std::string& value, unsigned permission, std::vector<Grant>* out) {
  size_t pos = 0;
  while (pos < value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string::npos) comma = value.size();
    std::string item = value.substr(pos, comma - pos);
    pos = comma + 1;
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) return S3Error("InvalidArgument", "Invalid grant: " + item);
    std::string type = item.substr(0, eq), id = item.substr(eq + 1);
    if (id.size() >= 2 && id.front() == '"' && id.back() == '"') id = id.substr(1, id.size() - 2);
    if (type == "id") {
      out->push_back(UserGrant(id, permission));
    } else if (type == "uri" && id.rfind(kGroupPrefix, 0) == 0) {
      out->push_back(GroupGrant(id.substr(strlen(kGroupPrefix)), permission));
    } else if (type == "uri" && id == "http://acs.amazonaws.com/groups/s3/LogDelivery") {
      out->push_back(GroupGrant("LogDelivery", permission));
    } else if (type == "emailAddress") {
      return S3Error("InvalidArgument", "Invalid id: lightningstor has no users by email address");
    } else {
      return S3Error("InvalidArgument", "Invalid grant: " + item);
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsInternalHeader(const std::string& name) { return name.rfind("x-photon-", 0) == 0; }

Status CheckTags(const TagSet& tags, size_t max_tags) {
  if (tags.size() > max_tags) {
    return S3Error("InvalidTag", "Object tags cannot be greater than " + std::to_string(max_tags));
  }
  std::set<std::string> keys;
  for (const auto& [k, v] : tags) {
    if (k.empty() || k.size() > 128 || v.size() > 256) {
      return S3Error("InvalidTag",
                     "Tag keys are 1 to 128 characters and values at most 256 characters");
    }
    if (!keys.insert(k).second)
      return S3Error("InvalidTag", "Cannot provide multiple Tags with the same key");
  }
  return absl::OkStatus();
}

StatusOr<TagSet> ParseTagQuery(const std::string& query) {
  TagSet tags;
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string pair = query.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    std::string key = http::PercentDecode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string::npos ? "" : http::PercentDecode(pair.substr(eq + 1), true);
    if (key.empty())
      return S3Error("InvalidArgument",
                     "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL "
                     "query parameters without tag name duplicates.");
    tags.emplace_back(std::move(key), std::move(value));
    pos = amp + 1;
  }
  return tags;
}

std::string EncodeTagQuery(const TagSet& tags) {
  std::string out;
  for (const auto& [k, v] : tags) {
    if (!out.empty()) out += '&';
    out += sigv4::UriEncode(k, true) + "=" + sigv4::UriEncode(v, true);
  }
  return out;
}

StatusOr<TagSet> ParseTagSet(const XmlNode* set) {
  if (!set) return S3Error("MalformedXML", "want <Tagging><TagSet>...</TagSet></Tagging>");
  TagSet tags;
  for (const auto& child : set->children) {
    if (child->name != "Tag" || !child->Child("Key"))
      return S3Error("MalformedXML", "a TagSet holds Tag elements with a Key and a Value");
    tags.emplace_back(child->ChildText("Key"), child->ChildText("Value"));
  }
  return tags;
}

std::string TaggingXml(const TagSet& tags) {
  XmlWriter w;
  w.Open("Tagging", kXmlns);
  w.Open("TagSet");
  for (const auto& [k, v] : tags) {
    w.Open("Tag");
    w.Element("Key", k);
    w.Element("Value", v);
    w.Close("Tag");
  }
  w.Close("TagSet");
  w.Close("Tagging");
  return w.Take();
}

StatusOr<Acl> CannedAcl(const std::string& name, const std::string& owner,
                        const std::string& bucket_owner, bool bucket) {
  Acl acl{owner, {UserGrant(owner, kPermFullControl)}};
  if (name == "private") return acl;
  if (name == "public-read" || name == "public-read-write") {
    if (name == "public-read-write" && bucket) {
      return S3Error("NotImplemented",
                     "lightningstor does not let anonymous callers write a bucket "
                     "(public-read-write)");
    }
    acl.grants.push_back(GroupGrant("AllUsers", kPermRead));
    if (name == "public-read-write") acl.grants.push_back(GroupGrant("AllUsers", kPermWrite));
    return acl;
  }
  if (name == "authenticated-read") {
    acl.grants.push_back(GroupGrant("AuthenticatedUsers", kPermRead));
    return acl;
  }
  if (name == "bucket-owner-read" || name == "bucket-owner-full-control") {
    // As S3: on a bucket (whose owner is the bucket owner) these are the owner's grant alone.
    unsigned p = name == "bucket-owner-read" ? kPermRead : kPermFullControl;
    if (!bucket && bucket_owner != owner) acl.grants.push_back(UserGrant(bucket_owner, p));
    return acl;
  }
  if (name == "aws-exec-read" || name == "log-delivery-write") {
    return S3Error("NotImplemented",
                   "The canned ACL " + name + " is not supported by lightningstor");
  }
  return S3Error("InvalidArgument", "Invalid canned ACL: " + name);
}

Status CheckCannedAcl(const std::string& acl, bool bucket) {
  return CannedAcl(acl, kDefaultOwner, kDefaultOwner, bucket).status();
}

unsigned Permissions(const Acl& acl, const std::string& caller) {
  unsigned bits = 0;
  if (!caller.empty() && caller == acl.owner) bits |= kPermReadAcp | kPermWriteAcp;
  for (const Grant& g : acl.grants) {
    bool applies = g.group ? (g.grantee == "AllUsers" ||
                              (g.grantee == "AuthenticatedUsers" && !caller.empty()))
                           : (!caller.empty() && g.grantee == caller);
    if (applies) bits |= g.permission;
  }
  return bits;
}

std::string EncodeGrants(const std::vector<Grant>& grants) {
  std::string out;
  for (const Grant& g : grants) {
    if (!out.empty()) out += ',';
    out += (g.group ? "g:" : "u:") + g.grantee + "=" + std::to_string(g.permission);
  }
  return out;
}

StatusOr<std::vector<Grant>> DecodeGrants(const std::string& text) {
  std::vector<Grant> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    pos = comma + 1;
    size_t eq = item.rfind('=');
    if (item.size() < 4 || item[1] != ':' || (item[0] != 'u' && item[0] != 'g') ||
        eq == std::string::npos || eq < 2)
      return absl::DataLossError("stored ACL grant is corrupt: " + item);
    int bits = std::atoi(item.c_str() + eq + 1);
    if (bits < 1 || bits > 15) return absl::DataLossError("stored ACL grant is corrupt: " + item);
    out.push_back({item[0] == 'g', item.substr(2, eq - 2), static_cast<unsigned>(bits)});
  }
  return out;
}

bool TakenWithAclsDisabled(const AclRequest& req, const Acl& acl) {
  if (!req.canned.empty()) return req.canned == "bucket-owner-full-control";
  return IsOwnerOnlyAcl(acl);
}

bool IsOwnerOnlyAcl(const Acl& acl) {
  if (acl.grants.empty()) return false;
  for (const auto& g : acl.grants)
    if (!(g == UserGrant(acl.owner, kPermFullControl))) return false;
  return true;
}

Acl ObjectAcl(const std::map<std::string, std::string>& headers, const std::string& bucket_owner,
              const std::string& ownership) {
  if (ownership == "BucketOwnerEnforced")
    return Acl{bucket_owner, {UserGrant(bucket_owner, kPermFullControl)}};
  auto owner_it = headers.find(kOwnerHeader);
  std::string owner = owner_it == headers.end() ? bucket_owner : owner_it->second;
  Acl fallback{owner, {UserGrant(owner, kPermFullControl)}};
  auto it = headers.find(kAclHeader);
  if (it == headers.end()) return fallback;
  // Objects stored before grants were kept hold a canned ACL name. A stored value that cannot
  // be read gives the owner alone access (never more than was granted).
  if (it->second.find(':') == std::string::npos) {
    auto canned = CannedAcl(it->second, owner, bucket_owner, false);
    return canned.ok() ? *canned : fallback;
  }
  auto grants = DecodeGrants(it->second);
  if (!grants.ok()) return fallback;
  return Acl{owner, std::move(*grants)};
}

void StoreObjectAcl(const Acl& acl, std::map<std::string, std::string>* headers) {
  (*headers)[kOwnerHeader] = acl.owner;
  if (acl.grants.size() == 1 && acl.grants[0] == UserGrant(acl.owner, kPermFullControl)) {
    headers->erase(kAclHeader);
  } else {
    (*headers)[kAclHeader] = EncodeGrants(acl.grants);
  }
}

Acl BucketAcl(const std::string& owner, const std::string& grants, bool public_read) {
  Acl acl{owner, {UserGrant(owner, kPermFullControl)}};
  if (!grants.empty()) {
    auto decoded = DecodeGrants(grants);
    if (decoded.ok()) acl.grants = std::move(*decoded);
    return acl;
  }
  if (public_read) acl.grants.push_back(GroupGrant("AllUsers", kPermRead));
  return acl;
}

bool AllUsersRead(const Acl& acl) {
  for (const Grant& g : acl.grants)
    if (g.group && g.grantee == "AllUsers" && (g.permission & kPermRead)) return true;
  return false;
}

bool IsPublicAcl(const Acl& acl) {
  return std::any_of(acl.grants.begin(), acl.grants.end(), [](const Grant& g) { return g.group; });
}

Acl WithoutPublicGrants(Acl acl) {
  std::erase_if(acl.grants, [](const Grant& g) { return g.group; });
  return acl;
}

std::string AclXml(const Acl& acl) {
  XmlWriter w;
  w.Open("AccessControlPolicy", kXmlns);
  w.Open("Owner");
  w.Element("ID", acl.owner);
  w.Element("DisplayName", acl.owner);
  w.Close("Owner");
  w.Open("AccessControlList");
  std::string body = w.Take();
  const std::string xsi =
      "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ";
  for (const Grant& g : acl.grants) {
    if (g.group) {
      std::string uri = g.grantee == "LogDelivery"
                            ? "http://acs.amazonaws.com/groups/s3/LogDelivery"
                            : std::string(kGroupPrefix) + g.grantee;
      body += xsi + "xsi:type=\"Group\"><URI>" + XmlEscape(uri) + "</URI></Grantee>";
    } else {
      body += xsi + "xsi:type=\"CanonicalUser\"><ID>" + XmlEscape(g.grantee) +
              "</ID><DisplayName>" + XmlEscape(g.grantee) + "</DisplayName></Grantee>";
    }
    body += std::string("<Permission>") + PermissionText(g.permission) + "</Permission></Grant>";
  }
  body += "</AccessControlList></AccessControlPolicy>";
  return body;
}

AclRequest AclRequestOf(const http::Request& req, std::string body) {
  AclRequest out;
  out.canned = req.Header("x-amz-acl");
  out.body = std::move(body);
  for (const auto& [name, value] : req.headers) {
    if (name.rfind("x-amz-grant-", 0) != 0) continue;
    std::string permission = name.substr(12);
    for (auto& c : permission) c = c == '-' ? '_' : static_cast<char>(toupper(c));
    out.grant_headers.emplace_back(permission, value);
  }
  return out;
}

StatusOr<std::optional<Acl>> AclFromRequest(const AclRequest& req, const std::string& owner,
                                            const std::string& bucket_owner, bool bucket,
                                            const UserExists& user_exists) {
  int forms = !req.canned.empty() + !req.grant_headers.empty() + !req.body.empty();
  if (forms > 1) {
    return S3Error(req.body.empty() ? "InvalidRequest" : "UnexpectedContent",
                   "Specify one of x-amz-acl, x-amz-grant-* headers or an ACL document");
  }
  if (forms == 0) return std::optional<Acl>();
  Acl acl;
  if (!req.canned.empty()) {
    PHOTON_ASSIGN_OR_RETURN(acl, CannedAcl(req.canned, owner, bucket_owner, bucket));
    return std::optional<Acl>(std::move(acl));
  }
  if (!req.body.empty()) {
    PHOTON_ASSIGN_OR_RETURN(acl, AclFromXml(req.body, owner));
  } else {
    acl.owner = owner;
    for (const auto& [name, value] : req.grant_headers) {
      auto bits = PermissionBits(name);
      if (!bits) return S3Error("InvalidArgument", "Unknown grant header");
      PHOTON_RETURN_IF_ERROR(GrantsFromHeader(value, *bits, &acl.grants));
    }
  }
  for (const Grant& g : acl.grants) PHOTON_RETURN_IF_ERROR(CheckGrant(g, bucket, user_exists));
  return std::optional<Acl>(std::move(acl));
}

ObjectLock LockOf(const std::map<std::string, std::string>& headers) {
  ObjectLock lock;
  auto mode = headers.find(kLockModeHeader);
  auto until = headers.find(kLockUntilHeader);
  if (mode != headers.end() && until != headers.end()) {
    lock.mode = mode->second;
    lock.until_ms = std::atoll(until->second.c_str());
  }
  auto hold = headers.find(kLegalHoldHeader);
  lock.legal_hold = hold != headers.end() && hold->second == "ON";
  return lock;
}

void StoreLock(const ObjectLock& lock, std::map<std::string, std::string>* headers) {
  headers->erase(kLockModeHeader);
  headers->erase(kLockUntilHeader);
  headers->erase(kLegalHoldHeader);
  if (!lock.mode.empty()) {
    (*headers)[kLockModeHeader] = lock.mode;
    (*headers)[kLockUntilHeader] = std::to_string(lock.until_ms);
  }
  if (lock.legal_hold) (*headers)[kLegalHoldHeader] = "ON";
}

Status CheckDeletable(const std::map<std::string, std::string>& headers, int64_t now_ms,
                      bool bypass_governance) {
  ObjectLock lock = LockOf(headers);
  if (lock.legal_hold)
    return S3Error("AccessDenied", "Access Denied because object protected by object lock.");
  if (!lock.mode.empty() && lock.until_ms > now_ms &&
      (lock.mode == "COMPLIANCE" || !bypass_governance)) {
    return S3Error("AccessDenied", "Access Denied because object protected by object lock.");
  }
  return absl::OkStatus();
}

StatusOr<std::string> ParseLockConfiguration(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "ObjectLockConfiguration" || doc->ChildText("ObjectLockEnabled") != "Enabled")
    return S3Error("MalformedXML", "want ObjectLockConfiguration with ObjectLockEnabled Enabled");
  const XmlNode* rule = doc->Child("Rule");
  if (!rule) return std::string("on");
  const XmlNode* def = rule->Child("DefaultRetention");
  if (!def) return S3Error("MalformedXML", "a Rule holds a DefaultRetention");
  std::string mode = def->ChildText("Mode");
  if (mode != "GOVERNANCE" && mode != "COMPLIANCE")
    return S3Error("MalformedXML", "Mode is GOVERNANCE or COMPLIANCE");
  bool has_days = def->Child("Days") != nullptr, has_years = def->Child("Years") != nullptr;
  if (has_days == has_years)
    return S3Error("MalformedXML", "DefaultRetention has exactly one of Days and Years");
  std::string text = def->ChildText(has_days ? "Days" : "Years");
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != std::string::npos || std::atoi(text.c_str()) < 1)
    return S3Error("InvalidArgument", "Default retention period must be a positive integer value");
  int days = std::atoi(text.c_str()) * (has_days ? 1 : 365);
  return "on:" + mode + ":" + std::to_string(days);
}

std::pair<std::string, int> DefaultRetention(const std::string& config) {
  size_t a = config.find(':');
  if (a == std::string::npos) return {"", 0};
  size_t b = config.find(':', a + 1);
  if (b == std::string::npos) return {"", 0};
  return {config.substr(a + 1, b - a - 1), std::atoi(config.c_str() + b + 1)};
}

std::string LockConfigurationXml(const std::string& config) {
  XmlWriter w;
  w.Open("ObjectLockConfiguration", kXmlns);
  w.Element("ObjectLockEnabled", "Enabled");
  auto [mode, days] = DefaultRetention(config);
  if (days > 0) {
    w.Open("Rule");
    w.Open("DefaultRetention");
    w.Element("Mode", mode);
    w.Element("Days", std::to_string(days));
    w.Close("DefaultRetention");
    w.Close("Rule");
  }
  w.Close("ObjectLockConfiguration");
  return w.Take();
}

StatusOr<std::string> CannedAclOf(const std::string& body, const std::string& owner_id,
                                  bool bucket) {
  PHOTON_ASSIGN_OR_RETURN(Acl acl, AclFromXml(body, owner_id));
  for (const char* name : {"private", "public-read", "public-read-write", "authenticated-read"}) {
    auto canned = CannedAcl(name, owner_id, owner_id, bucket);
    if (canned.ok() && canned->grants == acl.grants) return std::string(name);
  }
  return S3Error("NotImplemented", "the grants are not those of a canned ACL");
}

}  // namespace photon::lightningstor
