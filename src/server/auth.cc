#include "server/auth.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "common/file_util.h"
#include "common/util.h"
#include "photon/node.pb.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {
constexpr char kTokenPrefix[] = "/auth/tokens/";
constexpr char kAgentPrefix[] = "node:";
constexpr char kRevocationPrefix[] = "/auth/noderevocations/";
constexpr char kCertTokenPrefix[] = "x509:";

int RoleRank(const std::string& role) {
  if (role == "viewer") return 1;
  if (role == "editor") return 2;
  if (role == "admin") return 3;
  return 0;
}

bool IsRead(Verb verb) { return verb == Verb::kGet || verb == Verb::kList || verb == Verb::kWatch; }

// Who may do what: writes of these are an admin's (of the namespace; of every namespace for
// the cluster-scoped ones, which are checked against "*"), and a quota's a cluster admin's
// (else a namespace admin could lift its own).
bool IsIdentityKind(const std::string& kind) {
  return kind == "users" || kind == "groups" || kind == "serviceaccounts" || kind == "roles" ||
         kind == "rolebindings" || kind == "quotas";
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatRfc3339(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

// Milliseconds since the epoch of an RFC 3339 UTC time; 0 if it does not parse.
int64_t ParseRfc3339Ms(const std::string& ts) {
  std::tm tm{};
  const char* rest = ts.size() >= 19 ? strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) : nullptr;
  if (!rest) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (rest[0] == '.' && isdigit(rest[1]) && isdigit(rest[2]) && isdigit(rest[3])) {
    ms += (rest[1] - '0') * 100 + (rest[2] - '0') * 10 + (rest[3] - '0');
  }
  return ms;
}

// Tokens written before tokens had a purpose: told apart by their principal and roles.
std::string InferPurpose(const auth::Token& t) {
  for (const auto& b : t.bindings()) {
    if (b.role() == "join") return "join";
    if (b.role() == "agent") return "agent";
  }
  return t.principal() == "admin" ? "admin" : "user";
}

bool Expired(const auth::Token& t, int64_t now_ms) {
  return t.expires_at_unix_ms() != 0 && now_ms >= t.expires_at_unix_ms();
}

auth::TokenInfo Info(const auth::Token& t, int64_t now_ms) {
  auth::TokenInfo i;
  i.set_id(t.id());
  i.set_principal(t.principal());
  *i.mutable_bindings() = t.bindings();
  i.set_created_at(t.created_at());
  i.set_expires_at(t.expires_at());
  i.set_revoked(t.revoked());
  i.set_revoked_at(t.revoked_at());
  i.set_purpose(t.purpose());
  i.set_expired(Expired(t, now_ms));
  return i;
}

std::string Strip(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  return s;
}
}  // namespace

bool CustomGrant::Permits(Verb verb, const std::string& kind) const {
  const uint32_t bit = 1u << static_cast<int>(verb);
  if (auto it = verbs->find(kind); it != verbs->end() && (it->second & bit)) return true;
  auto any = verbs->find("*");
  return any != verbs->end() && (any->second & bit);
}

bool Principal::IsAdmin() const {
  for (const auto& b : bindings) {
    if (b.role() == "admin" && b.namespace_() == "*") return true;
  }
  return false;
}

std::string Principal::AgentNode() const {
  if (name.rfind(kAgentPrefix, 0) != 0) return "";
  for (const auto& b : bindings) {
    if (b.role() == "agent") return name.substr(sizeof(kAgentPrefix) - 1);
  }
  return "";
}

