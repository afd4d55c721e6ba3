// Server access logging (S3's format) into target buckets: request lines are buffered per
// target and delivered as one object per target every flush interval, and at shutdown. As in
// S3, delivery is best effort: lines buffered when the process is killed are lost. The flush
// thread starts with the first line (after the daemon has blocked its stop signals).
// Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"

namespace photon::lightningstor {

class AccessLog {
 public:
  // Writes `lines` as a new object under `prefix` in `bucket` (called from the flush thread).
  using Deliver = std::function<Status(const std::string& bucket, const std::string& prefix,
                                       const std::string& lines)>;
  AccessLog(double flush_seconds, Deliver deliver)
      : flush_seconds_(flush_seconds), deliver_(std::move(deliver)) {}
  ~AccessLog();  // delivers what is buffered
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Append(const std::string& target_bucket, const std::string& prefix, std::string line);

 private:
  void Loop();
  void FlushAll();

  double flush_seconds_;
  Deliver deliver_;
  std::mutex mu_;
  std::condition_variable cv_;
  // (target bucket, prefix) -> buffered lines
  std::map<std::pair<std::string, std::string>, std::string> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

// The "BUCKET\nPREFIX" form a bucket keeps its logging target in, and back ("" = off).
std::string EncodeLoggingTarget(const std::string& bucket, const std::string& prefix);
std::pair<std::string, std::string> DecodeLoggingTarget(const std::string& text);

}  // namespace photon::lightningstor
