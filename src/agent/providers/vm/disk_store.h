// Images and volumes on the host, under the provider's data dir:
//   images/<sha256>.<format>   verified image contents, shared read-only (0444) by every VM
//   volumes/<ns>/<name>.<fmt>  volume data files made with qemu-img; they outlive instances
//   volumes/<ns>/<name>.owner  the id of the one instance the volume is attached to
// A disk image is never written by a VM: each instance boots a qcow2 overlay whose backing file
// is the shared image.
// Thread-safety: all methods may be called concurrently (volume claims under one mutex; the
// checksum cache under another).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "common/status.h"
#include "photon/compute.pb.h"
#include "photon/storage.pb.h"

namespace photon::agent::vm {

class DiskStore {
 public:
  explicit DiskStore(std::string data_dir);
  Status Init();

  // Path of a verified image for booting: checks the file exists and, when spec.sha256 is set,
  // that its SHA-256 matches (FAILED_PRECONDITION naming both digests otherwise). Disk images
  // with a digest are placed content-addressed under images/ (hard link, else copy) so a later
  // change to the source cannot alter what instances boot.
  StatusOr<std::string> PrepareImage(const compute::Image& image);

  // qemu-img create -f qcow2 -b <backing> overlay; size_gb 0 = the backing file's size.
  Status CreateOverlay(const std::string& backing, const std::string& backing_format,
                       const std::string& overlay, int64_t size_gb);

  // The volume's data file, created (sparse) on first use. Format raw (default) or qcow2.
  StatusOr<std::string> EnsureVolume(const std::string& ns, const storage::Volume& volume);
  static std::string VolumeFormat(const storage::Volume& volume);

  // Records instance_id as the volume's only user; FAILED_PRECONDITION naming the holder when
  // another instance has it. `holder_exists` says whether a recorded holder is still around
  // (a stale claim from a destroyed instance is taken over).
  Status ClaimVolume(const std::string& ns, const std::string& name, const std::string& instance_id,
                     const std::function<bool(const std::string&)>& holder_exists);
  void ReleaseVolume(const std::string& ns, const std::string& name,
                     const std::string& instance_id);
  std::string VolumeOwner(const std::string& ns, const std::string& name);

 private:
  std::string VolumeBase(const std::string& ns, const std::string& name) const;
  StatusOr<std::string> CachedSha256(const std::string& path);

  std::string data_dir_;
  std::mutex volumes_mu_;
  std::mutex hash_mu_;
  // path -> (size, mtime ns, digest): an unchanged file is hashed once.
  struct HashEntry {
    int64_t size;
    int64_t mtime_ns;
    std::string digest;
  };
  std::map<std::string, HashEntry> hash_cache_;
};

}  // namespace photon::agent::vm
