// Images, overlays and volumes; see disk_store.h.
#include "agent/providers/vm/disk_store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "agent/host/image_root.h"
#include "agent/host/qcow2.h"
#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

constexpr auto kQemuImgTimeout = std::chrono::seconds(60);

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                     }) &&
         s[0] != '.';
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

DiskStore::DiskStore(std::string data_dir, std::string images_root)
    : data_dir_(std::move(data_dir)), images_root_(std::move(images_root)) {}

Status DiskStore::Init() {
  PHOTON_RETURN_IF_ERROR(MakeDirs(data_dir_ + "/images", 0700));
  return MakeDirs(data_dir_ + "/volumes", 0700);
}

StatusOr<std::pair<std::string, std::string>> DiskStore::CopyAndHash(int in,
                                                                     const std::string& source) {
  const std::string tmp = data_dir_ + "/images/.incoming-" + RandomHex(8);
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) return absl::InternalError("create " + tmp + ": " + strerror(errno));
  Status st = absl::OkStatus();
  if (::ioctl(out, FICLONE, in) != 0) {  // no reflink here: copy the bytes
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) st = absl::InternalError("read " + source + ": " + strerror(errno));
      if (n <= 0) break;
      st = WriteAll(out, std::string_view(buf.data(), static_cast<size_t>(n)), tmp);
      if (!st.ok()) break;
    }
  }
  if (st.ok() && ::fsync(out) != 0)
    st = absl::InternalError("fsync " + tmp + ": " + strerror(errno));
  ::close(out);
  // The digest of the copy, not of the source: these are the bytes a guest will read.
  auto digest = st.ok() ? Sha256File(tmp) : StatusOr<std::string>(st);
  if (!digest.ok()) {
    ::unlink(tmp.c_str());
    return digest.status();
  }
  return std::make_pair(tmp, *digest);
}

StatusOr<std::string> DiskStore::PrepareImage(const compute::Image& image) {
  const std::string& name = image.metadata().name();
  PHOTON_ASSIGN_OR_RETURN(std::string source,
                          ResolveImageSource(images_root_, image.spec().source_path(), name));
  const std::string format = image.spec().format().empty() ? "img" : image.spec().format();
  if (!ValidName(format)) return absl::InvalidArgumentError("image " + name + ": bad format");
  const std::string want = Lower(image.spec().sha256());
  if (!want.empty()) {
    if (want.size() != 64 || !std::all_of(want.begin(), want.end(), ::isxdigit)) {
      return absl::InvalidArgumentError("image " + name + ": spec.sha256 is not 64 hex digits");
    }
    const std::string stored = data_dir_ + "/images/" + want + "." + format;
    if (PathExists(stored)) return stored;  // written by us, verified when it was
  }
  int in = ::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) {
    return absl::FailedPreconditionError("image " + name + ": cannot open " + source + ": " +
                                         strerror(errno));
  }
  struct stat st;
  if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(in);
    return absl::FailedPreconditionError("image " + name + ": " + source + " is not a file");
  }
  // Images are shared artifacts: a source only root may read (a key, /etc/shadow) is refused,
  // so an Image cannot hand a private host file to a guest as its disk.
  if (!(st.st_mode & S_IROTH)) {
    ::close(in);
    return absl::PermissionDeniedError("image " + name + ": source file " + source +
                                       " is not world-readable; refusing to expose a private "
                                       "host file to a guest");
  }
  auto copied = CopyAndHash(in, source);
  ::close(in);
  if (!copied.ok()) return copied.status();
  auto [tmp, got] = *copied;
  Status ok = absl::OkStatus();
  if (!want.empty() && got != want) {
    ok = absl::FailedPreconditionError("image " + name + ": sha256 mismatch: spec says " + want +
                                       ", file " + source + " has " + got);
  } else if (format == "qcow2") {
    ok = RefuseQcow2BackingFile(name, tmp);
  }
  const std::string stored = data_dir_ + "/images/" + got + "." + format;
  if (ok.ok() && (::chmod(tmp.c_str(), 0444) != 0 || ::rename(tmp.c_str(), stored.c_str()) != 0)) {
    ok = absl::InternalError("storing " + stored + ": " + strerror(errno));
  }
  if (!ok.ok()) {
    ::unlink(tmp.c_str());
    return ok;
  }
  return stored;
}

