// Fatal alerts shown to the affected namespace's users (seed 003 AlertData: "Fatal is visible
// to the affected namespace's users"). An alert lives in its event's namespace (`system` for
// node and agent checks), which tenants cannot read. A FATAL alert about a resource of
// namespace NS is copied, read-only, into NS: the same name, `metadata.annotations`
// `photon.io/mirror-of: SOURCE_NS/NAME`, written in the same transaction as every change of the
// original (opened, raised, resolved, closed), so NS's viewers list and watch it through the
// generic API without reading anything else of `system`. Closing stays the operators' (on
// the original, which closes its copies). Stateless; thread-safe.
#pragma once

#include <set>
#include <string>

#include "photon/ops.pb.h"
#include "server/watch_cache.h"
#include "store/store.h"

namespace photon::server::opsengine {

inline constexpr char kMirrorOf[] = "photon.io/mirror-of";  // on a copy: "NS/NAME"
inline constexpr char kShownIn[] = "photon.io/shown-in";    // on the original: "ns1,ns2"

// The namespaces other than the alert's own that a FATAL alert concerns: its `namespace`
// label, the NS of an `instance` label "NS/NAME", and every namespace with an instance placed
// on its `node` label's node (as the cache holds them now).
std::set<std::string> AffectedNamespaces(const WatchCache* cache, const photon::ops::Alert& alert);

// When `alert` (about to be written by `txn`) is FATAL: notes in it the namespaces it is shown
// in (those noted before stay: a copy, once shown, follows the original to its close) and adds
// to `txn` the put of its copy in each. Nothing for other severities.
void AddMirrors(const WatchCache* cache, photon::ops::Alert* alert, store::TxnRequest* txn);

}  // namespace photon::server::opsengine
