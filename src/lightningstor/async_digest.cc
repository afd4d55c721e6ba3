#include "lightningstor/async_digest.h"

namespace photon::lightningstor {

AsyncDigest::AsyncDigest(Digest* digest) : digest_(digest) {
  thread_ = std::thread([this] { Run(); });
}

AsyncDigest::~AsyncDigest() { Finish(); }

void AsyncDigest::Update(const char* data, size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return in_flight_ < kMaxInFlight; });
  std::string buffer;
  if (!spare_.empty()) {
    buffer = std::move(spare_.back());
    spare_.pop_back();
  }
  lock.unlock();
  buffer.assign(data, n);  // copy outside the lock; the caller reuses its buffer at once
  lock.lock();
  queue_.push_back(std::move(buffer));
  ++in_flight_;
  cv_.notify_all();
}

void AsyncDigest::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop requested and everything hashed
    std::string buffer = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    digest_->Update(buffer.data(), buffer.size());
    lock.lock();
    spare_.push_back(std::move(buffer));
    --in_flight_;
    cv_.notify_all();
  }
}

void AsyncDigest::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace photon::lightningstor
