#include "server/identity/directory.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/util.h"
#include "server/identity/password.h"
#include "server/kinds.h"
#include "server/object_util.h"

namespace photon::server::identity {

namespace {

constexpr char kPrefix[] = "/identity/";

const std::vector<IdentityKind>& IdentityKinds() {
  static const std::vector<IdentityKind> kinds = {{"users", false},
                                                  {"groups", false},
                                                  {"serviceaccounts", true},
                                                  {"roles", false},
                                                  {"rolebindings", false}};
  return kinds;
}

constexpr Verb kRoleVerbs[] = {Verb::kGet,    Verb::kList,         Verb::kWatch,  Verb::kCreate,
                               Verb::kUpdate, Verb::kUpdateStatus, Verb::kDelete, Verb::kAction};

bool IsBuiltinRole(const std::string& role) {
  return role == "viewer" || role == "editor" || role == "admin";
}

bool Reserved(const std::string& role) {
  return IsBuiltinRole(role) || role == "agent" || role == "join";
}

using VerbMap = std::map<std::string, uint32_t>;

// The verbs × kinds of a role's rules (validated when it was written).
std::shared_ptr<const VerbMap> CompileRules(const json& rules) {
  auto out = std::make_shared<VerbMap>();
  for (const auto& rule : rules) {
    uint32_t bits = 0;
    for (const auto& v : rule["verbs"]) {
      if (v == "*") {
        for (Verb verb : kRoleVerbs) bits |= 1u << static_cast<int>(verb);
      } else if (auto verb = ParseVerb(v.get<std::string>()); verb.ok()) {
        bits |= 1u << static_cast<int>(*verb);
      }
    }
    for (const auto& k : rule["kinds"]) (*out)[k.get<std::string>()] |= bits;
  }
  return out;
}

Status NotAllowedKeys(const json& obj, const std::string& where,
                      const std::vector<std::string>& allowed) {
  for (const auto& [k, v] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return absl::InvalidArgumentError(where + k + ": unknown field (known: " + list + ")");
    }
  }
  return absl::OkStatus();
}

StatusOr<std::vector<std::string>> StringArray(const json& spec, const std::string& field,
                                               bool required) {
  std::vector<std::string> out;
  if (!spec.contains(field)) {
    if (required) return absl::InvalidArgumentError("spec." + field + ": required");
    return out;
  }
  const json& a = spec[field];
  if (!a.is_array()) return absl::InvalidArgumentError("spec." + field + ": want a list");
  for (const auto& e : a) {
    if (!e.is_string()) return absl::InvalidArgumentError("spec." + field + ": want strings");
    out.push_back(e.get<std::string>());
  }
  if (required && out.empty()) return absl::InvalidArgumentError("spec." + field + ": empty");
  return out;
}

// "user:NAME", "group:NAME" or "serviceaccount:NS/NAME".
Status ValidateSubject(const std::string& s) {
  const std::string bad =
      "spec.subjects: '" + s + "' is not user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME";
  size_t colon = s.find(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(bad);
  std::string type = s.substr(0, colon), rest = s.substr(colon + 1);
  if (type == "user" || type == "group") {
    return ValidateName("spec.subjects", rest).ok() ? absl::OkStatus()
                                                    : absl::InvalidArgumentError(bad);
  }
  if (type != "serviceaccount") return absl::InvalidArgumentError(bad);
  size_t slash = rest.find('/');
  if (slash == std::string::npos || !ValidateName("ns", rest.substr(0, slash)).ok() ||
      !ValidateName("name", rest.substr(slash + 1)).ok()) {
    return absl::InvalidArgumentError(bad);
  }
  return absl::OkStatus();
}

}  // namespace

struct Directory::Snapshot {
  struct Binding {
    std::string ns, role;
    std::shared_ptr<const VerbMap> custom;  // null for a built-in role
  };
  std::map<std::string, std::string> users;                   // enabled users: name → hash
  std::map<std::string, std::vector<std::string>> groups_of;  // user → its groups
  std::set<std::string> serviceaccounts;                      // "ns/name"
  std::map<std::string, std::shared_ptr<const VerbMap>> roles;
  std::map<std::string, std::vector<Binding>> by_subject;
};

StatusOr<Verb> ParseVerb(const std::string& name) {
  for (Verb v : kRoleVerbs) {
    if (name == VerbName(v)) return v;
  }
  return absl::InvalidArgumentError(
      "verb: '" + name +
      "' is not one of get, list, watch, create, update, update-status, delete, action");
}

const char* VerbName(Verb verb) {
  switch (verb) {
    case Verb::kGet:
      return "get";
    case Verb::kList:
      return "list";
    case Verb::kWatch:
      return "watch";
    case Verb::kCreate:
      return "create";
    case Verb::kUpdate:
      return "update";
    case Verb::kUpdateStatus:
      return "update-status";
    case Verb::kDelete:
      return "delete";
    case Verb::kAction:
      return "action";
    case Verb::kAdmin:
      return "admin";
  }
  return "?";
}

const std::vector<std::string>& RoleKinds() {
  static const std::vector<std::string> kinds = [] {
    std::vector<std::string> out;
    for (const auto& k : AllKinds()) out.push_back(k.plural);
    for (const auto& k : IdentityKinds()) out.push_back(k.plural);
    out.push_back("quotas");
    return out;
  }();
  return kinds;
}

StatusOr<std::string> CanonicalKind(const std::string& name) {
  if (name == "*") return name;
  if (const KindInfo* k = FindKind(name)) return k->plural;
  for (const auto& k : RoleKinds()) {
    if (name == k || name + "s" == k) return k;
  }
  std::string list;
  for (const auto& k : RoleKinds()) list += (list.empty() ? "" : ", ") + k;
  return absl::InvalidArgumentError("kind: '" + name + "' is not a kind (known: " + list + ")");
}

const IdentityKind* FindIdentityKind(const std::string& plural) {
  for (const auto& k : IdentityKinds()) {
    if (k.plural == plural) return &k;
  }
  return nullptr;
}

std::string Directory::Key(const IdentityKind& kind, const std::string& ns,
                           const std::string& name) {
  return kPrefix + kind.plural + "/" + (kind.namespaced ? ns + "/" : "") + name;
}

std::string Directory::AuthzNamespace(const IdentityKind& kind, const json& object) {
  if (kind.namespaced) return object["metadata"].value("namespace", "");
  if (kind.plural == "rolebindings") return object["spec"].value("namespace", "*");
  return "*";
}

json Directory::Public(const IdentityKind& kind, json object) {
  if (kind.plural == "users" && object.contains("spec")) object["spec"].erase("passwordHash");
  return object;
}

Status Directory::Load() {
  auto r = store_->Range(kPrefix, {.end = store::PrefixEnd(kPrefix)});
  if (!r.ok()) return r.status();
  std::lock_guard lock(mu_);
  for (const auto& kv : r->kvs) {
    auto j = Parse(kv.value);
    // Everything below reads metadata and spec without checking: refuse a start without them.
    if (j.is_null()) {
      return absl::DataLossError("identity object " + kv.key +
                                 " is not a JSON object with metadata and spec");
    }
    objects_[kv.key] = std::move(j);
  }
  loaded_revision_ = r->revision;
  Rebuild();
  return absl::OkStatus();
}

json Directory::Parse(const std::string& value) {
  auto j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("metadata") || !j["metadata"].is_object() ||
      !j.contains("spec") || !j["spec"].is_object()) {
    return nullptr;
  }
  return j;
}

