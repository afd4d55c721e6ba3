// Identity and access (photonauth): bearer tokens with roles per namespace (project).
//
// A token is "pct_<id>_<secret>"; the store keeps only the secret's SHA-256 under
// /auth/tokens/<id>. Roles: viewer (read), editor (read + write specs and actions), admin
// (everything, including tokens and the audit log), agent (nodes and status writes; one per
// node, principal "node:<name>"), join (only exchanges itself for an agent token at /v1/join).
// A binding's namespace "*" covers every namespace.
// Thread-safe: tokens are cached in memory behind a mutex and written through to the store.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/auth.pb.h"
#include "store/store.h"

namespace photon::server {

enum class Verb { kGet, kList, kWatch, kCreate, kUpdate, kUpdateStatus, kDelete, kAction, kAdmin };

struct Principal {
  std::string name;
  std::string token_id;
  std::vector<auth::RoleBinding> bindings;

  bool IsAdmin() const;
  // True if the principal may do `verb` on `kind` (plural) in `ns`.
  bool Allowed(Verb verb, const std::string& kind, const std::string& ns) const;
  // Namespaces the principal may read; {"*"} means all.
  std::vector<std::string> ReadableNamespaces() const;
};

class Authenticator {
 public:
  explicit Authenticator(store::Store* store) : store_(store) {}

  // Loads tokens from the store.
  Status Load();
  // Creates a token and returns its full text (shown once).
  StatusOr<std::string> CreateToken(const std::string& principal,
                                    const std::vector<auth::RoleBinding>& bindings);
  // Parses "Bearer <token>" and returns who it is; UNAUTHENTICATED otherwise.
  StatusOr<Principal> Authenticate(const std::string& authorization_header) const;
  bool HasAnyToken() const;
  // For a principal holding the join role: creates (or replaces) the agent token of `node`.
  StatusOr<std::string> Join(const Principal& who, const std::string& node);

 private:
  store::Store* store_;
  mutable std::mutex mu_;
  std::map<std::string, auth::Token> tokens_;  // by id
};

}  // namespace photon::server
