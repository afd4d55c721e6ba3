#include "agent/session_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <thread>

#include "agent/session_exec.h"
#include "common/base64.h"
#include "common/util.h"

namespace photon::agent {

using json = nlohmann::json;

struct SessionRunner::Live {
  std::string id;
  std::mutex mu;
  std::condition_variable cv;
  bool cancelled = false;
  pid_t pgid = 0;          // the running command's group; 0 once it has ended
  int stdin_fd = -1;       // the command's stdin, written by the input thread
  int tty_fd = -1;         // its terminal's master (exec -t), for resize frames; closed at the end
  uint64_t ack_every = 0;  // input bytes written between acks (the server's inputAckBytes)
  void Cancel() {
    std::lock_guard lock(mu);
    cancelled = true;
    if (pgid > 0) ::kill(-pgid, SIGKILL);
    cv.notify_all();
  }
  bool Cancelled() {
    std::lock_guard lock(mu);
    return cancelled;
  }
};

namespace {

constexpr size_t kChunk = 64 * 1024;

json DataFrame(const char* type, const char* data, size_t n) {
  return {{"t", type}, {"d", Base64Encode(std::string_view(data, n))}};
}

// The offset of the last `lines` lines of the file open as `fd` (of `size` bytes).
off_t TailOffset(int fd, off_t size, int64_t lines) {
  if (lines == 0) return size;
  char buf[8192];
  off_t pos = size;
  int64_t seen = 0;
  while (pos > 0) {
    off_t n = std::min<off_t>(pos, sizeof buf);
    pos -= n;
    if (::pread(fd, buf, static_cast<size_t>(n), pos) != n) return 0;
    for (off_t i = n - 1; i >= 0; --i) {
      // A final newline ends the last line; it does not start one.
      if (buf[i] != '\n' || pos + i == size - 1) continue;
      if (++seen == lines) return pos + i + 1;
    }
  }
  return 0;
}

void Close(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

}  // namespace

SessionRunner::~SessionRunner() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  for (Live* l : live_) l->Cancel();
  cv_.wait_for(lock, std::chrono::seconds(3), [this] { return live_.empty(); });
}

void SessionRunner::Run(const std::atomic<bool>* stop) {
  SetThreadName("sessions");
  auto pause = std::chrono::milliseconds(200);
  while (!*stop) {
    Status s = api_->Watch("/v1/agent/sessions", [&](const json& a) {
      pause = std::chrono::milliseconds(200);
      if (a.value("t", "") == "ping" || !a.contains("id")) return !*stop;
      std::thread([this, a] { Serve(a); }).detach();
      return !*stop;
    });
    if (*stop) break;
    if (!s.ok()) spdlog::warn("session announcements: {} (retrying)", s.ToString());
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(5000));
  }
}

bool SessionRunner::Send(const std::string& id, json frames) {
  json body = {{"frames", std::move(frames)}};
  while (true) {
    // Answered once the user has caught up (flow control): until then nothing more is read
    // from the command, whose writes then block on its full pipe.
    auto r = api_->Call("POST", "/v1/agent/sessions/" + id + "/output", body);
    if (!r.ok()) return false;
    if (!(r->is_object() && r->value("paused", false))) return true;
    body = {{"frames", json::array()}};  // taken; still waiting for the reader
  }
}

void SessionRunner::Serve(const json& a) {
  Live live;
  live.id = a.value("id", "");
  live.ack_every = a.value("inputAckBytes", uint64_t{0});
  {
    std::lock_guard lock(mu_);
    if (stopping_ || live.id.size() != 32) return;
    live_.insert(&live);
  }
  spdlog::info("session {}: {} {}/{}", live.id, a.value("type", ""),
               a["instance"].value("namespace", ""), a["instance"].value("name", ""));
  try {
    const std::string type = a.value("type", "");
    if (type == "exec") {
      Exec(a, &live);
    } else if (type == "console") {
      Console(a, &live);
    } else {
      Logs(a, &live);
    }
  } catch (const std::exception& e) {  // a malformed announcement
    Send(live.id, json::array({{{"t", "error"}, {"message", e.what()}}}));
  }
  std::lock_guard lock(mu_);
  live_.erase(&live);
  cv_.notify_all();
}

// The user's input (and the server's cancel) for one session, on a thread of its own.
static std::thread FollowInput(ApiClient* api, SessionRunner::Live* live);

