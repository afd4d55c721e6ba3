// Asks the kernel whether a network interface exists in a namespace, over an rtnetlink socket
// opened once in that namespace (no process per question: Delete polls it while the kernel
// dismantles a port namespace).
// Thread-safety: Exists may be called from several threads (one request at a time).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace photon::agent::net {

class LinkProbe {
 public:
  // netns: a namespace path, "" = this process's.
  static StatusOr<std::unique_ptr<LinkProbe>> Open(const std::string& netns);
  ~LinkProbe();
  StatusOr<bool> Exists(const std::string& ifname);

 private:
  explicit LinkProbe(int fd) : fd_(fd) {}
  std::mutex mu_;
  int fd_;
  uint32_t seq_ = 0;
};

}  // namespace photon::agent::net
