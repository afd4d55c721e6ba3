#include "lightningstor/bucket_rules.h"

#include <algorithm>
#include <set>

#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"
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

PublicAccessBlock DecodePublicAccessBlock(const std::string& stored) {
  PublicAccessBlock pab;
  if (stored.size() != 4) return pab;
  pab.block_public_acls = stored[0] == '1';
  pab.ignore_public_acls = stored[1] == '1';
  pab.block_public_policy = stored[2] == '1';
  pab.restrict_public_buckets = stored[3] == '1';
  return pab;
}

std::string EncodePublicAccessBlock(const PublicAccessBlock& pab) {
  std::string out;
  for (bool b : {pab.block_public_acls, pab.ignore_public_acls, pab.block_public_policy,
                 pab.restrict_public_buckets})
    out += b ? '1' : '0';
  return out;
}

namespace {

constexpr const char* kPabNames[] = {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                     "RestrictPublicBuckets"};

}  // namespace

StatusOr<PublicAccessBlock> ParsePublicAccessBlock(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "PublicAccessBlockConfiguration") {
    return S3Error("MalformedXML", "Expected a PublicAccessBlockConfiguration document");
  }
  std::string flags = "0000";
  for (const auto& child : doc->children) {
    auto name = std::find(std::begin(kPabNames), std::end(kPabNames), child->name);
    if (name == std::end(kPabNames)) {
      return S3Error("MalformedXML", "Unknown element " + child->name);
    }
    if (child->text != "true" && child->text != "false") {
      return S3Error("MalformedXML", child->name + " must be true or false");
    }
    flags[name - std::begin(kPabNames)] = child->text == "true" ? '1' : '0';
  }
  return DecodePublicAccessBlock(flags);
}

PublicAccessBlock EffectivePublicAccessBlock(const std::string& bucket_pab,
                                             const std::string& account_pab) {
  PublicAccessBlock b = DecodePublicAccessBlock(bucket_pab);
  PublicAccessBlock a = DecodePublicAccessBlock(account_pab);
  return {b.block_public_acls || a.block_public_acls, b.ignore_public_acls || a.ignore_public_acls,
          b.block_public_policy || a.block_public_policy,
          b.restrict_public_buckets || a.restrict_public_buckets};
}

std::string PublicAccessBlockXml(const PublicAccessBlock& pab) {
  XmlWriter w;
  w.Open("PublicAccessBlockConfiguration", "http://s3.amazonaws.com/doc/2006-03-01/");
  std::string flags = EncodePublicAccessBlock(pab);
  for (size_t i = 0; i < 4; ++i) w.Element(kPabNames[i], flags[i] == '1' ? "true" : "false");
  w.Close("PublicAccessBlockConfiguration");
  return w.Take();
}

StatusOr<std::string> ParseBucketEncryption(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "ServerSideEncryptionConfiguration" || doc->children.size() != 1 ||
      doc->children[0]->name != "Rule") {
    return S3Error("MalformedXML",
                   "Expected a ServerSideEncryptionConfiguration document with one Rule");
  }
  const XmlNode& rule = *doc->children[0];
  const XmlNode* apply = nullptr;
  std::string bucket_key = "false";
  for (const auto& child : rule.children) {
    if (child->name == "ApplyServerSideEncryptionByDefault" && !apply) {
      apply = child.get();
    } else if (child->name == "BucketKeyEnabled" &&
               (child->text == "true" || child->text == "false")) {
      bucket_key = child->text;
    } else {
      return S3Error("MalformedXML", "Unexpected element " + child->name + " in Rule");
    }
  }
  if (!apply) return S3Error("MalformedXML", "Rule needs ApplyServerSideEncryptionByDefault");
  for (const auto& child : apply->children) {
    if (child->name != "SSEAlgorithm" && child->name != "KMSMasterKeyID")
      return S3Error("MalformedXML", "Unexpected element " + child->name);
  }
  std::string algorithm = apply->ChildText("SSEAlgorithm");
  if (algorithm == "aws:kms" || algorithm == "aws:kms:dsse")
    return S3Error("NotImplemented",
                   "lightningstor does not implement SSE-KMS (" + algorithm + ")");
  if (algorithm != "AES256")
    return S3Error("MalformedXML", "SSEAlgorithm must be AES256, aws:kms or aws:kms:dsse");
  if (apply->Child("KMSMasterKeyID")) {
    return S3Error("InvalidArgument",
                   "a KMSMasterKeyID is not applicable if the default sse algorithm is not "
                   "aws:kms or aws:kms:dsse");
  }
  return bucket_key == "true" ? std::string("AES256 bucket-key") : std::string("AES256");
}

