#include "agent/providers/container/rootfs.h"

#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/host/run.h"
#include "common/file_util.h"

namespace photon::agent {
namespace fs = std::filesystem;

namespace {

constexpr uid_t kIdsPerContainer = 65536;
constexpr uid_t kNobody = 65534;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status Shift(const std::string& path, uid_t host_base) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return absl::InternalError("lstat " + path + ": " + strerror(errno));
  }
  uid_t uid = st.st_uid < kIdsPerContainer ? st.st_uid : kNobody;
  gid_t gid = st.st_gid < kIdsPerContainer ? st.st_gid : kNobody;
  if (::lchown(path.c_str(), host_base + uid, host_base + gid) != 0) {
    return absl::InternalError("lchown " + path + ": " + strerror(errno));
  }
  // chown clears set-user/group-ID bits; the image's setuid binaries keep them (they are
  // setuid to the container's root, an unprivileged host uid).
  if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != 0 &&
      ::chmod(path.c_str(), st.st_mode & 07777) != 0) {
    return absl::InternalError("chmod " + path + ": " + strerror(errno));
  }
  return absl::OkStatus();
}

Status ShiftTree(const std::string& root, uid_t host_base) {
  PHOTON_RETURN_IF_ERROR(Shift(root, host_base));
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    PHOTON_RETURN_IF_ERROR(Shift(it->path().string(), host_base));
  }
  if (ec) return absl::InternalError("walking " + root + ": " + ec.message());
  return absl::OkStatus();
}

}  // namespace

bool IsTarball(const std::string& path) {
  return EndsWith(path, ".tar") || EndsWith(path, ".tar.gz") || EndsWith(path, ".tgz");
}

Status MakeShiftedRootfs(const std::string& source, const std::string& dst, uid_t host_base) {
  PHOTON_RETURN_IF_ERROR(MakeDirs(dst, 0755));
  std::vector<std::string> argv;
  if (IsTarball(source)) {
    argv = {"tar", "-xf", source, "-C", dst, "--numeric-owner", "--same-owner"};
  } else {
    argv = {"cp", "-a", "--reflink=auto", source + "/.", dst + "/"};
  }
  PHOTON_ASSIGN_OR_RETURN(RunResult r, RunCommand(argv, std::chrono::seconds(300)));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError("copying the image " + source + " failed: " + r.output);
  }
  return ShiftTree(dst, host_base);
}

Status MountOverlayRootfs(const std::string& lower, const std::string& bundle) {
  std::string rootfs = bundle + "/rootfs";
  PHOTON_RETURN_IF_ERROR(MakeDirs(rootfs, 0755));
  PHOTON_RETURN_IF_ERROR(MakeDirs(bundle + "/upper", 0755));
  PHOTON_RETURN_IF_ERROR(MakeDirs(bundle + "/work", 0755));
  // `lower` comes from ResolveImageSource, which refuses ',' and ':' (no injected options).
  std::string opts =
      "lowerdir=" + lower + ",upperdir=" + bundle + "/upper,workdir=" + bundle + "/work";
  if (::mount("overlay", rootfs.c_str(), "overlay", 0, opts.c_str()) != 0) {
    return absl::FailedPreconditionError("overlay mount of " + lower +
                                         " failed: " + strerror(errno));
  }
  return absl::OkStatus();
}

}  // namespace photon::agent
