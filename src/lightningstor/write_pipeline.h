// The write path of a large body, split over two helper threads so that receiving, hashing
// and disk writes overlap instead of adding up. The connection thread fills 1 MiB buffers
// straight from the socket and submits them; one helper feeds them in order to MD5 (the ETag,
// which cannot be split and runs at ~0.8 GB/s per core, the ceiling of a single-stream PUT);
// the other computes each block's CRC-32C and writes it (O_DIRECT where the file system
// allows, so no core spends time copying the body into the page cache). A buffer goes back to
// the pool when both are done with it, so at most kDepth MiB of a body is ever in memory.
//
// Owned by one thread (the connection's); the helper threads are internal.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "lightningstor/checksum.h"

namespace photon::lightningstor {

// kBlockSize bytes, aligned for O_DIRECT, with room past the end that is never data (a short
// last block is padded up to the alignment there). Freed buffers go back to a process-wide
// pool of up to kPooledBlocks: a fresh 1 MiB buffer costs 256 page faults when first touched,
// and a 64 MiB PUT through a fresh pipeline would fault in all kDepth of them again.
struct BlockDeleter {
  void operator()(char* p) const;
};
using BlockBuffer = std::unique_ptr<char, BlockDeleter>;
inline constexpr size_t kDirectAlign = 4096;
inline constexpr size_t kPooledBlocks = 16;
BlockBuffer NewBlockBuffer();

class WritePipeline {
 public:
  // Writes `len` bytes of `buf` at file offset `offset`; runs on the writer thread, in order.
  // `buf` has room up to the next kDirectAlign boundary for padding.
  using WriteFn = std::function<Status(char* buf, size_t len, uint64_t offset)>;

  // Applied to a block after it is hashed and before its CRC and write (encryption at rest:
  // the MD5 is the plaintext's, the CRC and the disk see the stored bytes); in order.
  using TransformFn = std::function<void(char* buf, size_t len)>;

  // Continues `md5` (not to be touched by the caller until Finish returns).
  WritePipeline(Digest* md5, WriteFn write, TransformFn transform = nullptr);
  ~WritePipeline();  // waits for the helpers
  WritePipeline(const WritePipeline&) = delete;
  WritePipeline& operator=(const WritePipeline&) = delete;

  // A free buffer; blocks while kDepth buffers are in flight.
  BlockBuffer Acquire();
  // Hands over `len` bytes (at most kBlockSize) at file offset `offset`. Submitted buffers are
  // hashed in submission order.
  void Submit(BlockBuffer buf, size_t len, uint64_t offset);
  // The first write error so far, so a receiver can stop early.
  Status status();
  // Waits until everything submitted is hashed and written; appends each block's CRC-32C
  // (4 bytes, big-endian) in submission order. Returns the first write error.
  Status Finish(std::string* block_crcs);

 private:
  static constexpr size_t kDepth = 8;
  static constexpr size_t kRefill = kDepth / 2;
  struct Item {
    BlockBuffer buf;
    size_t len;
    uint64_t offset;
    int pending;  // helpers still to process it
  };
  void HashLoop();
  void WriteLoop();
  // With mu_ held; true when the item is done with (a buffer may be free, or Finish may be
  // able to return), so the receiver's condition changed.
  bool Release(Item* item);
  // Wakes the receiver when its wait can end (kRefill buffers free, or all done); mu_ held.
  void WakeReceiver();

  Digest* md5_;
  WriteFn write_;
  TransformFn transform_;
  std::mutex mu_;
  // One per waiter, so a state change wakes only the thread it concerns: each wake-up is a
  // context switch that can land on the hasher's core, the one stage a PUT waits on.
  std::condition_variable hash_cv_;   // the hasher: a block was submitted, or closing
  std::condition_variable write_cv_;  // the writer: a block to write (hashed, with a transform)
  std::condition_variable space_cv_;  // the receiver: a buffer freed, or all done (Finish)
  std::deque<Item> items_;            // submission order; the front leaves once both are done
  uint64_t first_index_ = 0;          // index of items_.front()
  uint64_t submitted_ = 0;
  uint64_t hashed_ = 0;   // next index for the hasher
  uint64_t written_ = 0;  // next index for the writer
  std::vector<BlockBuffer> free_;
  size_t allocated_ = 0;
  bool closing_ = false;
  Status write_status_;
  std::string crcs_;
  std::thread hasher_;
  std::thread writer_;
};

}  // namespace photon::lightningstor