std::string BucketEncryptionXml(const std::string& stored) {
  XmlWriter w;
  w.Open("ServerSideEncryptionConfiguration", "http://s3.amazonaws.com/doc/2006-03-01/");
  w.Open("Rule");
  w.Open("ApplyServerSideEncryptionByDefault");
  w.Element("SSEAlgorithm", "AES256");
  w.Close("ApplyServerSideEncryptionByDefault");
  w.Element("BucketKeyEnabled", stored == "AES256 bucket-key" ? "true" : "false");
  w.Close("Rule");
  w.Close("ServerSideEncryptionConfiguration");
  return w.Take();
}

Status CheckObjectOwnership(const std::string& value) {
  if (value == "ObjectWriter" || value == "BucketOwnerPreferred" || value == "BucketOwnerEnforced")
    return absl::OkStatus();
  return S3Error("InvalidArgument",
                 "Invalid x-amz-object-ownership: " + value +
                     " (ObjectWriter, BucketOwnerPreferred or BucketOwnerEnforced)");
}

StatusOr<std::string> ParseOwnershipControls(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto doc, ParseXml(xml));
  if (doc->name != "OwnershipControls" || doc->children.size() != 1 ||
      doc->children[0]->name != "Rule" || doc->children[0]->children.size() != 1 ||
      doc->children[0]->children[0]->name != "ObjectOwnership") {
    return S3Error("MalformedXML",
                   "Expected <OwnershipControls><Rule><ObjectOwnership>...</ObjectOwnership>"
                   "</Rule></OwnershipControls>");
  }
  std::string value = doc->children[0]->children[0]->text;
  if (!CheckObjectOwnership(value).ok())
    return S3Error("MalformedXML", "Unknown ObjectOwnership " + value);
  return value;
}

std::string OwnershipControlsXml(const std::string& ownership) {
  XmlWriter w;
  w.Open("OwnershipControls", "http://s3.amazonaws.com/doc/2006-03-01/");
  w.Open("Rule");
  w.Element("ObjectOwnership", ownership);
  w.Close("Rule");
  w.Close("OwnershipControls");
  return w.Take();
}

bool LifecycleFilter::Matches(
    const std::string& key, uint64_t size,
    const std::vector<std::pair<std::string, std::string>>& object_tags) const {
  if (key.rfind(prefix, 0) != 0) return false;
  if (size_greater >= 0 && size <= static_cast<uint64_t>(size_greater)) return false;
  if (size_less >= 0 && size >= static_cast<uint64_t>(size_less)) return false;
  for (const auto& tag : tags) {
    if (std::find(object_tags.begin(), object_tags.end(), tag) == object_tags.end()) return false;
  }
  return true;
}

namespace {

Status LifecycleNotImplemented(const std::string& what) {
  return S3Error("NotImplemented", "lightningstor lifecycle rules do not support " + what);
}

StatusOr<int64_t> ParseCount(const XmlNode* node, const std::string& what, int64_t min) {
  const std::string& text = node->text;
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size() || v < min) throw std::invalid_argument("count");
    return static_cast<int64_t>(v);
  } catch (...) {
    return S3Error("InvalidArgument",
                   "'" + what + "' must be an integer of at least " + std::to_string(min));
  }
}

StatusOr<int> ParseDays(const XmlNode* node, const std::string& what) {
  PHOTON_ASSIGN_OR_RETURN(int64_t v, ParseCount(node, what, 1));
  if (v > 1000000) return S3Error("InvalidArgument", "'" + what + "' is too large");
  return static_cast<int>(v);
}

// One Filter child (or And child) into the filter.
Status ParseFilterPart(const XmlNode& c, bool in_and, LifecycleFilter* f) {
  if (c.name == "Prefix") {
    f->prefix = c.text;
  } else if (c.name == "Tag") {
    if (!c.Child("Key")) return S3Error("MalformedXML", "a Tag needs a Key");
    f->tags.emplace_back(c.ChildText("Key"), c.ChildText("Value"));
  } else if (c.name == "ObjectSizeGreaterThan") {
    PHOTON_ASSIGN_OR_RETURN(f->size_greater, ParseCount(&c, c.name, 0));
  } else if (c.name == "ObjectSizeLessThan") {
    PHOTON_ASSIGN_OR_RETURN(f->size_less, ParseCount(&c, c.name, 1));
  } else if (c.name == "And" && !in_and) {
    f->is_and = true;
    for (const auto& inner : c.children) PHOTON_RETURN_IF_ERROR(ParseFilterPart(*inner, true, f));
  } else {
    return S3Error("MalformedXML", "unknown lifecycle Filter element " + c.name);
  }
  return absl::OkStatus();
}

