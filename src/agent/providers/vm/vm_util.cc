// Implementation of the vm driver's host helpers; see vm_util.h.
#include "agent/providers/vm/vm_util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "common/hex.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

StatusOr<std::string> Sha256File(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError("cannot open " + path + ": " + strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InternalError("read " + path + ": " + strerror(err));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::string stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  // The state follows the parenthesised command name, which may itself contain ')'.
  size_t close_paren = stat.rfind(')');
  if (close_paren != std::string::npos && close_paren + 2 < stat.size()) {
    char state = stat[close_paren + 2];
    if (state == 'Z' || state == 'X') {
      waitpid(pid, nullptr, WNOHANG);  // ours when the agent is a subreaper
      return false;
    }
  }
  return true;
}

bool CmdlineContains(int pid, const std::string& needle) {
  if (pid <= 0) return false;
  std::string cmdline = ReadSmallFile("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : cmdline) {
    if (c == '\0') c = '\n';
  }
  return cmdline.find(needle) != std::string::npos;
}

std::vector<int> PidsWithCmdline(const std::string& needle) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    int pid = std::atoi(name.c_str());
    if (pid != getpid() && CmdlineContains(pid, needle) && ProcessAlive(pid)) pids.push_back(pid);
  }
  return pids;
}

StatusOr<int> TakeLock(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError("open " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return absl::UnavailableError(path + " is held by another process");
    return absl::InternalError("flock " + path + ": " + std::strerror(err));
  }
  return fd;
}

bool LockHeld(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // releases the probe's own lock when it got one
  return held;
}

Status KillInstanceProcesses(const std::string& dir) {
  const std::string lock = dir + "/qemu.lock";
  int64_t deadline = MonotonicNanos() + 10'000'000'000LL;
  while (LockHeld(lock)) {
    if (MonotonicNanos() >= deadline) {
      return absl::InternalError("processes of " + dir + " still hold its qemu.lock after 10 s");
    }
    for (int pid : PidsWithCmdline(dir + "/qemu.pid")) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::OkStatus();
}

int64_t ProcessRssBytes(int pid) {
  std::string status = ReadSmallFile("/proc/" + std::to_string(pid) + "/status");
  size_t pos = status.find("VmRSS:");
  if (pos == std::string::npos) return 0;
  return std::strtoll(status.c_str() + pos + 6, nullptr, 10) * 1024;
}

std::string TailFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = size > static_cast<std::streamoff>(max_bytes)
                             ? size - static_cast<std::streamoff>(max_bytes)
                             : 0;
  in.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (start > 0) {
    size_t nl = data.find('\n');
    if (nl != std::string::npos) data.erase(0, nl + 1);
  }
  return data;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_size;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace photon::agent::vm