Status DiskStore::CreateOverlay(const std::string& backing, const std::string& backing_format,
                                const std::string& overlay, int64_t size_gb) {
  std::vector<std::string> argv = {"qemu-img", "create",       "-q", "-f",    "qcow2",
                                   "-F",       backing_format, "-b", backing, overlay};
  if (size_gb > 0) argv.push_back(std::to_string(size_gb) + "G");
  Status st = RunChecked(argv, kQemuImgTimeout);
  if (!st.ok() && size_gb > 0) {
    // A requested size below the image's own is not an error worth failing a boot for.
    argv.pop_back();
    st = RunChecked(argv, kQemuImgTimeout);
  }
  return st;
}

std::string DiskStore::VolumeFormat(const storage::Volume& volume) {
  return volume.spec().format() == "qcow2" ? "qcow2" : "raw";
}

std::string DiskStore::VolumeBase(const std::string& ns, const std::string& name) const {
  return data_dir_ + "/volumes/" + (ns.empty() ? "default" : ns) + "/" + name;
}

StatusOr<std::string> DiskStore::EnsureVolume(const std::string& ns,
                                              const storage::Volume& volume) {
  const std::string& name = volume.metadata().name();
  if (!ValidName(name) || (!ns.empty() && !ValidName(ns))) {
    return absl::InvalidArgumentError("invalid volume name " + ns + "/" + name);
  }
  const std::string format = VolumeFormat(volume);
  if (!volume.spec().format().empty() && volume.spec().format() != format) {
    return absl::InvalidArgumentError("volume " + name + ": format must be raw or qcow2");
  }
  int64_t size_gb = volume.spec().size_gb() > 0 ? volume.spec().size_gb() : 1;
  const std::string path = VolumeBase(ns, name) + "." + format;
  if (PathExists(path)) return path;
  PHOTON_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string(), 0700));
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  PHOTON_RETURN_IF_ERROR(
      RunChecked({"qemu-img", "create", "-q", "-f", format, tmp, std::to_string(size_gb) + "G"},
                 kQemuImgTimeout));
  chmod(tmp.c_str(), 0600);
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError("rename " + tmp + ": " + ec.message());
  return path;
}

std::string DiskStore::VolumeOwner(const std::string& ns, const std::string& name) {
  std::lock_guard<std::mutex> lock(volumes_mu_);
  auto owner = ReadFile(VolumeBase(ns, name) + ".owner");
  return owner.ok() ? *owner : "";
}

Status DiskStore::ClaimVolume(const std::string& ns, const std::string& name,
                              const std::string& instance_id,
                              const std::function<bool(const std::string&)>& holder_exists) {
  if (!ValidName(name) || (!ns.empty() && !ValidName(ns))) {
    return absl::InvalidArgumentError("invalid volume name " + ns + "/" + name);
  }
  std::lock_guard<std::mutex> lock(volumes_mu_);
  const std::string owner_path = VolumeBase(ns, name) + ".owner";
  auto owner = ReadFile(owner_path);
  if (owner.ok() && !owner->empty() && *owner != instance_id && holder_exists(*owner)) {
    return absl::FailedPreconditionError("volume " + name + " is already attached to instance " +
                                         *owner);
  }
  PHOTON_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(owner_path).parent_path().string(), 0700));
  return WriteFileAtomic(owner_path, instance_id, 0600);
}

void DiskStore::ReleaseVolume(const std::string& ns, const std::string& name,
                              const std::string& instance_id) {
  std::lock_guard<std::mutex> lock(volumes_mu_);
  const std::string owner_path = VolumeBase(ns, name) + ".owner";
  auto owner = ReadFile(owner_path);
  if (owner.ok() && *owner == instance_id) unlink(owner_path.c_str());
}

}  // namespace photon::agent::vm
