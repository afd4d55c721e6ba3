#include "lightningstor/object_attrs.h"

#include <set>

#include "lightningstor/http/message.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"
#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr const char* kAllUsers = "http://acs.amazonaws.com/groups/global/AllUsers";
constexpr const char* kAuthUsers = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

// Group grants (URI, permission) each canned ACL adds to the owner's FULL_CONTROL.
using Grants = std::set<std::pair<std::string, std::string>>;
Grants GroupGrants(const std::string& acl) {
  if (acl == "public-read") return {{kAllUsers, "READ"}};
  if (acl == "public-read-write") return {{kAllUsers, "READ"}, {kAllUsers, "WRITE"}};
  if (acl == "authenticated-read") return {{kAuthUsers, "READ"}};
  return {};
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

Status CheckCannedAcl(const std::string& acl, bool bucket) {
  static const std::set<std::string> kObject = {"private",           "public-read",
                                                "public-read-write", "authenticated-read",
                                                "bucket-owner-read", "bucket-owner-full-control"};
  static const std::set<std::string> kBucket = {"private", "public-read"};
  if ((bucket ? kBucket : kObject).count(acl)) return absl::OkStatus();
  if (acl == "aws-exec-read" || acl == "log-delivery-write" || acl == "public-read-write" ||
      acl == "authenticated-read" || acl == "bucket-owner-read" ||
      acl == "bucket-owner-full-control") {
    return S3Error("NotImplemented", "The canned ACL " + acl + " is not supported on " +
                                         (bucket ? "buckets" : "objects") + " by lightningstor");
  }
  return S3Error("InvalidArgument", "Invalid canned ACL: " + acl);
}

bool AclIsPublic(const std::string& acl) {
  return acl == "public-read" || acl == "public-read-write";
}

std::string AclXml(const std::string& acl, const std::string& owner_id) {
  XmlWriter w;
  w.Open("AccessControlPolicy", kXmlns);
  w.Open("Owner");
  w.Element("ID", owner_id);
  w.Element("DisplayName", owner_id);
  w.Close("Owner");
  w.Open("AccessControlList");
  std::string body = w.Take();
  const std::string xsi =
      "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ";
  body += xsi + "xsi:type=\"CanonicalUser\"><ID>" + XmlEscape(owner_id) + "</ID><DisplayName>" +
          XmlEscape(owner_id) +
          "</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>";
  for (const auto& [uri, permission] : GroupGrants(acl)) {
    body += xsi + "xsi:type=\"Group\"><URI>" + uri + "</URI></Grantee><Permission>" + permission +
            "</Permission></Grant>";
  }
  body += "</AccessControlList></AccessControlPolicy>";
  return body;
}

StatusOr<std::string> CannedAclOf(const std::string& body, const std::string& owner_id,
                                  bool bucket) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(body));
  const XmlNode* list = doc->Child("AccessControlList");
  if (doc->name != "AccessControlPolicy" || !list)
    return S3Error("MalformedACLError",
                   "The XML you provided was not well-formed or did not validate against our "
                   "published schema");
  bool owner_full = false;
  Grants groups;
  for (const XmlNode* grant : list->Children("Grant")) {
    const XmlNode* grantee = grant->Child("Grantee");
    std::string permission = grant->ChildText("Permission");
    static const std::set<std::string> kPermissions = {"READ", "WRITE", "READ_ACP", "WRITE_ACP",
                                                       "FULL_CONTROL"};
    if (!grantee || !kPermissions.count(permission))
      return S3Error("MalformedACLError", "A Grant needs a Grantee and a valid Permission");
    if (grantee->Child("ID")) {
      if (grantee->ChildText("ID") != owner_id) return S3Error("InvalidArgument", "Invalid id");
      if (permission != "FULL_CONTROL")
        return S3Error("NotImplemented", "The owner's grant must be FULL_CONTROL in lightningstor");
      owner_full = true;
    } else if (grantee->Child("URI")) {
      std::string uri = grantee->ChildText("URI");
      if (uri != kAllUsers && uri != kAuthUsers) {
        return S3Error(uri.find("/groups/s3/LogDelivery") != std::string::npos ? "NotImplemented"
                                                                               : "InvalidArgument",
                       "Invalid group uri");
      }
      groups.insert({uri, permission});
    } else if (grantee->Child("EmailAddress")) {
      return S3Error("InvalidArgument", "Invalid id: lightningstor has no users by email address");
    } else {
      return S3Error("MalformedACLError", "A Grantee needs an ID, a URI or an EmailAddress");
    }
  }
  for (const char* acl : {"private", "public-read", "public-read-write", "authenticated-read"}) {
    if (owner_full && GroupGrants(acl) == groups) {
      PHOTON_RETURN_IF_ERROR(CheckCannedAcl(acl, bucket));
      return std::string(acl);
    }
  }
  return S3Error("NotImplemented",
                 "lightningstor honours the grants of the canned ACLs only (owner FULL_CONTROL, "
                 "plus READ to AllUsers or AuthenticatedUsers)");
}

StatusOr<std::string> AclFromRequest(const std::string& header, const std::string& body,
                                     const std::string& owner_id, bool bucket) {
  if (!header.empty() && !body.empty())
    return S3Error("UnexpectedContent", "This request does not support content");
  if (!header.empty()) {
    PHOTON_RETURN_IF_ERROR(CheckCannedAcl(header, bucket));
    return header;
  }
  if (body.empty())
    return S3Error("MissingSecurityHeader", "Your request was missing a required header");
  return CannedAclOf(body, owner_id, bucket);
}

}  // namespace photon::lightningstor
