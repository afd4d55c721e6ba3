// Images, overlays and volumes; see disk_store.h.
#include "agent/providers/vm/disk_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"

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

DiskStore::DiskStore(std::string data_dir) : data_dir_(std::move(data_dir)) {}

Status DiskStore::Init() {
  PHOTON_RETURN_IF_ERROR(MakeDirs(data_dir_ + "/images", 0755));
  return MakeDirs(data_dir_ + "/volumes", 0700);
}

StatusOr<std::string> DiskStore::CachedSha256(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return absl::NotFoundError("missing " + path);
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard<std::mutex> lock(hash_mu_);
    auto it = hash_cache_.find(path);
    if (it != hash_cache_.end() && it->second.size == st.st_size && it->second.mtime_ns == mtime) {
      return it->second.digest;
    }
  }
  PHOTON_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  std::lock_guard<std::mutex> lock(hash_mu_);
  hash_cache_[path] = HashEntry{st.st_size, mtime, digest};
  return digest;
}

StatusOr<std::string> DiskStore::PrepareImage(const compute::Image& image) {
  const std::string& name = image.metadata().name();
  const std::string& source = image.spec().source_path();
  if (source.empty()) {
    return absl::FailedPreconditionError("image " + name + " has no spec.sourcePath");
  }
  struct stat st;
  if (stat(source.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError("image " + name + ": source file " + source +
                                         " does not exist on this node");
  }
  // Images are shared artifacts: a source only root may read (a key, /etc/shadow) is refused,
  // so an Image cannot hand a private host file to a guest as its disk.
  if (!(st.st_mode & S_IROTH)) {
    return absl::PermissionDeniedError("image " + name + ": source file " + source +
                                       " is not world-readable; refusing to expose a private "
                                       "host file to a guest");
  }
  const std::string want = Lower(image.spec().sha256());
  if (want.empty()) return source;  // unverified: documented, the operator chose no digest
  PHOTON_ASSIGN_OR_RETURN(std::string got, CachedSha256(source));
  if (got != want) {
    return absl::FailedPreconditionError("image " + name + ": sha256 mismatch: spec says " + want +
                                         ", file " + source + " has " + got);
  }
  const std::string& format = image.spec().format();
  if (format != "raw" && format != "qcow2") return source;  // kernel/initrd: read at exec
  const std::string stored = data_dir_ + "/images/" + want + "." + format;
  if (FileSize(stored) == st.st_size) return stored;
  const std::string tmp = stored + ".tmp" + std::to_string(getpid());
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove(tmp, ec);
  if (link(source.c_str(), tmp.c_str()) != 0) {
    fs::copy_file(source, tmp, ec);
    if (ec) return absl::InternalError("copy " + source + ": " + ec.message());
    PHOTON_ASSIGN_OR_RETURN(std::string copied, Sha256File(tmp));
    if (copied != want) {
      fs::remove(tmp, ec);
      return absl::FailedPreconditionError("image " + name + " changed while being copied");
    }
    chmod(tmp.c_str(), 0444);
  }
  fs::rename(tmp, stored, ec);
  if (ec) return absl::InternalError("rename " + tmp + ": " + ec.message());
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
