// HAProxy process supervision and runtime API; see haproxy.h.
#include "fiberlb/haproxy.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "common/file_util.h"
#include "common/util.h"

namespace photon::fiberlb {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Runs argv (no shell) and returns its exit status and combined output.
StatusOr<std::pair<int, std::string>> RunCapture(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf, n);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : 128, out);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool ProcessIsOurHaproxy(pid_t pid, const std::string& config_path) {
  auto cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline.ok()) return false;
  return cmdline->find("haproxy") != std::string::npos &&
         cmdline->find(config_path) != std::string::npos;
}

}  // namespace

StatusOr<std::string> UnixSocketCommand(const std::string& socket_path, const std::string& line) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    close(fd);
    return absl::InvalidArgumentError("socket path too long: " + socket_path);
  }
  memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(socket_path + ": " + strerror(e));
  }
  std::string data = line + "\n";
  // MSG_NOSIGNAL: an HAProxy that closed its socket (reload, exit) is an error, not a SIGPIPE.
  if (send(fd, data.data(), data.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(data.size())) {
    close(fd);
    return absl::UnavailableError(socket_path + ": short write");
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(fd);
  return out;
}

Haproxy::Haproxy(HaproxyOptions options) : options_(std::move(options)) {
  supervisor_ = std::thread([this] { Supervise(); });
}

Haproxy::~Haproxy() { Stop(); }

Status Haproxy::Check(const std::string& config_path) {
  PHOTON_ASSIGN_OR_RETURN(auto result,
                          RunCapture({options_.binary, "-c", "-q", "-f", config_path}));
  if (result.first == 127) {
    return absl::FailedPreconditionError("cannot run " + options_.binary +
                                         " (haproxy: scripts/install-deps.sh)");
  }
  if (result.first != 0) {
    return absl::InternalError("haproxy refused the configuration: " + result.second);
  }
  return absl::OkStatus();
}

void Haproxy::KillStale() {
  auto pidfile = ReadFile(options_.run_dir + "/haproxy.pid");
  if (!pidfile.ok()) return;
  pid_t pid = atoi(pidfile->c_str());
  if (pid <= 1 || !ProcessIsOurHaproxy(pid, ConfigPath())) return;
  spdlog::warn("stopping haproxy {} left over from an earlier fiberlb", pid);
  kill(pid, SIGTERM);
  auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (kill(pid, 0) == 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (kill(pid, 0) == 0) kill(pid, SIGKILL);
}

pid_t Haproxy::Spawn() {
  std::string master_socket = options_.run_dir + "/master.sock,mode,600";
  std::vector<std::string> args = {options_.binary,
                                   "-W",
                                   "-S",
                                   master_socket,
                                   "-f",
                                   ConfigPath(),
                                   "-p",
                                   options_.run_dir + "/haproxy.pid"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string log = options_.access_log_path.empty() ? "/dev/null" : options_.access_log_path;
  int log_fd = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    spdlog::error("cannot open {}: {}", log, strerror(errno));
    if (log_fd >= 0) close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Own process group: a terminal's ^C reaches fiberlb, which stops HAProxy in order.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // fiberlb died before the line above
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // fiberlb blocks signals for sigwait
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  return pid;
}

void Haproxy::Supervise() {
  SetThreadName("haproxy-sup");
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return start_requested_ || stopping_; });
  while (!stopping_) {
    lock.unlock();
    KillStale();
    // The state file carries state across a reload only; a fresh master starts from the
    // configuration, which fiberlb keeps current (weights set at run time included).
    unlink((options_.run_dir + "/server-state").c_str());
    pid_t pid = Spawn();
    lock.lock();
    if (pid < 0) {
      spawn_errno_ = errno;
    } else {
      master_ = pid;
      spdlog::info("haproxy master {} started", pid);
    }
    cv_.notify_all();
    if (pid > 0) {
      lock.unlock();
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      lock.lock();
      master_ = 0;
      if (!stopping_)
        spdlog::error("haproxy master {} exited (status {}); restarting", pid, status);
    }
    // Back off a little so a configuration HAProxy cannot start does not spin.
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

Status Haproxy::Start() {
  {
    std::unique_lock lock(mu_);
    start_requested_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return master_ > 0 || spawn_errno_ != 0; });
    if (master_ <= 0) return absl::InternalError("haproxy did not start");
  }
  return WaitForWorker({});
}

void Haproxy::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (master_ > 0) kill(master_, SIGTERM);
    cv_.notify_all();
  }
  if (supervisor_.joinable()) supervisor_.join();
}

