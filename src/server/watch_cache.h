// An in-memory mirror of every resource under /registry/, fed by one store watch.
//
// Why: lists and watches are the hottest reads of a control plane (agents, CLIs, controllers
// all watch). Serving them from memory keeps the store for writes, makes a list of 100,000
// objects a map walk, and lets 1,000 watchers share one store watch. Reads stay consistent:
// a list first waits until the cache has applied the store's current revision.
//
// Recent events are kept in a ring so a watcher can resume from a resource_version; one older
// than the ring gives OUT_OF_RANGE (HTTP 410) and the client relists.
//
// Thread-safe. Subscriber callbacks run on the cache's dispatch thread, which hands out every
// event applied since its last round in one batch (so under load a subscriber gets few large
// batches instead of many small ones). Callbacks must only queue work: never block, never
// call back into the cache. After Unsubscribe returns, its callback is not running and will not
// run again.
#pragma once

#include <google/protobuf/arena.h>
#include <google/protobuf/message.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "server/field_selector.h"
#include "store/store.h"

namespace photon::server {

// One stored object, kept in its wire form only. Why: decoded, a typical ComputeInstance
// takes ~2.5 KB of heap against ~400 bytes encoded, so 100,000 decoded objects alone would
// exceed the server's memory budget; decoding one costs a couple of microseconds.
class CachedObject {
 public:
  CachedObject(std::string key, std::string value, int64_t mod_revision)
      : key_(std::move(key)), value_(std::move(value)), mod_revision_(mod_revision) {}
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  int64_t mod_revision() const { return mod_revision_; }
  // A freshly decoded message with metadata.resource_version filled in; nullptr if the kind is
  // unknown. Each call decodes: hold the returned pointer while using the message.
  std::shared_ptr<const google::protobuf::Message> Decoded() const;
  // Appends ToJson() of Decoded(). Rendered on each call, not kept. With an arena, the
  // temporary message lives there (a list page decodes thousands: one arena, no mallocs).
  void AppendJson(std::string* out, google::protobuf::Arena* arena = nullptr) const;
  // The field-selector fields, decoded on first use and kept: every watcher's selection of
  // this version then costs string compares only.
  const ObjectFields& Fields() const;

 private:
  std::string key_;
  std::string value_;
  int64_t mod_revision_;
  mutable std::once_flag fields_once_;
  mutable std::unique_ptr<const ObjectFields> fields_;
};

struct CacheEvent {
  // kBookmark: no change, only "every change up to `revision` has been sent" (object unset).
  enum class Type { kAdded, kModified, kDeleted, kBookmark };
  Type type;
  int64_t revision;
  std::shared_ptr<const CachedObject> object;  // for kDeleted: the last state before deletion
  // kModified: the state it replaced, so a filtered watch can tell an object entering its
  // selection (sent as ADDED) or leaving it (sent as DELETED) from a change within it.
  std::shared_ptr<const CachedObject> previous;
  // The watch line {"type":…,"object":…}\n, rendered once and shared by every watcher.
  std::shared_ptr<const std::string> Line() const;
  // This change as seen by a watch whose selection the object entered (ADDED, new state) or
  // left (DELETED, the previous state stamped with this revision). Made once per event and
  // shared, line included, by every watcher that sees it so.
  const CacheEvent& Entered() const;
  const CacheEvent& Left() const;
  // A bookmark at `revision`; its line is {"type":"BOOKMARK","object":{"metadata":
  // {"resourceVersion":"N"}}}.
  static CacheEvent Bookmark(int64_t revision);

  struct LineCache {
    std::once_flag once;
    std::shared_ptr<const std::string> line;
    std::once_flag entered_once, left_once;
    std::shared_ptr<const CacheEvent> entered, left;
  };
  std::shared_ptr<LineCache> line_cache = std::make_shared<LineCache>();  // shared by copies
};

using EventsCallback = std::function<void(const std::vector<CacheEvent>& events)>;

class WatchCache {
 public:
  WatchCache(store::Store* store, MetricsRegistry* metrics, size_t ring_size = 100000);
  ~WatchCache();

  // Watchers that asked for bookmarks get one every `interval` (0: never). Set before Start.
  void SetBookmarkInterval(std::chrono::milliseconds interval) { bookmark_interval_ = interval; }
  std::chrono::milliseconds bookmark_interval() const { return bookmark_interval_; }

