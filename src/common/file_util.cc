#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/util.h"

namespace photon {

namespace {

Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(what + " " + path + ": " + std::strerror(errno));
}

// Fills the new file at fd and renames it over path.
Status FillAndRename(int fd, const std::string& tmp, const std::string& path,
                     const std::string& data, int mode) {
  // open() applied the umask; secrets must end up with exactly the mode asked for.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return Errno("chmod", tmp);
  PHOTON_RETURN_IF_ERROR(WriteAll(fd, data, tmp));
  if (::fsync(fd) != 0) return Errno("fsync", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename " + tmp + " to", path);
  return absl::OkStatus();
}

void SyncDir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

Status WriteFileAtomicVia(const std::string& path, const std::string& tmp, const std::string& data,
                          int mode) {
  // O_EXCL: never reuse or follow what is at the name (a leftover, someone's symlink).
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError("create " + tmp + ": exists");
    return Errno("create", tmp);
  }
  Status st = FillAndRename(fd, tmp, path, data, mode);
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  SyncDir(path);
  return absl::OkStatus();
}

Status WriteFileAtomic(const std::string& path, const std::string& data, int mode) {
  Status last;
  // A random part makes the name unique between threads of one process too; a taken name (a
  // crashed writer's leftover, a planted link) is skipped, not opened.
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + RandomHex(6);
    last = WriteFileAtomicVia(path, tmp, data, mode);
    if (last.code() != absl::StatusCode::kAlreadyExists) return last;
  }
  return last;
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return absl::InvalidArgumentError("mkdir: empty path");
  std::filesystem::path built;
  for (const auto& part : std::filesystem::path(path)) {
    built /= part;
    if (part.empty() || part == "/" || part == "." || part == "..") continue;
    const std::string dir = built.string();
    if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) == 0) {
      // Ours: exactly the mode asked for (mkdir applied the umask).
      if (::chmod(dir.c_str(), static_cast<mode_t>(mode)) != 0) return Errno("chmod", dir);
      continue;
    }
    if (errno != EEXIST) return Errno("mkdir", dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return Errno("stat", dir);
    if (!S_ISDIR(st.st_mode))
      return absl::FailedPreconditionError("mkdir " + dir + ": not a directory");
  }
  return absl::OkStatus();
}

}  // namespace photon
