#include "agent/host/record_log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/file_util.h"

namespace photon::agent {
namespace {

using json = nlohmann::json;

constexpr uint64_t kCompactSlack = 1024;  // lines beyond 2 x records before a rewrite

// Applies the log's lines to `records`; returns how many lines it held. A line that does not
// parse (the tail cut short by a crash) ends the replay.
uint64_t Replay(const std::string& text, std::map<std::string, std::string>* records) {
  std::istringstream in(text);
  std::string line;
  uint64_t lines = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: an append cut short
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) break;
    std::string id = j["id"].get<std::string>();
    if (j.contains("value") && j["value"].is_string()) {
      (*records)[id] = j["value"].get<std::string>();
    } else {
      records->erase(id);
    }
    ++lines;
  }
  return lines;
}

std::string PutLine(const std::string& id, const std::string& value) {
  return json{{"id", id}, {"value", value}}.dump() + "\n";
}

StatusOr<int> OpenForAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return absl::InternalError("open " + path + ": " + strerror(errno));
  return fd;
}

}  // namespace

StatusOr<std::map<std::string, std::string>> RecordLog::Read(const std::string& path) {
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::map<std::string, std::string> records;
  Replay(text, &records);
  return records;
}

StatusOr<std::unique_ptr<RecordLog>> RecordLog::Open(const std::string& path) {
  std::map<std::string, std::string> records;
  if (auto text = ReadFile(path); text.ok()) Replay(*text, &records);
  std::unique_ptr<RecordLog> log(new RecordLog(path, -1, std::move(records)));
  std::lock_guard<std::mutex> l(log->mu_);
  PHOTON_RETURN_IF_ERROR(log->CompactLocked());
  return log;
}

RecordLog::RecordLog(std::string path, int fd, std::map<std::string, std::string> records)
    : path_(std::move(path)), fd_(fd), records_(std::move(records)) {}

RecordLog::~RecordLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::map<std::string, std::string> RecordLog::Records() const {
  std::lock_guard<std::mutex> l(mu_);
  return records_;
}

uint64_t RecordLog::Syncs() const {
  std::lock_guard<std::mutex> l(const_cast<std::mutex&>(sync_mu_));
  return syncs_;
}

Status RecordLog::Put(const std::string& id, const std::string& value) {
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    PHOTON_RETURN_IF_ERROR(WriteAll(fd_, PutLine(id, value), path_));
    records_[id] = value;
    seq = ++written_;
    ++lines_;
  }
  return AwaitDurable(seq);
}

Status RecordLog::Erase(const std::string& id) {
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!records_.count(id)) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(WriteAll(fd_, json{{"id", id}}.dump() + "\n", path_));
    records_.erase(id);
    seq = ++written_;
    ++lines_;
  }
  return AwaitDurable(seq);
}

// Group commit: the first caller to find no sync running leads one for everything appended
// until then; the others wait for it (or lead the next one if their line came too late).
Status RecordLog::AwaitDurable(uint64_t seq) {
  std::unique_lock<std::mutex> l(sync_mu_);
  while (synced_ < seq) {
    if (syncing_) {
      sync_cv_.wait(l);
      continue;
    }
    syncing_ = true;
    l.unlock();
    uint64_t done = 0;
    Status s = SyncOrCompact(&done);
    l.lock();
    syncing_ = false;
    if (s.ok()) {
      synced_ = std::max(synced_, done);
      ++syncs_;
    }
    sync_cv_.notify_all();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

Status RecordLog::SyncOrCompact(uint64_t* done) {
  std::unique_lock<std::mutex> l(mu_);
  *done = written_;
  if (lines_ > 2 * records_.size() + kCompactSlack) return CompactLocked();
  // Only a leader replaces fd_ (in CompactLocked), and we are it: safe to use unlocked.
  int fd = fd_;
  l.unlock();
  if (::fdatasync(fd) != 0)
    return absl::InternalError("fdatasync " + path_ + ": " + strerror(errno));
  return absl::OkStatus();
}

// Rewrites the file as one line per record (synced, renamed over the log, directory synced).
Status RecordLog::CompactLocked() {
  std::string text;
  for (const auto& [id, value] : records_) text += PutLine(id, value);
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path_, text, 0600));
  PHOTON_ASSIGN_OR_RETURN(int fd, OpenForAppend(path_));
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  lines_ = records_.size();
  return absl::OkStatus();
}

}  // namespace photon::agent
