// In-process namespace work for the hot path of a port create (no process per step):
// creating a named network namespace the way `ip netns add` does, and running an nftables
// script inside a namespace through libnftables.
// Thread-safety: both may be called from several threads (libnftables calls are serialised).
#pragma once

#include <string>

#include "common/status.h"

namespace photon::agent::net {

// Makes /run/netns a shared mount point (once), as iproute2 does, so namespaces mounted there
// later are seen from other mount namespaces too.
Status PrepareNetnsDir();

// Creates network namespace `name`, bind-mounted at /run/netns/NAME (ALREADY_EXISTS if taken).
Status CreateNetns(const std::string& name);

// Runs `script` (nft -f syntax) inside the namespace at `netns` ("" = this one) as one
// transaction; the error quotes nft's own message.
Status NftRunIn(const std::string& netns, const std::string& script);

}  // namespace photon::agent::net
