#include "lightningstor/write_pipeline.h"

#include <new>

#include "lightningstor/types.h"

namespace photon::lightningstor {

namespace {

struct BlockPool {
  std::mutex mu;
  std::vector<char*> free;
};

// Never destroyed: buffers may be freed by threads still running at exit.
BlockPool& Pool() {
  static BlockPool* pool = new BlockPool;
  return *pool;
}

}  // namespace

void BlockDeleter::operator()(char* p) const {
  BlockPool& pool = Pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (pool.free.size() < kPooledBlocks) {
      pool.free.push_back(p);
      return;
    }
  }
  std::free(p);
}

BlockBuffer NewBlockBuffer() {
  BlockPool& pool = Pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (!pool.free.empty()) {
      char* p = pool.free.back();
      pool.free.pop_back();
      return BlockBuffer(p);
    }
  }
  void* p = std::aligned_alloc(kDirectAlign, kBlockSize);
  if (p == nullptr) throw std::bad_alloc();
  return BlockBuffer(static_cast<char*>(p));
}

WritePipeline::WritePipeline(Digest* md5, WriteFn write, TransformFn transform)
    : md5_(md5), write_(std::move(write)), transform_(std::move(transform)) {
  hasher_ = std::thread([this] { HashLoop(); });
  writer_ = std::thread([this] { WriteLoop(); });
}

WritePipeline::~WritePipeline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  hash_cv_.notify_one();
  write_cv_.notify_one();
  if (hasher_.joinable()) hasher_.join();
  if (writer_.joinable()) writer_.join();
}

BlockBuffer WritePipeline::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  // Once out of buffers, wait for kRefill of them: the receiver then takes several blocks
  // from the socket in one go instead of waking once per block.
  space_cv_.wait(lock, [this] { return free_.size() >= kRefill || allocated_ < kDepth; });
  if (!free_.empty()) {
    BlockBuffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  ++allocated_;
  lock.unlock();
  return NewBlockBuffer();
}

void WritePipeline::Submit(BlockBuffer buf, size_t len, uint64_t offset) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(Item{std::move(buf), len, offset, 2});
    ++submitted_;
  }
  hash_cv_.notify_one();
  if (!transform_) write_cv_.notify_one();  // with a transform the hasher wakes the writer
}

Status WritePipeline::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return write_status_;
}

bool WritePipeline::Release(Item* item) {
  if (--item->pending > 0) return false;
  while (!items_.empty() && items_.front().pending == 0) {
    free_.push_back(std::move(items_.front().buf));
    items_.pop_front();
    ++first_index_;
  }
  return true;
}

// Both loops read an item without the lock: it stays in items_ (a deque keeps references to
// its elements valid on push_back and pop_front of other elements) until both release it.
void WritePipeline::HashLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    hash_cv_.wait(lock, [this] { return closing_ || hashed_ < submitted_; });
    if (hashed_ == submitted_) return;
    Item& item = items_[hashed_ - first_index_];
    lock.unlock();
    md5_->Update(item.buf.get(), item.len);
    lock.lock();
    ++hashed_;
    if (Release(&item)) WakeReceiver();
    if (transform_) write_cv_.notify_one();
  }
}

void WritePipeline::WriteLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // With a transform the writer follows the hasher: a block changes only once it is hashed.
    write_cv_.wait(lock, [this] {
      return closing_ || (written_ < submitted_ && (!transform_ || written_ < hashed_));
    });
    if (written_ == submitted_) return;
    Item& item = items_[written_ - first_index_];
    bool failed = !write_status_.ok();
    lock.unlock();
    if (transform_) transform_(item.buf.get(), item.len);
    // The CRC is taken before the write, which may pad the buffer past len.
    std::string crc = CrcToBytes(Crc32cUpdate(0, item.buf.get(), item.len));
    // After a failure the remaining items are only released, so the receiver never blocks.
    Status st = failed ? absl::OkStatus() : write_(item.buf.get(), item.len, item.offset);
    lock.lock();
    crcs_ += crc;
    if (!st.ok() && write_status_.ok()) write_status_ = st;
    ++written_;
    if (Release(&item)) WakeReceiver();
  }
}

void WritePipeline::WakeReceiver() {
  bool done = hashed_ == submitted_ && written_ == submitted_;
  if (done || free_.size() >= kRefill) space_cv_.notify_one();
}

Status WritePipeline::Finish(std::string* block_crcs) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    space_cv_.wait(lock, [this] { return hashed_ == submitted_ && written_ == submitted_; });
    closing_ = true;
  }
  hash_cv_.notify_one();
  write_cv_.notify_one();
  hasher_.join();
  writer_.join();
  *block_crcs += crcs_;
  return write_status_;
}

}  // namespace photon::lightningstor
