// The identity directory: users (argon2id password hashes), groups of users, service accounts
// (per namespace), custom roles (verbs × kinds) and role bindings (a role for subjects in one
// namespace or "*"). Objects are JSON documents
//   {"metadata":{"name","namespace"?,"createdAt","createdBy"},"spec":{...}}
// kept under /identity/<kind>/ in the store, loaded at start and written through.
//
// Resolve completes the principal of a login or service account token from the bindings that
// name it, its groups' and "*"; the Authenticator calls it on every request, so it works on an
// immutable snapshot indexed by subject (rebuilt on each change) and takes no store read.
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/auth.h"
#include "store/store.h"

namespace photon::server::identity {

using nlohmann::json;

// "get", "list", "watch", "create", "update", "update-status", "delete", "action".
StatusOr<Verb> ParseVerb(const std::string& name);
const char* VerbName(Verb verb);
// Every kind a role may name: the API kinds and the identity kinds (users, groups,
// serviceaccounts, roles, rolebindings, quotas). `name` as a plural, or NOT_FOUND listing them.
StatusOr<std::string> CanonicalKind(const std::string& name);
const std::vector<std::string>& RoleKinds();

struct IdentityKind {
  std::string plural;  // users, groups, serviceaccounts, roles, rolebindings
  bool namespaced;     // serviceaccounts
};
const IdentityKind* FindIdentityKind(const std::string& plural);

class Directory {
 public:
  Directory(store::Store* store, Authenticator* auth) : store_(store), auth_(auth) {}

  Status Load();
  // From then on, follows the changes other servers on the same store make (users, groups,
  // roles, bindings): a binding removed through one server no longer grants on any.
  Status Follow();
  // For Authenticator::SetResolver: user/service account still present, its groups, and the
  // grants of every binding naming it (built-in roles as bindings, custom ones as grants).
  Status Resolve(Principal* p) const;

  // The object as stored (users' password hash in spec.passwordHash); NOT_FOUND otherwise.
  StatusOr<json> Get(const IdentityKind& kind, const std::string& ns,
                     const std::string& name) const;
  std::vector<json> List(const IdentityKind& kind, const std::string& ns) const;
  // Creates (`replace` false: ALREADY_EXISTS if present) or replaces the object, after
  // validating its spec; `who` is recorded as creator and checked for escalation when the
  // object is a role binding. Users' spec.password is hashed and dropped.
  StatusOr<json> Put(const Principal& who, const IdentityKind& kind, const std::string& ns,
                     json object, bool replace);
  // Deletes the object; a user's or service account's tokens are revoked with it, and a role
  // still bound is refused (FAILED_PRECONDITION naming the bindings).
  Status Delete(const IdentityKind& kind, const std::string& ns, const std::string& name);
  // The namespace an object is authorized in: its own (service accounts), the binding's
  // spec.namespace (role bindings), "*" for the cluster-scoped.
  static std::string AuthzNamespace(const IdentityKind& kind, const json& object);
  // A user's password hash; NOT_FOUND for an unknown or disabled user.
  StatusOr<std::string> PasswordHash(const std::string& user) const;
  bool ServiceAccountExists(const std::string& ns, const std::string& name) const;

  // The whole user object without its password hash.
  static json Public(const IdentityKind& kind, json object);

 private:
  struct Snapshot;
  static std::string Key(const IdentityKind& kind, const std::string& ns, const std::string& name);
  Status ValidateSpec(const Principal& who, const IdentityKind& kind, const std::string& ns,
                      json* object) const;
  Status CheckGrantable(const Principal& who, const std::string& role, const std::string& ns) const;
  // (verb, kind) pairs `role` allows in `ns`; NOT_FOUND for an unknown role.
  StatusOr<Principal> RoleHolder(const std::string& role, const std::string& ns) const;
  void Rebuild();  // mu_ held
  // The object of a store value, or null when it lacks metadata or spec.
  static json Parse(const std::string& value);
  std::shared_ptr<const Snapshot> Current() const;

  store::Store* store_;
  Authenticator* auth_;
  std::mutex write_mu_;  // one change at a time: validate, write, rebuild
  mutable std::mutex mu_;
  std::map<std::string, json> objects_;  // by store key
  std::shared_ptr<const Snapshot> snapshot_;
  int64_t loaded_revision_ = 0;
  std::unique_ptr<store::WatchHandle> follow_;  // cancelled first when this goes
};

}  // namespace photon::server::identity
