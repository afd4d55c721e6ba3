// The config drive that carries an instance's user_data into the guest: a small vfat image
// labelled CIDATA (the NoCloud layout cloud-init also reads) with files user-data and
// meta-data, attached read-only as a virtio disk. Built with mkfs.vfat and mcopy (dosfstools,
// mtools), no loop mounts, so it needs no privileges.
// Thread-safety: pure function of its arguments; distinct paths may be built concurrently.
#pragma once

#include <string>

#include "common/status.h"

namespace photon::agent::vm {

inline constexpr char kConfigDriveLabel[] = "CIDATA";
inline constexpr size_t kMaxUserDataBytes = 16 * 1024 * 1024;

// Writes the image to `path` (atomically: built aside, then renamed).
Status BuildConfigDrive(const std::string& path, const std::string& instance_id,
                        const std::string& hostname, const std::string& user_data);

}  // namespace photon::agent::vm
