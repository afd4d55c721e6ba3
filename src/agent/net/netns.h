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

// Kills every process whose network namespace is the one at /run/netns/NAME, then unmounts
// and removes that name, as `ip netns pids` + `ip netns del` do, without two processes per
// delete. The kernel dismantles the namespace (its links, so their routes) once nothing holds
// it. Deleting a name that does not exist is OK.
Status DeleteNetns(const std::string& name);

// A netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_NETFILTER...) made inside the network
// namespace at path `netns` ("" = the caller's), with a 5 s receive timeout. A netlink socket
// stays bound to the namespace it was made in, so it serves that namespace from any thread.
// INTERNAL naming `what` and the namespace when it cannot be made.
StatusOr<int> NetlinkSocketIn(const std::string& netns, int protocol, const std::string& what);

// Runs `script` (nft -f syntax) inside the namespace at `netns` ("" = this one) as one
// transaction; the error quotes nft's own message.
// When `script` is refused and `fallback` is given, runs `fallback` instead with the same
// context (no second context whose socket would wait for the first one's to close), and
// sets *fell_back.
Status NftRunIn(const std::string& netns, const std::string& script,
                const std::string& fallback = "", bool* fell_back = nullptr);

}  // namespace photon::agent::net