bool Principal::Allowed(Verb verb, const std::string& kind, const std::string& ns) const {
  for (const auto& b : bindings) {
    if (b.namespace_() != "*" && b.namespace_() != ns) continue;
    if (b.role() == "agent") {
      // What a node agent needs and nothing more (docs/api.md "Agent credentials"): its
      // informers list and watch instances and operations; its providers read images and
      // volumes by name; it writes its Node and the status of what runs on it.
      if (kind == "computeinstances" || kind == "operations") {
        if (IsRead(verb) || verb == Verb::kUpdateStatus) return true;
      }
      if ((kind == "images" || kind == "volumes") && verb == Verb::kGet) return true;
      // The LoadBalancer of a RegionService its instances belong to: an L4 one's VIP goes on
      // the member's loopback (agent/port_wiring.h).
      if (kind == "loadbalancers" && verb == Verb::kGet) return true;
      // prismnet (docs/networking.md): its Ports (lists and watches must select its node, see
      // agent_scope.h) and their status (CheckAgentScope limits writes to Ports on its node);
      // the Subnets, Vpcs and SecurityGroups its instances use, by name only: a list would
      // show every tenant's networks.
      if (kind == "ports" && (IsRead(verb) || verb == Verb::kUpdateStatus)) return true;
      if ((kind == "subnets" || kind == "vpcs" || kind == "securitygroups") && verb == Verb::kGet) {
        return true;
      }
      if (kind == "nodes" && (verb == Verb::kGet || verb == Verb::kCreate ||
                              verb == Verb::kUpdate || verb == Verb::kUpdateStatus)) {
        return true;
      }
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
    if (IsIdentityKind(kind) && !IsRead(verb)) {
      need = 3;
      if (kind == "quotas" && b.namespace_() != "*") continue;
    }
    if (rank >= need) return true;
  }
  for (const auto& g : custom) {
    if ((g.ns == "*" || g.ns == ns) && g.Permits(verb, kind)) return true;
  }
  return false;
}

std::vector<std::string> Principal::ReadableNamespaces(const std::string& kind) const {
  std::vector<std::string> out;
  for (const auto& b : bindings) {
    if (b.namespace_() == "*") return {"*"};
    out.push_back(b.namespace_());
  }
  for (const auto& g : custom) {
    if (!kind.empty() && !g.Permits(Verb::kList, kind) && !g.Permits(Verb::kWatch, kind)) continue;
    if (g.ns == "*") return {"*"};
    if (std::find(out.begin(), out.end(), g.ns) == out.end()) out.push_back(g.ns);
  }
  return out;
}

Status CheckAgentScope(const Principal& who, Verb verb, const std::string& kind,
                       const std::string& name, const std::string& agent_id) {
  const std::string node = who.AgentNode();
  if (node.empty()) return absl::OkStatus();
  if (kind == "nodes") {
    if (name == node) return absl::OkStatus();
    return absl::PermissionDeniedError("the agent of node '" + node + "' may not " +
                                       (IsRead(verb) ? "read" : "write") + " node '" + name + "'");
  }
  if (IsRead(verb) || agent_id == node) return absl::OkStatus();
  return absl::PermissionDeniedError("the agent of node '" + node + "' may not write " + kind +
                                     "/" + name + ": it is not assigned to that node");
}

Status Authenticator::Load() {
  auto r = store_->Range(kTokenPrefix, {.end = store::PrefixEnd(kTokenPrefix)});
  if (!r.ok()) return r.status();
  std::lock_guard lock(mu_);
  for (const auto& kv : r->kvs) {
    auth::Token t;
    if (!t.ParseFromString(kv.value)) continue;
    if (t.purpose().empty()) t.set_purpose(InferPurpose(t));
    tokens_[t.id()] = t;
  }
  loaded_revision_ = r->revision;
  auto rv = store_->Range(kRevocationPrefix, {.end = store::PrefixEnd(kRevocationPrefix)});
  if (!rv.ok()) return rv.status();
  for (const auto& kv : rv->kvs) {
    revoked_nodes_[kv.key.substr(sizeof(kRevocationPrefix) - 1)] = kv.value;
  }
  revocations_revision_ = rv->revision;
  return absl::OkStatus();
}

void Authenticator::ApplyRevocation(const std::string& key, const std::string& value,
                                    bool deleted) {
  const std::string node = key.substr(sizeof(kRevocationPrefix) - 1);
  if (deleted) {
    revoked_nodes_.erase(node);
  } else {
    revoked_nodes_[node] = value;
  }
}

Status Authenticator::Follow() {
  auto on_events = [this](const std::vector<store::WatchEvent>& events) {
    std::vector<std::pair<std::string, std::string>> cut;  // token id, why
    {
      std::lock_guard lock(mu_);
      for (const auto& e : events) {
        const std::string id = e.kv.key.substr(std::string(kTokenPrefix).size());
        if (e.type == store::WatchEvent::Type::kDelete) {
          tokens_.erase(id);
          cut.emplace_back(id, "token " + id + " was deleted");
          continue;
        }
        auth::Token t;
        if (!t.ParseFromString(e.kv.value)) continue;
        if (t.purpose().empty()) t.set_purpose(InferPurpose(t));
        if (t.revoked()) cut.emplace_back(id, "token " + id + " was revoked at " + t.revoked_at());
        tokens_[t.id()] = t;
      }
    }
    for (const auto& [id, why] : cut) CutStreams(id, "", why);
  };
  auto on_error = [](const Status& st) {
    spdlog::error("auth: no longer following token changes of other servers: {}", st.ToString());
  };
  PHOTON_ASSIGN_OR_RETURN(follow_, store_->Watch(kTokenPrefix, store::PrefixEnd(kTokenPrefix),
                                                 loaded_revision_ + 1, on_events, on_error));
  // Node revocations another server records refuse the node here too, at once.
  auto on_revocations = [this](const std::vector<store::WatchEvent>& events) {
    {
      std::lock_guard lock(mu_);
      for (const auto& e : events) {
        ApplyRevocation(e.kv.key, e.kv.value, e.type == store::WatchEvent::Type::kDelete);
      }
    }
    for (const auto& e : events) {
      if (e.type == store::WatchEvent::Type::kDelete) continue;
      const std::string node = e.kv.key.substr(sizeof(kRevocationPrefix) - 1);
      CutStreams("", node, "node '" + node + "' was revoked at " + e.kv.value);
    }
  };
  PHOTON_ASSIGN_OR_RETURN(follow_revocations_,
                          store_->Watch(kRevocationPrefix, store::PrefixEnd(kRevocationPrefix),
                                        revocations_revision_ + 1, on_revocations, on_error));
  return absl::OkStatus();
}

Status Authenticator::Put(const auth::Token& t) {
  std::string value;
  t.SerializeToString(&value);
  auto put = store_->Put(kTokenPrefix + t.id(), value);
  if (!put.ok()) return put.status();
  {
    std::lock_guard lock(mu_);
    tokens_[t.id()] = t;
  }
  if (t.revoked()) CutStreams(t.id(), "", "token " + t.id() + " was revoked at " + t.revoked_at());
  return absl::OkStatus();
}

StatusOr<std::string> Authenticator::Mint(const std::string& principal,
                                          const std::vector<auth::RoleBinding>& bindings,
                                          const std::string& purpose, std::chrono::seconds ttl) {
  auth::Token t;
  t.set_id(RandomHex(8));
  std::string secret = RandomHex(24);
  t.set_principal(principal);
  t.set_secret_sha256(Sha256Hex(secret));
  for (const auto& b : bindings) *t.add_bindings() = b;
  const int64_t now = NowMs();
  t.set_created_at(FormatRfc3339(now));
  t.set_purpose(purpose);
  if (ttl.count() > 0) {
    t.set_expires_at_unix_ms(now + ttl.count() * 1000);
    t.set_expires_at(FormatRfc3339(t.expires_at_unix_ms()));
  }
  PHOTON_RETURN_IF_ERROR(Put(t));
  return "pct_" + t.id() + "_" + secret;
}

StatusOr<std::string> Authenticator::CreateToken(const std::string& principal,
                                                 const std::vector<auth::RoleBinding>& bindings,
                                                 std::chrono::seconds ttl) {
  if (principal.empty()) return absl::InvalidArgumentError("principal: required");
  if (principal.rfind(kAgentPrefix, 0) == 0) {
    return absl::InvalidArgumentError(
        "principal: 'node:' names are for agent credentials, "
        "which only POST /v1/join mints");
  }
  if (bindings.empty()) return absl::InvalidArgumentError("bindings: at least one required");
  bool join = false;
  for (const auto& b : bindings) {
    if (b.role() != "viewer" && b.role() != "editor" && b.role() != "admin" && b.role() != "join") {
      return absl::InvalidArgumentError(
          "bindings.role: '" + b.role() +
          "' is not one of viewer, editor, admin, join (agent credentials come from /v1/join)");
    }
    if (b.namespace_().empty()) return absl::InvalidArgumentError("bindings.namespace: required");
    if (b.role() == "join" && b.namespace_() != "*") {
      return absl::InvalidArgumentError("bindings.namespace: a join token's must be \"*\"");
    }
    join |= b.role() == "join";
  }
  if (join && bindings.size() != 1) {
    return absl::InvalidArgumentError("bindings: a join token carries the join role only");
  }
  if (ttl.count() < 0) return absl::InvalidArgumentError("ttlSeconds: must not be negative");
  if (ttl.count() == 0) ttl = join ? options_.join_token_ttl : options_.user_token_ttl;
  return Mint(principal, bindings, join ? "join" : "user", ttl);
}

std::vector<auth::TokenInfo> Authenticator::List() const {
  const int64_t now = NowMs();
  std::vector<auth::TokenInfo> out;
  std::lock_guard lock(mu_);
  for (const auto& [id, t] : tokens_) out.push_back(Info(t, now));
  std::stable_sort(out.begin(), out.end(), [](const auth::TokenInfo& a, const auth::TokenInfo& b) {
    return a.created_at() < b.created_at();
  });
  return out;
}

StatusOr<auth::TokenInfo> Authenticator::Revoke(const std::string& id) {
  auth::Token t;
  {
    std::lock_guard lock(mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end()) return absl::NotFoundError("token '" + id + "' not found");
    t = it->second;
  }
  if (!t.revoked()) {
    t.set_revoked(true);
    t.set_revoked_at(FormatRfc3339(NowMs()));
    PHOTON_RETURN_IF_ERROR(Put(t));
    spdlog::info("token {} ({}) revoked", id, t.principal());
  }
  return Info(t, NowMs());
}

Status Authenticator::RevokeAll(const std::string& purpose, const std::string& principal,
                                const std::string& keep) {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, t] : tokens_) {
      if (id == keep || t.revoked() || t.purpose() != purpose) continue;
      if (!principal.empty() && t.principal() != principal) continue;
      ids.push_back(id);
    }
  }
  for (const auto& id : ids) PHOTON_RETURN_IF_ERROR(Revoke(id).status());
  return absl::OkStatus();
}

