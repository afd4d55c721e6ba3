// Host privileges in specs (spec.security.privileged, spec.network.hostNetwork and the same
// inside a RegionService's instance template, a Check run inside the agents) are granted by
// cluster admins only: with them a workload runs as root on a node or outside any VPC, so an
// editor of one namespace who could set them would own every node. Thread-safe (pure function).
#pragma once

#include <google/protobuf/message.h>

#include "common/status.h"
#include "server/auth.h"
#include "server/kinds.h"

namespace photon::server {

// PERMISSION_DENIED naming the field when `object` asks for host privileges and `who` is not
// a cluster admin; OK otherwise.
Status CheckHostPrivileges(const Principal& who, const KindInfo& kind,
                           const google::protobuf::Message& object);

// A publicly shared Image (status.details.public, set by an admin through the image service)
// is used by every namespace: PERMISSION_DENIED when `who` is not a cluster admin and would
// change or delete the `stored` one, or another tenant could swap what others boot.
Status CheckSharedImageWrite(const Principal& who, const KindInfo& kind,
                             const google::protobuf::Message& stored);

// Alerts are written by the operations pipeline and closed by operators through their close
// action: PERMISSION_DENIED when `who` is not a cluster admin and would change or delete one
// through the generic API (an editor would otherwise erase the record of an incident, or the
// copy of a Fatal alert shown to the namespace, docs/operations.md "Alerts").
Status CheckPipelineWrite(const Principal& who, const KindInfo& kind);

}  // namespace photon::server
