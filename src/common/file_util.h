// Filesystem helpers with the durability rules of PhotonCloud: a file is written aside,
// fsynced, renamed over the target and its directory fsynced, so a crash leaves either the
// old or the new content, never a torn one.
#pragma once

#include <string>

#include "common/status.h"

namespace photon {

Status WriteFileAtomic(const std::string& path, const std::string& data, int mode = 0644);
StatusOr<std::string> ReadFile(const std::string& path);
Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace photon
