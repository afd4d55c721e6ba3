// Runs an incremental digest (MD5 for the ETag) on a helper thread, so a large upload hashes
// on one core while its connection thread receives, checksums and writes on the other. MD5
// cannot be split, and at ~0.8 GB/s per core it would otherwise cap PUT throughput.
// Update() copies the bytes into one of a few recycled buffers (blocking when all are in
// flight); Finish() waits for the queue to drain. Owned by one thread; the helper thread is
// internal.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lightningstor/checksum.h"

namespace photon::lightningstor {

class AsyncDigest {
 public:
  // Continues `digest` (which must outlive this object and not be used until Finish).
  explicit AsyncDigest(Digest* digest);
  ~AsyncDigest();
  AsyncDigest(const AsyncDigest&) = delete;
  AsyncDigest& operator=(const AsyncDigest&) = delete;

  void Update(const char* data, size_t n);
  // Waits until every queued byte is hashed and stops the helper thread.
  void Finish();

 private:
  void Run();

  static constexpr size_t kMaxInFlight = 4;
  Digest* digest_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::vector<std::string> spare_;
  size_t in_flight_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace photon::lightningstor
