// See request.h.
#include "server/scheduler/request.h"

#include <algorithm>

namespace photon::scheduler {

Request RequestFromInstance(const compute::ComputeInstance& ci, const std::string& group,
                            int group_size, std::shared_ptr<const compute::SchedulePolicy> policy) {
  Request r;
  r.name = ci.metadata().namespace_() + "/" + ci.metadata().name();
  r.group = group.empty() ? r.name : group;
  r.group_size = std::max(1, group_size);
  for (const auto& [k, v] : ci.metadata().labels()) r.labels.emplace(k, v);
  r.need.vcpu = ci.spec().resources().vcpu();
  r.need.memory_mb = ci.spec().resources().memory_mb();
  r.need.disk_gb = ci.spec().resources().disk_gb();
  switch (ci.spec().backend_case()) {
    case compute::ComputeInstanceSpec::kVm:
      r.driver = "vm";
      if (!ci.spec().vm().accel().empty())
        r.required_attributes["vm.accel"] = ci.spec().vm().accel();
      break;
    case compute::ComputeInstanceSpec::kContainer:
      r.driver = "container";
      break;
    case compute::ComputeInstanceSpec::kProcess:
      r.driver = "process";
      break;
    default:
      break;
  }
  if (!ci.spec().resources().cpu_arch().empty())
    r.required_attributes["cpu.arch"] = ci.spec().resources().cpu_arch();
  if (!ci.spec().network().host_network()) {
    r.port = ci.spec().has_vm() || ci.spec().network().security_groups_size() > 0
                 ? PortNeed::kPort
                 : PortNeed::kNodeNetworkWillDo;
  }
  r.policy = policy ? std::move(policy)
                    : std::make_shared<const compute::SchedulePolicy>(ci.spec().schedule());
  return r;
}

namespace {
Status ValidateFilters(const google::protobuf::RepeatedPtrField<compute::LabelFilter>& fs,
                       const std::string& field) {
  for (int i = 0; i < fs.size(); ++i) {
    const auto& f = fs[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (f.key().empty()) return absl::InvalidArgumentError(at + ".key: required");
    if (f.op() != "In" && f.op() != "NotIn" && f.op() != "Exists" && f.op() != "DoesNotExist") {
      return absl::InvalidArgumentError(at + ".op: '" + f.op() +
                                        "' is not one of In, NotIn, Exists, DoesNotExist");
    }
    if ((f.op() == "In" || f.op() == "NotIn") && f.values().empty())
      return absl::InvalidArgumentError(at + ".values: required for " + f.op());
  }
  return absl::OkStatus();
}

Status ValidateTerms(const google::protobuf::RepeatedPtrField<compute::AffinityTerm>& ts,
                     const std::string& field) {
  for (int i = 0; i < ts.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (ts[i].topology_key().empty())
      return absl::InvalidArgumentError(at + ".topologyKey: required");
    if (ts[i].weight() < 0 || ts[i].weight() > 100)
      return absl::InvalidArgumentError(at + ".weight: must be 0..100, got " +
                                        std::to_string(ts[i].weight()));
  }
  return absl::OkStatus();
}
}  // namespace

Status ValidatePolicy(const compute::SchedulePolicy& p, const std::string& prefix) {
  PHOTON_RETURN_IF_ERROR(
      ValidateFilters(p.cluster_label_filters(), prefix + ".clusterLabelFilters"));
  PHOTON_RETURN_IF_ERROR(ValidateFilters(p.node_label_filters(), prefix + ".nodeLabelFilters"));
  PHOTON_RETURN_IF_ERROR(ValidateTerms(p.affinity(), prefix + ".affinity"));
  PHOTON_RETURN_IF_ERROR(ValidateTerms(p.anti_affinity(), prefix + ".antiAffinity"));
  for (const auto& [c, w] : p.cluster_weights()) {
    if (w < 0) return absl::InvalidArgumentError(prefix + ".clusterWeights." + c + ": must be ≥ 0");
  }
  return absl::OkStatus();
}

int Context::TermCount(const Term& t, int node) const {
  if (t.selector_counts) {
    const int d = state->Domain(t.key, node);
    return d < 0 || d >= static_cast<int>(t.selector_counts->size()) ? 0 : (*t.selector_counts)[d];
  }
  return state->GroupInDomain(group, t.key, node);
}

Context MakeContext(const Request& req, ClusterState* state, const std::string& spread_key,
                    bool binpack) {
  Context c;
  c.req = &req;
  c.state = state;
  c.group = state->Group(req.group);
  c.binpack = binpack;
  auto resolve = [&](const compute::AffinityTerm& at) {
    Term t;
    t.key = state->KeyIndex(at.topology_key());
    t.hard = at.hard();
    t.weight = (at.weight() > 0 ? at.weight() : 50) / 100.0;
    if (!at.match_labels().empty()) {
      Labels sel(at.match_labels().begin(), at.match_labels().end());
      t.selector_counts = &state->SelectorCounts(sel, t.key);
    }
    return t;
  };
  bool spread_key_has_term = false;
  if (req.policy) {
    for (const auto& at : req.policy->affinity()) {
      c.affinity.push_back(resolve(at));
      spread_key_has_term |= at.topology_key() == spread_key;
    }
    for (const auto& at : req.policy->anti_affinity()) {
      c.anti_affinity.push_back(resolve(at));
      spread_key_has_term |= at.topology_key() == spread_key;
    }
    for (const auto& [name, w] : req.policy->cluster_weights())
      c.max_cluster_weight = std::max<double>(c.max_cluster_weight, w);
  }
  // Groups spread over zones by default (seed 003: AZ spread unless told otherwise); an
  // explicit term on the same key takes precedence.
  if (!spread_key.empty() && !spread_key_has_term && req.group_size > 1)
    c.spread_key = state->KeyIndex(spread_key);
  return c;
}

}  // namespace photon::scheduler
