#include "server/auth.h"

#include "common/util.h"

namespace photon::server {

namespace {
constexpr char kTokenPrefix[] = "/auth/tokens/";

int RoleRank(const std::string& role) {
  if (role == "viewer") return 1;
  if (role == "editor") return 2;
  if (role == "admin") return 3;
  return 0;
}
}  // namespace

bool Principal::IsAdmin() const {
  for (const auto& b : bindings) {
    if (b.role() == "admin" && b.namespace_() == "*") return true;
  }
  return false;
}

bool Principal::Allowed(Verb verb, const std::string& kind, const std::string& ns) const {
  for (const auto& b : bindings) {
    if (b.namespace_() != "*" && b.namespace_() != ns) continue;
    if (b.role() == "agent") {
      // Agents read everything they are assigned, write nodes and status, and follow events.
      if (verb == Verb::kGet || verb == Verb::kList || verb == Verb::kWatch) return true;
      if (verb == Verb::kUpdateStatus) return true;
      if (kind == "nodes" && (verb == Verb::kCreate || verb == Verb::kUpdate)) return true;
      if (kind == "events" && verb == Verb::kCreate) return true;
      continue;
    }
    int rank = RoleRank(b.role());
    int need = 3;
    switch (verb) {
      case Verb::kGet:
      case Verb::kList:
      case Verb::kWatch:
        need = 1;
        break;
      case Verb::kCreate:
      case Verb::kUpdate:
      case Verb::kDelete:
      case Verb::kAction:
        need = 2;
        break;
      case Verb::kUpdateStatus:
      case Verb::kAdmin:
        need = 3;
        break;
    }
    if (rank >= need) return true;
  }
  return false;
}

std::vector<std::string> Principal::ReadableNamespaces() const {
  std::vector<std::string> out;
  for (const auto& b : bindings) {
    if (b.namespace_() == "*") return {"*"};
    out.push_back(b.namespace_());
  }
  return out;
}

Status Authenticator::Load() {
  auto r = store_->Range(kTokenPrefix, {.end = store::PrefixEnd(kTokenPrefix)});
  if (!r.ok()) return r.status();
  std::lock_guard lock(mu_);
  for (const auto& kv : r->kvs) {
    auth::Token t;
    if (t.ParseFromString(kv.value)) tokens_[t.id()] = t;
  }
  return absl::OkStatus();
}

StatusOr<std::string> Authenticator::CreateToken(const std::string& principal,
                                                 const std::vector<auth::RoleBinding>& bindings) {
  if (principal.empty()) return absl::InvalidArgumentError("principal: required");
  for (const auto& b : bindings) {
    if (b.role() != "viewer" && b.role() != "editor" && b.role() != "admin" &&
        b.role() != "agent" && b.role() != "join") {
      return absl::InvalidArgumentError("bindings.role: '" + b.role() +
                                        "' is not one of viewer, editor, admin, agent, join");
    }
    if (b.namespace_().empty()) return absl::InvalidArgumentError("bindings.namespace: required");
  }
  auth::Token t;
  t.set_id(RandomHex(8));
  std::string secret = RandomHex(24);
  t.set_principal(principal);
  t.set_secret_sha256(Sha256Hex(secret));
  for (const auto& b : bindings) *t.add_bindings() = b;
  t.set_created_at(NowRfc3339());
  std::string value;
  t.SerializeToString(&value);
  auto put = store_->Put(kTokenPrefix + t.id(), value);
  if (!put.ok()) return put.status();
  std::lock_guard lock(mu_);
  tokens_[t.id()] = t;
  return "pct_" + t.id() + "_" + secret;
}

StatusOr<Principal> Authenticator::Authenticate(const std::string& header) const {
  static const std::string kBearer = "Bearer ";
  if (header.empty()) {
    return absl::UnauthenticatedError("missing Authorization: Bearer token");
  }
  if (header.compare(0, kBearer.size(), kBearer) != 0) {
    return absl::UnauthenticatedError("Authorization header is not a Bearer token");
  }
  std::string token = header.substr(kBearer.size());
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r' || token.back() == '\n')) {
    token.pop_back();
  }
  // pct_<16 hex id>_<48 hex secret>
  if (token.size() != 4 + 16 + 1 + 48 || token.compare(0, 4, "pct_") != 0 || token[20] != '_') {
    return absl::UnauthenticatedError("invalid token");
  }
  std::string id = token.substr(4, 16);
  std::string secret = token.substr(21);
  std::lock_guard lock(mu_);
  auto it = tokens_.find(id);
  if (it == tokens_.end() || !SecureEquals(it->second.secret_sha256(), Sha256Hex(secret))) {
    return absl::UnauthenticatedError("invalid token");
  }
  Principal p;
  p.name = it->second.principal();
  p.token_id = id;
  p.bindings.assign(it->second.bindings().begin(), it->second.bindings().end());
  return p;
}

StatusOr<std::string> Authenticator::Join(const Principal& who, const std::string& node) {
  bool may_join = false;
  for (const auto& b : who.bindings)
    may_join |= b.role() == "join" || (b.role() == "admin" && b.namespace_() == "*");
  if (!may_join) return absl::PermissionDeniedError("only a join token may register a node");
  auth::RoleBinding agent;
  agent.set_namespace_("*");
  agent.set_role("agent");
  return CreateToken("node:" + node, {agent});
}

bool Authenticator::HasAnyToken() const {
  std::lock_guard lock(mu_);
  return !tokens_.empty();
}

}  // namespace photon::server
