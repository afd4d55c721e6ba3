// WatchHub: the in-memory fan-out of committed events to the watchers of one SqliteStore.
//
// The writer publishes every committed revision's events; each watcher keeps its own queue and
// one dispatcher thread delivers the queues in revision order. A watcher that starts in the
// past is registered first (so it buffers every live event after the published revision),
// then given its replay from the database, which is put in front of the buffer: no gap and no
// duplicate between history and live events.
//
// Thread-safety: all methods are thread-safe. Callbacks run on the dispatcher thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace photon::store {

class WatchHub : public std::enable_shared_from_this<WatchHub> {
 public:
  struct Watcher {
    std::string key;
    std::string end;
    int64_t min_revision = 0;  // events below it are not this watcher's
    WatchCallback on_events;
    WatchErrorCallback on_error;
    // Guarded by the hub's mutex.
    std::deque<WatchEvent> pending;
    bool ready = false;  // replay done; pending may be delivered
    bool cancelled = false;
    bool delivering = false;
  };

  explicit WatchHub(int64_t published_revision);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Adds a watcher that buffers live events from now on; returns the last published revision
  // (the replay must cover [min_revision, that]). Fails once the hub is closed.
  StatusOr<int64_t> Register(const std::shared_ptr<Watcher>& watcher);
  // Puts the replayed events in front of what was buffered and starts delivery.
  void Activate(const std::shared_ptr<Watcher>& watcher, std::vector<WatchEvent> replay);
  // Blocks until no callback of the watcher runs (unless called from the dispatcher itself).
  void Cancel(const std::shared_ptr<Watcher>& watcher);
  // Called by the writer after each commit; events are in revision order.
  void Publish(const std::vector<WatchEvent>& events, int64_t revision);
  int64_t PublishedRevision();
  // Ends every watch with `status` through its error callback and stops the dispatcher.
  void Close(const Status& status);

  // The handle handed to callers; keeps the hub alive so Cancel after the store is gone works.
  std::unique_ptr<WatchHandle> MakeHandle(std::shared_ptr<Watcher> watcher);

 private:
  void DispatchLoop();

  std::mutex mu_;
  std::condition_variable cv_;
  int64_t published_revision_;
  bool closed_ = false;
  Status close_status_;
  std::list<std::shared_ptr<Watcher>> watchers_;
  std::thread dispatcher_;
  std::thread::id dispatcher_id_;
};

}  // namespace photon::store