StatusOr<std::string> Authenticator::RotateAdmin() {
  std::lock_guard rotate_lock(rotate_mu_);
  auth::RoleBinding admin;
  admin.set_namespace_("*");
  admin.set_role("admin");
  PHOTON_ASSIGN_OR_RETURN(std::string token,
                          Mint("admin", {admin}, "admin", std::chrono::seconds(0)));
  const std::string id = token.substr(4, 16);
  const std::string path = options_.data_dir + "/admin.token";
  if (Status st = WriteFileAtomic(path, token + "\n", 0600); !st.ok()) {
    (void)Revoke(id);  // nobody can learn it: do not leave it valid
    return st;
  }
  // Only once the file holds the new one: a failure above leaves the old credential working.
  PHOTON_RETURN_IF_ERROR(RevokeAll("admin", "", id));
  spdlog::info("admin token {} written to {} (mode 0600); earlier admin tokens revoked", id, path);
  return token;
}

bool Authenticator::FileHoldsLiveToken(const std::string& path, const std::string& purpose) const {
  auto text = ReadFile(path);
  if (!text.ok()) return false;
  auto who = Authenticate("Bearer " + Strip(*text));
  if (!who.ok()) return false;
  std::lock_guard lock(mu_);
  auto it = tokens_.find(who->token_id);
  // A join token from before join tokens expired is replaced by one that does.
  return it != tokens_.end() && it->second.purpose() == purpose &&
         (purpose != "join" || it->second.expires_at_unix_ms() != 0);
}

