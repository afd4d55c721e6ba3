// Identity and access (photonauth): bearer tokens with roles per namespace (project).
//
// A token is "pct_<id>_<secret>"; the store keeps only the secret's SHA-256 under
// /auth/tokens/<id>, with its expiry and revocation. Roles: viewer (read), editor (read + write
// specs and actions), admin (everything, including tokens and the audit log), agent (one per
// node, principal "node:<name>": its own Node, the status of what is placed on it, and the
// reads its node needs), join (only exchanges itself for an agent token at /v1/join).
// A binding's namespace "*" covers every namespace.
// Expired and revoked tokens stay listed (without secrets) and are refused with the reason.
// Thread-safe: tokens are cached in memory behind a mutex and written through to the store.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "common/status.h"
#include "common/tls.h"
#include "photon/auth.pb.h"
#include "store/store.h"

namespace photon::server {

enum class Verb { kGet, kList, kWatch, kCreate, kUpdate, kUpdateStatus, kDelete, kAction, kAdmin };

// A custom role granted in one namespace ("*": every namespace) by a role binding
// (server/identity). Immutable once made; shared by every principal it applies to.
struct CustomGrant {
  std::string ns;
  std::string role;
  // The verbs (bit 1 << Verb) the role allows per kind plural; kind "*" covers every kind.
  std::shared_ptr<const std::map<std::string, uint32_t>> verbs;
  bool Permits(Verb verb, const std::string& kind) const;
};

struct Principal {
  std::string name;
  std::string token_id;
  std::vector<auth::RoleBinding> bindings;
  // Users, groups and service accounts: the custom roles their role bindings grant (the
  // built-in roles they grant are in `bindings`), and the user's groups.
  std::vector<CustomGrant> custom;
  std::vector<std::string> groups;

  bool IsAdmin() const;
  // The node an agent credential belongs to; empty for every other principal.
  std::string AgentNode() const;
  // True if the principal may do `verb` on `kind` (plural) in `ns`. For agents this is the
  // kind-level half of their scope; CheckAgentScope is the object-level half.
  bool Allowed(Verb verb, const std::string& kind, const std::string& ns) const;
  // Namespaces the principal may read (`kind`: of that kind; empty: of some kind); {"*"}
  // means all.
  std::vector<std::string> ReadableNamespaces(const std::string& kind = "") const;
};

// The object-level half of an agent's scope: a Node only if it is the agent's own, and status
// writes and deletes only of objects whose metadata.agent_id is the agent's node. `agent_id`
// is that of the stored object. OK for every principal that is not an agent.
Status CheckAgentScope(const Principal& who, Verb verb, const std::string& kind,
                       const std::string& name, const std::string& agent_id);

struct AuthOptions {
  std::string data_dir;  // where admin.token lives
  std::chrono::seconds user_token_ttl{30 * 24 * 3600};
  std::chrono::seconds join_token_ttl{24 * 3600};
  // A node whose agent heartbeat is younger than this (and not DOWN) is held by a live agent.
  std::chrono::milliseconds node_down_after{60000};
  // Joining an existing control plane (docs/ha.md): one of its live admin tokens, which
  // Bootstrap writes to admin.token instead of rotating the admin token (a rotation would
  // revoke the one every client of the control plane holds).
  std::string join_admin_token;
  // How long an agent certificate is valid; agents renew at two thirds of it.
  std::chrono::seconds agent_cert_ttl{24 * 3600};
};

// A signed agent certificate, with the CA that signed it.
struct NodeCertificate {
  std::string cert_pem;
  std::string ca_pem;
  std::string ca_hash;
  int64_t not_after_unix = 0;
};

class Authenticator {
 public:
  explicit Authenticator(store::Store* store, AuthOptions options = {})
      : store_(store), options_(std::move(options)) {}

  // Loads tokens from the store.
  Status Load();
  // From then on, follows the tokens other servers on the same store mint, revoke and
  // delete (several servers on one etcd, docs/ha.md), through a store watch from the
  // revision Load read at. Call once, after Load.
  Status Follow();
  // Creates a user token (POST /v1/tokens) and returns its full text (shown once). ttl 0: the
  // default. Roles viewer, editor, admin, join (join only with namespace "*").
  StatusOr<std::string> CreateToken(const std::string& principal,
                                    const std::vector<auth::RoleBinding>& bindings,
                                    std::chrono::seconds ttl = std::chrono::seconds(0));
  // Every token, secrets left out, oldest first.
  std::vector<auth::TokenInfo> List() const;
  // Marks a token revoked; it is refused from then on. NOT_FOUND for an unknown id.
  StatusOr<auth::TokenInfo> Revoke(const std::string& id);
  // Mints a new admin credential, writes it to DATA_DIR/admin.token (0600, atomically) and
  // revokes every earlier admin.token credential. Returns the new token.
  StatusOr<std::string> RotateAdmin();
  // First start, and each start after: a fresh admin.token if the file is missing or holds no
  // valid token, and a fresh join.token (with the join TTL) likewise.
  Status Bootstrap();
  // Parses "Bearer <token>" and returns who it is; UNAUTHENTICATED otherwise, naming why
  // (unknown, expired at ..., revoked at ...). A refresh token is no bearer token.
  StatusOr<Principal> Authenticate(const std::string& authorization_header) const;
  // Completes the principal of a login or service account token (purpose "access" or
  // "serviceaccount") from the role bindings; an error refuses the token (user deleted).
  // Set before the API serves.
  using Resolver = std::function<Status(Principal*)>;
  void SetResolver(Resolver resolver) { resolver_ = std::move(resolver); }
  // A token without bindings of its own (login access and refresh tokens, service account
  // tokens): their grants come from the resolver. Returns its full text.
  StatusOr<std::string> MintSession(const std::string& principal, const std::string& purpose,
                                    std::chrono::seconds ttl) {
    return Mint(principal, {}, purpose, ttl);
  }
  // Who holds a live refresh token (purpose "refresh"); UNAUTHENTICATED otherwise.
  StatusOr<Principal> VerifyRefresh(const std::string& token) const;
  // Revokes every live token of `principal` with `purpose` (all purposes when empty).
  Status RevokePrincipal(const std::string& principal, const std::string& purpose = "");
  // For a principal holding the join role: creates the agent token of `node` and revokes the
  // node's earlier agent tokens. ALREADY_EXISTS (409) while another live agent holds the node.
  StatusOr<std::string> Join(const Principal& who, const std::string& node);