pid_t Haproxy::master_pid() const {
  std::lock_guard lock(mu_);
  return master_;
}

StatusOr<std::string> Haproxy::MasterCommand(const std::string& command) {
  // The master CLI keeps a connection open after answering; "quit" closes it.
  return UnixSocketCommand(options_.run_dir + "/master.sock", command + ";quit");
}

StatusOr<std::vector<pid_t>> Haproxy::NewWorkers() {
  PHOTON_ASSIGN_OR_RETURN(std::string out, MasterCommand("show proc"));
  std::vector<pid_t> workers;
  std::string section;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# ", 0) == 0) {
      section = line;
      continue;
    }
    std::istringstream fields(line);
    std::string pid, type;
    fields >> pid >> type;
    if (type == "worker" && section == "# workers") workers.push_back(atoi(pid.c_str()));
  }
  return workers;
}

Status Haproxy::WaitForWorker(const std::vector<pid_t>& not_these) {
  auto deadline = steady_clock::now() + std::chrono::seconds(15);
  std::string last_error = "no worker yet";
  while (steady_clock::now() < deadline) {
    auto workers = NewWorkers();
    if (workers.ok()) {
      for (pid_t w : *workers) {
        if (std::find(not_these.begin(), not_these.end(), w) != not_these.end()) continue;
        auto info = Command("show info");
        if (info.ok()) return absl::OkStatus();
        last_error = std::string(info.status().message());
      }
    } else {
      last_error = std::string(workers.status().message());
    }
    if (master_pid() <= 0) last_error = "haproxy master not running";
    std::this_thread::sleep_for(milliseconds(20));
  }
  return absl::UnavailableError("haproxy worker did not come up: " + last_error);
}

Status Haproxy::Reload(const std::string& config_path) {
  std::lock_guard reload_lock(reload_mu_);
  PHOTON_RETURN_IF_ERROR(Check(config_path));
  PHOTON_ASSIGN_OR_RETURN(std::vector<pid_t> before, NewWorkers());
  // The state file carries health, drain and weights over to the new worker.
  PHOTON_ASSIGN_OR_RETURN(std::string state, Command("show servers state"));
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(options_.run_dir + "/server-state", state, 0600));
  if (rename(config_path.c_str(), ConfigPath().c_str()) != 0) {
    return absl::InternalError("rename " + config_path + ": " + strerror(errno));
  }
  // SIGUSR2 is the master's reload signal: it re-executes itself with the new configuration.
  pid_t master = master_pid();
  if (master <= 0 || kill(master, SIGUSR2) != 0)
    return absl::UnavailableError("haproxy not running");
  return WaitForWorker(before);
}

StatusOr<std::string> Haproxy::Command(const std::string& command) {
  return UnixSocketCommand(options_.run_dir + "/admin.sock", command);
}

StatusOr<std::vector<StatRow>> Haproxy::ShowStat() {
  PHOTON_ASSIGN_OR_RETURN(std::string out, Command("show stat"));
  std::istringstream in(out);
  std::vector<std::string> columns;
  std::vector<StatRow> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# ", 0) == 0) {
      columns = Split(line.substr(2), ',');
      continue;
    }
    if (line.empty() || columns.empty()) continue;
    auto values = Split(line, ',');
    StatRow row;
    for (size_t i = 0; i < columns.size() && i < values.size(); ++i) row[columns[i]] = values[i];
    rows.push_back(std::move(row));
  }
  if (columns.empty()) return absl::InternalError("show stat: no header in '" + out + "'");
  return rows;
}

}  // namespace photon::fiberlb
