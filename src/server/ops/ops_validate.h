// Validation of the operations kinds (checks, eventrules, alerts) and of ops events, naming
// the offending field. Stateless; thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include "common/status.h"
#include "photon/event.pb.h"
#include "photon/ops.pb.h"

namespace photon::server::opsengine {

// The check command agents run in-process to probe another cluster's API
// (agent/checks/cluster_check.h, the same string).
inline constexpr char kClusterCheckCommand[] = "builtin:photon-cluster";

// OK for kinds this module does not own.
Status ValidateOpsKind(const std::string& kind, const google::protobuf::Message& obj);
Status ValidateCheck(const photon::ops::CheckSpec& spec);
Status ValidateEventRule(const photon::ops::EventRuleSpec& spec);
Status ValidateOpsEvent(const event::OpsEvent& ev);

}  // namespace photon::server::opsengine
