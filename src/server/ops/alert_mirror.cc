#include "server/ops/alert_mirror.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/object_util.h"
#include "server/ops/ops_internal.h"

namespace photon::server::opsengine {

namespace {

// Namespaces with an instance whose metadata.agentId is `node`.
void NamespacesOnNode(const WatchCache* cache, const std::string& node,
                      std::set<std::string>* out) {
  const std::string prefix = RegistryPrefix("computeinstances");
  auto listed = cache->List(prefix, store::PrefixEnd(prefix), 0,
                            [&](const CachedObject& o) { return o.Fields().agent_id == node; });
  for (const auto& o : listed.items) out->insert(o->Fields().namespace_);
}

}  // namespace

std::set<std::string> AffectedNamespaces(const WatchCache* cache, const photon::ops::Alert& alert) {
  std::set<std::string> out;
  const auto& labels = alert.spec().labels();
  if (auto it = labels.find("namespace"); it != labels.end()) out.insert(it->second);
  if (auto it = labels.find("instance"); it != labels.end()) {
    const size_t slash = it->second.find('/');
    if (slash != std::string::npos) out.insert(it->second.substr(0, slash));
  }
  if (auto it = labels.find("node"); it != labels.end() && !it->second.empty()) {
    NamespacesOnNode(cache, it->second, &out);
  }
  out.erase(alert.metadata().namespace_());
  // Only names the API could have made: a label is free text.
  for (auto it = out.begin(); it != out.end();) {
    it = ValidateName("namespace", *it).ok() ? std::next(it) : out.erase(it);
  }
  return out;
}

void AddMirrors(const WatchCache* cache, photon::ops::Alert* alert, store::TxnRequest* txn) {
  if (alert->spec().severity() != photon::ops::FATAL) return;
  auto* annotations = alert->mutable_metadata()->mutable_annotations();
  std::set<std::string> shown = AffectedNamespaces(cache, *alert);
  if (auto it = annotations->find(kShownIn); it != annotations->end()) {
    for (auto ns : absl::StrSplit(it->second, ',', absl::SkipEmpty())) shown.emplace(ns);
  }
  if (shown.empty()) return;
  (*annotations)[kShownIn] = absl::StrJoin(shown, ",");
  const std::string& source = alert->metadata().namespace_();
  for (const std::string& ns : shown) {
    photon::ops::Alert copy = *alert;
    auto* md = copy.mutable_metadata();
    md->set_namespace_(ns);
    md->mutable_annotations()->erase(kShownIn);
    (*md->mutable_annotations())[kMirrorOf] = source + "/" + md->name();
    txn->success.push_back(PutOp(RegistryKey("alerts", ns, md->name()), copy));
  }
}

}  // namespace photon::server::opsengine