Status ParseFilter(const XmlNode& filter, LifecycleFilter* f) {
  if (filter.children.size() > 1)
    return S3Error("MalformedXML", "a Filter holds one element (use And to combine)");
  for (const auto& c : filter.children) PHOTON_RETURN_IF_ERROR(ParseFilterPart(*c, false, f));
  if (f->size_greater >= 0 && f->size_less >= 0 && f->size_less <= f->size_greater) {
    return S3Error("InvalidArgument",
                   "ObjectSizeLessThan must be greater than ObjectSizeGreaterThan");
  }
  std::set<std::string> keys;
  for (const auto& [k, v] : f->tags) {
    if (!keys.insert(k).second)
      return S3Error("InvalidRequest", "Duplicate Tag Keys are not allowed.");
  }
  return absl::OkStatus();
}

Status ParseExpiration(const XmlNode& exp, LifecycleRule* r) {
  if (exp.children.size() != 1) {
    return S3Error("MalformedXML",
                   "Expiration holds exactly one of Days, Date or ExpiredObjectDeleteMarker");
  }
  const XmlNode& c = *exp.children[0];
  if (c.name == "Days") {
    PHOTON_ASSIGN_OR_RETURN(r->expiration_days, ParseDays(&c, "Days"));
  } else if (c.name == "Date") {
    // S3 accepts only midnight UTC: "2030-01-01T00:00:00Z" or with ".000Z".
    std::string d = c.text;
    if (d.size() == 20 && d.compare(10, 10, "T00:00:00Z") == 0) d = d.substr(0, 19) + ".000Z";
    auto t = sigv4::ParseAmzDate(d.size() == 24 && d.compare(10, 14, "T00:00:00.000Z") == 0
                                     ? d.substr(0, 4) + d.substr(5, 2) + d.substr(8, 2) + "T000000Z"
                                     : std::string("bad"));
    if (!t.ok())
      return S3Error("InvalidArgument",
                     "'Date' must be at midnight GMT, e.g. 2030-01-01T00:00:00Z");
    r->expiration_date_ms = *t * 1000;
  } else if (c.name == "ExpiredObjectDeleteMarker") {
    if (c.text != "true" && c.text != "false")
      return S3Error("MalformedXML", "ExpiredObjectDeleteMarker is true or false");
    r->expired_delete_marker = c.text == "true";
  } else {
    return S3Error("MalformedXML", "unknown Expiration element " + c.name);
  }
  return absl::OkStatus();
}

Status ParseNoncurrent(const XmlNode& nc, LifecycleRule* r) {
  const XmlNode* days = nc.Child("NoncurrentDays");
  if (!days) return S3Error("MalformedXML", "NoncurrentVersionExpiration needs NoncurrentDays");
  PHOTON_ASSIGN_OR_RETURN(r->noncurrent_days, ParseDays(days, "NoncurrentDays"));
  for (const auto& c : nc.children) {
    if (c->name == "NewerNoncurrentVersions") {
      PHOTON_ASSIGN_OR_RETURN(int64_t n, ParseCount(c.get(), c->name, 1));
      if (n > 100) return S3Error("InvalidArgument", "NewerNoncurrentVersions is at most 100");
      r->newer_noncurrent = static_cast<int>(n);
    } else if (c->name != "NoncurrentDays") {
      return S3Error("MalformedXML", "unknown NoncurrentVersionExpiration element " + c->name);
    }
  }
  return absl::OkStatus();
}

StatusOr<LifecycleRule> ParseRule(const XmlNode& rule) {
  LifecycleRule r;
  bool has_filter = false, has_action = false;
  for (const auto& c : rule.children) {
    const std::string& n = c->name;
    if (n == "ID") {
      r.id = c->text;
    } else if (n == "Status") {
      if (c->text != "Enabled" && c->text != "Disabled")
        return S3Error("MalformedXML", "Rule Status must be Enabled or Disabled");
      r.enabled = c->text == "Enabled";
    } else if (n == "Prefix") {
      r.legacy_prefix = true;
      r.filter.prefix = c->text;
    } else if (n == "Filter") {
      has_filter = true;
      PHOTON_RETURN_IF_ERROR(ParseFilter(*c, &r.filter));
    } else if (n == "Expiration") {
      has_action = true;
      PHOTON_RETURN_IF_ERROR(ParseExpiration(*c, &r));
    } else if (n == "NoncurrentVersionExpiration") {
      has_action = true;
      PHOTON_RETURN_IF_ERROR(ParseNoncurrent(*c, &r));
    } else if (n == "AbortIncompleteMultipartUpload") {
      has_action = true;
      const XmlNode* days = c->Child("DaysAfterInitiation");
      if (!days)
        return S3Error("MalformedXML", "AbortIncompleteMultipartUpload needs DaysAfterInitiation");
      PHOTON_ASSIGN_OR_RETURN(r.abort_upload_days, ParseDays(days, "DaysAfterInitiation"));
    } else if (n == "Transition" || n == "NoncurrentVersionTransition") {
      return LifecycleNotImplemented(n + " (there is one storage class, STANDARD)");
    } else {
      return S3Error("MalformedXML", "unknown lifecycle Rule element " + n);
    }
  }
  if (rule.Children("Status").empty()) return S3Error("MalformedXML", "a Rule needs a Status");
  if (r.id.size() > 255)
    return S3Error("InvalidArgument", "ID length should not exceed allowed limit of 255");
  if (has_filter && r.legacy_prefix)
    return S3Error("MalformedXML", "a Rule has either Prefix or Filter, not both");
  if (!has_action)
    return S3Error("InvalidRequest", "At least one action needs to be specified in a rule");
  bool narrowed = !r.filter.tags.empty() || r.filter.size_greater >= 0 || r.filter.size_less >= 0;
  if (narrowed && (r.abort_upload_days > 0 || r.expired_delete_marker)) {
    return S3Error("InvalidRequest",
                   "AbortIncompleteMultipartUpload and ExpiredObjectDeleteMarker cannot be "
                   "specified with Tags or object size filters.");
  }
  return r;
}

}  // namespace

