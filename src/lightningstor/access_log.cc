#include "lightningstor/access_log.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace photon::lightningstor {

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  FlushAll();
}

void AccessLog::Append(const std::string& target_bucket, const std::string& prefix,
                       std::string line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  pending_[{target_bucket, prefix}] += line + "\n";
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void AccessLog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  auto interval = std::chrono::duration<double>(flush_seconds_);
  while (!stopping_) {
    cv_.wait_for(lock, interval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    FlushAll();
    lock.lock();
  }
}

void AccessLog::FlushAll() {
  std::map<std::pair<std::string, std::string>, std::string> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(pending_);
  }
  for (const auto& [target, lines] : batch) {
    Status st = deliver_(target.first, target.second, lines);
    if (!st.ok()) {
      spdlog::warn("access log for bucket {} not delivered: {}", target.first,
                   std::string(st.message()));
    }
  }
}

std::string EncodeLoggingTarget(const std::string& bucket, const std::string& prefix) {
  return bucket + "\n" + prefix;
}

std::pair<std::string, std::string> DecodeLoggingTarget(const std::string& text) {
  size_t nl = text.find('\n');
  if (nl == std::string::npos) return {text, ""};
  return {text.substr(0, nl), text.substr(nl + 1)};
}

}  // namespace photon::lightningstor
