#include "server/privilege.h"

#include "photon/compute.pb.h"
#include "photon/ops.pb.h"
#include "server/object_util.h"
#include "server/ops/ops_validate.h"

namespace photon::server {

namespace {

const compute::ComputeInstanceSpec* InstanceSpecOf(const google::protobuf::Message& object,
                                                   std::string* field) {
  if (const auto* ci = dynamic_cast<const compute::ComputeInstance*>(&object)) {
    *field = "spec.security.privileged";
    return &ci->spec();
  }
  if (const auto* rs = dynamic_cast<const compute::RegionService*>(&object)) {
    *field = "spec.template.security.privileged";
    return &rs->spec().template_();
  }
  return nullptr;
}

}  // namespace

Status CheckHostPrivileges(const Principal& who, const KindInfo& kind,
                           const google::protobuf::Message& object) {
  if (const auto* check = dynamic_cast<const ops::Check*>(&object);
      check && check->spec().command() == opsengine::kClusterCheckCommand && !who.IsAdmin()) {
    // It runs inside the agents, as root: it reads a file of the node and sends it as a token.
    return absl::PermissionDeniedError(
        "spec.command: only a cluster admin may create a " + kind.kind + " with '" +
        opsengine::kClusterCheckCommand +
        "' (the agents read its token file as root and send it to its URL)");
  }
  std::string field;
  const compute::ComputeInstanceSpec* spec = InstanceSpecOf(object, &field);
  if (spec == nullptr || who.IsAdmin()) return absl::OkStatus();
  if (spec->network().host_network()) {
    // The host's network: no port namespace, no security groups, the node's addresses.
    field.replace(field.rfind("security.privileged"), std::string::npos, "network.hostNetwork");
    return absl::PermissionDeniedError(field + ": only a cluster admin may run a " + kind.kind +
                                       " on the host's network (outside any VPC and its "
                                       "security groups); ask an admin to create it");
  }
  if (!spec->security().privileged()) return absl::OkStatus();
  return absl::PermissionDeniedError(field + ": only a cluster admin may run a " + kind.kind +
                                     " with host privileges (as root, outside its own "
                                     "namespaces); ask an admin to create it");
}

Status CheckSharedImageWrite(const Principal& who, const KindInfo& kind,
                             const google::protobuf::Message& stored) {
  if (kind.plural != "images" || who.IsAdmin()) return absl::OkStatus();
  const resource::ResourceStatus* st = GetStatus(stored);
  if (st == nullptr) return absl::OkStatus();
  auto it = st->details().find("public");
  if (it == st->details().end() || it->second != "true") return absl::OkStatus();
  return absl::PermissionDeniedError("image '" + GetMetadata(stored).name() +
                                     "' is shared with every namespace: only cluster admins "
                                     "change or delete it (an admin can unshare it first)");
}

Status CheckPipelineWrite(const Principal& who, const KindInfo& kind) {
  if (kind.plural != "alerts" || who.IsAdmin()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "alerts are written by the operations pipeline and closed by an operator (POST "
      ".../alerts/NAME/close), not changed or deleted by '" +
      who.name + "'");
}

}  // namespace photon::server