Status Directory::Follow() {
  auto on_events = [this](const std::vector<store::WatchEvent>& events) {
    std::lock_guard lock(mu_);
    for (const auto& e : events) {
      if (e.type == store::WatchEvent::Type::kDelete) {
        objects_.erase(e.kv.key);
        continue;
      }
      auto j = Parse(e.kv.value);
      if (j.is_null()) {
        spdlog::error("identity: ignoring {} written elsewhere: not an object", e.kv.key);
        continue;
      }
      objects_[e.kv.key] = std::move(j);
    }
    Rebuild();
  };
  auto on_error = [](const Status& st) {
    spdlog::error("identity: no longer following changes of other servers: {}", st.ToString());
  };
  PHOTON_ASSIGN_OR_RETURN(follow_, store_->Watch(kPrefix, store::PrefixEnd(kPrefix),
                                                 loaded_revision_ + 1, on_events, on_error));
  return absl::OkStatus();
}

void Directory::Rebuild() {
  auto snap = std::make_shared<Snapshot>();
  auto under = [](const std::string& key, const std::string& plural) {
    return key.compare(0, sizeof(kPrefix) - 1 + plural.size() + 1, kPrefix + plural + "/") == 0;
  };
  for (const auto& [key, o] : objects_) {
    const json& spec = o["spec"];
    const std::string name = o["metadata"].value("name", "");
    if (under(key, "users") && !spec.value("disabled", false)) {
      snap->users[name] = spec.value("passwordHash", "");
    } else if (under(key, "groups")) {
      for (const auto& m : spec.value("members", json::array())) {
        snap->groups_of[m.get<std::string>()].push_back(name);
      }
    } else if (under(key, "serviceaccounts")) {
      snap->serviceaccounts.insert(o["metadata"].value("namespace", "") + "/" + name);
    } else if (under(key, "roles")) {
      snap->roles[name] = CompileRules(spec.value("rules", json::array()));
    }
  }
  for (const auto& [key, o] : objects_) {
    if (!under(key, "rolebindings")) continue;
    const json& spec = o["spec"];
    Snapshot::Binding b{spec.value("namespace", ""), spec.value("role", ""), nullptr};
    if (!IsBuiltinRole(b.role)) {
      auto it = snap->roles.find(b.role);
      if (it == snap->roles.end()) continue;  // deleting a bound role is refused
      b.custom = it->second;
    }
    for (const auto& s : spec.value("subjects", json::array())) {
      snap->by_subject[s.get<std::string>()].push_back(b);
    }
  }
  snapshot_ = std::move(snap);
}

