// Filesystem helpers with the durability and privacy rules of PhotonCloud: a file is written
// aside under a name no one else uses, fsynced, renamed over the target and its directory
// fsynced, so a crash leaves either the old or the new content, never a torn one; files and
// directories get exactly the mode asked for, whatever the umask.
//
// Thread-safety: every function may be called from any thread; two writers of one path each
// write their own temporary file, and the last rename wins.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace photon {

// Writes through a temporary file "<path>.tmp.<pid>.<random>" created with O_EXCL|O_NOFOLLOW
// (a name that exists, symlink or not, is never opened; another is tried), which is removed
// again when any step fails.
Status WriteFileAtomic(const std::string& path, const std::string& data, int mode = 0644);
// The steps of WriteFileAtomic through the given temporary name: ALREADY_EXISTS when something
// (a symlink included) is there. For tests, which plant things at the name.
Status WriteFileAtomicVia(const std::string& path, const std::string& tmp, const std::string& data,
                          int mode);
StatusOr<std::string> ReadFile(const std::string& path);
// Writes all of `data` to fd (retrying short writes and EINTR); INTERNAL naming `path` and
// errno otherwise.
Status WriteAll(int fd, std::string_view data, const std::string& path);
// Creates path and its missing parents with `mode` (exactly: the umask does not apply).
// Directories that exist already keep their mode: one we did not create (/var/lib, a shared
// parent) is not ours to change.
Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace photon