Status Authenticator::Bootstrap() {
  const std::string admin_path = options_.data_dir + "/admin.token";
  const std::string join_path = options_.data_dir + "/join.token";
  if (!options_.join_admin_token.empty() && !FileHoldsLiveToken(admin_path, "admin")) {
    PHOTON_RETURN_IF_ERROR(WriteFileAtomic(admin_path, options_.join_admin_token + "\n", 0600));
    if (!FileHoldsLiveToken(admin_path, "admin")) {
      std::error_code ignored;
      std::filesystem::remove(admin_path, ignored);
      return absl::UnauthenticatedError(
          "join: the token given is not a live admin token of the control plane on this store");
    }
    spdlog::info("bootstrap: joined the control plane; its admin token is in {}", admin_path);
  }
  if (!FileHoldsLiveToken(admin_path, "admin")) {
    PHOTON_RETURN_IF_ERROR(RotateAdmin().status());
    spdlog::info("bootstrap: use the admin token with: export PHOTON_TOKEN=$(cat {})", admin_path);
  }
  if (!FileHoldsLiveToken(join_path, "join")) {
    // The one it replaces may still be valid (written before join tokens expired): no longer.
    if (auto old = ReadFile(join_path); old.ok() && Strip(*old).size() > 20) {
      (void)Revoke(Strip(*old).substr(4, 16));  // NOT_FOUND for a token the store never had
    }
    auth::RoleBinding join;
    join.set_namespace_("*");
    join.set_role("join");
    PHOTON_ASSIGN_OR_RETURN(std::string token,
                            Mint("agent-join", {join}, "join", options_.join_token_ttl));
    PHOTON_RETURN_IF_ERROR(WriteFileAtomic(join_path, token + "\n", 0600));
    spdlog::info("bootstrap: agent join token written to {} (mode 0600), valid for {} s", join_path,
                 options_.join_token_ttl.count());
  }
  return absl::OkStatus();
}

