// A container's root filesystem, made from an Image for one container.
//
// Confined containers run in a user namespace whose root is an unprivileged host uid
// (`host_base`; ids 0..65535 inside map to host_base..host_base+65535). Their rootfs is a copy
// of the image (reflinked where the filesystem can) whose owners are shifted into that range,
// so the container's root owns its files without owning anything on the host. Privileged
// containers (admin-granted) keep the old shape: an overlay over the image directory.
//
// runc enters the user namespace before it mounts the rootfs, so every directory above the
// rootfs must be searchable by the container's root: the rootfs lives under a `rootfs_root`
// the agent keeps 0711, in a directory per container that only root and the container's own
// gid may search (0710 root:host_base).
// Thread-safety: pure functions over the paths given.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace photon::agent {

// Copies a rootfs directory (or extracts a .tar/.tar.gz/.tgz) into `dst` (created) and shifts
// every owner by `host_base` (an owner above 65535 becomes host_base + 65534, "nobody").
Status MakeShiftedRootfs(const std::string& source, const std::string& dst, uid_t host_base);

// Mounts an overlay of `lower` (a directory) on bundle/rootfs with bundle/upper and work.
Status MountOverlayRootfs(const std::string& lower, const std::string& bundle);

bool IsTarball(const std::string& path);

}  // namespace photon::agent
