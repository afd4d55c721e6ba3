// photon-procmon: the monitor of one workload (see host/spawn.h for the process tree and
// host/procmon_wire.h for what the agent sends). A small static binary the agent execs instead
// of forking itself: forking the agent (hundreds of MiB mapped, many threads) was half of its
// CPU when starting 1,000 processes.
//
//   agent ──posix_spawn──> photon-procmon (new session; reads the Spec, joins the netns, forks,
//                          exits)
//                            └─fork──> monitor ("photon-start", then "photon-monitor")
//                                        └─fork──> workload (cgroups, [init: pid ns, mounts],
//                                                  waits for the go, exec)
//
// Single-threaded: unlike the agent's forked child, it may allocate anywhere.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "agent/host/procmon_wire.h"

namespace photon::agent::procmon {
namespace {

void WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

bool ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void ResetSignals() {
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Written to a temporary name, synced and renamed: a reader sees all of it or nothing.
void WriteExitFile(const Spec& s, const std::string& text) {
  std::string tmp = s.exit_path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  WriteAll(fd, text.data(), text.size());
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp.c_str(), s.exit_path.c_str());
}

void WriteExit(const Spec& s, int status) {
  WriteExitFile(s, WIFSIGNALED(status) ? "signaled " + std::to_string(WTERMSIG(status)) + "\n"
                                       : "exited " + std::to_string(WEXITSTATUS(status)) + "\n");
}

[[noreturn]] void ReportFailure(int fd, int stage) {
  Report e{0, 0, errno, stage};
  WriteAll(fd, &e, sizeof e);
  ::_exit(127);
}

// Removes CAP_NET_ADMIN from every set of this process and from the bounding set, so neither
// it nor what it executes can change its network namespace's links, routes or rules.
bool DropNetAdmin() {
  if (::prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0) return false;
  (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_NET_ADMIN, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  const uint32_t bit = 1U << (CAP_NET_ADMIN % 32);
  auto& d = data[CAP_NET_ADMIN / 32];
  d.effective &= ~bit;
  d.permitted &= ~bit;
  d.inheritable &= ~bit;
  return ::syscall(SYS_capset, &header, data) == 0;
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Descriptors of the workload's process: stdin /dev/null, stdout and stderr the log.
struct Stdio {
  int devnull;
  int log_fd;
};

[[noreturn]] void ExecWorkload(const Spec& s, const Stdio& io, int err_fd) {
  ::dup2(io.devnull, 0);
  ::dup2(io.log_fd, 1);
  ::dup2(io.log_fd, 2);
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (s.confine) {
    // Groups first: once the uid is dropped, the gid can no longer be changed.
    if (::setgroups(0, nullptr) != 0 || ::setresgid(s.gid, s.gid, s.gid) != 0 ||
        ::setresuid(s.uid, s.uid, s.uid) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      ReportFailure(err_fd, kCredentials);
    }
  } else if (s.drop_net_admin && !DropNetAdmin()) {
    ReportFailure(err_fd, kCredentials);
  }
  // After dropping privileges, so the workload cannot chdir where its user may not go.
  if (!s.cwd.empty() && ::chdir(s.cwd.c_str()) != 0) ReportFailure(err_fd, kChdir);
  std::vector<char*> argv = CStrings(s.argv), envp = CStrings(s.env);
  ::execve(s.exe.c_str(), argv.data(), envp.data());
  ReportFailure(err_fd, kExec);
}

// Blocks until the starter's go; anything else (EOF: it withheld the go or died) ends this
// process with nothing run.
void AwaitGo(int err_fd) {
  char go = 0;
  ssize_t n;
  do {
    n = ::read(kGateFd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || go != 'g') ReportFailure(err_fd, kAborted);
  ::close(kGateFd);
}

// The init of a confined workload's pid namespace forwards these to the workload: as pid 1 it
// would otherwise ignore every signal it has no handler for, and the host's SIGTERM would
// never reach the workload.
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
volatile sig_atomic_t g_workload = 0;

void ForwardSignal(int sig) {
  if (g_workload > 0) ::kill(static_cast<pid_t>(g_workload), sig);
}

// A new mount namespace whose mounts never propagate to the host: a /proc of the new pid
// namespace only, and the instance's own directory as /tmp.
bool SetUpMounts(const char* private_tmp) {
  return ::unshare(CLONE_NEWNS) == 0 &&
         ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
         ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0 &&
         ::mount(private_tmp, "/tmp", nullptr, MS_BIND, nullptr) == 0 &&
         ::mount(nullptr, "/tmp", nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, nullptr) ==
             0;
}

// Pid 1 of the confined workload's namespace: its mounts are set up before the go (nothing of
// the tenant runs yet), then it starts the workload, reaps whatever gets re-parented to it and
// exits with the workload's status.
[[noreturn]] void RunInit(const Spec& s, const Stdio& io, int err_fd) {
  ::prctl(PR_SET_NAME, "photon-init", 0, 0, 0);
  if (!SetUpMounts(s.private_tmp.c_str())) ReportFailure(err_fd, kMounts);
  AwaitGo(err_fd);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);  // no forwarded signal before g_workload is known
  pid_t workload = ::fork();
  if (workload < 0) ReportFailure(err_fd, kFork);
  if (workload == 0) {
    sigprocmask(SIG_SETMASK, &old, nullptr);
    ExecWorkload(s, io, err_fd);
  }
  g_workload = workload;
  for (int sig : kForwardedSignals) {
    struct sigaction sa {};
    sa.sa_handler = ForwardSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
  sigprocmask(SIG_SETMASK, &old, nullptr);
  ::close(err_fd);  // the monitor sees EOF once the workload has exec'd
  int status = 0;
  for (;;) {
    int st = 0;
    pid_t w = ::waitpid(-1, &st, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break;
    if (w == workload) {
      status = st;
      break;
    }
  }
  // Leaving ends every process left in the namespace (the kernel kills them with pid 1).
  ::_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}

// The monitor's child: joins the cgroups and (confined) becomes its pid namespace's init while
// the agent saves the handle, then waits for the go and becomes the workload.
[[noreturn]] void StartWorkload(const Spec& s, const Stdio& io, int err_fd) {
  ResetSignals();
  ::setpgid(0, 0);
  std::string pid = std::to_string(::getpid());  // read in our own pid namespace
  for (const auto& procs : s.cgroup_procs) {
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, pid.data(), pid.size()) < 0) ReportFailure(err_fd, kCgroup);
    ::close(fd);
  }
  if (s.confine) RunInit(s, io, err_fd);
  AwaitGo(err_fd);
  ExecWorkload(s, io, err_fd);
}

// Waits for the workload (and, as a subreaper, for whatever it left behind). Returns whether
// there is a status to record, and puts it in `recorded`.
bool WaitForWorkload(pid_t child, bool subreaper, int* recorded) {
  bool have = false;
  for (;;) {
    int status = 0;
    pid_t w = ::waitpid(-1, &status, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (!subreaper) {
      if (w == child) {
        *recorded = status;
        return true;
      }
      continue;
    }
    if (w == child && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      *recorded = status;
      return true;  // the starter failed: nothing else to wait for
    }
    if (w != child) {
      *recorded = status;
      have = true;
    }
  }
  return have;
}

// The monitor's failure before the workload runs: `r` carries the monitor's pid.
[[noreturn]] void ReportMonitorFailure(Report r, int stage) {
  r.exec_errno = errno;
  r.stage = stage;
  WriteAll(kReportFd, &r, sizeof r);
  ::_exit(127);
}

// The monitor: starts the workload, reports its pid (or the failed stage) on kReportFd, then
// waits for it and writes the exit file.
// The report protocol: one Report once the workload's process exists (pid set, stage kOk) or
// the monitor failed before (stage set); then, after the go, one with the start's outcome.
[[noreturn]] void RunMonitor(const Spec& s) {
  // "photon-start" until the workload ran or the start failed (see StartUndecided).
  ::prctl(PR_SET_NAME, "photon-start", 0, 0, 0);
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  if (s.subreaper) ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  Report r{0, ::getpid(), 0, 0};
  Stdio io{::open("/dev/null", O_RDWR | O_CLOEXEC), -1};
  io.log_fd = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (io.devnull < 0 || io.log_fd < 0) ReportMonitorFailure(r, kLogFile);
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) ReportMonitorFailure(r, kFork);
  // The next child is pid 1 of a new pid namespace (only children move into it).
  if (s.confine && ::unshare(CLONE_NEWPID) != 0) ReportMonitorFailure(r, kPidNamespace);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(kReportFd);
    StartWorkload(s, io, err[1]);
  }
  ::close(err[1]);
  ::close(kGateFd);
  if (child < 0) ReportMonitorFailure(r, kFork);
  r.pid = child;
  WriteAll(kReportFd, &r, sizeof r);
  Report e{0, 0, 0, 0};
  if (ReadAll(err[0], &e, sizeof e)) {
    r.exec_errno = e.exec_errno;
    r.stage = e.stage;
  }
  if (r.stage == kAborted) WriteExitFile(s, "aborted\n");  // before the name changes
  ::prctl(PR_SET_NAME, "photon-monitor", 0, 0, 0);
  WriteAll(kReportFd, &r, sizeof r);
  ::close(kReportFd);
  ::close(err[0]);
  ::close(io.log_fd);
  if (r.stage == kAborted) {
    ::waitpid(child, nullptr, 0);
    ::_exit(0);
  }
  int recorded = 0;
  if (WaitForWorkload(child, s.subreaper, &recorded)) WriteExit(s, recorded);
  ::_exit(0);
}

// Reads the one Spec the agent sends before anything else on the gate.
bool ReadSpec(Spec* s) {
  uint32_t len = 0;
  if (!ReadAll(kGateFd, &len, sizeof len) || len > kMaxSpecBytes) return false;
  std::string body(len, '\0');
  return ReadAll(kGateFd, body.data(), len) && DecodeSpec(body, s);
}

}  // namespace
}  // namespace photon::agent::procmon

// Started by the agent only (fds 3 and 4 set up, a new session); refuses anything else.
int main(int argc, char** argv) {
  using namespace photon::agent::procmon;
  (void)argv;
  if (argc != 1 || ::fcntl(kReportFd, F_GETFD) < 0 || ::fcntl(kGateFd, F_GETFD) < 0) {
    fprintf(stderr, "photon-procmon is started by photon-agent only\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);  // a starter that died must not kill the report's writer
  // stdio is not the agent's (a pipe someone reads until EOF, say).
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    if (devnull > 2) ::close(devnull);
  }
  Spec spec;
  if (!ReadSpec(&spec)) {
    errno = EPROTO;
    ReportFailure(kReportFd, kSpec);
  }
  // First of all: the port namespace, for the monitor and everything it starts.
  if (!spec.netns.empty()) {
    int fd = ::open(spec.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ReportFailure(kReportFd, kNetns);
    ::close(fd);
  }
  // Exit at once so that init adopts the monitor: the agent need not reap it.
  pid_t monitor = ::fork();
  if (monitor < 0) ReportFailure(kReportFd, kFork);
  if (monitor > 0) ::_exit(0);
  RunMonitor(spec);
}
