// Images and volumes on the host, under the provider's data dir:
//   images/<sha256>.<format>   image contents copied from the node's images root and hashed as
//                              copied, shared read-only (0444) by every VM
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
#include <utility>

#include "common/status.h"
#include "photon/compute.pb.h"
#include "photon/storage.pb.h"

namespace photon::agent::vm {

class DiskStore {
 public:
  DiskStore(std::string data_dir, std::string images_root);
  Status Init();

  // Path of the image's bytes for booting. The source must lie inside the node's images root
  // (host/image_root.h) and be world-readable. It is opened once (no symlink at the end),
  // copied into images/ (reflinked where the filesystem can), and the copy's own bytes are
  // hashed: FAILED_PRECONDITION naming both digests when spec.sha256 is set and differs. What
  // QEMU opens is that copy, in a directory only root may enter, so nothing can swap the file
  // between the check and QEMU's open, and no later change to the source reaches a guest. An
  // image whose digest is set and already stored is not read again; one without a digest is
  // copied and hashed at every preparation (nothing about the source is trusted). A qcow2
  // image that names a backing file is refused (the backing file would be read unverified).
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
  // Copies the open regular file `in` to a new file in images/; returns its path and the
  // SHA-256 of what was written there.
  StatusOr<std::pair<std::string, std::string>> CopyAndHash(int in, const std::string& source);

  std::string data_dir_;
  std::string images_root_;
  std::mutex volumes_mu_;
};

}  // namespace photon::agent::vm
