#include "agent/session_exec.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/host/proc_util.h"
#include "agent/host/spawn.h"
#include "common/file_util.h"

namespace photon::agent {
namespace {

using json = nlohmann::json;

// Everything the child needs, prepared before the fork: between fork and exec the agent (a
// multi-threaded process) may only make system calls.
struct Prepared {
  std::vector<std::string> argv, env;
  std::string exe, cwd;
  std::vector<int> cgroup_fds;  // cgroup.procs of each hierarchy the workload is in
  std::vector<int> ns_fds;      // net, pid, mnt of the workload, in the order to join
  bool confine = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

bool ValidId(const std::string& id) {
  return !id.empty() && id[0] != '.' && id.find('/') == std::string::npos;
}

// The workload itself: under a confined instance's init (pid 1 of its namespace), its child.
pid_t WorkloadPid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t child = 0;
  return (in >> child) && child > 0 ? child : pid;
}

// cgroup.procs of every hierarchy `pid` is in (v2: one line "0::/path"; v1: one a controller).
Status OpenCgroups(pid_t pid, std::vector<int>* fds) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.rfind("name=", 0) == 0) controllers = controllers.substr(5);
    std::string dir = "/sys/fs/cgroup" + (controllers.empty() ? "" : "/" + controllers) + path;
    int fd = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) fds->push_back(fd);
  }
  if (fds->empty()) return absl::FailedPreconditionError("the workload's cgroup is not found");
  return absl::OkStatus();
}

Status OpenNamespaces(pid_t pid, std::vector<int>* fds) {
  for (const char* ns : {"net", "pid", "mnt"}) {
    std::string p = "/proc/" + std::to_string(pid) + "/ns/" + ns;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::FailedPreconditionError(p + ": " + strerror(errno));
    fds->push_back(fd);
  }
  return absl::OkStatus();
}

std::vector<std::string> WorkloadEnv(const json& state, bool confine) {
  std::vector<std::string> env = state.value("env", std::vector<std::string>{});
  auto has = [&](const std::string& k) {
    for (const auto& e : env) {
      if (e.rfind(k + "=", 0) == 0) return true;
    }
    return false;
  };
  if (!has("PATH"))
    env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (confine && !has("HOME")) env.push_back("HOME=/tmp");
  return env;
}

// A process instance: its running workload, uid and namespaces from the provider's state.json.
StatusOr<Prepared> PrepareProcess(const std::string& data_dir, const std::string& id,
                                  const std::vector<std::string>& argv) {
  const std::string dir = data_dir + "/providers/process/instances/" + id;
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/state.json"));
  json state = json::parse(text, nullptr, false);
  if (!state.is_object()) return absl::DataLossError(dir + "/state.json: not JSON");
  pid_t pid = state.value("pid", 0);
  if (pid <= 0 || !ProcessAlive(pid, state.value("startTime", uint64_t{0}))) {
    return absl::FailedPreconditionError("the instance's process is not running");
  }
  Prepared p;
  p.confine = !state.value("privileged", false);
  p.uid = static_cast<uid_t>(state.value("uid", int64_t{-1}));
  p.gid = static_cast<gid_t>(p.uid);
  if (p.confine && state.value("uid", int64_t{-1}) < 0) {
    return absl::FailedPreconditionError("the instance has no uid recorded");
  }
  p.env = WorkloadEnv(state, p.confine);
  p.argv = argv;
  p.exe = ResolveExecutable(argv[0], p.env);
  if (p.exe.empty()) return absl::NotFoundError(argv[0] + ": command not found");
  p.cwd = state.value("workingDir", "");
  if (p.cwd.empty()) p.cwd = p.confine ? "/tmp" : dir;
  const pid_t workload = WorkloadPid(pid);
  PHOTON_RETURN_IF_ERROR(OpenCgroups(workload, &p.cgroup_fds));
  if (p.confine) PHOTON_RETURN_IF_ERROR(OpenNamespaces(workload, &p.ns_fds));
  return p;
}

