// Bucket policies: parsing (with every element lightningstor does not enforce refused) and
// evaluation as S3 does it: a matching Deny wins over any Allow, an Allow grants what the
// ACLs do not, and a policy that says nothing leaves the decision to the ACLs.
// Principals are lightningstor's accounts (users), which play AWS's accounts: "*", "NAME",
// "arn:aws:iam::NAME:root" and {"CanonicalUser": "NAME"}. Conditions: the operators
// String*, Numeric*, Bool, IpAddress/NotIpAddress, Null (and ...IfExists) on the keys listed
// in bucket_policy.cc; any other operator or key is MalformedPolicy naming it, never ignored.
// Thread-safe (no state; a parsed policy is immutable).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::lightningstor {

// One request as a policy sees it.
struct PolicyRequest {
  std::string action;    // "s3:GetObject"
  std::string resource;  // "arn:aws:s3:::BUCKET" or "arn:aws:s3:::BUCKET/KEY"
  std::string caller;    // "" = anonymous
  // The condition keys the request has, by lower-case name ("aws:sourceip", "s3:prefix").
  std::map<std::string, std::string> keys;
};

enum class PolicyDecision { kNone, kAllow, kDeny };

struct PolicyCondition {
  std::string op;  // the operator without IfExists ("StringLike")
  bool if_exists = false;
  std::string key;  // lower-case
  std::vector<std::string> values;
};

struct PolicyStatement {
  bool allow = true;
  bool everyone = false;             // Principal "*": every account and anonymous callers
  std::vector<std::string> users;    // else these accounts
  std::vector<std::string> actions;  // lower-case patterns ("s3:get*")
  std::vector<std::string> resources;
  std::vector<PolicyCondition> conditions;
  bool variables = false;  // Version 2012-10-17: ${aws:username} in resources and values
};

struct BucketPolicy {
  std::vector<PolicyStatement> statements;

  PolicyDecision Evaluate(const PolicyRequest& req) const;
  // S3's "public": an Allow for "*" not narrowed by a condition on fixed source addresses
  // (aws:SourceIp IpAddress) or fixed users (aws:username / aws:userid StringEquals).
  bool IsPublic() const;
};

// Parses and validates a policy of BUCKET. user_exists (when given) checks named principals:
// an unknown one is MalformedPolicy ("Invalid principal"), as in S3. NotImplemented for
// elements and grants lightningstor does not enforce (Not*, other principal types, actions of
// operations it does not have, an Allow letting anonymous callers write).
StatusOr<BucketPolicy> ParseBucketPolicy(
    const std::string& policy_json, const std::string& bucket,
    const std::function<bool(const std::string&)>& user_exists = nullptr);

// The policy action of an S3 operation ("" when bucket policies have no say: ListBuckets,
// CreateBucket, CORS preflights). with_version: the request names a versionId.
std::string PolicyActionOf(const std::string& op, bool with_version);
// Actions only the bucket owner has, whatever a policy allows (the policy itself, the Public
// Access Block): a Deny does not lock the owner out of them either.
bool OwnerOnlyAction(const std::string& action);
// Whether an action reads (s3:Get*, s3:List*): the only ones anonymous callers may be granted.
bool ReadAction(const std::string& action);

}  // namespace photon::lightningstor