std::shared_ptr<const Directory::Snapshot> Directory::Current() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

Status Directory::Resolve(Principal* p) const {
  auto snap = Current();
  std::vector<std::string> subjects = {p->name};
  if (p->name.rfind("user:", 0) == 0) {
    const std::string user = p->name.substr(5);
    if (!snap->users.count(user)) {
      return absl::UnauthenticatedError("user '" + user + "' was deleted or disabled");
    }
    if (auto it = snap->groups_of.find(user); it != snap->groups_of.end()) {
      p->groups = it->second;
      for (const auto& g : it->second) subjects.push_back("group:" + g);
    }
  } else if (p->name.rfind("serviceaccount:", 0) == 0) {
    if (!snap->serviceaccounts.count(p->name.substr(15))) {
      return absl::UnauthenticatedError("service account '" + p->name.substr(15) + "' was deleted");
    }
  }
  for (const auto& s : subjects) {
    auto it = snap->by_subject.find(s);
    if (it == snap->by_subject.end()) continue;
    for (const auto& b : it->second) {
      if (b.custom) {
        p->custom.push_back({b.ns, b.role, b.custom});
        continue;
      }
      auth::RoleBinding rb;
      rb.set_namespace_(b.ns);
      rb.set_role(b.role);
      p->bindings.push_back(std::move(rb));
    }
  }
  return absl::OkStatus();
}

StatusOr<std::string> Directory::PasswordHash(const std::string& user) const {
  auto snap = Current();
  auto it = snap->users.find(user);
  if (it == snap->users.end()) return absl::NotFoundError("no such user");
  return it->second;
}

bool Directory::ServiceAccountExists(const std::string& ns, const std::string& name) const {
  return Current()->serviceaccounts.count(ns + "/" + name) > 0;
}

StatusOr<json> Directory::Get(const IdentityKind& kind, const std::string& ns,
                              const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(Key(kind, ns, name));
  if (it == objects_.end()) {
    return absl::NotFoundError(kind.plural + " '" + name + "' not found" +
                               (kind.namespaced ? " in namespace '" + ns + "'" : ""));
  }
  return it->second;
}

std::vector<json> Directory::List(const IdentityKind& kind, const std::string& ns) const {
  const std::string prefix = kPrefix + kind.plural + "/" + (ns.empty() ? "" : ns + "/");
  std::vector<json> out;
  std::lock_guard lock(mu_);
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->second);
  }
  return out;
}

