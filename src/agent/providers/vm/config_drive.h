// The config drive that carries an instance's user_data into the guest: a small vfat image
// labelled CIDATA (the NoCloud layout cloud-init also reads) with files user-data and
// meta-data, and network-config when the VM has a port, attached read-only as a virtio disk. Built
// with mkfs.vfat and mcopy (dosfstools, mtools), no loop mounts, so it needs no privileges.
// Thread-safety: pure function of its arguments; distinct paths may be built concurrently.
#pragma once

#include <string>

#include "common/status.h"

namespace photon::agent::vm {

inline constexpr char kConfigDriveLabel[] = "CIDATA";
inline constexpr size_t kMaxUserDataBytes = 16 * 1024 * 1024;

// The port's address as cloud-init's network config version 2 (NoCloud "network-config"):
// the interface with the Port's MAC gets `ip`/32 and a default route via the gateway
// 169.254.1.1 on-link (seed 003: the node routes the /32; there is no subnet on the wire).
std::string RenderNetworkConfig(const std::string& mac, const std::string& ip);

// Writes the image to `path` (atomically: built aside, then renamed). An empty
// `network_config` writes no network-config file.
Status BuildConfigDrive(const std::string& path, const std::string& instance_id,
                        const std::string& hostname, const std::string& user_data,
                        const std::string& network_config = "");

}  // namespace photon::agent::vm
