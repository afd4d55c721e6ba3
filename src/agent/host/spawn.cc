#include "agent/host/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "agent/host/proc_util.h"
#include "common/file_util.h"

namespace photon::agent {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Async-signal-safe helpers for the code between fork and exec.
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

size_t FormatInt(long v, char* buf) {  // buf >= 24 bytes; returns length
  char tmp[24];
  size_t n = 0;
  bool neg = v < 0;
  unsigned long u = neg ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u > 0);
  size_t len = 0;
  if (neg) buf[len++] = '-';
  while (n > 0) buf[len++] = tmp[--n];
  buf[len] = '\0';
  return len;
}

void ResetSignals() {
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void WriteExit(const char* exit_path, const char* tmp_path, int status) {
  char buf[64];
  size_t len;
  if (WIFSIGNALED(status)) {
    memcpy(buf, "signaled ", 9);
    len = 9 + FormatInt(WTERMSIG(status), buf + 9);
  } else {
    memcpy(buf, "exited ", 7);
    len = 7 + FormatInt(WEXITSTATUS(status), buf + 7);
  }
  buf[len++] = '\n';
  int fd = ::open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  WriteAll(fd, buf, len);
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp_path, exit_path);
}

// Tells a later reader that the workload never ran (the start was abandoned).
void WriteAborted(const char* exit_path, const char* tmp_path) {
  int fd = ::open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  WriteAll(fd, "aborted\n", 8);
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp_path, exit_path);
}

struct Report {
  pid_t pid;
  pid_t monitor;
  int exec_errno;
  int stage;  // a Stage
};

enum Stage {
  kOk,
  kLogFile,
  kCgroup,
  kChdir,
  kExec,
  kFork,
  kPidNamespace,
  kMounts,
  kCredentials,
  kNetns,
  kAborted,  // the starter closed the gate without a go: nothing ran
};

constexpr int kReportFd = 3;  // the monitor's end of the report pipe
constexpr int kGateFd = 4;    // the workload reads one 'g' here before it starts

[[noreturn]] void ReportFailure(int fd, int stage) {
  Report e{0, 0, errno, stage};
  WriteAll(fd, &e, sizeof e);
  ::_exit(127);
}

// What the workload's process needs, prepared before the first fork (no allocation after it).
struct ExecArgs {
  const char* exe;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // nullptr: stay where we are
  int devnull;
  int log_fd;
  const SpawnSpec::Confinement* confine;  // nullptr: the agent's own privileges
  bool drop_net_admin;                    // in a port namespace with the agent's privileges
};

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