StatusOr<Principal> Authenticator::Authenticate(const std::string& header) const {
  static const std::string kBearer = "Bearer ";
  if (header.empty()) {
    return absl::UnauthenticatedError("missing Authorization: Bearer token");
  }
  if (header.compare(0, kBearer.size(), kBearer) != 0) {
    return absl::UnauthenticatedError("Authorization header is not a Bearer token");
  }
  std::string purpose;
  PHOTON_ASSIGN_OR_RETURN(Principal p, Verify(Strip(header.substr(kBearer.size())), &purpose));
  if (purpose == "refresh") {
    return absl::UnauthenticatedError("token " + p.token_id +
                                      " is a refresh token: exchange it at /v1/auth/refresh");
  }
  if ((purpose == "access" || purpose == "serviceaccount") && resolver_) {
    PHOTON_RETURN_IF_ERROR(resolver_(&p));
  }
  return p;
}

StatusOr<Principal> Authenticator::VerifyRefresh(const std::string& token) const {
  std::string purpose;
  PHOTON_ASSIGN_OR_RETURN(Principal p, Verify(Strip(token), &purpose));
  if (purpose != "refresh") return absl::UnauthenticatedError("not a refresh token");
  return p;
}

Status Authenticator::RevokePrincipal(const std::string& principal, const std::string& purpose) {
  if (!purpose.empty()) return RevokeAll(purpose, principal, "");
  for (const char* p : {"access", "refresh", "serviceaccount", "user"}) {
    PHOTON_RETURN_IF_ERROR(RevokeAll(p, principal, ""));
  }
  return absl::OkStatus();
}

