// Config drive builder; see config_drive.h.
#include "agent/providers/vm/config_drive.h"

#include <chrono>
#include <filesystem>
#include <vector>

#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"

namespace photon::agent::vm {

std::string RenderNetworkConfig(const std::string& mac, const std::string& ip) {
  return "version: 2\n"
         "ethernets:\n"
         "  eth0:\n"
         "    match:\n"
         "      macaddress: \"" +
         mac +
         "\"\n"
         "    set-name: eth0\n"
         "    addresses: [" +
         ip +
         "/32]\n"
         "    routes:\n"
         "      - to: 0.0.0.0/0\n"
         "        via: 169.254.1.1\n"
         "        on-link: true\n";
}

Status BuildConfigDrive(const std::string& path, const std::string& instance_id,
                        const std::string& hostname, const std::string& user_data,
                        const std::string& network_config) {
  if (user_data.size() > kMaxUserDataBytes) {
    return absl::InvalidArgumentError("user_data is larger than 16 MiB");
  }
  namespace fs = std::filesystem;
  const std::string staging = path + ".d";
  std::error_code ec;
  fs::remove_all(staging, ec);
  PHOTON_RETURN_IF_ERROR(MakeDirs(staging, 0700));
  // user_data may hold secrets: the staging files and the image are 0600.
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(staging + "/user-data", user_data, 0600));
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(
      staging + "/meta-data",
      "instance-id: " + instance_id + "\nlocal-hostname: " + hostname + "\n", 0600));
  std::vector<std::string> files = {staging + "/user-data", staging + "/meta-data"};
  if (!network_config.empty()) {
    files.push_back(staging + "/network-config");
    PHOTON_RETURN_IF_ERROR(WriteFileAtomic(files.back(), network_config, 0600));
  }
  const std::string tmp = path + ".tmp";
  fs::remove(tmp, ec);
  // FAT needs some room for its own tables; 1 MiB plus twice the payload is plenty.
  size_t kib = 1024 + 2 * (user_data.size() / 1024 + 1);
  const auto kTimeout = std::chrono::seconds(30);
  Status st =
      RunChecked({"mkfs.vfat", "-n", kConfigDriveLabel, "-C", tmp, std::to_string(kib)}, kTimeout);
  if (st.ok()) {
    std::vector<std::string> argv = {"mcopy", "-i", tmp, "-o"};
    argv.insert(argv.end(), files.begin(), files.end());
    argv.push_back("::");
    st = RunChecked(argv, kTimeout);
  }
  fs::remove_all(staging, ec);
  if (!st.ok()) {
    fs::remove(tmp, ec);
    return st;
  }
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError("rename " + tmp + ": " + ec.message());
  return absl::OkStatus();
}

}  // namespace photon::agent::vm
