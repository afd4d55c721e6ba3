#include "lightningstor/sweeper.h"

#include <spdlog/spdlog.h>

#include "lightningstor/bucket_rules.h"

namespace photon::lightningstor {

void Sweeper::Start() {
  thread_ = std::thread([this] {
    auto interval =
        std::chrono::milliseconds(static_cast<int64_t>(config_.sweeper_interval_seconds * 1000));
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, interval, [this] { return stop_; });
      if (stop_) break;
      lock.unlock();
      auto done = RunOnce();
      if (!done.ok())
        spdlog::warn("sweeper: {}", std::string(done.status().message()));
      else if (*done > 0)
        spdlog::info("sweeper: expired or aborted {} item(s)", *done);
      lock.lock();
    }
  });
}

void Sweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sweeper::Free(const WriteResult& result) {
  for (const auto& id : result.freed_blobs) blobs_->Remove(id);
}

StatusOr<int> Sweeper::RunOnce() {
  int64_t now = clock_->NowMillis();
  double day_ms = config_.lifecycle_day_seconds * 1000;
  int done = 0;
  PHOTON_ASSIGN_OR_RETURN(auto buckets, meta_->ListBuckets());
  for (const auto& bucket : buckets) {
    if (bucket.lifecycle.empty()) continue;
    auto rules = ParseLifecycle(bucket.lifecycle);
    if (!rules.ok()) continue;
    for (const auto& rule : *rules) {
      if (!rule.enabled) continue;
      if (rule.expiration_days > 0) {
        int64_t cutoff = now - static_cast<int64_t>(rule.expiration_days * day_ms);
        // Each pass removes (or hides behind a delete marker) what it found; bounded passes.
        for (int pass = 0; pass < 100; ++pass) {
          PHOTON_ASSIGN_OR_RETURN(auto victims,
                                  meta_->ExpiryCandidates(bucket.name, rule.prefix, cutoff, 500));
          if (victims.empty()) break;
          for (const auto& o : victims) {
            auto result = meta_->DeleteObject(bucket.name, o.key, "", now);
            if (!result.ok()) return result.status();
            Free(*result);
            spdlog::info("lifecycle: expired {}/{} (rule '{}')", bucket.name, o.key, rule.id);
            ++done;
          }
        }
      }
      if (rule.abort_upload_days > 0) {
        int64_t cutoff = now - static_cast<int64_t>(rule.abort_upload_days * day_ms);
        PHOTON_ASSIGN_OR_RETURN(auto uploads, meta_->UploadsOlderThan(cutoff, 10000));
        for (const auto& u : uploads) {
          if (u.bucket != bucket.name || u.key.rfind(rule.prefix, 0) != 0) continue;
          auto result = meta_->AbortUpload(u.upload_id);
          if (result.ok()) {
            Free(*result);
            ++done;
          }
        }
      }
    }
  }
  int64_t abandoned = now - static_cast<int64_t>(config_.abandoned_upload_seconds * 1000);
  PHOTON_ASSIGN_OR_RETURN(auto uploads, meta_->UploadsOlderThan(abandoned, 10000));
  for (const auto& u : uploads) {
    auto result = meta_->AbortUpload(u.upload_id);
    if (!result.ok()) continue;
    Free(*result);
    spdlog::info("sweeper: aborted abandoned upload {} of {}/{}", u.upload_id, u.bucket, u.key);
    ++done;
  }
  return done;
}

}  // namespace photon::lightningstor
