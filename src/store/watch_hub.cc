// In-memory watch fan-out for SqliteStore. Thread-safe; see watch_hub.h.
#include "store/watch_hub.h"

#include <algorithm>
#include <utility>

#include "common/util.h"
#include "store/key_range.h"

namespace photon::store {
namespace {

// A long replay goes out in several callbacks of about this many events, each ending on a
// revision boundary, so a consumer can stream it instead of holding it all at once.
constexpr size_t kMaxEventsPerCallback = 1000;

std::vector<WatchEvent> TakeBatch(std::deque<WatchEvent>& pending) {
  size_t cut = std::min(pending.size(), kMaxEventsPerCallback);
  while (cut < pending.size() && pending[cut].kv.mod_revision == pending[cut - 1].kv.mod_revision) {
    ++cut;
  }
  std::vector<WatchEvent> batch(
      std::make_move_iterator(pending.begin()),
      std::make_move_iterator(pending.begin() + static_cast<ptrdiff_t>(cut)));
  pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(cut));
  return batch;
}

class HubWatchHandle : public WatchHandle {
 public:
  HubWatchHandle(std::shared_ptr<WatchHub> hub, std::shared_ptr<WatchHub::Watcher> watcher)
      : hub_(std::move(hub)), watcher_(std::move(watcher)) {}
  ~HubWatchHandle() override { Cancel(); }
  void Cancel() override { hub_->Cancel(watcher_); }

 private:
  std::shared_ptr<WatchHub> hub_;
  std::shared_ptr<WatchHub::Watcher> watcher_;
};

}  // namespace

WatchHub::WatchHub(int64_t published_revision) : published_revision_(published_revision) {
  dispatcher_ = std::thread([this] {
    SetThreadName("store-watch");
    DispatchLoop();
  });
  dispatcher_id_ = dispatcher_.get_id();
}

WatchHub::~WatchHub() { Close(absl::UnavailableError("store closed")); }

StatusOr<int64_t> WatchHub::Register(const std::shared_ptr<Watcher>& watcher) {
  std::lock_guard lock(mu_);
  if (closed_) return absl::UnavailableError("store closed");
  watchers_.push_back(watcher);
  return published_revision_;
}

void WatchHub::Activate(const std::shared_ptr<Watcher>& watcher, std::vector<WatchEvent> replay) {
  std::lock_guard lock(mu_);
  watcher->pending.insert(watcher->pending.begin(), std::make_move_iterator(replay.begin()),
                          std::make_move_iterator(replay.end()));
  watcher->ready = true;
  cv_.notify_all();
}

void WatchHub::Cancel(const std::shared_ptr<Watcher>& watcher) {
  std::unique_lock lock(mu_);
  watcher->cancelled = true;
  watchers_.remove(watcher);
  if (std::this_thread::get_id() == dispatcher_id_) return;
  cv_.wait(lock, [&] { return !watcher->delivering; });
}

void WatchHub::Publish(const std::vector<WatchEvent>& events, int64_t revision) {
  std::lock_guard lock(mu_);
  bool any = false;
  for (auto& watcher : watchers_) {
    for (const auto& event : events) {
      if (event.kv.mod_revision < watcher->min_revision) continue;
      if (!InRange(event.kv.key, watcher->key, watcher->end)) continue;
      watcher->pending.push_back(event);
      any = true;
    }
  }
  published_revision_ = std::max(published_revision_, revision);
  if (any) cv_.notify_all();
}

int64_t WatchHub::PublishedRevision() {
  std::lock_guard lock(mu_);
  return published_revision_;
}

void WatchHub::Close(const Status& status) {
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      // Already closed; only the first caller joins.
      if (!dispatcher_.joinable()) return;
    } else {
      closed_ = true;
      close_status_ = status;
    }
    cv_.notify_all();
  }
  if (dispatcher_.joinable() && std::this_thread::get_id() != dispatcher_id_) dispatcher_.join();
}

std::unique_ptr<WatchHandle> WatchHub::MakeHandle(std::shared_ptr<Watcher> watcher) {
  return std::make_unique<HubWatchHandle>(shared_from_this(), std::move(watcher));
}

void WatchHub::DispatchLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    bool delivered = false;
    // Copy: callbacks run unlocked and Cancel may edit the list meanwhile.
    std::vector<std::shared_ptr<Watcher>> watchers(watchers_.begin(), watchers_.end());
    for (auto& watcher : watchers) {
      if (watcher->cancelled || !watcher->ready || watcher->pending.empty()) continue;
      std::vector<WatchEvent> events = TakeBatch(watcher->pending);
      watcher->delivering = true;
      lock.unlock();
      watcher->on_events(events);
      lock.lock();
      watcher->delivering = false;
      cv_.notify_all();
      delivered = true;
    }
    if (delivered) continue;
    if (closed_) break;
    cv_.wait(lock);
  }
  // Closed: every watch still open ends with the close status, once.
  auto watchers = std::move(watchers_);
  watchers_.clear();
  for (auto& watcher : watchers) {
    if (watcher->cancelled) continue;
    watcher->cancelled = true;
    if (!watcher->on_error) continue;
    watcher->delivering = true;
    lock.unlock();
    watcher->on_error(close_status_);
    lock.lock();
    watcher->delivering = false;
    cv_.notify_all();
  }
}

}  // namespace photon::store
