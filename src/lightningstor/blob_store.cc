#include "lightningstor/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/file_util.h"
#include "common/util.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

// Start writeback every this many bytes, so the final fsync finds the disk mostly done.
constexpr uint64_t kWritebackStep = 8 << 20;
// How far ahead of the reader GETs ask the kernel to read.
constexpr uint64_t kReadAhead = 16 << 20;
// Bodies past this size hash MD5 on a helper thread.
constexpr uint64_t kAsyncHashFrom = 2 << 20;

Status Errno(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + dir);
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync " + dir);
}

}  // namespace

StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& data_dir) {
  auto store = std::make_unique<BlobStore>();
  store->root_ = data_dir + "/blobs";
  store->tmp_dir_ = data_dir + "/tmp";
  PHOTON_RETURN_IF_ERROR(MakeDirs(store->root_, 0700));
  PHOTON_RETURN_IF_ERROR(MakeDirs(store->tmp_dir_, 0700));
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    snprintf(sub, sizeof sub, "/%02x", i);
    PHOTON_RETURN_IF_ERROR(MakeDirs(store->root_ + sub, 0700));
  }
  // A crash mid-upload leaves only temp files; they were never visible, so drop them.
  if (DIR* dir = opendir(store->tmp_dir_.c_str())) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      unlink((store->tmp_dir_ + "/" + e->d_name).c_str());
    }
    closedir(dir);
  }
  return store;
}

std::string BlobStore::BlobPath(const std::string& blob_id) const {
  return root_ + "/" + blob_id.substr(0, 2) + "/" + blob_id;
}

std::unique_ptr<BlobWriter> BlobStore::NewWriter(uint64_t inline_max, bool force_file) {
  return std::unique_ptr<BlobWriter>(new BlobWriter(this, inline_max, force_file));
}

void BlobStore::Remove(const std::string& blob_id) const {
  if (unlink(BlobPath(blob_id).c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("remove blob {}: {}", blob_id, std::strerror(errno));
  }
}

void BlobStore::ForEachBlob(const std::function<void(const std::string&)>& fn) const {
  for (int i = 0; i < 256; ++i) {
    char sub[8];
    snprintf(sub, sizeof sub, "/%02x", i);
    DIR* dir = opendir((root_ + sub).c_str());
    if (!dir) continue;
    std::vector<std::string> names;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    closedir(dir);
    for (const auto& n : names) fn(n);
  }
}

BlobWriter::BlobWriter(BlobStore* store, uint64_t inline_max, bool force_file)
    : store_(store), inline_max_(force_file ? 0 : inline_max) {}

BlobWriter::~BlobWriter() {
  if (fd_ >= 0) close(fd_);
  if (!finished_ && !tmp_path_.empty()) unlink(tmp_path_.c_str());
}

void BlobWriter::UpdateCrcs(const char* data, size_t n) {
  while (n > 0) {
    size_t step = std::min<uint64_t>(n, kBlockSize - block_fill_);
    block_crc_ = Crc32cUpdate(block_crc_, data, step);
    block_fill_ += step;
    data += step;
    n -= step;
    if (block_fill_ == kBlockSize) {
      block_crcs_ += CrcToBytes(block_crc_);
      block_crc_ = 0;
      block_fill_ = 0;
    }
  }
}

Status BlobWriter::Spill() {
  blob_id_ = RandomHex(16);
  tmp_path_ = store_->tmp_dir() + "/" + blob_id_;
  fd_ = open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) return Errno("create " + tmp_path_);
  std::string pending;
  pending.swap(buffer_);
  return WriteFile(pending.data(), pending.size());
}

