#include "agent/checks/provider_checks.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/file_util.h"
#include "common/util.h"

namespace photon::agent::checks {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A unix socket connected to `path` (non-blocking), or -1 with *error set.
int ConnectUnix(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    *error = "socket path too long";
    return -1;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  // A unix connect completes at once (or fails with EAGAIN when the backlog is full).
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

// Reads from fd until `done(buffer)` or the deadline; false on timeout, EOF or error.
bool ReadUntil(int fd, Clock::time_point deadline, std::string* buffer,
               const std::function<bool(const std::string&)>& done, std::string* error) {
  while (!done(*buffer)) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      *error = "no answer";
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) {
      *error = std::strerror(errno);
      return false;
    }
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      *error = got == 0 ? "closed the connection" : std::strerror(errno);
      return false;
    }
    if (buffer->size() < 1 << 20) buffer->append(buf, static_cast<size_t>(got));
  }
  return true;
}

// The process `pid` runs and its command line mentions `needle` (not a reused pid).
bool RunsWith(int pid, const std::string& needle) {
  if (pid <= 0) return false;
  auto cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.ok() && cmdline->find(needle) != std::string::npos;
}

// The final line of a BIRD control-socket reply: four digits and a space ("0000 ", "8003 ").
bool BirdReplyDone(const std::string& buffer) {
  size_t start = 0;
  while (start < buffer.size()) {
    size_t end = buffer.find('\n', start);
    if (end == std::string::npos) return false;
    if (end - start >= 5 && std::isdigit(static_cast<unsigned char>(buffer[start])) &&
        buffer[start + 4] == ' ') {
      return true;
    }
    start = end + 1;
  }
  return false;
}

std::string Squeeze(const std::string& s) {
  std::istringstream in(s);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

}  // namespace

ProviderChecks::ProviderChecks(ProviderCheckOptions options, ProbeReporter report,
                               InstanceLister instances)
    : options_(std::move(options)), report_(std::move(report)), instances_(std::move(instances)) {}

ProviderChecks::~ProviderChecks() { Stop(); }

void ProviderChecks::Start() {
  thread_ = std::thread([this] {
    SetThreadName("provider-checks");
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      RunOnce();
      lock.lock();
      cv_.wait_for(lock, options_.interval, [&] { return stop_; });
    }
  });
}

void ProviderChecks::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProviderChecks::RunOnce() {
  std::map<std::string, ProbeResult> results;
  if (!options_.vm_instances_dir.empty()) results.merge(ProbeVms());
  if (instances_) results.merge(ProbeContainers());
  if (!options_.bird_socket.empty()) results.merge(ProbeBird());
  Apply(results);
}

void ProviderChecks::Apply(const std::map<std::string, ProbeResult>& results) {
  for (const auto& [key, r] : results) {
    KeyState& s = states_[key];
    s.streak = r.severity == s.last ? s.streak + 1 : 1;
    s.last = r.severity;
    if (s.streak >= options_.occurrences && r.severity != s.reported) {
      report_(r.check, key, r.severity, r.output, r.labels);
      s.reported = r.severity;
    }
  }
  // Gone (instance deleted, protocol removed): a failing key is told it is over.
  for (auto it = states_.begin(); it != states_.end();) {
    if (results.count(it->first)) {
      ++it;
      continue;
    }
    if (it->second.reported != 0) {
      const ProbeResult& was = last_results_[it->first];
      report_(was.check, it->first, 0, "no longer on this node", was.labels);
    }
    last_results_.erase(it->first);
    it = states_.erase(it);
  }
  for (const auto& [key, r] : results) last_results_[key] = r;
}