StatusOr<Principal> Authenticator::Verify(const std::string& token, std::string* purpose) const {
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
  // Reasons only for a caller that proved it holds the secret.
  const auth::Token& t = it->second;
  if (t.revoked()) {
    return absl::UnauthenticatedError("token " + id + " was revoked at " + t.revoked_at());
  }
  if (Expired(t, NowMs())) {
    return absl::UnauthenticatedError("token " + id + " expired at " + t.expires_at());
  }
  if (t.purpose() == "agent") {
    const std::string node = t.principal().substr(sizeof(kAgentPrefix) - 1);
    if (auto r = revoked_nodes_.find(node); r != revoked_nodes_.end()) {
      return absl::UnauthenticatedError("node '" + node + "' was revoked at " + r->second);
    }
    // An agent with a certificate uses only the certificate: a stolen token is worth nothing.
    if (!ca_pem_.empty()) {
      return absl::UnauthenticatedError(
          "this server takes no agent tokens: agents authenticate with the client certificate "
          "they get when they join (photon-agent does over https)");
    }
  }
  Principal p;
  p.name = t.principal();
  p.token_id = id;
  *purpose = t.purpose();
  p.bindings.assign(t.bindings().begin(), t.bindings().end());
  return p;
}

Status Authenticator::NodeHeldByLiveAgent(const std::string& node) const {
  auto r = store_->Range(RegistryKey("nodes", "system", node));
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) return absl::OkStatus();
  node::Node n;
  if (!n.ParseFromString(r->kvs[0].value)) return absl::DataLossError("corrupt node " + node);
  const auto& st = n.node_status();
  const int64_t beat = ParseRfc3339Ms(st.last_heartbeat());
  if (st.condition() == node::NodeStatus::DOWN || beat == 0 ||
      NowMs() - beat >= options_.node_down_after.count()) {
    return absl::OkStatus();  // nobody holds it: a re-join takes it over
  }
  return absl::AlreadyExistsError(
      "node '" + node + "' is held by a live agent (last heartbeat " + st.last_heartbeat() +
      "); a join for it succeeds once that agent has been silent for " +
      std::to_string(options_.node_down_after.count() / 1000) + " s or the node is DOWN");
}

Status Authenticator::MayJoin(const Principal& who, const std::string& node) const {
  bool may_join = false;
  for (const auto& b : who.bindings)
    may_join |= b.role() == "join" || (b.role() == "admin" && b.namespace_() == "*");
  if (!may_join) return absl::PermissionDeniedError("only a join token may register a node");
  std::lock_guard lock(mu_);
  if (auto r = revoked_nodes_.find(node); r != revoked_nodes_.end()) {
    return absl::PermissionDeniedError("node '" + node + "' was revoked at " + r->second +
                                       ": an admin lifts that with photon node unrevoke " + node);
  }
  return absl::OkStatus();
}

StatusOr<std::string> Authenticator::Join(const Principal& who, const std::string& node) {
  PHOTON_RETURN_IF_ERROR(MayJoin(who, node));
  if (!ca_pem_.empty()) {
    return absl::InvalidArgumentError(
        "csr: required: this server gives agents certificates, not tokens (send "
        "{\"node\":NAME,\"csr\":PEM}; photon-agent does over https)");
  }
  std::lock_guard join_lock(join_mu_);
  PHOTON_RETURN_IF_ERROR(NodeHeldByLiveAgent(node));
  auth::RoleBinding agent;
  agent.set_namespace_("*");
  agent.set_role("agent");
  const std::string principal = kAgentPrefix + node;
  PHOTON_ASSIGN_OR_RETURN(std::string token,
                          Mint(principal, {agent}, "agent", std::chrono::seconds(0)));
  // One credential per node: the one from an earlier join stops working.
  PHOTON_RETURN_IF_ERROR(RevokeAll("agent", principal, token.substr(4, 16)));
  return token;
}