// A container: `runc exec` enters it (namespaces, cgroup, user, capabilities) as its own user.
StatusOr<Prepared> PrepareContainer(const std::string& data_dir, const std::string& id,
                                    const std::vector<std::string>& argv) {
  Prepared p;
  p.exe = ResolveExecutable("runc", {});
  if (p.exe.empty()) return absl::UnavailableError("runc is not installed");
  p.argv = {"runc", "--root", data_dir + "/providers/container/runc", "exec", "--", id};
  p.argv.insert(p.argv.end(), argv.begin(), argv.end());
  p.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  p.cwd = "/";
  return p;
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the forked child: system calls only.
[[noreturn]] void RunChild(const Prepared& p, char* const* argv, char* const* envp, int in, int out,
                           int err, bool tty) {
  if (!tty) {
    ::setpgid(0, 0);
  } else if (::setsid() < 0 || ::ioctl(in, TIOCSCTTY, 0) != 0) {  // `in` is the pty's slave
    ::_exit(126);
  }
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  for (int fd : p.cgroup_fds) {
    if (::write(fd, "0", 1) != 1) ::_exit(126);
  }
  for (int fd : p.ns_fds) {
    if (::setns(fd, 0) != 0) ::_exit(126);
  }
  // Nothing of the agent's stays open (the write end of stdin would hold off the EOF).
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  // A pid namespace applies to children: the command is the grandchild, this one waits.
  pid_t child = p.confine ? ::fork() : 0;
  if (child < 0) ::_exit(126);
  if (child > 0) {
    // Only the command answers its terminal's Ctrl-C and Ctrl-\; this one reports its status.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &ignore, nullptr);
    ::sigaction(SIGQUIT, &ignore, nullptr);
    ::close(0);
    ::close(1);
    ::close(2);
    int st = 0;
    while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
  if (p.confine &&
      (::setgroups(0, nullptr) != 0 || ::setresgid(p.gid, p.gid, p.gid) != 0 ||
       ::setresuid(p.uid, p.uid, p.uid) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)) {
    ::_exit(126);
  }
  if (::chdir(p.cwd.c_str()) != 0) ::_exit(126);
  ::execve(p.exe.c_str(), argv, envp);
  ::_exit(127);
}

// A pseudo-terminal: the master (returned) and its slave in *slave, both close-on-exec.
StatusOr<int> OpenPty(const ExecTty& size, int* slave) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return absl::InternalError(std::string("posix_openpt: ") + strerror(errno));
  char name[64];
  if (::grantpt(master) != 0 || ::unlockpt(master) != 0 ||
      ::ptsname_r(master, name, sizeof name) != 0 || !ResizeTty(master, size).ok() ||
      (*slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
    int e = errno;
    ::close(master);
    return absl::InternalError(std::string("pty: ") + strerror(e));
  }
  return master;
}

// The command on a new terminal: its session leader, the slave its stdin, stdout and stderr.
StatusOr<ExecChild> SpawnOnTty(const Prepared& p, const ExecTty& size) {
  int slave = -1;
  PHOTON_ASSIGN_OR_RETURN(int master, OpenPty(size, &slave));
  std::vector<std::string> env = p.env;
  if (std::none_of(env.begin(), env.end(), [](const auto& e) { return e.starts_with("TERM="); })) {
    env.push_back("TERM=xterm");
  }
  std::vector<char*> argv = CStrings(p.argv), envp = CStrings(env);
  pid_t pid = ::fork();
  if (pid == 0) RunChild(p, argv.data(), envp.data(), slave, slave, slave, true);
  ::close(slave);
  if (pid < 0) {
    ::close(master);
    return absl::InternalError(std::string("fork: ") + strerror(errno));
  }
  // No setpgid here: the child's setsid makes it its group's leader (and would fail if this
  // made it one first).
  return ExecChild{pid, ::fcntl(master, F_DUPFD_CLOEXEC, 0), master, -1,
                   ::fcntl(master, F_DUPFD_CLOEXEC, 0)};
}

StatusOr<ExecChild> Spawn(const Prepared& p) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    CloseAll({in[0], in[1]});
    return absl::InternalError("pipe");
  }
  std::vector<char*> argv = CStrings(p.argv), envp = CStrings(p.env);
  pid_t pid = ::fork();
  if (pid == 0) RunChild(p, argv.data(), envp.data(), in[0], out[1], err[1], false);
  CloseAll({in[0], out[1], err[1]});
  if (pid < 0) {
    CloseAll({in[1], out[0], err[0]});
    return absl::InternalError(std::string("fork: ") + strerror(errno));
  }
  ::setpgid(pid, pid);  // also here: a cancel may come before the child ran
  return ExecChild{pid, in[1], out[0], err[0], -1};
}

}  // namespace