[[noreturn]] void ExecWorkload(const ExecArgs& a, int err_fd) {
  ::dup2(a.devnull, 0);
  ::dup2(a.log_fd, 1);
  ::dup2(a.log_fd, 2);
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (a.confine != nullptr) {
    // Groups first: once the uid is dropped, the gid can no longer be changed.
    if (::setgroups(0, nullptr) != 0 ||
        ::setresgid(a.confine->gid, a.confine->gid, a.confine->gid) != 0 ||
        ::setresuid(a.confine->uid, a.confine->uid, a.confine->uid) != 0 ||
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      ReportFailure(err_fd, kCredentials);
    }
  } else if (a.drop_net_admin && !DropNetAdmin()) {
    ReportFailure(err_fd, kCredentials);
  }
  // After dropping privileges, so the workload cannot chdir where its user may not go.
  if (a.cwd != nullptr && ::chdir(a.cwd) != 0) ReportFailure(err_fd, kChdir);
  ::execve(a.exe, a.argv, a.envp);
  ReportFailure(err_fd, kExec);
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

// Pid 1 of the confined workload's namespace: sets up its mounts, starts the workload, reaps
// whatever gets re-parented to it and exits with the workload's status.
[[noreturn]] void RunInit(const ExecArgs& a, int err_fd) {
  ::prctl(PR_SET_NAME, "photon-init", 0, 0, 0);
  if (!SetUpMounts(a.confine->private_tmp.c_str())) ReportFailure(err_fd, kMounts);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);  // no forwarded signal before g_workload is known
  pid_t workload = ::fork();
  if (workload < 0) ReportFailure(err_fd, kFork);
  if (workload == 0) {
    sigprocmask(SIG_SETMASK, &old, nullptr);
    ExecWorkload(a, err_fd);
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

// What the monitor needs, prepared before the first fork (no allocation after it).
struct MonitorArgs {
  ExecArgs exec;  // devnull and log_fd: opened by the monitor
  const char* const* cgroup_procs;
  size_t cgroup_procs_count;
  const char* log_path;
  const char* exit_path;
  const char* exit_tmp;  // written first, then renamed to exit_path
  bool subreaper;
  int netns_fd;  // -1: stay in the agent's network namespace
};

// Reads one whole Report; false on EOF (the other end exec'd or exited) or a short read.
bool ReadReport(int fd, Report* r) {
  ssize_t n;
  do {
    n = ::read(fd, r, sizeof *r);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof *r);
}

// The monitor's failure before the workload runs: `r` carries the monitor's pid.
[[noreturn]] void ReportMonitorFailure(int fd, Report r, int stage) {
  r.exec_errno = errno;
  r.stage = stage;
  WriteAll(fd, &r, sizeof r);
  ::_exit(127);
}

// The monitor's child: waits for the starter's go, joins the cgroups, then becomes the workload
// (or, confined, its pid namespace's init).
[[noreturn]] void StartWorkload(const MonitorArgs& m, const ExecArgs& a, int err_fd) {
  char go = 0;
  ssize_t n;
  do {
    n = ::read(kGateFd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || go != 'g') ReportFailure(err_fd, kAborted);
  ::close(kGateFd);
  ResetSignals();
  ::setpgid(0, 0);
  char pid_buf[24];
  size_t pid_len = FormatInt(::getpid(), pid_buf);  // read in our own pid namespace
  for (size_t i = 0; i < m.cgroup_procs_count; ++i) {
    int fd = ::open(m.cgroup_procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, pid_buf, pid_len) < 0) ReportFailure(err_fd, kCgroup);
    ::close(fd);
  }
  if (a.confine != nullptr) RunInit(a, err_fd);
  ExecWorkload(a, err_fd);
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

// The monitor: starts the workload, reports its pid (or the failed stage) on `report_fd`,
// then waits for it and writes the exit file. Async-signal-safe: it runs between fork and
// exec of a multi-threaded agent.
// The report protocol: one Report once the workload's process exists (pid set, stage kOk) or the
// monitor failed before (stage set); then, after the go, one with the workload's start outcome.
[[noreturn]] void RunMonitor(const MonitorArgs& m, int report_fd) {
  // Named so that ps tells it from the agent it was forked from; "photon-start" until the
  // workload ran or the start failed (see StartUndecided).
  ::prctl(PR_SET_NAME, "photon-start", 0, 0, 0);
  ResetSignals();
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  if (m.subreaper) ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  // Nor the agent's stdio (a pipe someone reads until EOF, say).
  ::dup2(devnull, 0);
  ::dup2(devnull, 1);
  ::dup2(devnull, 2);
  Report r{0, ::getpid(), 0, 0};
  int log_fd = ::open(m.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) ReportMonitorFailure(report_fd, r, kLogFile);
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) ::_exit(127);
  // The next child is pid 1 of a new pid namespace (only children move into it).
  if (m.exec.confine != nullptr && ::unshare(CLONE_NEWPID) != 0) {
    ReportMonitorFailure(report_fd, r, kPidNamespace);
  }
  ExecArgs a = m.exec;
  a.devnull = devnull;
  a.log_fd = log_fd;
  pid_t child = ::fork();
  if (child == 0) StartWorkload(m, a, err[1]);
  ::close(err[1]);
  ::close(kGateFd);
  if (child < 0) ReportMonitorFailure(report_fd, r, kFork);
  r.pid = child;
  WriteAll(report_fd, &r, sizeof r);
  Report e{0, 0, 0, 0};
  if (ReadReport(err[0], &e)) {
    r.exec_errno = e.exec_errno;
    r.stage = e.stage;
  }
  if (r.stage == kAborted) WriteAborted(m.exit_path, m.exit_tmp);  // before the name changes
  ::prctl(PR_SET_NAME, "photon-monitor", 0, 0, 0);
  WriteAll(report_fd, &r, sizeof r);
  ::close(report_fd);
  ::close(err[0]);
  ::close(log_fd);
  if (r.stage == kAborted) {
    ::waitpid(child, nullptr, 0);
    ::_exit(0);
  }
  int recorded = 0;
  if (WaitForWorkload(child, m.subreaper, &recorded)) {
    WriteExit(m.exit_path, m.exit_tmp, recorded);
  }
  ::_exit(0);
}

// The intermediate: new session, then the monitor, then exit so init adopts the monitor.
[[noreturn]] void RunIntermediate(const MonitorArgs& m, int report_w, int gate_r) {
  // First of all (the descriptor may be one the dup2s below replace): the port namespace, for
  // the monitor and everything it starts.
  if (m.netns_fd >= 0 && ::setns(m.netns_fd, CLONE_NEWNET) != 0) {
    Report r{0, 0, errno, kNetns};
    WriteAll(report_w, &r, sizeof r);
    ::_exit(1);
  }
  // Keep only the report pipe (as fd 3) and the gate (as fd 4): descriptors other threads
  // opened concurrently (pipes of helper commands, sockets) must not live on in the monitor.
  // First above 9, so that neither dup2 overwrites the other's source.
  int report = ::fcntl(report_w, F_DUPFD_CLOEXEC, 10);
  int gate = ::fcntl(gate_r, F_DUPFD_CLOEXEC, 10);
  if (report < 0 || gate < 0 || ::dup2(report, kReportFd) < 0 || ::dup2(gate, kGateFd) < 0) {
    ::_exit(1);
  }
  ::syscall(SYS_close_range, 5U, ~0U, 0U);
  ::setsid();
  pid_t monitor = ::fork();
  if (monitor != 0) ::_exit(monitor < 0 ? 1 : 0);
  RunMonitor(m, kReportFd);
}

StatusOr<Spawned> StageError(const Report& r) {
  static const char* kStage[] = {"",
                                 "opening the log file",
                                 "joining the cgroup",
                                 "changing to the working directory",
                                 "executing",
                                 "forking",
                                 "creating the pid namespace",
                                 "setting up the mount namespace",
                                 "dropping privileges",
                                 "entering the port's network namespace",
                                 "waiting for the start"};
  int stage = r.stage >= 0 && r.stage <= kAborted ? r.stage : kAborted;
  return absl::FailedPreconditionError(std::string(kStage[stage]) +
                                       " failed: " + strerror(r.exec_errno));
}

// The agent's side: reaps the intermediate, learns the pids, lets `before_start` record them,
// gives the go (or withholds it) and turns the monitor's final Report into a Spawned or an
// error naming the stage that failed.
StatusOr<Spawned> AwaitMonitor(pid_t intermediate, int report_fd, int gate_fd,
                               const std::function<Status(const Spawned&)>& before_start) {
  int status = 0;
  while (::waitpid(intermediate, &status, 0) < 0 && errno == EINTR) {
  }
  Report r{0, 0, 0, 0};
  bool got = ReadReport(report_fd, &r);
  if (!got || r.stage != kOk) {
    ::close(gate_fd);
    ::close(report_fd);
    if (!got) return absl::InternalError("monitor did not start");
    return StageError(r);
  }
  Spawned out;
  out.pid = r.pid;
  out.start_time = ProcessStartTime(r.pid);
  out.monitor_pid = r.monitor;
  out.monitor_start = ProcessStartTime(out.monitor_pid);
  Status ready = before_start ? before_start(out) : absl::OkStatus();
  if (ready.ok()) (void)::send(gate_fd, "g", 1, MSG_NOSIGNAL);
  ::close(gate_fd);  // without the go: EOF, and the workload never runs
  got = ReadReport(report_fd, &r);
  ::close(report_fd);
  if (!ready.ok()) return ready;
  if (!got) return absl::InternalError("monitor ended before the workload started");
  if (r.stage != kOk) return StageError(r);
  return out;
}

}  // namespace

std::string ResolveExecutable(const std::string& name, const std::vector<std::string>& env) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  std::string path = kDefaultPath;
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

StatusOr<Spawned> SpawnMonitored(const SpawnSpec& spec,
                                 const std::function<Status(const Spawned&)>& before_start) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty command");
  std::string exe = ResolveExecutable(spec.argv[0], spec.env);
  if (exe.empty()) {
    return absl::InvalidArgumentError("command '" + spec.argv[0] + "' not found or not executable");
  }
  // Everything the children need, prepared before fork.
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::vector<const char*> procs;
  for (const auto& p : spec.cgroup_procs) procs.push_back(p.c_str());
  std::string exit_tmp = spec.exit_path + ".tmp";
  const char* cwd = spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();
  const SpawnSpec::Confinement* confine = spec.confine ? &*spec.confine : nullptr;
  int netns_fd = -1;
  if (!spec.netns.empty()) {
    netns_fd = ::open(spec.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      return absl::FailedPreconditionError("network namespace " + spec.netns + ": " +
                                           strerror(errno));
    }
  }
  const MonitorArgs m{
      ExecArgs{exe.c_str(), argv.data(), envp.data(), cwd, -1, -1, confine, netns_fd >= 0},
      procs.data(),
      procs.size(),
      spec.log_path.c_str(),
      spec.exit_path.c_str(),
      exit_tmp.c_str(),
      spec.subreaper,
      netns_fd};
  ::unlink(spec.exit_path.c_str());
  struct CloseNetns {
    int fd;
    ~CloseNetns() {
      if (fd >= 0) ::close(fd);
    }
  } close_netns{netns_fd};

  int report[2], gate[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return absl::InternalError("pipe: " + std::string(strerror(errno)));
  // A socket, not a pipe: the go is sent with MSG_NOSIGNAL (a workload process that is gone
  // must not SIGPIPE the agent).
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gate) != 0) {
    ::close(report[0]);
    ::close(report[1]);
    return absl::InternalError("pipe: " + std::string(strerror(errno)));
  }
  pid_t intermediate = ::fork();
  if (intermediate < 0) {
    for (int fd : {report[0], report[1], gate[0], gate[1]}) ::close(fd);
    return absl::InternalError("fork: " + std::string(strerror(errno)));
  }
  if (intermediate == 0) RunIntermediate(m, report[1], gate[0]);
  ::close(report[1]);
  ::close(gate[0]);
  return AwaitMonitor(intermediate, report[0], gate[1], before_start);
}

bool StartUndecided(pid_t monitor_pid) {
  std::string comm;
  if (auto data = ReadFile("/proc/" + std::to_string(monitor_pid) + "/comm"); data.ok()) {
    comm = *data;
  }
  return comm == "photon-start\n";
}

StatusOr<int> ReadExitCode(const std::string& exit_path) {
  auto data = ReadFile(exit_path);
  if (!data.ok()) return absl::NotFoundError("still running");
  std::istringstream in(*data);
  std::string how;
  int v = 0;
  in >> how >> v;
  if (how == "aborted") return absl::AbortedError("the start was abandoned before it ran");
  if (how == "signaled") return 128 + v;
  if (how == "exited") return v;
  return absl::DataLossError("bad exit file " + exit_path);
}

}  // namespace photon::agent
