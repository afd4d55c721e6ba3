#include "agent/session_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
  pid_t pgid = 0;     // the running command's group; 0 once it has ended
  int stdin_fd = -1;  // the command's stdin, written by the input thread
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
  auto r = api_->Call("POST", "/v1/agent/sessions/" + id + "/output",
                      json{{"frames", std::move(frames)}});
  return r.ok();
}

void SessionRunner::Serve(const json& a) {
  Live live;
  live.id = a.value("id", "");
  {
    std::lock_guard lock(mu_);
    if (stopping_ || live.id.size() != 32) return;
    live_.insert(&live);
  }
  spdlog::info("session {}: {} {}/{}", live.id, a.value("type", ""),
               a["instance"].value("namespace", ""), a["instance"].value("name", ""));
  try {
    if (a.value("type", "") == "exec") {
      Exec(a, &live);
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
  auto child =
      StartExec(data_dir_, inst.at("driver").get<std::string>(), inst.at("id").get<std::string>(),
                a.at("command").get<std::vector<std::string>>());
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

static std::thread FollowInput(ApiClient* api, SessionRunner::Live* live) {
  return std::thread([api, live] {
    Status s = api->Watch("/v1/agent/sessions/" + live->id + "/input", [live](const json& f) {
      // This thread alone closes stdin_fd: it may write without the lock (a write blocked on a
      // full pipe must not hold off a cancel).
      const std::string t = f.value("t", "");
      int fd;
      {
        std::lock_guard lock(live->mu);
        fd = live->stdin_fd;
      }
      if (t == "in" && fd >= 0) {
        std::string data;  // the server let only base64 through
        if (!Base64Decode(f.value("d", ""), &data)) spdlog::warn("session: bad stdin frame");
        for (size_t off = 0; off < data.size();) {
          ssize_t n = ::write(fd, data.data() + off, data.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;  // the command is gone or closed its stdin
          off += static_cast<size_t>(n);
        }
      }
      if (t == "eof") {
        std::lock_guard lock(live->mu);
        Close(&live->stdin_fd);
      }
      return t != "cancel";
    });
    live->Cancel();  // the session ended (or the server went away): stop the command
    std::lock_guard lock(live->mu);
    Close(&live->stdin_fd);
  });
}

}  // namespace photon::agent
