// A minimal QMP (QEMU Machine Protocol) client over a unix socket: greeting, qmp_capabilities,
// commands with their replies, and events (queued while a command is in flight, so a
// DEVICE_DELETED that races a reply is not lost). One connection per operation: QEMU serves one
// monitor client at a time and a short-lived connection needs no recovery after an agent
// restart. JSON parse errors are values, never exceptions.
// Thread-safety: one QmpClient per thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace photon::agent::vm {

class QmpClient {
 public:
  // Connects, reads the greeting and negotiates capabilities.
  static StatusOr<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // The "return" value of a command; a QMP error becomes a Status with QEMU's description.
  StatusOr<nlohmann::json> Execute(const std::string& command,
                                   const nlohmann::json& arguments = nullptr);
  // Waits for an event named `name` whose data contains every key/value of `match`.
  StatusOr<nlohmann::json> WaitEvent(const std::string& name, const nlohmann::json& match,
                                     std::chrono::milliseconds timeout);
  // Waits until QEMU closes the connection (it exited), up to timeout.
  bool WaitClosed(std::chrono::milliseconds timeout);

  const nlohmann::json& greeting() const { return greeting_; }

 private:
  explicit QmpClient(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  StatusOr<nlohmann::json> ReadMessage(int64_t deadline_ns);
  Status Send(const nlohmann::json& message);

  int fd_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::deque<nlohmann::json> events_;
  nlohmann::json greeting_;
};

}  // namespace photon::agent::vm
