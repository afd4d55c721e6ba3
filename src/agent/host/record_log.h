// A durable map of records (id -> text) kept as one append-only log file with group commit:
// every Put or Erase appends a line and returns once it is on disk, and the callers that
// append while a sync runs share the next one. 1,000 starts on 8 workers cost a handful of
// fdatasyncs instead of two fsyncs each (a file per record: the file and its directory).
//
// The file is rewritten from the map (one line per record, atomically) when it is opened and
// when the log holds more than twice as many lines as there are records. A line cut short by
// a crash in mid-append is dropped when the log is read.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace photon::agent {

class RecordLog {
 public:
  // Opens (creating, 0600) and compacts the log at `path`.
  static StatusOr<std::unique_ptr<RecordLog>> Open(const std::string& path);
  // The records in the log at `path` without opening it for writing (another process may be
  // appending); NOT_FOUND when there is no log.
  static StatusOr<std::map<std::string, std::string>> Read(const std::string& path);
  ~RecordLog();

  std::map<std::string, std::string> Records() const;
  // Sets the record of `id`; OK once it is on disk.
  Status Put(const std::string& id, const std::string& value);
  // Removes the record of `id` (no-op when there is none); OK once that is on disk.
  Status Erase(const std::string& id);
  // fdatasyncs (and compactions, each one fsync) run so far: for tests.
  uint64_t Syncs() const;

 private:
  RecordLog(std::string path, int fd, std::map<std::string, std::string> records);
  Status Append(const std::string& line, uint64_t* seq);
  Status AwaitDurable(uint64_t seq);
  // The leader's step: syncs (or compacts) everything appended so far; `*done` the last seq
  // that is now durable.
  Status SyncOrCompact(uint64_t* done);
  Status CompactLocked();

  const std::string path_;
  mutable std::mutex mu_;  // the map, the fd and the append counters
  int fd_;
  std::map<std::string, std::string> records_;
  uint64_t written_ = 0;  // lines appended
  uint64_t lines_ = 0;    // lines in the file
  std::mutex sync_mu_;    // the sync leadership
  std::condition_variable sync_cv_;
  bool syncing_ = false;
  uint64_t synced_ = 0;
  uint64_t syncs_ = 0;
};

}  // namespace photon::agent
