// Object bytes on disk. A BlobWriter takes a body as it streams in: bytes stay in memory up to
// the inline limit (small objects then live in the metadata DB), beyond that they go to a
// temp file under tmp/, which Finish() fsyncs and renames into blobs/XX/<id> and whose
// directory it fsyncs, all before the caller commits metadata that points at it. MD5 (the
// ETag) and per-block CRC-32C are computed while writing. Writeback is started every few MiB
// so the final fsync has little left to do.
//
// A BlobStore is thread-safe; a BlobWriter belongs to one thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "lightningstor/async_digest.h"
#include "lightningstor/checksum.h"
#include "lightningstor/http/message.h"
#include "lightningstor/types.h"

namespace photon::lightningstor {

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

  Status Write(const char* data, size_t n);
  // Makes the data durable (file) or hands it back (inline).
  StatusOr<WrittenBlob> Finish();
  uint64_t size() const { return size_; }

 private:
  friend class BlobStore;
  BlobWriter(BlobStore* store, uint64_t inline_max, bool force_file);
  Status Spill();
  Status WriteFile(const char* data, size_t n);
  void UpdateCrcs(const char* data, size_t n);

  BlobStore* store_;
  uint64_t inline_max_;
  Digest md5_{Digest::Kind::kMd5};
  // Hashes on a helper thread once the body is large (see async_digest.h).
  std::unique_ptr<AsyncDigest> async_md5_;
  uint64_t size_ = 0;
  std::string buffer_;  // inline bytes until spilled
  int fd_ = -1;
  std::string tmp_path_;
  std::string blob_id_;
  uint64_t synced_upto_ = 0;  // bytes handed to writeback so far
  uint32_t block_crc_ = 0;
  uint64_t block_fill_ = 0;
  std::string block_crcs_;
  bool finished_ = false;
};

class BlobStore {
 public:
  // Creates the directories and empties tmp/ (left-overs of a crash are never visible).
  static StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& data_dir);

  // force_file: never inline (multipart parts, whose blobs outlive the upload).
  std::unique_ptr<BlobWriter> NewWriter(uint64_t inline_max, bool force_file = false);

  // Streams bytes [offset, offset+length) of an object to sink, verifying every block's
  // CRC-32C before its bytes leave; DataLoss on mismatch (bit rot).
  Status Read(const ObjectMeta& object, uint64_t offset, uint64_t length,
              const http::BodySink& sink) const;

  // Unlinks a blob file whose metadata is gone (errors are logged, not returned).
  void Remove(const std::string& blob_id) const;
  // Calls fn(blob_id) for every blob file (startup orphan clean-up).
  void ForEachBlob(const std::function<void(const std::string&)>& fn) const;

  std::string BlobPath(const std::string& blob_id) const;
  const std::string& tmp_dir() const { return tmp_dir_; }

 private:
  std::string root_;
  std::string tmp_dir_;
};

}  // namespace photon::lightningstor