StatusOr<Principal> Directory::RoleHolder(const std::string& role, const std::string& ns) const {
  Principal holder;
  holder.name = "role:" + role;
  if (IsBuiltinRole(role)) {
    auth::RoleBinding b;
    b.set_namespace_(ns);
    b.set_role(role);
    holder.bindings.push_back(b);
    return holder;
  }
  auto snap = Current();
  auto it = snap->roles.find(role);
  if (it == snap->roles.end()) {
    return absl::InvalidArgumentError("spec.role: '" + role +
                                      "' is neither viewer, editor, admin nor a role");
  }
  holder.custom.push_back({ns, role, it->second});
  return holder;
}

// A binding grants no more than its author holds there (as Kubernetes' escalation check).
Status Directory::CheckGrantable(const Principal& who, const std::string& role,
                                 const std::string& ns) const {
  PHOTON_ASSIGN_OR_RETURN(Principal holder, RoleHolder(role, ns));
  for (const auto& kind : RoleKinds()) {
    for (Verb verb : kRoleVerbs) {
      if (holder.Allowed(verb, kind, ns) && !who.Allowed(verb, kind, ns)) {
        return absl::PermissionDeniedError("'" + who.name + "' may not grant role '" + role +
                                           "' in namespace '" + ns + "': it allows " +
                                           VerbName(verb) + " " + kind + " there, which '" +
                                           who.name + "' may not do");
      }
    }
  }
  return absl::OkStatus();
}

Status Directory::ValidateSpec(const Principal& who, const IdentityKind& kind,
                               const std::string& ns, json* object) const {
  json& spec = (*object)["spec"];
  if (spec.is_null()) spec = json::object();
  if (!spec.is_object()) return absl::InvalidArgumentError("spec: want an object");
  const std::string name = (*object)["metadata"].value("name", "");
  if (kind.plural == "users") {
    PHOTON_RETURN_IF_ERROR(NotAllowedKeys(spec, "spec.", {"password", "disabled"}));
    if (spec.contains("disabled") && !spec["disabled"].is_boolean()) {
      return absl::InvalidArgumentError("spec.disabled: want true or false");
    }
    if (spec.contains("password")) {
      if (!spec["password"].is_string()) {
        return absl::InvalidArgumentError("spec.password: want a string");
      }
      PHOTON_ASSIGN_OR_RETURN(std::string hash, HashPassword(spec["password"].get<std::string>()));
      spec.erase("password");
      spec["passwordHash"] = hash;
    }
    return absl::OkStatus();
  }
  if (kind.plural == "groups") {
    PHOTON_RETURN_IF_ERROR(NotAllowedKeys(spec, "spec.", {"members"}));
    PHOTON_ASSIGN_OR_RETURN(auto members, StringArray(spec, "members", false));
    for (const auto& m : members) PHOTON_RETURN_IF_ERROR(ValidateName("spec.members", m));
    spec["members"] = members;
    return absl::OkStatus();
  }
  if (kind.plural == "serviceaccounts") {
    return NotAllowedKeys(spec, "spec.", {"description"});
  }
  if (kind.plural == "roles") {
    if (Reserved(name)) {
      return absl::InvalidArgumentError("metadata.name: '" + name + "' is a built-in role");
    }
    PHOTON_RETURN_IF_ERROR(NotAllowedKeys(spec, "spec.", {"rules"}));
    if (!spec.contains("rules") || !spec["rules"].is_array() || spec["rules"].empty()) {
      return absl::InvalidArgumentError("spec.rules: want a list of {verbs: [...], kinds: [...]}");
    }
    for (auto& rule : spec["rules"]) {
      if (!rule.is_object()) return absl::InvalidArgumentError("spec.rules: want objects");
      PHOTON_RETURN_IF_ERROR(NotAllowedKeys(rule, "spec.rules[].", {"verbs", "kinds"}));
      PHOTON_ASSIGN_OR_RETURN(auto verbs, StringArray(rule, "verbs", true));
      PHOTON_ASSIGN_OR_RETURN(auto kinds, StringArray(rule, "kinds", true));
      for (const auto& v : verbs) {
        if (v != "*") PHOTON_RETURN_IF_ERROR(ParseVerb(v).status());
      }
      for (auto& k : kinds) {
        PHOTON_ASSIGN_OR_RETURN(k, CanonicalKind(k));
      }
      rule["kinds"] = kinds;
    }
    return absl::OkStatus();
  }
  // rolebindings
  PHOTON_RETURN_IF_ERROR(NotAllowedKeys(spec, "spec.", {"namespace", "role", "subjects"}));
  const std::string bns = spec.value("namespace", "");
  if (bns != "*") PHOTON_RETURN_IF_ERROR(ValidateName("spec.namespace", bns));
  if (!spec.contains("role") || !spec["role"].is_string()) {
    return absl::InvalidArgumentError("spec.role: required");
  }
  PHOTON_ASSIGN_OR_RETURN(auto subjects, StringArray(spec, "subjects", true));
  for (const auto& s : subjects) PHOTON_RETURN_IF_ERROR(ValidateSubject(s));
  (void)ns;
  return CheckGrantable(who, spec["role"].get<std::string>(), bns);
}