Status Authenticator::SetNodeCa(const TlsFiles& ca) {
  PHOTON_ASSIGN_OR_RETURN(std::string pem, ReadFile(ca.ca_cert));
  PHOTON_ASSIGN_OR_RETURN(std::string hash, PublicKeyHash(pem));
  if (!std::filesystem::exists(ca.ca_key)) {
    return absl::FailedPreconditionError("agent certificates: the CA key " + ca.ca_key +
                                         " is missing");
  }
  ca_files_ = ca;
  ca_pem_ = std::move(pem);
  ca_hash_ = std::move(hash);
  return absl::OkStatus();
}

StatusOr<NodeCertificate> Authenticator::Sign(const std::string& node, const std::string& csr) {
  if (ca_pem_.empty()) {
    return absl::FailedPreconditionError(
        "this server has no built-in CA to sign agent certificates with (it runs without TLS "
        "or with --tls-cert): join without a csr");
  }
  NodeCertificate out;
  PHOTON_ASSIGN_OR_RETURN(out.cert_pem, SignClientCertificate(ca_files_, csr, kAgentPrefix + node,
                                                              options_.agent_cert_ttl.count()));
  PHOTON_ASSIGN_OR_RETURN(CertificateInfo info, InspectCertificate(out.cert_pem));
  out.not_after_unix = info.not_after_unix;
  out.ca_pem = ca_pem_;
  out.ca_hash = ca_hash_;
  return out;
}

StatusOr<NodeCertificate> Authenticator::JoinWithCsr(const Principal& who, const std::string& node,
                                                     const std::string& csr_pem) {
  PHOTON_RETURN_IF_ERROR(MayJoin(who, node));
  std::lock_guard join_lock(join_mu_);
  PHOTON_RETURN_IF_ERROR(NodeHeldByLiveAgent(node));
  PHOTON_ASSIGN_OR_RETURN(NodeCertificate cert, Sign(node, csr_pem));
  // The node's identity is its certificate from now on: tokens of earlier joins stop working.
  PHOTON_RETURN_IF_ERROR(RevokeAll("agent", kAgentPrefix + node, ""));
  spdlog::info("node {} joined with a certificate valid until {}", node,
               FormatRfc3339(cert.not_after_unix * 1000));
  return cert;
}

StatusOr<NodeCertificate> Authenticator::RenewCertificate(const Principal& who,
                                                          const std::string& csr_pem) {
  const std::string node = who.AgentNode();
  if (node.empty() || who.token_id.rfind(kCertTokenPrefix, 0) != 0) {
    return absl::PermissionDeniedError(
        "only an agent authenticated by its certificate renews it (others join)");
  }
  return Sign(node, csr_pem);
}

StatusOr<Principal> Authenticator::AuthenticateCertificate(const PeerCertificate& cert) const {
  if (!cert.verify_error.empty()) {
    return absl::UnauthenticatedError("client certificate refused: " + cert.verify_error);
  }
  if (ca_pem_.empty()) {
    return absl::UnauthenticatedError("this server takes no client certificates");
  }
  if (cert.common_name.rfind(kAgentPrefix, 0) != 0) {
    return absl::UnauthenticatedError("client certificate '" + cert.common_name +
                                      "' names no node");
  }
  // The handshake checked the dates then; a kept-alive connection may outlive them.
  if (cert.not_after_unix * 1000 <= NowMs()) {
    return absl::UnauthenticatedError("client certificate of " + cert.common_name + " expired at " +
                                      FormatRfc3339(cert.not_after_unix * 1000));
  }
  const std::string node = cert.common_name.substr(sizeof(kAgentPrefix) - 1);
  {
    std::lock_guard lock(mu_);
    if (auto r = revoked_nodes_.find(node); r != revoked_nodes_.end()) {
      return absl::UnauthenticatedError("node '" + node + "' was revoked at " + r->second);
    }
  }
  Principal p;
  p.name = cert.common_name;
  p.token_id = kCertTokenPrefix + cert.serial_hex.substr(0, 16);
  auth::RoleBinding agent;
  agent.set_namespace_("*");
  agent.set_role("agent");
  p.bindings.push_back(agent);
  return p;
}

