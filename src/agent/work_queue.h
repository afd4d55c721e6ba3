// A de-duplicating queue of keys for level-triggered reconcilers (the Kubernetes work queue):
// a key queued several times before a worker takes it is processed once; a key added while it
// is being processed is processed again afterwards, never by two workers at once.
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>

namespace photon::agent {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  void Add(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    AddLocked(key);
  }
  void AddAfter(const std::string& key, std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> l(mu_);
    delayed_.emplace(Clock::now() + delay, key);
    cv_.notify_one();
  }
  // Blocks until a key is due; false after ShutDown.
  bool Get(std::string* key) {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (shutdown_) return false;
      auto now = Clock::now();
      while (!delayed_.empty() && delayed_.begin()->first <= now) {
        AddLocked(delayed_.begin()->second);
        delayed_.erase(delayed_.begin());
      }
      if (!queue_.empty()) {
        *key = queue_.front();
        queue_.pop_front();
        dirty_.erase(*key);
        processing_.insert(*key);
        return true;
      }
      if (delayed_.empty()) {
        cv_.wait(l);
      } else {
        cv_.wait_until(l, delayed_.begin()->first);
      }
    }
  }
  void Done(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    processing_.erase(key);
    if (dirty_.count(key)) {
      queue_.push_back(key);
      cv_.notify_one();
    }
  }
  void ShutDown() {
    std::lock_guard<std::mutex> l(mu_);
    shutdown_ = true;
    cv_.notify_all();
  }
  size_t Len() {
    std::lock_guard<std::mutex> l(mu_);
    return queue_.size();
  }

 private:
  void AddLocked(const std::string& key) {
    if (shutdown_ || dirty_.count(key)) return;
    dirty_.insert(key);
    if (processing_.count(key)) return;  // Done() re-queues it
    queue_.push_back(key);
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;
  std::set<std::string> processing_;
  std::multimap<Clock::time_point, std::string> delayed_;
  bool shutdown_ = false;
};

}  // namespace photon::agent
