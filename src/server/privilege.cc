#include "server/privilege.h"

#include "photon/compute.pb.h"
#include "server/object_util.h"

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

}  // namespace photon::server
