// RegionService (seed 003 "各種リソースの管理"): a service owns computes named <rs>-<index>
// labelled photon.io/regionservice=<rs>. Scale up creates the lowest free indices, scale down
// deletes from the tail (highest index), a member deleted directly turns into replicas-1,
// and at 0 replicas the service itself is removed.
//
// Which members the controller owns is remembered in status.details["members"]: a member
// listed there that disappears (or gets a deletionTimestamp) without the controller having
// dropped it first was deleted by a user. On scale down the controller drops the names from
// the list before deleting, so its own deletes are never mistaken for a user's.
#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "server/object_util.h"
#include "server/scheduler/scheduler_controller.h"

namespace photon::server {

namespace {

std::set<std::string> SplitMembers(const std::string& s) {
  std::set<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.insert(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string JoinMembers(const std::set<std::string>& m) {
  std::string out;
  for (const auto& s : m) out += (out.empty() ? "" : ",") + s;
  return out;
}

// Index of "<rs>-<index>", -1 when the name does not have that shape.
int MemberIndex(const std::string& rs, const std::string& name) {
  if (name.size() <= rs.size() + 1 || name.compare(0, rs.size(), rs) != 0 || name[rs.size()] != '-')
    return -1;
  int v = 0;
  for (size_t i = rs.size() + 1; i < name.size(); ++i) {
    if (!isdigit(static_cast<unsigned char>(name[i])) || v > 1000000) return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

using Indexed = std::vector<std::pair<int, std::string>>;  // (member index, name), sorted

}  // namespace

using MemberList = std::vector<const compute::ComputeInstance*>;

// One service's members as the controller sees them this round.
struct RegionServiceMembers {
  std::set<std::string> owned;  // listed in status.details["members"], as this round leaves it
  std::map<std::string, const compute::ComputeInstance*> live;      // not being deleted
  std::map<std::string, const compute::ComputeInstance*> existing;  // live or being deleted
  int user_deleted = 0;  // owned members that vanished without the controller dropping them
};

namespace {

RegionServiceMembers ViewMembers(const compute::RegionService& rs, const MemberList& list) {
  RegionServiceMembers v;
  v.owned = SplitMembers(
      rs.status().details().count("members") ? rs.status().details().at("members") : "");
  for (const auto* ci : list) {
    v.existing[ci->metadata().name()] = ci;
    if (ci->metadata().deletion_timestamp().empty()) v.live[ci->metadata().name()] = ci;
  }
  // Members deleted by someone else: each one is a replica less (seed 003).
  for (auto it = v.owned.begin(); it != v.owned.end();) {
    if (!v.live.count(*it)) {
      ++v.user_deleted;
      it = v.owned.erase(it);
    } else {
      ++it;
    }
  }
  // Live members not yet listed (created in a round whose status write lost a race).
  for (const auto& [n, ci] : v.live) v.owned.insert(n);
  return v;
}

// Scale down from the tail: the live members beyond `replicas` by index leave `owned` and are
// returned; `kept` gets the others, sorted by index.
std::vector<std::string> PickVictims(const std::string& name, int replicas,
                                     RegionServiceMembers& view, Indexed* kept) {
  for (const auto& [n, ci] : view.live) kept->push_back({MemberIndex(name, n), n});
  std::sort(kept->begin(), kept->end());
  std::vector<std::string> victims;
  while (static_cast<int>(kept->size()) > replicas) {
    victims.push_back(kept->back().second);
    view.owned.erase(kept->back().second);
    kept->pop_back();
  }
  return victims;
}

// Member `n` of the service: its labels and template, scheduled under the service's policy.
std::shared_ptr<compute::ComputeInstance> NewMember(const compute::RegionService& rs,
                                                    const std::string& n) {
  auto ci = std::make_shared<compute::ComputeInstance>();
  ci->mutable_metadata()->set_name(n);
  ci->mutable_metadata()->set_namespace_(rs.metadata().namespace_());
  for (const auto& [k, v] : rs.metadata().labels())
    (*ci->mutable_metadata()->mutable_labels())[k] = v;
  (*ci->mutable_metadata()->mutable_labels())[kRegionServiceLabel] = rs.metadata().name();
  *ci->mutable_spec() = rs.spec().template_();
  // The service's policy applies across the group; replicas are the service's.
  if (rs.spec().has_schedule()) *ci->mutable_spec()->mutable_schedule() = rs.spec().schedule();
  ci->mutable_spec()->mutable_schedule()->set_replicas(0);
  return ci;
}

// The service's status (seed 003 flow: Initializing → Creating → Active, mapped onto phases)
// from the members it keeps.
void SetServiceStatus(const compute::RegionService& rs, const RegionServiceMembers& view,
                      const Indexed& kept, int replicas, bool created_any,
                      const std::string& create_error, compute::RegionService* next) {
  int running = 0, errors = 0;
  std::string first_error;  // "<member>: <its reason>", the service's ERROR names it
  for (const auto& [idx, n] : kept) {
    const auto& st = view.live.at(n)->status();
    if (st.phase() == resource::ResourceStatus::RUNNING) ++running;
    if (st.phase() == resource::ResourceStatus::ERROR && errors++ == 0) {
      first_error = n + ": " + st.message();
    }
  }
  std::string msg = std::to_string(running) + "/" + std::to_string(replicas) + " replicas running";
  resource::ResourceStatus::Phase phase;
  if (!create_error.empty()) {
    // An invalid template can never be created: say so on the service.
    phase = resource::ResourceStatus::ERROR;
    msg = create_error;
  } else if (errors > 0) {
    phase = resource::ResourceStatus::ERROR;
    msg += ", " + std::to_string(errors) + " in ERROR (" + first_error + ")";
  } else if (running == replicas && static_cast<int>(kept.size()) == replicas) {
    phase = resource::ResourceStatus::RUNNING;  // Active
  } else if (rs.status().phase() == resource::ResourceStatus::RUNNING ||
             rs.status().phase() == resource::ResourceStatus::UPDATING) {
    phase = resource::ResourceStatus::UPDATING;  // an Active service being scaled
  } else if (kept.empty() && !created_any) {
    phase = resource::ResourceStatus::PENDING;  // Initializing
  } else {
    phase = resource::ResourceStatus::CREATING;  // Creating
  }
  auto* st = next->mutable_status();
  st->set_phase(phase);
  st->set_message(msg);
  st->set_observed_generation(next->metadata().generation());
  (*st->mutable_details())["members"] = JoinMembers(view.owned);
  (*st->mutable_details())["replicas"] = std::to_string(replicas);
}

std::string ScaleMessage(int replicas, const std::vector<std::string>& created,
                         const std::vector<std::string>& victims, int user_deleted) {
  std::string msg = "replicas " + std::to_string(replicas);
  if (!created.empty()) msg += ", created " + JoinMembers({created.begin(), created.end()});
  if (!victims.empty()) msg += ", deleted " + JoinMembers({victims.begin(), victims.end()});
  if (user_deleted > 0) msg += ", " + std::to_string(user_deleted) + " member(s) deleted directly";
  return msg;
}

}  // namespace

bool SchedulerController::ReconcileRegionServices(const Snapshot& snap) {
  // Members by service ("ns/name").
  std::map<std::string, MemberList> members;
  for (const auto& ci : snap.instances) {
    auto it = ci.metadata().labels().find(kRegionServiceLabel);
    if (it == ci.metadata().labels().end()) continue;
    members[ci.metadata().namespace_() + "/" + it->second].push_back(&ci);
  }
  std::set<std::string> services;
  for (const auto& rs : snap.services)
    services.insert(rs.metadata().namespace_() + "/" + rs.metadata().name());
  bool wrote = DeleteOrphanMembers(members, services);
  for (const auto& rs : snap.services) {
    wrote |= ReconcileRegionService(
        rs, members[rs.metadata().namespace_() + "/" + rs.metadata().name()]);
  }
  return wrote;
}

bool SchedulerController::DeleteOrphanMembers(const std::map<std::string, MemberList>& members,
                                              const std::set<std::string>& services) {
  const KindInfo& ci_kind = *FindKind("computeinstances");
  bool wrote = false;
  // Members of a service that no longer exists are deleted with it.
  for (const auto& [key, list] : members) {
    if (services.count(key)) continue;
    for (const auto* ci : list) {
      if (!ci->metadata().deletion_timestamp().empty()) continue;
      auto r = resources_->Delete(SystemPrincipal(), ci_kind, ci->metadata().namespace_(),
                                  ci->metadata().name(), "");
      if (r.ok()) wrote = true;
    }
  }
  return wrote;
}

bool SchedulerController::ReconcileRegionService(const compute::RegionService& rs,
                                                 const MemberList& list) {
  const KindInfo& ci_kind = *FindKind("computeinstances");
  const KindInfo& rs_kind = *FindKind("regionservices");
  const std::string& ns = rs.metadata().namespace_();
  const std::string& name = rs.metadata().name();
  RegionServiceMembers view = ViewMembers(rs, list);
  const int replicas = std::max(0, rs.spec().replicas() - view.user_deleted);
  if (replicas == 0) return RemoveRegionService(rs, view);

  compute::RegionService next = rs;
  if (replicas != rs.spec().replicas()) {
    next.mutable_spec()->set_replicas(replicas);
    next.mutable_metadata()->set_generation(rs.metadata().generation() + 1);
  }
  Indexed kept;
  const std::vector<std::string> victims = PickVictims(name, replicas, view, &kept);
  std::vector<std::string> created;
  std::string create_error;
  bool wrote =
      CreateMembers(rs, replicas - static_cast<int>(kept.size()), view, &created, &create_error);
  SetServiceStatus(rs, view, kept, replicas, !created.empty(), create_error, &next);
  // Map fields serialize in no fixed order: compare structurally.
  if (!google::protobuf::util::MessageDifferencer::Equals(next, rs)) {
    auto w = resources_->WriteAsSystem(rs_kind, next);
    if (!w.ok()) {
      // Do not delete anything on a stale view; the next round decides again.
      if (w.code() != StatusCode::kAborted) spdlog::warn("regionservice: {}", w.ToString());
      return wrote;
    }
    wrote = true;
  }
  for (const auto& v : victims) {
    auto r = resources_->Delete(SystemPrincipal(), ci_kind, ns, v, "");
    if (r.ok()) wrote = true;
  }
  if (!created.empty() || !victims.empty() || view.user_deleted > 0) {
    Event(ns, "Scaled", "regionservices/" + ns + "/" + name,
          ScaleMessage(replicas, created, victims, view.user_deleted));
  }
  return wrote;
}

bool SchedulerController::RemoveRegionService(const compute::RegionService& rs,
                                              const RegionServiceMembers& view) {
  const std::string& ns = rs.metadata().namespace_();
  const std::string& name = rs.metadata().name();
  bool wrote = false;
  // Delete the remaining members, then the service.
  for (const auto& [n, ci] : view.live) {
    auto r = resources_->Delete(SystemPrincipal(), *FindKind("computeinstances"), ns, n, "");
    if (r.ok()) wrote = true;
  }
  auto r = resources_->Delete(SystemPrincipal(), *FindKind("regionservices"), ns, name,
                              rs.metadata().resource_version());
  if (r.ok()) {
    wrote = true;
    Event(ns, "Deleted", "regionservices/" + ns + "/" + name,
          "0 replicas: the RegionService is removed");
  }
  return wrote;
}

bool SchedulerController::CreateMembers(const compute::RegionService& rs, int need,
                                        RegionServiceMembers& view,
                                        std::vector<std::string>* created,
                                        std::string* create_error) {
  const KindInfo& ci_kind = *FindKind("computeinstances");
  const std::string& name = rs.metadata().name();
  bool wrote = false;
  // Scale up into the lowest free indices (a member still being deleted keeps its name).
  for (int i = 0; need > 0 && i < 1000000; ++i) {
    const std::string n = name + "-" + std::to_string(i);
    if (view.existing.count(n)) continue;
    auto r = resources_->Create(SystemPrincipal(), ci_kind, rs.metadata().namespace_(),
                                NewMember(rs, n));
    if (!r.ok()) {
      *create_error = "creating " + n + ": " + std::string(r.status().message());
      break;
    }
    wrote = true;
    view.owned.insert(n);
    created->push_back(n);
    --need;
  }
  return wrote;
}

}  // namespace photon::server