StatusOr<ExecChild> StartExec(const std::string& data_dir, const std::string& driver,
                              const std::string& id, const std::vector<std::string>& argv,
                              const std::optional<ExecTty>& tty) {
  if (!ValidId(id)) return absl::InvalidArgumentError("bad instance id '" + id + "'");
  if (argv.empty()) return absl::InvalidArgumentError("command: empty");
  StatusOr<Prepared> p = driver == "process" ? PrepareProcess(data_dir, id, argv)
                         : driver == "container"
                             ? PrepareContainer(data_dir, id, argv)
                             : absl::InvalidArgumentError("exec: no " + driver + " instances");
  if (!p.ok()) return p.status();
  // A container's command gets the terminal as runc's stdio (runc passes it through), not
  // through runc's --console-socket: one way for both drivers.
  auto child = tty ? SpawnOnTty(*p, *tty) : Spawn(*p);
  CloseAll(p->cgroup_fds);
  CloseAll(p->ns_fds);
  return child;
}

Status ResizeTty(int tty_fd, const ExecTty& size) {
  winsize ws{};
  ws.ws_row = size.rows;
  ws.ws_col = size.cols;
  if (::ioctl(tty_fd, TIOCSWINSZ, &ws) != 0) {
    return absl::InternalError(std::string("TIOCSWINSZ: ") + strerror(errno));
  }
  return absl::OkStatus();
}

int WaitExec(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return 255;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

StatusOr<std::string> ConsoleSocket(const std::string& data_dir, const std::string& id) {
  if (!ValidId(id)) return absl::InvalidArgumentError("bad instance id '" + id + "'");
  const std::string state_path = data_dir + "/providers/vm/instances/" + id + "/state.json";
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(state_path));
  json state = json::parse(text, nullptr, false);
  if (!state.is_object()) return absl::DataLossError(state_path + ": not JSON");
  if (state.value("stopped", false) || state.value("pid", 0) <= 0) {
    return absl::FailedPreconditionError("the VM is not running");
  }
  std::string socket = state.value("serial_socket", "");
  if (socket.empty()) {
    return absl::FailedPreconditionError(
        "this VM's QEMU was started before consoles were sockets (its serial goes only to its "
        "log): restart the VM to attach to its console");
  }
  return socket;
}

StatusOr<std::string> LogPath(const std::string& data_dir, const std::string& driver,
                              const std::string& id) {
  if (!ValidId(id)) return absl::InvalidArgumentError("bad instance id '" + id + "'");
  const std::string p = data_dir + "/providers/" + driver;
  if (driver == "process") return p + "/instances/" + id + "/output.log";
  if (driver == "container") return p + "/bundles/" + id + "/output.log";
  if (driver == "vm") return p + "/instances/" + id + "/console.log";
  return absl::InvalidArgumentError("logs: no " + driver + " instances");
}

}  // namespace photon::agent
