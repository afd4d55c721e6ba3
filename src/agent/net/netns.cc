#include "agent/net/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <thread>

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

Status NftRunIn(const std::string& netns, const std::string& script) {
  // libnftables keeps process-wide state (its bignum allocator, the parser's tables):
  // one transaction at a time.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  Status status;
  OnThread([&] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
        status = absl::NotFoundError(Errno("network namespace " + netns, errno));
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
    }
    // The context opens its netlink socket here, in the namespace just entered.
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (ctx == nullptr) {
      status = absl::InternalError("libnftables: no context");
      return;
    }
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (nft_run_cmd_from_buffer(ctx, script.c_str()) != 0) {
      status = absl::InternalError(std::string("nft: ") + nft_ctx_get_error_buffer(ctx));
    }
    nft_ctx_free(ctx);
  });
  return status;
}

}  // namespace photon::agent::net
