#include "lightningstor/sweeper.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "lightningstor/bucket_rules.h"
#include "lightningstor/object_attrs.h"
#include "lightningstor/s3_error.h"

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

namespace {

TagSet TagsOf(const ObjectMeta& o) {
  auto it = o.headers.find(kTagsHeader);
  if (it == o.headers.end()) return {};
  auto tags = ParseTagQuery(it->second);
  return tags.ok() ? *tags : TagSet();
}

// The delete of an expired version goes ahead only if that version is still the one the rule
// chose: a PUT between the scan and the delete must not be expired with it.
Precondition StillVersion(const std::string& version_id, int64_t seq) {
  return [version_id, seq](const ObjectMeta* target) -> Status {
    if (target && target->version_id == version_id && target->seq == seq) return absl::OkStatus();
    return S3Error("PreconditionFailed", "changed since the lifecycle scan");
  };
}

}  // namespace

StatusOr<int> Sweeper::ExpireCurrent(const BucketMeta& bucket, const LifecycleRule& rule,
                                     int64_t now) {
  int64_t cutoff;
  if (rule.expiration_days > 0) {
    cutoff =
        now - static_cast<int64_t>(rule.expiration_days * config_.lifecycle_day_seconds * 1000);
  } else if (rule.expiration_date_ms >= 0 && rule.expiration_date_ms <= now) {
    cutoff = std::numeric_limits<int64_t>::max();
  } else {
    return 0;
  }
  int done = 0;
  std::string after;
  for (int pass = 0; pass < 1000; ++pass) {
    PHOTON_ASSIGN_OR_RETURN(
        auto page, meta_->ExpiryCandidates(bucket.name, rule.filter.prefix, after, cutoff, 500));
    if (page.empty()) break;
    after = page.back().key;
    for (const auto& o : page) {
      if (!rule.filter.Matches(o.key, o.size, TagsOf(o))) continue;
      auto result =
          meta_->DeleteObject(bucket.name, o.key, "", now, StillVersion(o.version_id, o.seq));
      if (!result.ok()) {
        if (S3Code(result.status()) == "PreconditionFailed") continue;
        return result.status();
      }
      Free(*result);
      spdlog::info("lifecycle: expired {}/{} (rule '{}')", bucket.name, o.key, rule.id);
      ++done;
    }
  }
  return done;
}

// Noncurrent versions older than the rule's days (counted from when a newer version replaced
// them), beyond the newest `newer_noncurrent` ones; and delete markers left with no versions.
StatusOr<int> Sweeper::ExpireVersions(const BucketMeta& bucket, const LifecycleRule& rule,
                                      int64_t now) {
  int64_t cutoff =
      now - static_cast<int64_t>(rule.noncurrent_days * config_.lifecycle_day_seconds * 1000);
  int done = 0;
  std::string key_marker, version_marker, key;
  int64_t newer_mtime = 0;  // mtime of the previous (newer) version of `key`
  int noncurrent = 0;       // noncurrent versions of `key` seen so far
  std::vector<ObjectMeta> versions_of_key;
  auto finish_key = [&]() -> Status {
    // A lone delete marker: every version behind it is gone.
    if (rule.expired_delete_marker && versions_of_key.size() == 1 &&
        versions_of_key[0].delete_marker &&
        versions_of_key[0].key.rfind(rule.filter.prefix, 0) == 0) {
      const ObjectMeta& m = versions_of_key[0];
      auto result = meta_->DeleteObject(bucket.name, m.key, m.version_id, now);
      if (!result.ok()) return result.status();
      spdlog::info("lifecycle: removed expired delete marker {}/{}", bucket.name, m.key);
      ++done;
    }
    versions_of_key.clear();
    return absl::OkStatus();
  };
  for (int pass = 0; pass < 1000; ++pass) {
    PHOTON_ASSIGN_OR_RETURN(auto page, meta_->ListVersions(bucket.name, rule.filter.prefix,
                                                           key_marker, version_marker, 500));
    if (page.empty()) break;
    key_marker = page.back().key;
    version_marker = page.back().version_id;
    for (const auto& v : page) {
      if (v.key != key) {
        PHOTON_RETURN_IF_ERROR(finish_key());
        key = v.key;
        noncurrent = 0;
        newer_mtime = 0;
      }
      versions_of_key.push_back(v);
      if (v.is_latest) {
        newer_mtime = v.mtime_ms;
        continue;
      }
      int64_t since = newer_mtime;
      newer_mtime = v.mtime_ms;
      ++noncurrent;
      if (rule.noncurrent_days <= 0 || since >= cutoff || noncurrent <= rule.newer_noncurrent)
        continue;
      if (!v.delete_marker && !rule.filter.Matches(v.key, v.size, TagsOf(v))) continue;
      auto result = meta_->DeleteObject(bucket.name, v.key, v.version_id, now);
      if (!result.ok()) return result.status();
      Free(*result);
      versions_of_key.pop_back();
      spdlog::info("lifecycle: expired noncurrent {}/{} version {} (rule '{}')", bucket.name, v.key,
                   v.version_id, rule.id);
      ++done;
    }
  }
  PHOTON_RETURN_IF_ERROR(finish_key());
  return done;
}

StatusOr<int> Sweeper::RunOnce() {
  int64_t now = clock_->NowMillis();
  double day_ms = config_.lifecycle_day_seconds * 1000;
  int done = 0;
  PHOTON_ASSIGN_OR_RETURN(auto buckets, meta_->ListBuckets());
  for (const auto& bucket : buckets) {
    if (bucket.lifecycle.empty()) continue;
    auto rules = ParseLifecycle(bucket.lifecycle);
    if (!rules.ok()) {
      spdlog::error("lifecycle of bucket {} unreadable: {}", bucket.name,
                    std::string(rules.status().message()));
      continue;
    }
    for (const auto& rule : *rules) {
      if (!rule.enabled) continue;
      PHOTON_ASSIGN_OR_RETURN(int expired, ExpireCurrent(bucket, rule, now));
      done += expired;
      if (rule.noncurrent_days > 0 || rule.expired_delete_marker) {
        PHOTON_ASSIGN_OR_RETURN(int old, ExpireVersions(bucket, rule, now));
        done += old;
      }
      if (rule.abort_upload_days > 0) {
        int64_t cutoff = now - static_cast<int64_t>(rule.abort_upload_days * day_ms);
        PHOTON_ASSIGN_OR_RETURN(auto uploads, meta_->UploadsOlderThan(cutoff, 10000));
        for (const auto& u : uploads) {
          if (u.bucket != bucket.name || u.key.rfind(rule.filter.prefix, 0) != 0) continue;
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
  // Answers kept for retried completions live as long as an upload may.
  PHOTON_RETURN_IF_ERROR(meta_->ForgetCompleted(abandoned));
  return done;
}

}  // namespace photon::lightningstor
