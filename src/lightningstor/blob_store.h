// Object bytes on disk. A BlobWriter takes a body as it streams in, in 1 MiB blocks that the
// caller can receive into directly (Buffer/Commit). A body that ends within the inline limit
// stays in memory (small objects then live in the metadata DB); beyond it the blocks go to a
// temp file under tmp/, which Finish() fsyncs and renames into blobs/XX/<id> and whose
// directory it fsyncs, all before the caller commits metadata that points at it. MD5 (the
// ETag) and per-block CRC-32C are computed on the way; from the second block on, hashing and
// writing run on helper threads (write_pipeline.h) while the caller receives the next block.
//
// A BlobStore is thread-safe; a BlobWriter belongs to one thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "lightningstor/checksum.h"
#include "lightningstor/http/message.h"
#include "lightningstor/types.h"
#include "lightningstor/write_pipeline.h"

namespace photon::lightningstor {

class SegmentEncryptor;  // sse.h
class ObjectDecryptor;   // sse.h

struct WrittenBlob {
  uint64_t size = 0;
  std::string md5;  // raw 16 bytes
  bool is_inline = false;
  std::string inline_data;
  uint32_t inline_crc = 0;
  Segment segment;  // when !is_inline
};

class BlobStore;

class BlobWriter {
 public:
  ~BlobWriter();  // removes the temp file unless Finish succeeded
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Where the next bytes of the body go (never empty), so a reader can fill it without an
  // extra copy; Commit(n) then takes n bytes of it. May block while earlier blocks are still
  // being hashed or written, and fails with their write error.
  StatusOr<std::pair<char*, size_t>> Buffer();
  Status Commit(size_t n);
  // Copies bytes in (Buffer + Commit).
  Status Write(const char* data, size_t n);
  // Makes the data durable (file) or hands it back (inline).
  StatusOr<WrittenBlob> Finish();
  // Stores the bytes encrypted by `cipher` (block by block in order, after the MD5 and before
  // the CRC, on the writer's helper thread), so WrittenBlob::md5 is the plaintext's; the
  // segment records its format and block tags, inline data is followed by its tag (format 2).
  // Set before the first Buffer(); the cipher must outlive Finish.
  void Encrypt(SegmentEncryptor* cipher) { cipher_ = cipher; }
  uint64_t size() const { return size_; }

 private:
  friend class BlobStore;
  BlobWriter(BlobStore* store, uint64_t inline_max, bool force_file);
  Status OpenFile();
  // Hands the full current block to the pipeline (starting it and the file if needed).
  Status Seal();
  // Writes one block at offset (writer thread, or the caller's for a body of one block).
  Status WriteBlock(char* buf, size_t len, uint64_t offset);

  BlobStore* store_;
  uint64_t inline_max_;
  Digest md5_{Digest::Kind::kMd5};
  std::unique_ptr<WritePipeline> pipeline_;
  BlockBuffer block_;    // the block being filled
  size_t fill_ = 0;      // bytes in block_
  uint64_t size_ = 0;    // bytes committed in all
  uint64_t sealed_ = 0;  // bytes handed to the pipeline (file offset of block_)
  SegmentEncryptor* cipher_ = nullptr;
  int fd_ = -1;
  bool direct_ = false;  // fd_ is O_DIRECT (dropped if the file system refuses it)
  bool padded_ = false;  // the last block was written padded; truncate to size_
  std::string tmp_path_;
  std::string blob_id_;
  std::string block_crcs_;
  bool finished_ = false;
};

class BlobStore {
 public:
  BlobStore() = default;
  ~BlobStore();  // unlinks what RemoveLater still holds
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Creates the directories and empties tmp/ (left-overs of a crash are never visible).
  static StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& data_dir);

  // force_file: never inline (multipart parts, whose blobs outlive the upload).
  std::unique_ptr<BlobWriter> NewWriter(uint64_t inline_max, bool force_file = false);

  // Streams bytes [offset, offset+length) of an object to sink, verifying every block's
  // CRC-32C before its bytes leave; DataLoss on mismatch (bit rot). With `file`, verified
  // blocks of blob files leave through it (sendfile from the page cache the check just read)
  // instead of being copied once more through sink. With `decrypt` (an encrypted object;
  // `file` is then not used) each checked block is decrypted before its bytes leave, a GCM
  // block whole and only when its tag holds: DataLoss otherwise, logged naming the object.
  Status Read(const ObjectMeta& object, uint64_t offset, uint64_t length,
              const http::BodySink& sink, const http::FileSink* file = nullptr,
              const ObjectDecryptor* decrypt = nullptr) const;

  // Unlinks a blob file whose metadata is gone (errors are logged, not returned).
  void Remove(const std::string& blob_id) const;
  // The same on a background thread: unlinking a large file costs ext4 ~14 ms per 64 MiB,
  // which an overwrite or delete should not wait for. The metadata no longer points at these
  // blobs, so a crash before the unlink leaves orphans that the next start removes.
  void RemoveLater(const std::vector<std::string>& blob_ids);
  // Calls fn(blob_id) for every blob file (startup orphan clean-up).
  void ForEachBlob(const std::function<void(const std::string&)>& fn) const;

  std::string BlobPath(const std::string& blob_id) const;
  const std::string& tmp_dir() const { return tmp_dir_; }

 private:
  void ReapLoop();

  std::string root_;
  std::string tmp_dir_;
  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::vector<std::string> to_reap_;
  bool closing_ = false;
  std::thread reaper_;  // started by the first RemoveLater
};

}  // namespace photon::lightningstor
