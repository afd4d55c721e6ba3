// qcow2 images from tenants: a qcow2 header can name a backing file anywhere on the host, which
// QEMU would open with the node's rights, so such images are refused before they are stored.
#pragma once

#include <string>

#include "common/status.h"

namespace photon::agent {

// OK for a valid qcow2 file without a backing file; FAILED_PRECONDITION for a file qemu-img
// cannot read as qcow2, PERMISSION_DENIED for one naming a backing file. `name` is the
// image's name in the messages.
Status RefuseQcow2BackingFile(const std::string& name, const std::string& path);

}  // namespace photon::agent