StatusOr<json> Directory::Put(const Principal& who, const IdentityKind& kind, const std::string& ns,
                              json object, bool replace) {
  if (!object.is_object()) return absl::InvalidArgumentError("want a JSON object");
  PHOTON_RETURN_IF_ERROR(NotAllowedKeys(object, "", {"kind", "apiVersion", "metadata", "spec"}));
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    return absl::InvalidArgumentError("metadata.name: required");
  }
  json& md = object["metadata"];
  const std::string name = md.value("name", "");
  PHOTON_RETURN_IF_ERROR(ValidateName("metadata.name", name));
  if (kind.namespaced) {
    if (md.contains("namespace") && md["namespace"] != ns) {
      return absl::InvalidArgumentError("metadata.namespace: does not match the URL's '" + ns +
                                        "'");
    }
    md["namespace"] = ns;
  } else {
    md.erase("namespace");
  }
  const std::string key = Key(kind, ns, name);
  // Hashing a password takes a while: before taking the write lock.
  PHOTON_RETURN_IF_ERROR(ValidateSpec(who, kind, ns, &object));
  std::lock_guard write_lock(write_mu_);
  json old;
  {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) old = it->second;
  }
  if (!replace && !old.is_null()) {
    return absl::AlreadyExistsError(kind.plural + " '" + name + "' already exists");
  }
  if (replace && old.is_null()) {
    return absl::NotFoundError(kind.plural + " '" + name + "' not found");
  }
  md["createdAt"] = old.is_null() ? NowRfc3339() : old["metadata"].value("createdAt", "");
  md["createdBy"] = old.is_null() ? who.name : old["metadata"].value("createdBy", "");
  md["updatedAt"] = NowRfc3339();
  if (kind.plural == "users" && !object["spec"].contains("passwordHash")) {
    if (old.is_null()) return absl::InvalidArgumentError("spec.password: required");
    object["spec"]["passwordHash"] = old["spec"].value("passwordHash", "");
  }
  auto put = store_->Put(key, object.dump());
  if (!put.ok()) return put.status();
  {
    std::lock_guard lock(mu_);
    objects_[key] = object;
    Rebuild();
  }
  if (kind.plural == "users" && object["spec"].value("disabled", false)) {
    PHOTON_RETURN_IF_ERROR(auth_->RevokePrincipal("user:" + name));
  }
  return object;
}

Status Directory::Delete(const IdentityKind& kind, const std::string& ns, const std::string& name) {
  std::lock_guard write_lock(write_mu_);
  const std::string key = Key(kind, ns, name);
  {
    std::lock_guard lock(mu_);
    if (!objects_.count(key)) {
      return absl::NotFoundError(kind.plural + " '" + name + "' not found");
    }
    if (kind.plural == "roles") {
      std::string users;
      for (const auto& [k, o] : objects_) {
        if (k.rfind(std::string(kPrefix) + "rolebindings/", 0) == 0 &&
            o["spec"].value("role", "") == name) {
          users += (users.empty() ? "" : ", ") + o["metadata"].value("name", "");
        }
      }
      if (!users.empty()) {
        return absl::FailedPreconditionError("role '" + name +
                                             "' is still bound by rolebindings: " + users);
      }
    }
  }
  auto del = store_->Delete(key);
  if (!del.ok()) return del.status();
  {
    std::lock_guard lock(mu_);
    objects_.erase(key);
    Rebuild();
  }
  if (kind.plural == "users") return auth_->RevokePrincipal("user:" + name);
  if (kind.plural == "serviceaccounts") {
    return auth_->RevokePrincipal("serviceaccount:" + ns + "/" + name);
  }
  return absl::OkStatus();
}

}  // namespace photon::server::identity