StatusOr<std::vector<LifecycleRule>> ParseLifecycle(const std::string& xml) {
  PHOTON_ASSIGN_OR_RETURN(auto root, ParseXml(xml));
  if (root->name != "LifecycleConfiguration")
    return S3Error("MalformedXML", "expected LifecycleConfiguration");
  std::vector<LifecycleRule> rules;
  std::set<std::string> ids;
  for (const auto& child : root->children) {
    if (child->name != "Rule")
      return S3Error("MalformedXML", "unknown LifecycleConfiguration element " + child->name);
    PHOTON_ASSIGN_OR_RETURN(LifecycleRule r, ParseRule(*child));
    if (!r.id.empty() && !ids.insert(r.id).second)
      return S3Error("InvalidArgument",
                     "Rule ID must be unique. Found same ID for more than one rule");
    rules.push_back(std::move(r));
  }
  if (rules.empty())
    return S3Error("MalformedXML", "a lifecycle configuration needs at least one Rule");
  if (rules.size() > 1000) return S3Error("InvalidRequest", "at most 1000 lifecycle rules");
  return rules;
}

namespace {

void WriteFilter(XmlWriter& w, const LifecycleFilter& f) {
  w.Open("Filter");
  if (f.is_and) w.Open("And");
  if (f.is_and || (f.tags.empty() && f.size_greater < 0 && f.size_less < 0))
    w.Element("Prefix", f.prefix);
  for (const auto& [k, v] : f.tags) {
    w.Open("Tag");
    w.Element("Key", k);
    w.Element("Value", v);
    w.Close("Tag");
  }
  if (f.size_greater >= 0) w.Element("ObjectSizeGreaterThan", std::to_string(f.size_greater));
  if (f.size_less >= 0) w.Element("ObjectSizeLessThan", std::to_string(f.size_less));
  if (f.is_and) w.Close("And");
  w.Close("Filter");
}

}  // namespace

std::string LifecycleXml(const std::vector<LifecycleRule>& rules) {
  XmlWriter w;
  w.Open("LifecycleConfiguration", "http://s3.amazonaws.com/doc/2006-03-01/");
  for (const auto& rule : rules) {
    w.Open("Rule");
    if (!rule.id.empty()) w.Element("ID", rule.id);
    if (rule.legacy_prefix) {
      w.Element("Prefix", rule.filter.prefix);
    } else {
      WriteFilter(w, rule.filter);
    }
    w.Element("Status", rule.enabled ? "Enabled" : "Disabled");
    if (rule.expiration_days > 0 || rule.expiration_date_ms >= 0 || rule.expired_delete_marker) {
      w.Open("Expiration");
      if (rule.expiration_days > 0) w.Element("Days", std::to_string(rule.expiration_days));
      if (rule.expiration_date_ms >= 0)
        w.Element("Date", sigv4::FormatIso8601(rule.expiration_date_ms));
      if (rule.expired_delete_marker) w.Element("ExpiredObjectDeleteMarker", "true");
      w.Close("Expiration");
    }
    if (rule.noncurrent_days > 0) {
      w.Open("NoncurrentVersionExpiration");
      w.Element("NoncurrentDays", std::to_string(rule.noncurrent_days));
      if (rule.newer_noncurrent > 0)
        w.Element("NewerNoncurrentVersions", std::to_string(rule.newer_noncurrent));
      w.Close("NoncurrentVersionExpiration");
    }
    if (rule.abort_upload_days > 0) {
      w.Open("AbortIncompleteMultipartUpload");
      w.Element("DaysAfterInitiation", std::to_string(rule.abort_upload_days));
      w.Close("AbortIncompleteMultipartUpload");
    }
    w.Close("Rule");
  }
  w.Close("LifecycleConfiguration");
  return w.Take();
}

}  // namespace photon::lightningstor