std::map<std::string, ProbeResult> ProviderChecks::ProbeVms() const {
  std::map<std::string, ProbeResult> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.vm_instances_dir, ec)) {
    auto text = ReadFile(entry.path().string() + "/state.json");
    if (!text.ok()) continue;  // not a VM's directory (yet)
    json st = json::parse(*text, nullptr, false);
    if (!st.is_object()) continue;
    const std::string sock = st.value("qmp_socket", "");
    const int pid = st.value("pid", 0);
    // Stopped on purpose, being launched, or exited (the driver reports that one itself).
    if (st.value("stopped", false) || st.value("launching", false) || sock.empty() ||
        !RunsWith(pid, sock)) {
      continue;
    }
    const std::string instance = st.value("namespace", "") + "/" + st.value("name", "");
    ProbeResult r{.check = "vm-qmp", .labels = {{"instance", instance}}};
    std::string error;
    int fd = ConnectUnix(sock, &error);
    std::string greeting;
    const auto deadline = Clock::now() + options_.qmp_timeout;
    if (fd >= 0) {
      // QEMU greets every client it accepts; a stopped or hung one never does.
      ReadUntil(
          fd, deadline, &greeting,
          [](const std::string& b) { return b.find('\n') != std::string::npos; }, &error);
      close(fd);
    }
    if (greeting.find("\"QMP\"") != std::string::npos) {
      r.output = "QEMU (pid " + std::to_string(pid) + ") of " + instance + " answers on QMP";
    } else {
      r.severity = 2;
      r.output = "QEMU (pid " + std::to_string(pid) + ") of " + instance +
                 " did not greet on its QMP socket within " +
                 std::to_string(options_.qmp_timeout.count()) +
                 " ms: " + (error.empty() ? "not a QMP greeting" : error);
    }
    out["vm-qmp/" + instance] = std::move(r);
  }
  return out;
}

std::map<std::string, ProbeResult> ProviderChecks::ProbeContainers() const {
  std::map<std::string, ProbeResult> out;
  for (const json& inst : instances_()) {
    if (!inst.contains("spec") || !inst["spec"].contains("container")) continue;
    const auto& md = inst.value("metadata", json::object());
    const std::string instance = md.value("namespace", "") + "/" + md.value("name", "");
    const json status = inst.value("status", json::object());
    const std::string message = status.value("message", "");
    ProbeResult r{.check = "container-runc", .labels = {{"instance", instance}}};
    // The driver's start failures name runc ("runc run failed (exit 1): …"); a container that
    // ran and exited with an error is the crash-loop check's business.
    if (status.value("phase", "") == "ERROR" && message.find("runc") != std::string::npos) {
      r.severity = 2;
      r.output = "container " + instance + " failed to start: " + message.substr(0, 900);
    } else {
      r.output = "container " + instance + ": no runc failure";
    }
    out["container-runc/" + instance] = std::move(r);
  }
  return out;
}

std::map<std::string, ProbeResult> ProviderChecks::ProbeBird() const {
  std::map<std::string, ProbeResult> out;
  std::string error, reply;
  int fd = ConnectUnix(options_.bird_socket, &error);
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  bool ok = fd >= 0 && ReadUntil(fd, deadline, &reply, BirdReplyDone, &error);  // "0001 … ready."
  if (ok) {
    static const char kCmd[] = "show protocols\n";
    reply.clear();
    ok = write(fd, kCmd, sizeof kCmd - 1) == static_cast<ssize_t>(sizeof kCmd - 1) &&
         ReadUntil(fd, deadline, &reply, BirdReplyDone, &error);
  }
  if (fd >= 0) close(fd);
  if (!ok) {
    out["bird-session/daemon"] = {
        .check = "bird-session",
        .severity = 2,
        .output = "BIRD control socket " + options_.bird_socket + ": " + error,
        .labels = {}};
    return out;
  }
  out["bird-session/daemon"] = {.check = "bird-session",
                                .output = "BIRD answers on " + options_.bird_socket};
  // The first protocol line is "1002-NAME PROTO TABLE STATE SINCE INFO"; the next ones of the
  // same reply code start with a space instead of the code.
  std::istringstream in(reply);
  std::string line, code;
  while (std::getline(in, line)) {
    if (line.size() >= 5 && std::isdigit(static_cast<unsigned char>(line[0]))) {
      code = line.substr(0, 4);
      line = line.substr(5);
    } else if (!line.empty() && line[0] == ' ') {
      line = line.substr(1);
    } else {
      continue;
    }
    if (code != "1002") continue;
    std::istringstream f(line);
    std::string name, proto, table, state;
    f >> name >> proto >> table >> state;
    if (proto != "BGP") continue;
    std::string rest;
    std::getline(f, rest);
    ProbeResult r{.check = "bird-session", .labels = {{"protocol", name}}};
    r.output = "BGP " + name + ": " + state + " " + Squeeze(rest);
    if (rest.find("Established") != std::string::npos) {
      r.severity = 0;
    } else if (rest.find("Disabled") != std::string::npos) {
      r.severity = 1;  // an operator's `birdc disable`: worth a look, not a page
    } else {
      r.severity = 2;
    }
    out["bird-session/" + name] = std::move(r);
  }
  return out;
}

}  // namespace photon::agent::checks
