// QMP client; see qmp_client.h.
#include "agent/providers/vm/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/util.h"

namespace photon::agent::vm {
namespace {

int64_t DeadlineAfter(std::chrono::milliseconds timeout) {
  return MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
}

bool Matches(const nlohmann::json& data, const nlohmann::json& match) {
  if (!match.is_object()) return true;
  if (!data.is_object()) return false;
  for (auto it = match.begin(); it != match.end(); ++it) {
    auto found = data.find(it.key());
    if (found == data.end() || *found != it.value()) return false;
  }
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& socket_path,
                                                        std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("QMP socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int64_t deadline = DeadlineAfter(timeout);
  // QEMU creates the socket during start-up; retry briefly rather than fail on a race.
  while (true) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      std::unique_ptr<QmpClient> client(new QmpClient(fd, timeout));
      PHOTON_ASSIGN_OR_RETURN(client->greeting_, client->ReadMessage(deadline));
      if (!client->greeting_.contains("QMP")) {
        return absl::InternalError("unexpected QMP greeting: " + client->greeting_.dump());
      }
      PHOTON_RETURN_IF_ERROR(client->Execute("qmp_capabilities").status());
      return client;
    }
    int err = errno;
    close(fd);
    if (MonotonicNanos() > deadline) {
      return absl::UnavailableError("cannot connect to QMP socket " + socket_path + ": " +
                                    strerror(err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

QmpClient::~QmpClient() {
  if (fd_ >= 0) close(fd_);
}

Status QmpClient::Send(const nlohmann::json& message) {
  std::string line = message.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(std::string("QMP send: ") + strerror(errno));
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

StatusOr<nlohmann::json> QmpClient::ReadMessage(int64_t deadline_ns) {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      nlohmann::json message = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (message.is_discarded()) return absl::InternalError("bad QMP message: " + line);
      return message;
    }
    int64_t left_ms = (deadline_ns - MonotonicNanos()) / 1000000;
    if (left_ms <= 0) return absl::DeadlineExceededError("QMP: no answer in time");
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left_ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("QMP connection closed");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

StatusOr<nlohmann::json> QmpClient::Execute(const std::string& command,
                                            const nlohmann::json& arguments) {
  nlohmann::json message = {{"execute", command}};
  if (!arguments.is_null()) message["arguments"] = arguments;
  PHOTON_RETURN_IF_ERROR(Send(message));
  int64_t deadline = DeadlineAfter(timeout_);
  while (true) {
    PHOTON_ASSIGN_OR_RETURN(nlohmann::json reply, ReadMessage(deadline));
    if (reply.contains("event")) {
      events_.push_back(std::move(reply));
      continue;
    }
    if (reply.contains("error")) {
      std::string desc = reply["error"].value("desc", reply["error"].dump());
      return absl::FailedPreconditionError("QMP " + command + ": " + desc);
    }
    if (reply.contains("return")) return reply["return"];
    return absl::InternalError("unexpected QMP reply: " + reply.dump());
  }
}

StatusOr<nlohmann::json> QmpClient::WaitEvent(const std::string& name, const nlohmann::json& match,
                                              std::chrono::milliseconds timeout) {
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    if ((*it)["event"] == name && Matches((*it).value("data", nlohmann::json::object()), match)) {
      nlohmann::json found = *it;
      events_.erase(it);
      return found;
    }
  }
  int64_t deadline = DeadlineAfter(timeout);
  while (true) {
    PHOTON_ASSIGN_OR_RETURN(nlohmann::json message, ReadMessage(deadline));
    if (!message.contains("event")) continue;
    if (message["event"] == name &&
        Matches(message.value("data", nlohmann::json::object()), match)) {
      return message;
    }
    events_.push_back(std::move(message));
  }
}

bool QmpClient::WaitClosed(std::chrono::milliseconds timeout) {
  int64_t deadline = DeadlineAfter(timeout);
  while (true) {
    auto message = ReadMessage(deadline);
    if (message.ok()) continue;
    return absl::IsUnavailable(message.status());
  }
}

}  // namespace photon::agent::vm
