// Background housekeeping: applies bucket lifecycle rules (expiration of current versions by
// days or date, of noncurrent versions and of lone delete markers, filtered by prefix, tags
// and size; aborting incomplete multipart uploads) and aborts uploads abandoned for longer than the
// configured limit. Time comes from the injected Clock and a lifecycle "day" lasts
// lifecycle_day_seconds, so tests can run days in seconds. RunOnce is safe to call from any
// thread; Start/Stop own one background thread.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "lightningstor/blob_store.h"
#include "lightningstor/bucket_rules.h"
#include "lightningstor/clock.h"
#include "lightningstor/config.h"
#include "lightningstor/meta_store.h"

namespace photon::lightningstor {

class Sweeper {
 public:
  Sweeper(const Config& config, MetaStore* meta, BlobStore* blobs, const Clock* clock)
      : config_(config), meta_(meta), blobs_(blobs), clock_(clock) {}
  ~Sweeper() { Stop(); }

  void Start();
  void Stop();
  // One full pass; returns the number of objects expired plus uploads aborted.
  StatusOr<int> RunOnce();

 private:
  void Free(const WriteResult& result);
  // Expiration of current versions (Days or Date) matching the rule's filter.
  StatusOr<int> ExpireCurrent(const BucketMeta& bucket, const LifecycleRule& rule, int64_t now);
  StatusOr<int> ExpireVersions(const BucketMeta& bucket, const LifecycleRule& rule, int64_t now);

  Config config_;
  MetaStore* meta_;
  BlobStore* blobs_;
  const Clock* clock_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace photon::lightningstor
