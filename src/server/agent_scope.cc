#include "server/agent_scope.h"

#include "server/object_util.h"
#include "store/store.h"

namespace photon::server {

namespace {
// Kinds an agent reads only where metadata.agentId names its node.
bool NodeScoped(const KindInfo& kind) {
  return kind.plural == "computeinstances" || kind.plural == "operations" || kind.plural == "ports";
}
}  // namespace

Status CheckAgentSelection(const Principal& who, const KindInfo& kind,
                           const FieldSelector& fields) {
  const std::string node = who.AgentNode();
  if (node.empty() || !NodeScoped(kind)) return absl::OkStatus();
  const std::string* selected = fields.RequiredValue("metadata.agentId");
  if (selected && *selected == node) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "the agent of node '" + node + "' may list and watch " + kind.plural +
      " of its own node only: add fieldSelector=" + "metadata.agentId=" + node);
}

Status CheckAgentRead(const Principal& who, const KindInfo& kind, const std::string& ns,
                      const google::protobuf::Message& obj, const WatchCache& cache) {
  const std::string node = who.AgentNode();
  if (node.empty() || kind.plural == "nodes") return absl::OkStatus();  // nodes: by name
  const auto& md = GetMetadata(obj);
  const bool visible = NodeScoped(kind) ? md.agent_id() == node : NodeHasWorkIn(cache, node, ns);
  if (visible) return absl::OkStatus();
  return absl::NotFoundError(kind.kind + " '" + md.name() + "' not found");
}

bool NodeHasWorkIn(const WatchCache& cache, const std::string& node, const std::string& ns) {
  const std::string prefix = RegistryPrefix("computeinstances", ns);
  auto r = cache.List(prefix, store::PrefixEnd(prefix), 1,
                      [&](const CachedObject& o) { return o.Fields().agent_id == node; });
  return !r.items.empty();
}

}  // namespace photon::server
