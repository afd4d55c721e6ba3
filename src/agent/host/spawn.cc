#include "agent/host/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "agent/host/proc_util.h"
#include "agent/host/procmon_wire.h"
#include "common/file_util.h"

namespace photon::agent {
namespace {

using procmon::Report;

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kProcmonName[] = "photon-procmon";

// Reads one whole Report; false on EOF (the monitor ended) or a short read.
bool ReadReport(int fd, Report* r) {
  ssize_t n;
  do {
    n = ::read(fd, r, sizeof *r);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof *r);
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
                                 "waiting for the start",
                                 "passing the start to photon-procmon"};
  int stage = r.stage >= 0 && r.stage <= procmon::kSpec ? r.stage : procmon::kAborted;
  return absl::FailedPreconditionError(std::string(kStage[stage]) +
                                       " failed: " + strerror(r.exec_errno));
}

// The agent's side: reaps photon-procmon's first process, learns the pids, lets
// `before_start` record them, gives the go (or withholds it) and turns the monitor's final
// Report into a Spawned or an error naming the stage that failed.
StatusOr<Spawned> AwaitMonitor(pid_t intermediate, int report_fd, int gate_fd,
                               const std::function<Status(const Spawned&)>& before_start) {
  int status = 0;
  while (::waitpid(intermediate, &status, 0) < 0 && errno == EINTR) {
  }
  Report r{0, 0, 0, 0};
  bool got = ReadReport(report_fd, &r);
  if (!got || r.stage != procmon::kOk) {
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
  if (r.stage != procmon::kOk) return StageError(r);
  return out;
}

// Sends all of `data` on the socket `fd` (MSG_NOSIGNAL: a procmon that died is an error, not
// a SIGPIPE of the agent).
bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Starts photon-procmon with `report` as its kReportFd and `gate` as its kGateFd, in a new
// session, with default signal handling and no other descriptor of the agent.
// posix_spawn: clone(CLONE_VM | CLONE_VFORK) and exec, without copying the agent's memory.
StatusOr<pid_t> SpawnProcmon(const std::string& path, int report, int gate) {
  // Above the targets first, so that neither dup2 overwrites the other's source.
  int report_hi = ::fcntl(report, F_DUPFD_CLOEXEC, 10);
  int gate_hi = ::fcntl(gate, F_DUPFD_CLOEXEC, 10);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, report_hi, procmon::kReportFd);
  posix_spawn_file_actions_adddup2(&fa, gate_hi, procmon::kGateFd);
  posix_spawn_file_actions_addclosefrom_np(&fa, procmon::kGateFd + 1);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char* argv[] = {const_cast<char*>(kProcmonName), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = 0;
  int rc = report_hi < 0 || gate_hi < 0 ? errno
                                        : ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (int fd : {report_hi, gate_hi}) {
    if (fd >= 0) ::close(fd);
  }
  if (rc != 0) return absl::InternalError("starting " + path + ": " + strerror(rc));
  return pid;
}

procmon::Spec ToWire(const SpawnSpec& spec, const std::string& exe) {
  procmon::Spec w;
  w.exe = exe;
  w.argv = spec.argv;
  w.env = spec.env;
  w.cwd = spec.working_dir;
  w.log_path = spec.log_path;
  w.exit_path = spec.exit_path;
  w.cgroup_procs = spec.cgroup_procs;
  w.subreaper = spec.subreaper;
  if (spec.confine) {
    w.confine = true;
    w.uid = spec.confine->uid;
    w.gid = spec.confine->gid;
    w.private_tmp = spec.confine->private_tmp;
  }
  w.netns = spec.netns;
  w.drop_net_admin = !spec.confine && !spec.netns.empty();
  return w;
}

}  // namespace

StatusOr<std::string> ProcmonPath() {
  static const StatusOr<std::string> path = []() -> StatusOr<std::string> {
    std::vector<std::string> tried;
    char self[4096];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      std::string dir(self, static_cast<size_t>(n));
      tried.push_back(dir.substr(0, dir.rfind('/') + 1) + kProcmonName);
    }
#ifdef PHOTON_PROCMON_BUILD_PATH
    tried.push_back(PHOTON_PROCMON_BUILD_PATH);  // tests run from the build tree
#endif
    for (const auto& p : tried) {
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
    std::string list;
    for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p;
    return absl::FailedPreconditionError(std::string(kProcmonName) + " not found (tried " + list +
                                         ")");
  }();
  return path;
}

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
  PHOTON_ASSIGN_OR_RETURN(std::string procmon_path, ProcmonPath());
  const std::string request = procmon::EncodeSpec(ToWire(spec, exe));
  ::unlink(spec.exit_path.c_str());
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
  auto intermediate = SpawnProcmon(procmon_path, report[1], gate[0]);
  ::close(report[1]);
  ::close(gate[0]);
  if (!intermediate.ok()) {
    ::close(report[0]);
    ::close(gate[1]);
    return intermediate.status();
  }
  // A procmon that died reading it reports nothing: AwaitMonitor says so.
  (void)SendAll(gate[1], request);
  return AwaitMonitor(*intermediate, report[0], gate[1], before_start);
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
