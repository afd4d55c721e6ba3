#include "lightningstor/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/util.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sse.h"

namespace photon::lightningstor {
namespace {

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

BlobStore::~BlobStore() {
  {
    std::lock_guard<std::mutex> lock(reap_mu_);
    closing_ = true;
  }
  reap_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

void BlobStore::RemoveLater(const std::vector<std::string>& blob_ids) {
  if (blob_ids.empty()) return;
  {
    std::lock_guard<std::mutex> lock(reap_mu_);
    to_reap_.insert(to_reap_.end(), blob_ids.begin(), blob_ids.end());
    if (!reaper_.joinable()) reaper_ = std::thread([this] { ReapLoop(); });
  }
  reap_cv_.notify_one();
}

void BlobStore::ReapLoop() {
  std::unique_lock<std::mutex> lock(reap_mu_);
  while (true) {
    reap_cv_.wait(lock, [this] { return closing_ || !to_reap_.empty(); });
    if (to_reap_.empty()) return;  // closing, and nothing left to unlink
    std::vector<std::string> batch;
    batch.swap(to_reap_);
    lock.unlock();
    for (const auto& id : batch) Remove(id);
    lock.lock();
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
    : store_(store), inline_max_(force_file ? 0 : std::min<uint64_t>(inline_max, kBlockSize)) {}

BlobWriter::~BlobWriter() {
  pipeline_.reset();  // its writer thread may still be using fd_
  if (fd_ >= 0) close(fd_);
  if (!finished_ && !tmp_path_.empty()) unlink(tmp_path_.c_str());
}

Status BlobWriter::OpenFile() {
  blob_id_ = RandomHex(16);
  tmp_path_ = store_->tmp_dir() + "/" + blob_id_;
  // O_DIRECT: the body goes from our buffers to the disk without a CPU copy into the page
  // cache, the largest single cost of a PUT on a loaded machine. File systems without it
  // (tmpfs on older kernels) get a plain buffered file.
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  fd_ = open(tmp_path_.c_str(), kFlags | O_DIRECT, 0600);
  direct_ = fd_ >= 0;
  if (fd_ < 0 && errno == EINVAL) {
    unlink(tmp_path_.c_str());
    fd_ = open(tmp_path_.c_str(), kFlags, 0600);
  }
  if (fd_ < 0) return Errno("create " + tmp_path_);
  return absl::OkStatus();
}

namespace {

// errno of the failing pwrite, 0 when all bytes went out.
int PwriteFull(int fd, const char* data, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return 0;
}

}  // namespace

Status BlobWriter::WriteBlock(char* buf, size_t len, uint64_t offset) {
  if (direct_) {
    // O_DIRECT wants whole aligned blocks: a short last block is zero-padded here and the file
    // truncated to its real size before the fsync.
    size_t padded = (len + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
    std::memset(buf + len, 0, padded - len);
    int err = PwriteFull(fd_, buf, padded, offset);
    if (err == 0) {
      if (padded != len) padded_ = true;
      return absl::OkStatus();
    }
    if (err != EINVAL) {
      errno = err;
      return Errno("write " + tmp_path_);
    }
    // The file system refused this alignment after all: continue buffered.
    int flags = fcntl(fd_, F_GETFL);
    if (flags < 0 || fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0)
      return Errno("fcntl " + tmp_path_);
    direct_ = false;
  }
  int err = PwriteFull(fd_, buf, len, offset);
  if (err != 0) {
    errno = err;
    return Errno("write " + tmp_path_);
  }
  // Start writeback now so the final fsync finds the disk mostly done.
  sync_file_range(fd_, static_cast<off64_t>(offset), static_cast<off64_t>(len),
                  SYNC_FILE_RANGE_WRITE);
  return absl::OkStatus();
}

Status BlobWriter::Seal() {
  if (fd_ < 0) PHOTON_RETURN_IF_ERROR(OpenFile());
  if (!pipeline_) {
    WritePipeline::TransformFn transform;
    if (cipher_) transform = [c = cipher_](char* buf, size_t len) { c->Seal(buf, len); };
    pipeline_ = std::make_unique<WritePipeline>(
        &md5_,
        [this](char* buf, size_t len, uint64_t offset) { return WriteBlock(buf, len, offset); },
        std::move(transform));
  }
  PHOTON_RETURN_IF_ERROR(pipeline_->status());
  pipeline_->Submit(std::move(block_), fill_, sealed_);
  sealed_ += fill_;
  fill_ = 0;
  return absl::OkStatus();
}

StatusOr<std::pair<char*, size_t>> BlobWriter::Buffer() {
  // A full block is sealed only when more bytes come, so a body that ends exactly at the
  // inline limit can still be kept inline.
  if (block_ && fill_ == kBlockSize) PHOTON_RETURN_IF_ERROR(Seal());
  if (!block_) {
    if (pipeline_) {
      block_ = pipeline_->Acquire();
    } else {
      block_ = NewBlockBuffer();
    }
  }
  return std::make_pair(block_.get() + fill_, static_cast<size_t>(kBlockSize - fill_));
}

Status BlobWriter::Commit(size_t n) {
  fill_ += n;
  size_ += n;
  return absl::OkStatus();
}

Status BlobWriter::Write(const char* data, size_t n) {
  while (n > 0) {
    PHOTON_ASSIGN_OR_RETURN(auto space, Buffer());
    size_t step = std::min(n, space.second);
    std::memcpy(space.first, data, step);
    PHOTON_RETURN_IF_ERROR(Commit(step));
    data += step;
    n -= step;
  }
  return absl::OkStatus();
}

StatusOr<WrittenBlob> BlobWriter::Finish() {
  WrittenBlob out;
  out.size = size_;
  if (!pipeline_ && inline_max_ > 0 && size_ <= inline_max_) {
    if (fill_ > 0) {
      md5_.Update(block_.get(), fill_);
      out.inline_data.assign(block_.get(), fill_);
    }
    if (cipher_) {
      // Even an empty object is sealed: its tag is what a read checks.
      cipher_->Seal(out.inline_data.data(), out.inline_data.size());
      out.inline_data += cipher_->tags();
    }
    out.md5 = md5_.Finish();
    out.is_inline = true;
    out.inline_crc = Crc32cUpdate(0, out.inline_data.data(), out.inline_data.size());
    finished_ = true;
    return out;
  }
  if (fd_ < 0) PHOTON_RETURN_IF_ERROR(OpenFile());
  if (pipeline_) {
    if (fill_ > 0) {
      pipeline_->Submit(std::move(block_), fill_, sealed_);
      sealed_ += fill_;
      fill_ = 0;
    }
    Status st = pipeline_->Finish(&block_crcs_);
    pipeline_.reset();
    PHOTON_RETURN_IF_ERROR(st);
  } else if (fill_ > 0) {  // a body of one block: no helper threads for it
    md5_.Update(block_.get(), fill_);
    if (cipher_) cipher_->Seal(block_.get(), fill_);
    block_crcs_ += CrcToBytes(Crc32cUpdate(0, block_.get(), fill_));
    PHOTON_RETURN_IF_ERROR(WriteBlock(block_.get(), fill_, 0));
  }
  if (size_ == 0) block_crcs_ += CrcToBytes(0);
  out.md5 = md5_.Finish();
  if (padded_ && ftruncate(fd_, static_cast<off_t>(size_)) != 0)
    return Errno("truncate " + tmp_path_);
  if (fdatasync(fd_) != 0) return Errno("fdatasync " + tmp_path_);
  close(fd_);
  fd_ = -1;
  std::string final_path = store_->BlobPath(blob_id_);
  if (rename(tmp_path_.c_str(), final_path.c_str()) != 0) return Errno("rename " + tmp_path_);
  finished_ = true;
  // A blob the caller is told failed is never referenced: it goes now, not at the next start.
  if (Status st = FsyncDir(final_path.substr(0, final_path.rfind('/'))); !st.ok()) {
    unlink(final_path.c_str());
    return st;
  }
  out.segment = Segment{blob_id_, size_, std::move(block_crcs_)};
  if (cipher_ && cipher_->format() == SseFormat::kGcmBlocks) {
    out.segment.sse_format = static_cast<int>(SseFormat::kGcmBlocks);
    out.segment.block_tags = cipher_->tags();
  }
  return out;
}

namespace {

// One CRC block of one segment that a read touches, and which part of it to send.
struct BlockRead {
  size_t segment;
  uint64_t block_index;
  uint64_t block_off;  // within the segment file
  uint64_t block_len;
  uint64_t send_from;  // within the block
  uint64_t send_len;
};

uint32_t ExpectedCrc(const Segment& seg, uint64_t block_index) {
  if (seg.block_crcs.size() < (block_index + 1) * 4) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(seg.block_crcs.data() + block_index * 4);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

bool PreadFull(int fd, char* buf, uint64_t len, uint64_t off) {
  uint64_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, buf + got, len - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<uint64_t>(r);
  }
  return true;
}

// Checks one block just read: its CRC-32C (bit rot), then, for an encrypted object, its GCM
// tag while decrypting the part that will be sent in place (tampering). Logs what failed.
Status CheckBlock(const ObjectMeta& object, const BlockRead& b, bool read_ok, char* block,
                  const ObjectDecryptor* decrypt) {
  const Segment& seg = object.segments[b.segment];
  if (!read_ok || Crc32cUpdate(0, block, b.block_len) != ExpectedCrc(seg, b.block_index)) {
    spdlog::error("bit rot: object {}/{} blob {} block {} fails its checksum", object.bucket,
                  object.key, seg.blob_id, b.block_index);
    return absl::DataLossError("stored object data is corrupt");
  }
  if (!decrypt) return absl::OkStatus();
  Status st =
      decrypt->OpenBlock(b.segment, b.block_index, block, b.block_len, b.send_from, b.send_len);
  if (!st.ok()) {
    // Its CRC held, so this is no bit rot: a block changed along with its CRC, swapped or
    // cut. Nothing of it leaves.
    spdlog::error("tampering: object {}/{} blob {} block {}: {}", object.bucket, object.key,
                  seg.blob_id, b.block_index, std::string(st.message()));
  }
  return st;
}

// Reads and checks (and decrypts) blocks on a helper thread a few blocks ahead of the
// consumer, so the disk, the CRC and AES run while the connection thread sends the block
// before (a plain loop would alternate). A block's check gates its sending: the consumer
// gets each block with the status of its check.
class Prefetcher {
 public:
  Prefetcher(const ObjectMeta& object, const std::vector<BlockRead>& plan,
             const std::vector<int>& fds, const ObjectDecryptor* decrypt)
      : object_(object), plan_(plan), fds_(fds), decrypt_(decrypt) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // The next block in plan order, read and checked (the status of its check).
  Status Next(std::vector<char>* block) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !ready_.empty(); });
    auto item = std::move(ready_.front());
    ready_.pop_front();
    spare_.push_back(std::move(*block));
    *block = std::move(item.first);
    cv_.notify_all();
    return item.second;
  }

 private:
  static constexpr size_t kDepth = 4;
  void Run() {
    for (const auto& b : plan_) {
      std::vector<char> buf;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || ready_.size() < kDepth; });
        if (stop_) return;
        if (!spare_.empty()) {
          buf = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      buf.resize(kBlockSize);
      bool ok = PreadFull(fds_[b.segment], buf.data(), b.block_len, b.block_off);
      Status st = CheckBlock(object_, b, ok, buf.data(), decrypt_);
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace_back(std::move(buf), st);
      cv_.notify_all();
      if (!st.ok()) return;  // the consumer stops at this block
    }
  }

  const ObjectMeta& object_;
  const std::vector<BlockRead>& plan_;
  const std::vector<int>& fds_;
  const ObjectDecryptor* decrypt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::vector<char>, Status>> ready_;
  std::vector<std::vector<char>> spare_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

Status BlobStore::Read(const ObjectMeta& object, uint64_t offset, uint64_t length,
                       const http::BodySink& sink, const http::FileSink* file,
                       const ObjectDecryptor* decrypt) const {
  if (decrypt) file = nullptr;  // the page cache holds ciphertext
  if (object.has_inline) {
    if (Crc32cUpdate(0, object.inline_data.data(), object.inline_data.size()) !=
        object.inline_crc) {
      spdlog::error("bit rot: object {}/{} inline data fails its checksum", object.bucket,
                    object.key);
      return absl::DataLossError("stored object data is corrupt");
    }
    const std::string* data = &object.inline_data;
    std::string plain;
    if (decrypt) {
      if (Status st = decrypt->OpenInline(object.inline_data, &plain); !st.ok()) {
        spdlog::error("tampering: object {}/{} inline data: {}", object.bucket, object.key,
                      std::string(st.message()));
        return st;
      }
      data = &plain;
    }
    if (length == 0) return absl::OkStatus();
    if (offset + length > data->size())
      return absl::DataLossError("stored object is shorter than its metadata");
    return sink(data->data() + offset, length);
  }
  // Plan the block reads of the range across segments.
  std::vector<BlockRead> plan;
  uint64_t seg_start = 0, want = length;
  for (size_t i = 0; i < object.segments.size() && want > 0; ++i) {
    const Segment& seg = object.segments[i];
    uint64_t seg_end = seg_start + seg.size;
    if (offset < seg_end) {
      for (uint64_t bi = (offset - seg_start) / kBlockSize; want > 0 && bi * kBlockSize < seg.size;
           ++bi) {
        BlockRead b{
            i, bi, bi * kBlockSize, std::min<uint64_t>(kBlockSize, seg.size - bi * kBlockSize),
            0, 0};
        b.send_from = offset > seg_start + b.block_off ? offset - seg_start - b.block_off : 0;
        b.send_len = std::min<uint64_t>(b.block_len - b.send_from, want);
        offset += b.send_len;
        want -= b.send_len;
        plan.push_back(b);
      }
    }
    seg_start = seg_end;
  }
  if (want > 0) return absl::DataLossError("stored object is shorter than its metadata");
  std::vector<int> fds(object.segments.size(), -1);
  auto close_all = [&] {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  };
  for (const auto& b : plan) {
    if (fds[b.segment] >= 0) continue;
    const Segment& seg = object.segments[b.segment];
    fds[b.segment] = open(BlobPath(seg.blob_id).c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[b.segment] < 0) {
      spdlog::error("object {}/{}: blob {} missing", object.bucket, object.key, seg.blob_id);
      close_all();
      return absl::DataLossError("stored object data is missing");
    }
    posix_fadvise(fds[b.segment], 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  std::optional<Prefetcher> prefetch;
  if (plan.size() > 2) prefetch.emplace(object, plan, fds, decrypt);
  std::vector<char> block(kBlockSize);
  Status status;
  for (const auto& b : plan) {
    if (prefetch) {
      status = prefetch->Next(&block);
    } else {
      bool ok = PreadFull(fds[b.segment], block.data(), b.block_len, b.block_off);
      status = CheckBlock(object, b, ok, block.data(), decrypt);
    }
    if (!status.ok()) break;
    // Blob files are never written after their rename, so the page cache holds exactly the
    // bytes just checked: sending them from there skips one copy per byte.
    status = file ? (*file)(fds[b.segment], b.block_off + b.send_from, b.send_len)
                  : sink(block.data() + b.send_from, b.send_len);
    if (!status.ok()) break;
  }
  prefetch.reset();  // joins the helper before the descriptors close
  close_all();
  return status;
}

}  // namespace photon::lightningstor
