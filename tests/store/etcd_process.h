// EtcdProcess: a real etcd server (Debian etcd-server, /usr/bin/etcd) for tests and benchmarks,
// on free loopback ports with a temporary data directory. It is killed (and the directory
// removed) when the object is destroyed, and dies with the process that started it.
//
// Thread-safety: not thread-safe; create and destroy from one thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::store::testing {

inline constexpr char kEtcdBinary[] = "/usr/bin/etcd";

class EtcdProcess {
 public:
  static bool Available();
  // Starts etcd and waits until it answers a read.
  static StatusOr<std::unique_ptr<EtcdProcess>> Start();
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // "127.0.0.1:port", the client endpoint.
  const std::string& endpoint() const { return endpoint_; }
  // "etcd://127.0.0.1:port", for OpenStore.
  std::string spec() const { return "etcd://" + endpoint_; }

  // kill -9, then start again on the same ports and data, and wait until it answers.
  Status Restart();

 private:
  EtcdProcess() = default;
  Status Spawn();
  void Kill();
  void Stop();

  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::string dir_;
  std::string endpoint_;
};

// A fresh directory under $TMPDIR (or /tmp), removed by the caller.
std::string MakeTempDir(const std::string& tag);
// A loopback port that was free a moment ago (tests/free_port.h).
int PickFreePort();

}  // namespace photon::store::testing