  // Agent certificates (docs/security.md "Agent certificates"). With a CA set, agents prove
  // who they are with a client certificate it signed, and agent bearer tokens are refused.
  Status SetNodeCa(const TlsFiles& ca);
  bool HasNodeCa() const { return !ca_pem_.empty(); }
  const std::string& CaPem() const { return ca_pem_; }
  const std::string& CaHash() const { return ca_hash_; }
  // Join with a certificate request: signs a certificate naming "node:NODE" (the same
  // principal and scope an agent token has) and revokes the node's agent tokens.
  StatusOr<NodeCertificate> JoinWithCsr(const Principal& who, const std::string& node,
                                        const std::string& csr_pem);
  // A new certificate for the node whose certificate authenticated `who`.
  StatusOr<NodeCertificate> RenewCertificate(const Principal& who, const std::string& csr_pem);
  // The principal of a verified client certificate; UNAUTHENTICATED naming why not (another
  // CA, expired, revoked node).
  StatusOr<Principal> AuthenticateCertificate(const PeerCertificate& cert) const;
  // Refuses the node's certificates and agent tokens from now on (kept in the store, followed
  // by every server); a join for it is refused until UnrevokeNode. Returns when.
  StatusOr<std::string> RevokeNode(const std::string& node);
  Status UnrevokeNode(const std::string& node);
  std::map<std::string, std::string> NodeRevocations() const;  // node -> revoked at
  // The CA certificate and key (PEM), for another server joining this control plane so that
  // every server signs and accepts the same agent certificates (docs/ha.md): a cluster
  // admin's bearer token only, on a server with the built-in CA.
  StatusOr<std::pair<std::string, std::string>> ExportCa(const Principal& who) const;

  // Open streams (watches) end when the credential that opened them is revoked: the token
  // (by id), or the node of an agent (its certificate or token). `cut` is called once, on any
  // thread, with the reason; it must not call back into the Authenticator. Registered after
  // the stream authenticated: a revocation that came in between cuts it at once. Returns the
  // id ForgetStream takes when the stream ends on its own.
  using StreamCut = std::function<void(const std::string& reason)>;
  uint64_t CutOnRevocation(const Principal& who, StreamCut cut);
  void ForgetStream(uint64_t id);

 private:
  // Stores a new token; returns its full text.
  StatusOr<std::string> Mint(const std::string& principal,
                             const std::vector<auth::RoleBinding>& bindings,
                             const std::string& purpose, std::chrono::seconds ttl);
  Status Put(const auth::Token& t);
  // Revokes every live token with this purpose (and principal, if not empty) except `keep`.
  Status RevokeAll(const std::string& purpose, const std::string& principal,
                   const std::string& keep);
  // OK if the token text in `path` is a live token of `purpose`.
  bool FileHoldsLiveToken(const std::string& path, const std::string& purpose) const;
  Status NodeHeldByLiveAgent(const std::string& node) const;
  // The stored token behind "pct_..." text, checked live; the token's purpose in `purpose`.
  StatusOr<Principal> Verify(const std::string& token, std::string* purpose) const;
  // Who may join `node`: the join role (or a cluster admin), for a node not revoked.
  Status MayJoin(const Principal& who, const std::string& node) const;
  StatusOr<NodeCertificate> Sign(const std::string& node, const std::string& csr_pem);
  void ApplyRevocation(const std::string& key, const std::string& value, bool deleted);
  // Ends the streams of token `token_id` (or of agent node `node`), naming `reason`.
  void CutStreams(const std::string& token_id, const std::string& node, const std::string& reason);

  store::Store* store_;
  AuthOptions options_;
  std::mutex join_mu_;    // one join at a time: the liveness check and the mint go together
  std::mutex rotate_mu_;  // one rotation at a time: two would revoke each other's token
  mutable std::mutex mu_;
  std::map<std::string, auth::Token> tokens_;  // by id
  int64_t loaded_revision_ = 0;
  std::map<std::string, std::string> revoked_nodes_;  // node -> revoked at (under mu_)
  int64_t revocations_revision_ = 0;
  TlsFiles ca_files_;
  std::string ca_pem_;
  std::string ca_hash_;
  std::unique_ptr<store::WatchHandle> follow_;  // cancelled first when this goes
  std::unique_ptr<store::WatchHandle> follow_revocations_;
  Resolver resolver_;
  struct OpenStream {
    std::string token_id;
    std::string node;
    StreamCut cut;
  };
  std::mutex streams_mu_;  // never held together with mu_
  std::map<uint64_t, OpenStream> streams_;
  uint64_t next_stream_ = 1;
};

}  // namespace photon::server
