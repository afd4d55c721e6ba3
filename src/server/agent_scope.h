// What a node agent's credential may read, object by object (the kind-level half is
// Principal::Allowed; writes are CheckAgentScope's). An agent sees its node's work only:
//  - ComputeInstances, Operations and Ports: lists and watches must select its node
//    (fieldSelector metadata.agentId=NODE; an Operation carries the agentId of the object it
//    acts on), and a single read of one placed elsewhere is NOT_FOUND.
//  - Everything else it may read by name (Images, Volumes, ...): only in a namespace where an
//    instance is placed on its node; elsewhere NOT_FOUND.
// Why NOT_FOUND and not PERMISSION_DENIED for single reads: a node must not learn which names
// exist in other tenants' namespaces. OK for every principal that is not an agent.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "common/status.h"
#include "server/auth.h"
#include "server/field_selector.h"
#include "server/kinds.h"
#include "server/watch_cache.h"

namespace photon::server {

// For a list or watch of `kind` with `fields`.
Status CheckAgentSelection(const Principal& who, const KindInfo& kind, const FieldSelector& fields);

// For a single read of `obj` (of `kind`, in `ns`).
Status CheckAgentRead(const Principal& who, const KindInfo& kind, const std::string& ns,
                      const google::protobuf::Message& obj, const WatchCache& cache);

// True if some ComputeInstance in `ns` is placed on `node`.
bool NodeHasWorkIn(const WatchCache& cache, const std::string& node, const std::string& ns);

}  // namespace photon::server
