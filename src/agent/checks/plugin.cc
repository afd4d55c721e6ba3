#include "agent/checks/plugin.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace photon::agent::checks {

namespace {

constexpr size_t kMaxRead = 64 * 1024;

// After fork: only async-signal-safe calls (the agent is multi-threaded).
[[noreturn]] void ExecChild(int out_fd, const char* path, char* const* argv, char* const* envp,
                            const RunAs& as) {
  setpgid(0, 0);
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) {
    _exit(126);
  }
  close_range(3, ~0U, 0);
  if (geteuid() == 0) {
    static const char kDrop[] = "cannot drop privileges\n";
    if (setgroups(0, nullptr) != 0 || setresgid(as.gid, as.gid, as.gid) != 0 ||
        setresuid(as.uid, as.uid, as.uid) != 0 || geteuid() == 0) {
      (void)!write(2, kDrop, sizeof kDrop - 1);
      _exit(126);
    }
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (chdir("/") != 0) _exit(126);
  execve(path, argv, envp);
  static const char kExec[] = "cannot execute the plugin\n";
  (void)!write(2, kExec, sizeof kExec - 1);
  _exit(127);
}

std::string FirstLine(const std::string& out) {
  std::string line = out.substr(0, out.find('\n'));
  if (line.size() > 1024) line.resize(1024);
  return line;
}

}  // namespace

StatusOr<RunAs> LookupUser(const std::string& user) {
  struct passwd pw, *found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    return absl::NotFoundError("check user '" + user + "': no such user on this node");
  }
  if (found->pw_uid == 0 || found->pw_gid == 0) {
    return absl::FailedPreconditionError("check user '" + user +
                                         "' is root; checks never run as root");
  }
  return RunAs{.uid = found->pw_uid, .gid = found->pw_gid};
}

PluginResult RunPlugin(const std::string& command, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout, const RunAs& as) {
  std::vector<std::string> argv_s{command};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string path_env = "PATH=/usr/lib/nagios/plugins:/usr/sbin:/usr/bin:/sbin:/bin";
  std::string lang_env = "LC_ALL=C";
  std::vector<char*> envp{path_env.data(), lang_env.data(), nullptr};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {3, "cannot create a pipe"};
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {3, "cannot fork"};
  }
  if (pid == 0) ExecChild(fds[1], command.c_str(), argv.data(), envp.data(), as);
  close(fds[1]);
  setpgid(pid, pid);  // also here: the kill below must not race the child's own setpgid
  std::string out;
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the plugin (and what it started) closed its output
    if (out.size() < kMaxRead) out.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  // A plugin that closed its output may still run: it gets until the deadline too.
  while (!timed_out && waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    usleep(10000);
  }
  if (timed_out) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (timed_out) {
    return {3, "timed out after " + std::to_string(timeout.count() / 1000.0).substr(0, 4) + " s"};
  }
  if (WIFSIGNALED(status)) return {3, "killed by signal " + std::to_string(WTERMSIG(status))};
  int code = WEXITSTATUS(status);
  return {code, FirstLine(out)};
}

}  // namespace photon::agent::checks