Status BlobWriter::WriteFile(const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("write " + tmp_path_);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

Status BlobWriter::Write(const char* data, size_t n) {
  if (n == 0) return absl::OkStatus();
  if (!async_md5_ && size_ >= kAsyncHashFrom) async_md5_ = std::make_unique<AsyncDigest>(&md5_);
  if (async_md5_) {
    async_md5_->Update(data, n);
  } else {
    md5_.Update(data, n);
  }
  UpdateCrcs(data, n);
  size_ += n;
  if (fd_ < 0) {
    if (size_ <= inline_max_) {
      buffer_.append(data, n);
      return absl::OkStatus();
    }
    buffer_.append(data, n);
    return Spill();
  }
  PHOTON_RETURN_IF_ERROR(WriteFile(data, n));
  if (size_ - synced_upto_ >= kWritebackStep) {
    // Ask the kernel to start writing what we have; the fsync at the end then waits less.
    sync_file_range(fd_, static_cast<off64_t>(synced_upto_),
                    static_cast<off64_t>(size_ - synced_upto_), SYNC_FILE_RANGE_WRITE);
    synced_upto_ = size_;
  }
  return absl::OkStatus();
}

StatusOr<WrittenBlob> BlobWriter::Finish() {
  WrittenBlob out;
  out.size = size_;
  if (async_md5_) async_md5_->Finish();
  out.md5 = md5_.Finish();
  if (block_fill_ > 0 || size_ == 0) {
    block_crcs_ += CrcToBytes(block_crc_);
    block_fill_ = 0;
  }
  if (fd_ < 0 && inline_max_ > 0) {
    out.is_inline = true;
    out.inline_data = std::move(buffer_);
    out.inline_crc = Crc32cUpdate(0, out.inline_data.data(), out.inline_data.size());
    finished_ = true;
    return out;
  }
  if (fd_ < 0) PHOTON_RETURN_IF_ERROR(Spill());
  if (fdatasync(fd_) != 0) return Errno("fdatasync " + tmp_path_);
  close(fd_);
  fd_ = -1;
  std::string final_path = store_->BlobPath(blob_id_);
  if (rename(tmp_path_.c_str(), final_path.c_str()) != 0) return Errno("rename " + tmp_path_);
  finished_ = true;
  PHOTON_RETURN_IF_ERROR(FsyncDir(final_path.substr(0, final_path.rfind('/'))));
  out.segment = Segment{blob_id_, size_, std::move(block_crcs_)};
  return out;
}

Status BlobStore::Read(const ObjectMeta& object, uint64_t offset, uint64_t length,
                       const http::BodySink& sink) const {
  if (object.has_inline) {
    if (Crc32cUpdate(0, object.inline_data.data(), object.inline_data.size()) !=
        object.inline_crc) {
      spdlog::error("bit rot: object {}/{} inline data fails its checksum", object.bucket,
                    object.key);
      return absl::DataLossError("stored object data is corrupt");
    }
    if (length == 0) return absl::OkStatus();
    return sink(object.inline_data.data() + offset, length);
  }
  std::vector<char> block(kBlockSize);
  uint64_t seg_start = 0;
  for (const auto& seg : object.segments) {
    uint64_t seg_end = seg_start + seg.size;
    if (length == 0) break;
    if (offset >= seg_end) {
      seg_start = seg_end;
      continue;
    }
    std::string path = BlobPath(seg.blob_id);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      spdlog::error("object {}/{}: blob {} missing", object.bucket, object.key, seg.blob_id);
      return absl::DataLossError("stored object data is missing");
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    // Keep the disk reading ahead while this thread verifies and sends (dd only reads, so
    // without this a GET would alternate between waiting for the disk and the socket).
    uint64_t prefetched = 0;
    uint64_t in_seg = offset - seg_start;
    uint64_t block_index = in_seg / kBlockSize;
    Status status;
    while (length > 0 && block_index * kBlockSize < seg.size) {
      uint64_t block_off = block_index * kBlockSize;
      uint64_t block_len = std::min<uint64_t>(kBlockSize, seg.size - block_off);
      if (prefetched < block_off + kReadAhead / 2 && prefetched < seg.size) {
        uint64_t from = std::max(prefetched, block_off);
        posix_fadvise(fd, static_cast<off_t>(from), static_cast<off_t>(kReadAhead),
                      POSIX_FADV_WILLNEED);
        prefetched = from + kReadAhead;
      }
      uint64_t got = 0;
      while (got < block_len) {
        ssize_t r =
            pread(fd, block.data() + got, block_len - got, static_cast<off_t>(block_off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<uint64_t>(r);
      }
      uint32_t want = 0;
      if (seg.block_crcs.size() >= (block_index + 1) * 4) {
        const auto* p =
            reinterpret_cast<const unsigned char*>(seg.block_crcs.data() + block_index * 4);
        want = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      }
      if (got != block_len || Crc32cUpdate(0, block.data(), block_len) != want) {
        spdlog::error("bit rot: object {}/{} blob {} block {} fails its checksum", object.bucket,
                      object.key, seg.blob_id, block_index);
        status = absl::DataLossError("stored object data is corrupt");
        break;
      }
      uint64_t from = (offset > seg_start + block_off) ? offset - seg_start - block_off : 0;
      uint64_t n = std::min<uint64_t>(block_len - from, length);
      status = sink(block.data() + from, n);
      if (!status.ok()) break;
      offset += n;
      length -= n;
      ++block_index;
    }
    close(fd);
    PHOTON_RETURN_IF_ERROR(status);
    seg_start = seg_end;
  }
  if (length > 0) return absl::DataLossError("stored object is shorter than its metadata");
  return absl::OkStatus();
}

}  // namespace photon::lightningstor