void SessionRunner::Exec(const json& a, Live* live) {
  const json& inst = a.at("instance");
  std::optional<ExecTty> tty;
  if (a.value("tty", false)) {
    tty = ExecTty{a.value("rows", uint16_t{24}), a.value("cols", uint16_t{80})};
  }
  auto child =
      StartExec(data_dir_, inst.at("driver").get<std::string>(), inst.at("id").get<std::string>(),
                a.at("command").get<std::vector<std::string>>(), tty);
  if (!child.ok()) {
    std::thread input = FollowInput(api_, live);
    Send(live->id,
         json::array({{{"t", "error"}, {"message", std::string(child.status().message())}}}));
    input.join();
    return;
  }
  {
    std::lock_guard lock(live->mu);
    live->pgid = child->pid;
    live->stdin_fd = child->stdin_fd;
    live->tty_fd = child->tty_fd;
  }
  std::thread input = FollowInput(api_, live);
  pollfd fds[2] = {{child->stdout_fd, POLLIN, 0}, {child->stderr_fd, POLLIN, 0}};
  char buf[kChunk];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    json frames = json::array();
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) frames.push_back(DataFrame(i == 0 ? "out" : "err", buf, static_cast<size_t>(n)));
      if (n == 0 || (n < 0 && errno != EINTR)) Close(&fds[i].fd);
    }
    if (!frames.empty() && !Send(live->id, std::move(frames))) live->Cancel();
  }
  for (auto& f : fds) Close(&f.fd);
  siginfo_t info{};
  ::waitid(P_PID, static_cast<id_t>(child->pid), &info, WEXITED | WNOWAIT);
  {
    std::lock_guard lock(live->mu);
    live->pgid = 0;  // not to be signalled once reaped: the pid may be reused
  }
  int code = WaitExec(child->pid);
  Send(live->id, json::array({{{"t", "exit"}, {"code", code}}}));
  input.join();  // ends when the server closes the session
  Close(&live->tty_fd);
}

void SessionRunner::Logs(const json& a, Live* live) {
  const json& inst = a.at("instance");
  std::thread input = FollowInput(api_, live);
  auto path =
      LogPath(data_dir_, inst.at("driver").get<std::string>(), inst.at("id").get<std::string>());
  const bool follow = a.value("follow", false);
  const int64_t tail = a.value("tail", int64_t{-1});
  off_t offset = -1;
  ino_t inode = 0;
  char buf[kChunk];
  bool ok = path.ok();
  while (ok && !live->Cancelled()) {
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) == 0) {
      // A new file (a VM's console log rotates at boot) or a truncated one: from its start.
      if (offset < 0) {
        offset = tail >= 0 ? TailOffset(fd, st.st_size, tail) : 0;
      } else if (st.st_ino != inode || st.st_size < offset) {
        offset = 0;
      }
      inode = st.st_ino;
      json frames = json::array();
      ssize_t n = 0;
      while (frames.size() < 16 && (n = ::pread(fd, buf, sizeof buf, offset)) > 0) {
        frames.push_back(DataFrame("out", buf, static_cast<size_t>(n)));
        offset += n;
      }
      if (!frames.empty()) ok = Send(live->id, std::move(frames));
      if (n > 0) {
        ::close(fd);
        continue;  // more to send before waiting
      }
    } else if (offset < 0) {
      offset = 0;  // no output yet: everything it will write is new
    }
    if (fd >= 0) ::close(fd);
    if (!follow) break;
    std::unique_lock lock(live->mu);
    live->cv.wait_for(lock, std::chrono::milliseconds(100), [live] { return live->cancelled; });
  }
  if (!path.ok()) {
    Send(live->id,
         json::array({{{"t", "error"}, {"message", std::string(path.status().message())}}}));
  } else if (ok) {
    Send(live->id, json::array({{{"t", "exit"}, {"code", 0}}}));
  }
  input.join();
}

namespace {

StatusOr<int> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(path + ": too long for a socket");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::string("socket: ") + strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError("the VM's console (" + path + "): " + strerror(e));
  }
  return fd;
}

}  // namespace

