#include "server/watch_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/util.h"
#include "server/kinds.h"
#include "server/object_util.h"

namespace photon::server {

namespace {
constexpr char kRegistry[] = "/registry/";

const KindInfo* KindOfKey(const std::string& key) {
  // /registry/<plural>/...
  size_t start = sizeof(kRegistry) - 1;
  size_t slash = key.find('/', start);
  if (slash == std::string::npos) return nullptr;
  return FindKind(key.substr(start, slash - start));
}
}  // namespace

namespace {
bool ReadVarint(const std::string& s, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *pos < s.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(s[(*pos)++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Returns field `number` (length-delimited) of the message in s[begin, end), or false.
bool FindBytesField(const std::string& s, size_t begin, size_t end, uint32_t number,
                    size_t* out_begin, size_t* out_len) {
  size_t pos = begin;
  while (pos < end) {
    uint64_t tag;
    if (!ReadVarint(s, &pos, &tag)) return false;
    uint32_t field = static_cast<uint32_t>(tag >> 3);
    switch (tag & 7) {
      case 0: {
        uint64_t ignored;
        if (!ReadVarint(s, &pos, &ignored)) return false;
        break;
      }
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case 2: {
        uint64_t len;
        if (!ReadVarint(s, &pos, &len) || pos + len > end) return false;
        if (field == number) {
          *out_begin = pos;
          *out_len = len;
          return true;
        }
        pos += len;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}
}  // namespace

std::string ExtractId(const std::string& encoded) {
  size_t md_begin, md_len, id_begin, id_len;
  if (!FindBytesField(encoded, 0, encoded.size(), 1, &md_begin, &md_len)) return "";
  if (!FindBytesField(encoded, md_begin, md_begin + md_len, 1, &id_begin, &id_len)) return "";
  return encoded.substr(id_begin, id_len);
}

std::string RegistryKey(const std::string& plural, const std::string& ns, const std::string& name) {
  return std::string(kRegistry) + plural + "/" + ns + "/" + name;
}

std::string RegistryPrefix(const std::string& plural, const std::string& ns) {
  if (ns.empty()) return std::string(kRegistry) + plural + "/";
  return std::string(kRegistry) + plural + "/" + ns + "/";
}

std::shared_ptr<const google::protobuf::Message> CachedObject::Decoded() const {
  const KindInfo* kind = KindOfKey(key_);
  if (!kind) return nullptr;
  std::shared_ptr<google::protobuf::Message> msg(kind->prototype->New());
  if (!msg->ParseFromString(value_)) return nullptr;
  MutableMetadata(msg.get())->set_resource_version(std::to_string(mod_revision_));
  return msg;
}

void CachedObject::AppendJson(std::string* out, google::protobuf::Arena* arena) const {
  const KindInfo* kind = KindOfKey(key_);
  if (!kind) return;
  if (!arena) {
    if (auto msg = Decoded()) AppendToJson(*kind, *msg, out);
    return;
  }
  google::protobuf::Message* msg = kind->prototype->New(arena);
  if (!msg->ParseFromString(value_)) return;
  MutableMetadata(msg)->set_resource_version(std::to_string(mod_revision_));
  AppendToJson(*kind, *msg, out);
}

const ObjectFields& CachedObject::Fields() const {
  std::call_once(fields_once_, [this] {
    auto msg = Decoded();
    fields_ = std::make_unique<const ObjectFields>(msg ? FieldsOf(*msg) : ObjectFields{});
  });
  return *fields_;
}

const CacheEvent& CacheEvent::Entered() const {
  std::call_once(line_cache->entered_once, [this] {
    line_cache->entered = std::make_shared<const CacheEvent>(
        CacheEvent{.type = Type::kAdded, .revision = revision, .object = object});
  });
  return *line_cache->entered;
}

const CacheEvent& CacheEvent::Left() const {
  std::call_once(line_cache->left_once, [this] {
    const auto& last = previous ? previous : object;
    line_cache->left = std::make_shared<const CacheEvent>(
        CacheEvent{.type = Type::kDeleted,
                   .revision = revision,
                   .object = std::make_shared<CachedObject>(last->key(), last->value(), revision)});
  });
  return *line_cache->left;
}

CacheEvent CacheEvent::Bookmark(int64_t revision) {
  CacheEvent e{.type = Type::kBookmark, .revision = revision};
  auto line = std::make_shared<std::string>(
      "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
      "\"resourceVersion\":\"" +
      std::to_string(revision) + "\"}}}\n");
  std::call_once(e.line_cache->once, [&] { e.line_cache->line = std::move(line); });
  return e;
}

std::shared_ptr<const std::string> CacheEvent::Line() const {
  std::call_once(line_cache->once, [this] {
    const char* name = type == Type::kAdded     ? "ADDED"
                       : type == Type::kDeleted ? "DELETED"
                                                : "MODIFIED";
    auto line = std::make_shared<std::string>();
    line->reserve(1024);
    *line += "{\"type\":\"";
    *line += name;
    *line += "\",\"object\":";
    object->AppendJson(line.get());
    *line += "}\n";
    line_cache->line = std::move(line);
  });
  return line_cache->line;
}

WatchCache::WatchCache(store::Store* store, MetricsRegistry* metrics, size_t ring_size)
    : store_(store), ring_size_(ring_size) {
  open_watches_ = metrics->GetGauge("photon_open_watches", "Watch streams currently open");
  cached_objects_ = metrics->GetGauge("photon_cached_objects", "Objects held in the watch cache");
}

WatchCache::~WatchCache() { Stop(); }

Status WatchCache::Start() {
  // Page through the registry at one revision so the snapshot is consistent.
  std::string start = kRegistry;
  std::string end = store::PrefixEnd(kRegistry);
  int64_t at = 0;
  while (true) {
    auto r = store_->Range(start, {.end = end, .revision = at, .limit = 10000});
    if (!r.ok()) return r.status();
    if (at == 0) at = r->revision;
    std::lock_guard lock(mu_);
    for (auto& kv : r->kvs) {
      if (auto id = ExtractId(kv.value); !id.empty()) key_by_id_[id] = kv.key;
      objects_[kv.key] =
          std::make_shared<CachedObject>(kv.key, std::move(kv.value), kv.mod_revision);
    }
    if (!r->more || r->kvs.empty()) break;
    start = r->kvs.back().key + '\0';
  }
  {
    std::lock_guard lock(mu_);
    revision_ = at;
    oldest_resumable_ = at;
    cached_objects_->Set(static_cast<double>(objects_.size()));
  }
  // Watch every key (they all start with '/'), not only the registry: the cache's revision must
  // advance with writes elsewhere (audit, tokens) so consistent reads never wait for nothing.
  auto w = store_->Watch(
      "/", store::PrefixEnd("/"), at + 1,
      [this](const std::vector<store::WatchEvent>& ev) { OnStoreEvents(ev); },
      [this](const Status& st) {
        spdlog::error("watch cache: store watch ended: {}", st.ToString());
        std::lock_guard lock(mu_);
        failed_ = true;
        applied_cv_.notify_all();
      });
  if (!w.ok()) return w.status();
  watch_ = std::move(*w);
  dispatcher_ = std::thread([this] {
    SetThreadName("watch-cache");
    DispatchLoop();
  });
  spdlog::info("watch cache: {} objects at revision {}", objects_.size(), at);
  return absl::OkStatus();
}

void WatchCache::Stop() {
  if (watch_) {
    watch_->Cancel();
    watch_.reset();
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  dispatch_cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
}

void WatchCache::DispatchLoop() {
  using Clock = std::chrono::steady_clock;
  auto last_round = Clock::now() - std::chrono::seconds(1);
  const bool bookmarking = bookmark_interval_.count() > 0;
  auto next_bookmark = bookmarking ? Clock::now() + bookmark_interval_ : Clock::time_point::max();
  while (true) {
    std::vector<CacheEvent> batch;
    bool bookmark_due = false;
    bool indexed = false;
    int64_t round_revision = 0;
    {
      std::unique_lock lock(mu_);
      dispatch_cv_.wait_until(lock, next_bookmark,
                              [&] { return stopping_ || !undispatched_.empty(); });
      if (stopping_) return;
      bookmark_due = Clock::now() >= next_bookmark;
      if (!undispatched_.empty()) {
        const auto spacing = RoundSpacing(plain_subscribers_.size());
        dispatch_cv_.wait_until(lock, last_round + spacing, [&] { return stopping_; });
        if (stopping_) return;
        last_round = Clock::now();
      }
      if (bookmark_due) next_bookmark = Clock::now() + bookmark_interval_;
      batch.swap(undispatched_);
      // Every event up to here is in this batch or went out in an earlier round.
      round_revision = revision_;
      indexed = !agent_subscribers_.empty();
    }
    // Events by the agentId of the object or of the state it replaced, for the subscribers
    // that select one agentId. Outside the lock: an object's fields are decoded on first use.
    std::unordered_map<std::string_view, std::vector<const CacheEvent*>> by_agent;
    if (indexed) {
      for (const auto& ce : batch) {
        const std::string& now = ce.object->Fields().agent_id;
        if (!now.empty()) by_agent[now].push_back(&ce);
        if (!ce.previous) continue;
        const std::string& before = ce.previous->Fields().agent_id;
        if (!before.empty() && before != now) by_agent[before].push_back(&ce);
      }
    }
    // Who is called this round: every unindexed subscriber, and the indexed ones of the
    // agents this batch is about (all of them when bookmarks are due). Collected under mu_
    // with dispatch_mu_ taken before mu_ is released, so an Unsubscribe that follows waits
    // for this round.
    static const std::vector<const CacheEvent*> kNone;
    struct Call {
      std::shared_ptr<Subscriber> sub;
      const std::vector<const CacheEvent*>* mine;  // nullptr: look through the whole batch
    };
    std::vector<Call> calls;
    std::unique_lock dispatch_lock(dispatch_mu_, std::defer_lock);
    {
      std::lock_guard lock(mu_);
      calls.reserve(plain_subscribers_.size() + by_agent.size());
      for (auto& [id, sub] : plain_subscribers_) calls.push_back({sub, nullptr});
      if (bookmark_due) {
        for (auto& [agent, subs] : agent_subscribers_) {
          auto it = by_agent.find(agent);
          for (auto& [id, sub] : subs)
            calls.push_back({sub, it == by_agent.end() ? &kNone : &it->second});
        }
      } else {
        for (const auto& [agent, events] : by_agent) {
          auto it = agent_subscribers_.find(std::string(agent));
          if (it == agent_subscribers_.end()) continue;
          for (auto& [id, sub] : it->second) calls.push_back({sub, &events});
        }
      }
      dispatch_lock.lock();
    }
    // One bookmark line per round, shared by every watcher.
    std::optional<CacheEvent> bookmark;
    if (bookmark_due) bookmark = CacheEvent::Bookmark(round_revision);
    std::vector<CacheEvent> mine;
    for (const auto& [sub, events] : calls) {
      mine.clear();
      auto wanted = [&](const CacheEvent& ce) {
        return ce.revision > sub->after_revision &&
               ce.object->key().compare(0, sub->prefix.size(), sub->prefix) == 0;
      };
      if (!events) {
        for (const auto& ce : batch) {
          if (wanted(ce)) mine.push_back(ce);
        }
      } else {
        for (const CacheEvent* ce : *events) {
          if (wanted(*ce)) mine.push_back(*ce);
        }
      }
      if (bookmark && sub->bookmarks) mine.push_back(*bookmark);
      if (!mine.empty()) sub->on_events(mine);
    }
  }
}

std::chrono::microseconds WatchCache::RoundSpacing(size_t unindexed_subscribers) {
  // Rounds are spaced by ~20 µs per unindexed subscriber (2–50 ms): every round costs each of
  // them a callback and each streaming watcher a socket write, so with 1,000 watchers and a
  // change every millisecond, unspaced rounds would mean a million writes a second. Spaced,
  // each write carries every change of the interval. A subscriber of one agentId is called
  // only for the events about its node (about one per change, however long the interval):
  // counting those too held every change back 20 ms at 1,000 nodes and saved no write.
  return std::clamp(std::chrono::microseconds(20 * unindexed_subscribers),
                    std::chrono::microseconds(2000), std::chrono::microseconds(50000));
}

void WatchCache::OnStoreEvents(const std::vector<store::WatchEvent>& events) {
  std::vector<CacheEvent> out;
  out.reserve(events.size());
  std::lock_guard lock(mu_);
  static const std::string kReg = kRegistry;
  for (const auto& e : events) {
    if (e.kv.key.compare(0, kReg.size(), kReg) != 0) continue;
    CacheEvent ce;
    ce.revision = e.kv.mod_revision;
    auto it = objects_.find(e.kv.key);
    if (e.type == store::WatchEvent::Type::kDelete) {
      if (it == objects_.end()) continue;
      ce.type = CacheEvent::Type::kDeleted;
      // The deleted object's last state, stamped with the delete's revision.
      ce.object = std::make_shared<CachedObject>(e.kv.key, it->second->value(), e.kv.mod_revision);
      key_by_id_.erase(ExtractId(it->second->value()));
      objects_.erase(it);
    } else {
      ce.type = it == objects_.end() ? CacheEvent::Type::kAdded : CacheEvent::Type::kModified;
      auto obj = std::make_shared<CachedObject>(e.kv.key, e.kv.value, e.kv.mod_revision);
      if (it == objects_.end()) {
        if (auto id = ExtractId(e.kv.value); !id.empty()) key_by_id_[id] = e.kv.key;
      } else {
        ce.previous = it->second;
      }
      objects_[e.kv.key] = obj;
      ce.object = std::move(obj);
    }
    out.push_back(std::move(ce));
  }
  if (!events.empty()) revision_ = std::max(revision_, events.back().kv.mod_revision);
  for (auto& ce : out) {
    ring_.push_back(ce);
  }
  while (ring_.size() > ring_size_) {
    oldest_resumable_ = ring_.front().revision;
    ring_.pop_front();
  }
  cached_objects_->Set(static_cast<double>(objects_.size()));
  if (!out.empty()) {
    // Only the first change of a round wakes the dispatcher; until the round goes out it waits
    // out the spacing, and waking it for each commit only put it back to sleep.
    const bool first = undispatched_.empty();
    undispatched_.insert(undispatched_.end(), out.begin(), out.end());
    if (first) dispatch_cv_.notify_one();
  }
  applied_cv_.notify_all();
}

Status WatchCache::WaitForRevision(int64_t revision, int timeout_ms) {
  std::unique_lock lock(mu_);
  bool ok = applied_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                 [&] { return revision_ >= revision || failed_; });
  if (failed_) return absl::UnavailableError("watch cache lost its store watch");
  if (!ok) {
    return absl::DeadlineExceededError("watch cache is behind the store (at " +
                                       std::to_string(revision_) + ", want " +
                                       std::to_string(revision) + ")");
  }
  return absl::OkStatus();
}

int64_t WatchCache::revision() const {
  std::lock_guard lock(mu_);
  return revision_;
}

WatchCache::ListResult WatchCache::List(
    const std::string& start, const std::string& end, size_t limit,
    const std::function<bool(const CachedObject&)>& filter) const {
  ListResult out;
  std::lock_guard lock(mu_);
  out.revision = revision_;
  for (auto it = objects_.lower_bound(start); it != objects_.end() && it->first < end; ++it) {
    if (filter && !filter(*it->second)) continue;
    if (limit && out.items.size() == limit) {
      out.next_key = it->first;
      break;
    }
    out.items.push_back(it->second);
  }
  return out;
}

std::shared_ptr<const CachedObject> WatchCache::GetById(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto k = key_by_id_.find(id);
  if (k == key_by_id_.end()) return nullptr;
  auto it = objects_.find(k->second);
  return it == objects_.end() ? nullptr : it->second;
}

std::shared_ptr<const CachedObject> WatchCache::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

StatusOr<uint64_t> WatchCache::Subscribe(
    const std::string& prefix, int64_t from_revision,
    const std::function<void(const std::vector<std::shared_ptr<const CachedObject>>&, int64_t)>&
        on_snapshot,
    EventsCallback on_events, bool bookmarks, const std::string& agent_id) {
  std::lock_guard lock(mu_);
  if (from_revision == 0) {
    std::vector<std::shared_ptr<const CachedObject>> snap;
    for (auto it = objects_.lower_bound(prefix);
         it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      snap.push_back(it->second);
    }
    if (on_snapshot) on_snapshot(snap, revision_);
  } else {
    if (from_revision < oldest_resumable_) {
      return absl::OutOfRangeError("resource_version " + std::to_string(from_revision) +
                                   " is too old (oldest resumable is " +
                                   std::to_string(oldest_resumable_) + "); relist");
    }
    if (from_revision > revision_) {
      // A client that is ahead of us (a newer server wrote it): wait for it by replaying nothing.
    }
    std::vector<CacheEvent> replay;
    for (const auto& ce : ring_) {
      if (ce.revision > from_revision && ce.object->key().compare(0, prefix.size(), prefix) == 0) {
        replay.push_back(ce);
      }
    }
    if (!replay.empty()) on_events(replay);
  }
  uint64_t id = next_id_++;
  // Everything up to revision_ reached this subscriber through its snapshot or replay; the
  // dispatcher may still hold some of those events and must skip them.
  auto sub = std::make_shared<Subscriber>(
      Subscriber{prefix, revision_, std::move(on_events), bookmarks, agent_id});
  if (agent_id.empty()) {
    plain_subscribers_[id] = sub;
  } else {
    agent_subscribers_[agent_id][id] = sub;
  }
  subscribers_[id] = std::move(sub);
  open_watches_->Set(static_cast<double>(subscribers_.size()));
  return id;
}

void WatchCache::Unsubscribe(uint64_t id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = subscribers_.find(id); it != subscribers_.end()) {
      const std::string& agent = it->second->agent_id;
      if (agent.empty()) {
        plain_subscribers_.erase(id);
      } else if (auto a = agent_subscribers_.find(agent); a != agent_subscribers_.end()) {
        a->second.erase(id);
        if (a->second.empty()) agent_subscribers_.erase(a);
      }
      subscribers_.erase(it);
    }
    open_watches_->Set(static_cast<double>(subscribers_.size()));
  }
  // Wait out a dispatch round that may still be calling this subscriber — unless we are that
  // round (a callback that unsubscribes), which would deadlock.
  if (std::this_thread::get_id() != dispatcher_.get_id()) {
    std::lock_guard wait(dispatch_mu_);
  }
}

size_t WatchCache::subscriber_count() const {
  std::lock_guard lock(mu_);
  return subscribers_.size();
}

size_t WatchCache::object_count() const {
  std::lock_guard lock(mu_);
  return objects_.size();
}

}  // namespace photon::server
