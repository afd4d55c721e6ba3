#include "agent/host/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "agent/host/spawn.h"
#include "common/util.h"

extern char** environ;

namespace photon::agent {

StatusOr<RunResult> RunCommand(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::string exe = ResolveExecutable(argv[0], {});
  if (exe.empty()) return absl::UnavailableError("'" + argv[0] + "' is not installed");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return absl::InternalError("cannot run " + argv[0] + ": " + strerror(rc));
  }
  RunResult result;
  int64_t deadline = MonotonicNanos() + std::chrono::nanoseconds(timeout).count();
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    int left_ms = static_cast<int>((deadline - MonotonicNanos()) / 1000000);
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int pr = ::poll(&p, 1, left_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (result.output.size() < (1 << 20)) result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(argv[0] + " did not finish within " +
                                       std::to_string(timeout.count()) + " ms");
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

Status RunChecked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  PHOTON_ASSIGN_OR_RETURN(RunResult r, RunCommand(argv, timeout));
  if (r.exit_code != 0) {
    return absl::InternalError(argv[0] + " failed (exit " + std::to_string(r.exit_code) +
                               "): " + r.output);
  }
  return absl::OkStatus();
}

std::string TailFile(const std::string& path, int lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = size > (1 << 20) ? size - (1 << 20) : 0;
  in.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (lines <= 0) return data;
  size_t pos = data.size();
  if (pos > 0 && data[pos - 1] == '\n') --pos;
  int seen = 0;
  while (pos > 0) {
    if (data[pos - 1] == '\n' && ++seen == lines) break;
    --pos;
  }
  return data.substr(pos);
}

}  // namespace photon::agent