StatusOr<std::string> Authenticator::RevokeNode(const std::string& node) {
  const std::string at = FormatRfc3339(NowMs());
  auto put = store_->Put(kRevocationPrefix + node, at);
  if (!put.ok()) return put.status();
  {
    std::lock_guard lock(mu_);
    revoked_nodes_[node] = at;
  }
  CutStreams("", node, "node '" + node + "' was revoked at " + at);
  PHOTON_RETURN_IF_ERROR(RevokeAll("agent", kAgentPrefix + node, ""));
  spdlog::info("node {} revoked: its certificates and tokens are refused", node);
  return at;
}

Status Authenticator::UnrevokeNode(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    if (!revoked_nodes_.count(node)) {
      return absl::NotFoundError("node '" + node + "' is not revoked");
    }
  }
  auto del = store_->Delete(kRevocationPrefix + node);
  if (!del.ok()) return del.status();
  std::lock_guard lock(mu_);
  revoked_nodes_.erase(node);
  return absl::OkStatus();
}

StatusOr<std::pair<std::string, std::string>> Authenticator::ExportCa(const Principal& who) const {
  if (!who.IsAdmin() || who.token_id.rfind(kCertTokenPrefix, 0) == 0) {
    return absl::PermissionDeniedError("only a cluster admin's token exports the CA key");
  }
  if (ca_pem_.empty()) {
    return absl::FailedPreconditionError(
        "this server has no built-in CA (it runs without TLS or with --tls-cert)");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string key, ReadFile(ca_files_.ca_key));
  spdlog::warn("auth: the CA key was exported to {} (a server joining the control plane)",
               who.name);
  return std::make_pair(ca_pem_, std::move(key));
}

uint64_t Authenticator::CutOnRevocation(const Principal& who, StreamCut cut) {
  uint64_t id = 0;
  {
    std::lock_guard lock(streams_mu_);
    id = next_stream_++;
    streams_[id] = OpenStream{who.token_id, who.AgentNode(), cut};
  }
  // A revocation between the stream's authentication and now found no stream to cut.
  std::string why;
  {
    std::lock_guard lock(mu_);
    if (auto t = tokens_.find(who.token_id); t != tokens_.end() && t->second.revoked()) {
      why = "token " + who.token_id + " was revoked at " + t->second.revoked_at();
    }
    const std::string node = who.AgentNode();
    if (auto r = revoked_nodes_.find(node); !node.empty() && r != revoked_nodes_.end()) {
      why = "node '" + node + "' was revoked at " + r->second;
    }
  }
  if (!why.empty()) {
    ForgetStream(id);
    cut(why);
  }
  return id;
}

void Authenticator::ForgetStream(uint64_t id) {
  std::lock_guard lock(streams_mu_);
  streams_.erase(id);
}

void Authenticator::CutStreams(const std::string& token_id, const std::string& node,
                               const std::string& reason) {
  std::vector<StreamCut> cuts;
  {
    std::lock_guard lock(streams_mu_);
    for (auto it = streams_.begin(); it != streams_.end();) {
      const bool hit = (!token_id.empty() && it->second.token_id == token_id) ||
                       (!node.empty() && it->second.node == node);
      if (!hit) {
        ++it;
        continue;
      }
      cuts.push_back(std::move(it->second.cut));
      it = streams_.erase(it);
    }
  }
  if (!cuts.empty()) spdlog::info("auth: {} open stream(s) ended: {}", cuts.size(), reason);
  for (auto& cut : cuts) cut(reason);
}

std::map<std::string, std::string> Authenticator::NodeRevocations() const {
  std::lock_guard lock(mu_);
  return revoked_nodes_;
}

}  // namespace photon::server
