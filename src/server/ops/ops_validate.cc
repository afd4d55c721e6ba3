#include "server/ops/ops_validate.h"

#include <set>

#include "server/object_util.h"
#include "server/ops/ops_internal.h"

namespace photon::server::opsengine {

namespace {

using photon::ops::EventRuleSpec;
using photon::ops::RuleAction;

Status Range(const std::string& field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return absl::InvalidArgumentError(field + ": want " + std::to_string(lo) + " to " +
                                      std::to_string(hi) + ", got " + std::to_string(v));
  }
  return absl::OkStatus();
}

// Webhooks go to plain http:// here (the receiver is an operator's endpoint on the management
// network); anything else is refused rather than sent somewhere unexpected.
Status ValidateUrl(const std::string& field, const std::string& url) {
  if (url.rfind("http://", 0) != 0 || url.size() <= 7) {
    return absl::InvalidArgumentError(field + ": want http://HOST:PORT/PATH, got '" + url + "'");
  }
  return absl::OkStatus();
}

Status ValidateAction(const std::string& field, const RuleAction& a) {
  switch (a.type()) {
    case RuleAction::CREATE_ALERT:
    case RuleAction::DELETE_ALERT:
      if (!a.url().empty()) return absl::InvalidArgumentError(field + ".url: only for API_HOOK");
      return absl::OkStatus();
    case RuleAction::API_HOOK:
      PHOTON_RETURN_IF_ERROR(ValidateUrl(field + ".url", a.url()));
      return Range(field + ".maxAttempts", a.max_attempts(), 0, 20);
    default:
      return absl::InvalidArgumentError(field +
                                        ".type: want CREATE_ALERT, DELETE_ALERT or API_HOOK");
  }
}

}  // namespace

// The built-in cluster-to-cluster check (agent/checks/cluster_check.h): its arguments.
static Status ValidateClusterCheckArgs(const photon::ops::CheckSpec& s) {
  if (s.args_size() % 2 != 0) {
    return absl::InvalidArgumentError("spec.args: --url URL --token-file PATH [--ca-file PATH]");
  }
  std::set<std::string> seen;
  for (int i = 0; i < s.args_size(); i += 2) {
    const std::string field = "spec.args[" + std::to_string(i + 1) + "]";
    const std::string& flag = s.args(i);
    const std::string& value = s.args(i + 1);
    if (!seen.insert(flag).second) {
      return absl::InvalidArgumentError("spec.args[" + std::to_string(i) + "]: " + flag +
                                        " given twice");
    }
    if (flag == "--url") {
      if (value.rfind("http://", 0) != 0 && value.rfind("https://", 0) != 0) {
        return absl::InvalidArgumentError(field + ": --url wants http(s)://HOST:PORT, got '" +
                                          value + "'");
      }
    } else if (flag == "--token-file" || flag == "--ca-file") {
      if (value.empty() || value[0] != '/') {
        return absl::InvalidArgumentError(field + ": " + flag + " wants an absolute path");
      }
    } else {
      return absl::InvalidArgumentError("spec.args[" + std::to_string(i) + "]: '" + flag +
                                        "' is not --url, --token-file or --ca-file");
    }
  }
  if (!seen.count("--url") || !seen.count("--token-file")) {
    return absl::InvalidArgumentError("spec.args: --url and --token-file are required");
  }
  return absl::OkStatus();
}

Status ValidateCheck(const photon::ops::CheckSpec& s) {
  if (s.command() == kClusterCheckCommand) {
    PHOTON_RETURN_IF_ERROR(ValidateClusterCheckArgs(s));
  } else if (s.command().empty() || s.command()[0] != '/') {
    return absl::InvalidArgumentError("spec.command: want the plugin's absolute path or '" +
                                      std::string(kClusterCheckCommand) + "', got '" + s.command() +
                                      "'");
  }
  if (s.args_size() > 64) return absl::InvalidArgumentError("spec.args: at most 64");
  for (int i = 0; i < s.args_size(); ++i) {
    if (s.args(i).find('\0') != std::string::npos || s.args(i).size() > 4096) {
      return absl::InvalidArgumentError("spec.args[" + std::to_string(i) + "]: too long or NUL");
    }
  }
  PHOTON_RETURN_IF_ERROR(Range("spec.intervalSeconds", s.interval_seconds(), 0, 86400));
  int64_t interval = s.interval_seconds() ? s.interval_seconds() : 60;
  PHOTON_RETURN_IF_ERROR(Range("spec.timeoutSeconds", s.timeout_seconds(), 0, interval));
  PHOTON_RETURN_IF_ERROR(Range("spec.occurrences", s.occurrences(), 0, 1000));
  PHOTON_RETURN_IF_ERROR(
      Range("spec.reissueDurationSeconds", s.reissue_duration_seconds(), 0, 604800));
  auto sel = LabelSelector::Parse(s.node_selector());
  if (!sel.ok())
    return absl::InvalidArgumentError("spec.nodeSelector: " + std::string(sel.status().message()));
  return absl::OkStatus();
}