void SessionRunner::Console(const json& a, Live* live) {
  const json& inst = a.at("instance");
  const std::string id = inst.at("id").get<std::string>();
  const std::string where =
      inst.at("namespace").get<std::string>() + "/" + inst.at("name").get<std::string>();
  // The input is followed once the socket is connected: what the user typed before waits in
  // the server's backlog instead of being dropped.
  std::thread input;
  auto fail = [&](const std::string& message) {
    if (!input.joinable()) input = FollowInput(api_, live);  // to see the session end
    Send(live->id, json::array({{{"t", "error"}, {"message", message}}}));
    input.join();
  };
  {
    std::unique_lock lock(mu_);
    // A console detached a moment ago may still be letting the socket go.
    cv_.wait_for(lock, std::chrono::seconds(3), [&] { return !consoles_.contains(id); });
    if (!consoles_.insert(id).second) {
      return fail("the console of " + where + " is attached elsewhere (one at a time)");
    }
  }
  struct Release {
    SessionRunner* r;
    std::string id;
    ~Release() {
      std::lock_guard lock(r->mu_);
      r->consoles_.erase(id);
      r->cv_.notify_all();
    }
  } release{this, id};
  auto path = ConsoleSocket(data_dir_, id);
  if (!path.ok()) return fail(std::string(path.status().message()));
  auto sock = ConnectUnix(*path);
  if (!sock.ok()) return fail(std::string(sock.status().message()));
  {
    std::lock_guard lock(live->mu);
    live->stdin_fd = ::dup(*sock);  // the input thread's; closing it leaves this end open
  }
  input = FollowInput(api_, live);
  spdlog::info("session {}: console of {} attached", live->id, where);
  char buf[kChunk];
  bool closed = false;
  while (!live->Cancelled()) {
    pollfd p{*sock, POLLIN, 0};
    // A bounded wait: a detach (the session cancelled) is seen within it.
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::read(*sock, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      closed = true;
      break;
    }
    // Send returns once the server took the frame: a slow user holds the guest's output back.
    if (!Send(live->id, json::array({DataFrame("out", buf, static_cast<size_t>(n))}))) {
      live->Cancel();
    }
  }
  // Unblocks the input thread should it sit in a write the guest does not drain.
  ::shutdown(*sock, SHUT_RDWR);
  ::close(*sock);
  if (closed) {
    Send(live->id, json::array({{{"t", "error"},
                                 {"message", "the console of " + where +
                                                 " closed (the VM stopped or restarted)"}}}));
  }
  spdlog::info("session {}: console of {} detached", live->id, where);
  input.join();
}

static std::thread FollowInput(ApiClient* api, SessionRunner::Live* live) {
  return std::thread([api, live] {
    uint64_t unacked = 0;  // input written (or dropped) and not yet acknowledged
    Status s = api->Watch("/v1/agent/sessions/" + live->id + "/input", [&](const json& f) {
      // This thread alone closes stdin_fd: it may write without the lock (a write blocked on a
      // full pipe must not hold off a cancel).
      const std::string t = f.value("t", "");
      int fd;
      {
        std::lock_guard lock(live->mu);
        fd = live->stdin_fd;
      }
      if (t == "in") {
        std::string data;  // the server let only base64 through
        if (!Base64Decode(f.value("d", ""), &data)) spdlog::warn("session: bad stdin frame");
        for (size_t off = 0; fd >= 0 && off < data.size();) {
          ssize_t n = ::write(fd, data.data() + off, data.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;  // the command is gone or closed its stdin
          off += static_cast<size_t>(n);
        }
        // Written (or dropped: nobody will read it): the server lets the user send more. The
        // write above blocks while the workload does not read, and so holds this ack back.
        unacked += data.size();
        if (unacked > 0 && unacked >= live->ack_every) {
          auto r = api->Call("POST", "/v1/agent/sessions/" + live->id + "/output",
                             json{{"frames", {{{"t", "ack"}, {"n", unacked}}}}});
          if (!r.ok()) return false;  // the session is gone
          unacked = 0;
        }
      }
      if (t == "eof") {
        std::lock_guard lock(live->mu);
        Close(&live->stdin_fd);
      }
      if (t == "resize") {
        std::lock_guard lock(live->mu);
        if (live->tty_fd >= 0) {
          // The server checked the size; a failure leaves the old one.
          ResizeTty(live->tty_fd, {f.value("rows", uint16_t{24}), f.value("cols", uint16_t{80})})
              .IgnoreError();
        }
      }
      return t != "cancel";
    });
    live->Cancel();  // the session ended (or the server went away): stop the command
    std::lock_guard lock(live->mu);
    Close(&live->stdin_fd);
  });
}

}  // namespace photon::agent
