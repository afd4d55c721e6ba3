#include "agent/net/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "absl/strings/str_join.h"

extern char** environ;

namespace photon::agent::net {
namespace {

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// The tools live in the sbin/bin directories; resolved before fork so the child only execs.
std::string Resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    std::string path = std::string(dir) + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

// Between fork and exec: only async-signal-safe calls.
[[noreturn]] void Child(int ns_fd, int in_fd, int out_fd, const char* exe, char** argv) {
  if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0) _exit(126);
  ::dup2(in_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(out_fd, 2);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(exe, argv, environ);
  _exit(127);
}

// Feeds stdin and drains the output until both are done or the deadline passes.
bool Pump(int in_fd, int out_fd, const std::string& input, int64_t deadline, std::string* out) {
  size_t written = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  char buf[8192];
  while (out_fd >= 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0) break;
    pollfd p[2] = {{out_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int pr = ::poll(p, in_fd >= 0 ? 2 : 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    if (in_fd >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EINTR && errno != EAGAIN) written = input.size();
      if (written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(out_fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (out->size() < (1 << 20)) out->append(buf, static_cast<size_t>(n));
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  return NowMs() < deadline;
}

}  // namespace

StatusOr<ExecResult> Exec(const std::vector<std::string>& argv, const ExecOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::string exe = Resolve(argv[0]);
  if (exe.empty()) return absl::UnavailableError("'" + argv[0] + "' is not installed");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int ns_fd = -1;
  if (!options.netns.empty()) {
    ns_fd = ::open(options.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
      return absl::NotFoundError("network namespace " + options.netns + ": " + strerror(errno));
    }
  }
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    if (ns_fd >= 0) ::close(ns_fd);
    return absl::InternalError("pipe failed");
  }
  pid_t pid = ::fork();
  if (pid == 0) Child(ns_fd, in[0], out[1], exe.c_str(), args.data());
  if (ns_fd >= 0) ::close(ns_fd);
  ::close(in[0]);
  ::close(out[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    return absl::InternalError(std::string("fork failed: ") + strerror(errno));
  }
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  ExecResult result;
  bool in_time =
      Pump(in[1], out[0], options.stdin_data, NowMs() + options.timeout.count(), &result.output);
  ::close(out[0]);
  if (!in_time) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!in_time) return absl::DeadlineExceededError(absl::StrJoin(argv, " ") + " timed out");
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (result.exit_code == 126 && !options.netns.empty()) {
    return absl::FailedPreconditionError("cannot enter network namespace " + options.netns);
  }
  return result;
}

StatusOr<std::string> ExecOk(const std::vector<std::string>& argv, const ExecOptions& options) {
  PHOTON_ASSIGN_OR_RETURN(ExecResult r, Exec(argv, options));
  if (r.exit_code != 0) {
    std::string cmd = argv[0] + (argv.size() > 1 ? " " + argv[1] : "");
    return absl::InternalError(cmd + " failed (exit " + std::to_string(r.exit_code) +
                               "): " + r.output.substr(0, 2000));
  }
  return std::move(r.output);
}

}  // namespace photon::agent::net