  // Loads everything under /registry/ and starts following the store.
  Status Start();
  void Stop();

  // Waits (bounded) until the cache has applied `revision`.
  Status WaitForRevision(int64_t revision, int timeout_ms = 5000);
  int64_t revision() const;

  struct ListResult {
    std::vector<std::shared_ptr<const CachedObject>> items;
    int64_t revision = 0;
    std::string next_key;  // non-empty when more remain
  };
  // Objects with keys in [start, end), in key order, that pass `filter`, at most limit (0 = all).
  ListResult List(const std::string& start, const std::string& end, size_t limit,
                  const std::function<bool(const CachedObject&)>& filter) const;
  std::shared_ptr<const CachedObject> Get(const std::string& key) const;
  // The object whose metadata.id is `id`, or nullptr.
  std::shared_ptr<const CachedObject> GetById(const std::string& id) const;

  // Subscribes to changes of keys under `prefix` after `from_revision`. When from_revision is
  // 0, `on_snapshot` first gets the current objects and the revision they are at (atomically
  // with the subscription). OUT_OF_RANGE when from_revision is older than the event ring.
  // With `bookmarks`, on_events also gets a kBookmark event every bookmark interval, at a
  // revision up to which every event has been handed to it.
  // With `agent_id`, on_events gets only events whose object, or the state it replaced, has
  // that metadata.agentId (a watch with the field selector metadata.agentId=NODE): the
  // dispatcher finds them through an index instead of testing every event against every such
  // watcher (1,000 agents' watches × every change was a million tests a second).
  StatusOr<uint64_t> Subscribe(
      const std::string& prefix, int64_t from_revision,
      const std::function<void(const std::vector<std::shared_ptr<const CachedObject>>&, int64_t)>&
          on_snapshot,
      EventsCallback on_events, bool bookmarks = false, const std::string& agent_id = "");
  void Unsubscribe(uint64_t id);
  size_t subscriber_count() const;
  size_t object_count() const;

  // The least time between two dispatch rounds, given the subscribers called every round
  // (those without an agent_id).
  static std::chrono::microseconds RoundSpacing(size_t unindexed_subscribers);

 private:
  void OnStoreEvents(const std::vector<store::WatchEvent>& events);
  void DispatchLoop();

  struct Subscriber {
    std::string prefix;
    int64_t after_revision;  // events at or below it were in the subscriber's snapshot/replay
    EventsCallback on_events;
    bool bookmarks = false;
    std::string agent_id;  // "" = every event under prefix
  };

  store::Store* store_;
  size_t ring_size_;
  std::chrono::milliseconds bookmark_interval_{30000};
  Gauge* open_watches_;
  Gauge* cached_objects_;
  mutable std::mutex mu_;
  std::condition_variable applied_cv_;
  std::map<std::string, std::shared_ptr<const CachedObject>> objects_;
  std::unordered_map<std::string, std::string> key_by_id_;
  std::deque<CacheEvent> ring_;
  int64_t revision_ = 0;
  int64_t oldest_resumable_ = 0;  // a watch may resume from any revision ≥ this
  std::map<uint64_t, std::shared_ptr<Subscriber>> subscribers_;  // all of them
  // The same, split: those called every round, and those of one agentId by that agentId.
  std::map<uint64_t, std::shared_ptr<Subscriber>> plain_subscribers_;
  std::unordered_map<std::string, std::map<uint64_t, std::shared_ptr<Subscriber>>>
      agent_subscribers_;
  std::vector<CacheEvent> undispatched_;
  std::condition_variable dispatch_cv_;
  std::mutex dispatch_mu_;  // held while callbacks run; Unsubscribe takes it to wait them out
  std::thread dispatcher_;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  std::unique_ptr<store::WatchHandle> watch_;
  bool failed_ = false;
};

// metadata.id of an encoded resource, read straight off the wire (field 1 of field 1) so the
// cache can index every object without decoding it.
std::string ExtractId(const std::string& encoded);

// Key of an object: /registry/<plural>/<namespace>/<name>.
std::string RegistryKey(const std::string& plural, const std::string& ns, const std::string& name);
std::string RegistryPrefix(const std::string& plural, const std::string& ns = "");

}  // namespace photon::server
