#include "agent/net/netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace photon::agent::net {
namespace {

constexpr char kNetnsDir[] = "/run/netns";

// Runs fn on a fresh thread (namespace changes are per thread and die with it).
void OnThread(const std::function<void()>& fn) {
  std::thread t(fn);
  t.join();
}

std::string Errno(const std::string& what, int err) { return what + ": " + strerror(err); }

}  // namespace

Status PrepareNetnsDir() {
  if (::mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(Errno(std::string("mkdir ") + kNetnsDir, errno));
  }
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return absl::OkStatus();
  if (errno != EINVAL) return absl::InternalError(Errno("make /run/netns shared", errno));
  // Not a mount point yet: bind it onto itself first, as iproute2 does.
  if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0 ||
      ::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return absl::InternalError(Errno("make /run/netns shared", errno));
  }
  return absl::OkStatus();
}

Status CreateNetns(const std::string& name) {
  std::string path = std::string(kNetnsDir) + "/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError("network namespace " + name + " exists");
    return absl::InternalError(Errno("create " + path, errno));
  }
  ::close(fd);
  int err = 0;
  OnThread([&] {
    if (::unshare(CLONE_NEWNET) != 0 ||
        ::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
    }
  });
  if (err != 0) {
    ::unlink(path.c_str());
    return absl::InternalError(Errno("network namespace " + name, err));
  }
  return absl::OkStatus();
}

namespace {

// The pids whose network namespace is the nsfs inode `ns` (what `ip netns pids` prints).
std::vector<pid_t> PidsIn(const struct stat& ns) {
  std::vector<pid_t> pids;
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (proc == nullptr) return pids;
  while (dirent* e = ::readdir(proc.get())) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    struct stat st {};
    std::string path = std::string("/proc/") + e->d_name + "/ns/net";
    if (::stat(path.c_str(), &st) == 0 && st.st_dev == ns.st_dev && st.st_ino == ns.st_ino) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  return pids;
}

}  // namespace

Status DeleteNetns(const std::string& name) {
  std::string path = std::string(kNetnsDir) + "/" + name;
  struct stat ns {};
  if (::stat(path.c_str(), &ns) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(Errno("stat " + path, errno));
  }
  for (pid_t pid : PidsIn(ns)) ::kill(pid, SIGKILL);
  // MNT_DETACH: a bind mount still propagated elsewhere (another mount namespace) goes too.
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return absl::InternalError(Errno("unmount " + path, errno));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(Errno("remove " + path, errno));
  }
  return absl::OkStatus();
}

Status NftRunIn(const std::string& netns, const std::string& script, const std::string& fallback,
                bool* fell_back) {
  // A thread of its own: it enters the namespace (setns is per thread) and frees the context
  // after the caller has its answer. Freeing closes the context's netlink socket, and the
  // kernel's nf_tables release notifier then waits for the destruction work of earlier
  // commits, an RCU grace period (~10 ms here, measured with strace): paid off the caller's
  // path and outside the lock, it no longer serialises every transaction of the node.
  auto result = std::make_shared<std::promise<Status>>();
  auto used_fallback = std::make_shared<bool>(false);
  std::future<Status> answer = result->get_future();
  std::thread([netns, script, fallback, result, used_fallback] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
        result->set_value(absl::NotFoundError(Errno("network namespace " + netns, errno)));
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
    }
    // libnftables keeps process-wide state (its bignum allocator, the parser's tables): one
    // transaction at a time. The context opens its netlink socket here, in the namespace just
    // entered.
    static std::mutex mu;
    nft_ctx* ctx = nullptr;
    Status status;
    {
      std::lock_guard<std::mutex> lock(mu);
      ctx = nft_ctx_new(NFT_CTX_DEFAULT);
      if (ctx == nullptr) {
        status = absl::InternalError("libnftables: no context");
      } else {
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
        int rc = nft_run_cmd_from_buffer(ctx, script.c_str());
        if (rc != 0 && !fallback.empty()) {
          *used_fallback = true;
          rc = nft_run_cmd_from_buffer(ctx, fallback.c_str());
        }
        if (rc != 0) {
          status = absl::InternalError(std::string("nft: ") + nft_ctx_get_error_buffer(ctx));
        }
      }
    }
    result->set_value(std::move(status));
    // Outside the lock: freeing touches the context's own state, and the interface cache,
    // which only `iif`/`oif` matches fill (our rulesets name interfaces, never indexes).
    if (ctx != nullptr) nft_ctx_free(ctx);
  }).detach();
  Status status = answer.get();  // the promise is set after *used_fallback
  if (fell_back != nullptr) *fell_back = *used_fallback;
  return status;
}

StatusOr<int> NetlinkSocketIn(const std::string& netns, int protocol, const std::string& what) {
  int fd = -1, err = 0;
  // setns applies to the calling thread only: a short-lived thread makes the socket, which
  // stays in the namespace it was made in.
  std::thread t([&] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
        err = errno;
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
    }
    fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) err = errno;
  });
  t.join();
  if (fd < 0) {
    return absl::InternalError(what + " socket in " + (netns.empty() ? "this netns" : netns) +
                               ": " + strerror(err));
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

}  // namespace photon::agent::net