Status ValidateEventRule(const EventRuleSpec& s) {
  auto sel = LabelSelector::Parse(s.match());
  if (!sel.ok())
    return absl::InvalidArgumentError("spec.match: " + std::string(sel.status().message()));
  const bool acts = s.type() == EventRuleSpec::AGGREGATE || s.type() == EventRuleSpec::ACTION;
  switch (s.type()) {
    case EventRuleSpec::FILTER:
    case EventRuleSpec::SILENCED:
    case EventRuleSpec::ACTION:
      if (!s.group_by().empty() || s.window_seconds() != 0) {
        return absl::InvalidArgumentError("spec.groupBy/windowSeconds: only for AGGREGATE rules");
      }
      break;
    case EventRuleSpec::AGGREGATE:
      PHOTON_RETURN_IF_ERROR(Range("spec.windowSeconds", s.window_seconds(), 1, 86400));
      break;
    default:
      return absl::InvalidArgumentError("spec.type: want FILTER, SILENCED, AGGREGATE or ACTION");
  }
  if (acts && s.actions().empty()) {
    return absl::InvalidArgumentError("spec.actions: required for " +
                                      EventRuleSpec::Type_Name(s.type()) + " rules");
  }
  if (!acts && !s.actions().empty()) {
    return absl::InvalidArgumentError("spec.actions: " + EventRuleSpec::Type_Name(s.type()) +
                                      " rules take no actions");
  }
  for (int i = 0; i < s.actions_size(); ++i) {
    PHOTON_RETURN_IF_ERROR(ValidateAction("spec.actions[" + std::to_string(i) + "]", s.actions(i)));
  }
  return absl::OkStatus();
}

Status ValidateOpsEvent(const event::OpsEvent& e) {
  const std::string p = "spec.opsEvent.";
  if (e.dedup_key().size() > 512) return absl::InvalidArgumentError(p + "dedupKey: at most 512");
  if (e.check().empty() && e.dedup_key().empty()) {
    return absl::InvalidArgumentError(p + "check: required (or dedupKey)");
  }
  if (e.output().size() > 4096) return absl::InvalidArgumentError(p + "output: at most 4096");
  PHOTON_RETURN_IF_ERROR(
      Range(p + "reissueDurationSeconds", e.reissue_duration_seconds(), 0, 604800));
  if (e.silenced() || !e.issued_at().empty() || e.count() || !e.rule().empty() ||
      !e.alert().empty() || e.alert_seq() || !e.maintenance().empty()) {
    return absl::InvalidArgumentError(
        p + "silenced/issuedAt/count/rule/alert/alertSeq/maintenance: written by the server");
  }
  return absl::OkStatus();
}

Status ValidateMaintenance(const photon::ops::Maintenance& m) {
  const auto& s = m.spec();
  if (s.description().empty() || s.description().size() > 2048) {
    return absl::InvalidArgumentError(
        "spec.description: required (1 to 2048 bytes): say what is done");
  }
  if (s.nodes().empty() && s.instances().empty()) {
    return absl::InvalidArgumentError("spec.nodes/instances: name at least one");
  }
  for (int i = 0; i < s.nodes_size(); ++i) {
    PHOTON_RETURN_IF_ERROR(ValidateName("spec.nodes[" + std::to_string(i) + "]", s.nodes(i)));
  }
  for (int i = 0; i < s.instances_size(); ++i) {
    const std::string& v = s.instances(i);
    const size_t slash = v.find('/');
    const std::string field = "spec.instances[" + std::to_string(i) + "]";
    if (slash != std::string::npos) PHOTON_RETURN_IF_ERROR(ValidateName(field, v.substr(0, slash)));
    PHOTON_RETURN_IF_ERROR(
        ValidateName(field, slash == std::string::npos ? v : v.substr(slash + 1)));
  }
  const int64_t end = ParseMs(s.end_time());
  if (end == 0) {
    return absl::InvalidArgumentError("spec.endTime: required, RFC 3339 (2026-12-05T06:00:00Z)");
  }
  if (!s.start_time().empty()) {
    const int64_t start = ParseMs(s.start_time());
    if (start == 0) return absl::InvalidArgumentError("spec.startTime: want RFC 3339");
    if (start >= end) return absl::InvalidArgumentError("spec.endTime: must be after startTime");
  }
  if (s.drain() && s.nodes().empty()) {
    return absl::InvalidArgumentError("spec.drain: needs spec.nodes");
  }
  if (s.drain() && m.metadata().namespace_() != "system") {
    return absl::InvalidArgumentError(
        "spec.drain: only maintenances in namespace 'system' drain nodes");
  }
  return absl::OkStatus();
}

Status ValidateOpsKind(const std::string& kind, const google::protobuf::Message& obj) {
  if (kind == "Maintenance") {
    return ValidateMaintenance(static_cast<const photon::ops::Maintenance&>(obj));
  }
  if (kind == "Check") return ValidateCheck(static_cast<const photon::ops::Check&>(obj).spec());
  if (kind == "EventRule") {
    return ValidateEventRule(static_cast<const photon::ops::EventRule&>(obj).spec());
  }
  if (kind == "Alert") {
    const auto& a = static_cast<const photon::ops::Alert&>(obj);
    if (a.spec().severity() == photon::ops::ALERT_SEVERITY_UNSPECIFIED) {
      return absl::InvalidArgumentError("spec.severity: want FATAL, CRITICAL or WARNING");
    }
  }
  return absl::OkStatus();
}

}  // namespace photon::server::opsengine
