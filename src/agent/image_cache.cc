// See image_cache.h.
#include "agent/image_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <vector>

#include "agent/host/qcow2.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/util.h"

namespace photon::agent {

namespace fs = std::filesystem;

namespace {

std::string Detail(const compute::Image& img, const std::string& key) {
  auto it = img.status().details().find(key);
  return it == img.status().details().end() ? "" : it->second;
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Incremental SHA-256.
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  void Update(const char* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return HexEncode(std::string(reinterpret_cast<char*>(md), len));
  }

 private:
  EVP_MD_CTX* ctx_;
};

StatusOr<std::string> HashFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError("open " + path + ": " + strerror(errno));
  Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return absl::InternalError("read " + path + ": " + strerror(errno));
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.HexDigest();
}

// Marks a use: the sweeper keeps what was used within the ttl.
void Touch(const std::string& path) { ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0); }

}  // namespace

Status ParseImageCacheOptions(const std::map<std::string, std::string>& config,
                              ImageCacheOptions* options) {
  for (const auto& [key, value] : config) {
    char* end = nullptr;
    long long v = std::strtoll(value.c_str(), &end, 10);
    const bool number = !value.empty() && *end == '\0' && v >= 0;
    if (key == "cache_ttl_s" && number && v > 0) {
      options->ttl = std::chrono::seconds(v);
    } else if (key == "cache_max_bytes" && number) {
      options->max_bytes = v;
    } else if (key == "cache_ttl_s" || key == "cache_max_bytes") {
      return absl::InvalidArgumentError("drivers.images." + key +
                                        ": want a positive integer, not '" + value + "'");
    } else {
      return absl::InvalidArgumentError("drivers.images: unknown key '" + key +
                                        "' (known: cache_ttl_s, cache_max_bytes)");
    }
  }
  return absl::OkStatus();
}

ImageCache::ImageCache(ImageCacheOptions options, Reader reader)
    : o_(std::move(options)), reader_(std::move(reader)), blobs_(o_.dir + "/sha256") {}

ImageCache::~ImageCache() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

Status ImageCache::Start() {
  PHOTON_RETURN_IF_ERROR(MakeDirs(o_.dir, 0700));
  PHOTON_RETURN_IF_ERROR(MakeDirs(blobs_, 0700));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(blobs_, ec)) {
    if (e.path().filename().string().rfind(".incoming-", 0) == 0) fs::remove(e.path(), ec);
  }
  const auto every = std::min<std::chrono::seconds>(o_.ttl, std::chrono::seconds(60));
  sweeper_ = std::thread([this, every] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, every, [this] { return stop_; })) {
      lock.unlock();
      CollectGarbage();
      lock.lock();
    }
  });
  return absl::OkStatus();
}

std::shared_ptr<std::mutex> ImageCache::DigestLock(const std::string& digest) {
  std::lock_guard lock(mu_);
  auto& m = locks_[digest];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

ImageCache::Stats ImageCache::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

// Links the cache file into the holder's directory (again when it is a different file).
StatusOr<std::string> Hold(const std::string& path, const std::string& holder,
                           const std::string& digest) {
  PHOTON_RETURN_IF_ERROR(MakeDirs(holder, 0700));
  const std::string link = holder + "/image-" + digest;
  struct stat a {
  }, b{};
  if (::stat(path.c_str(), &a) == 0 && ::stat(link.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
      a.st_dev == b.st_dev) {
    return link;
  }
  ::unlink(link.c_str());
  if (::link(path.c_str(), link.c_str()) != 0) {
    return absl::InternalError("link " + path + " to " + link + ": " + strerror(errno));
  }
  return link;
}

StatusOr<std::string> ImageCache::Fetch(const compute::Image& image, const std::string& holder) {
  const std::string ref = image.metadata().namespace_() + "/" + image.metadata().name();
  const std::string digest = Detail(image, "sha256");
  if (digest.empty()) {
    return absl::FailedPreconditionError("image " + ref +
                                         " has no uploaded content yet (photon image upload)");
  }
  if (!IsHex64(digest)) return absl::DataLossError("image " + ref + ": bad digest " + digest);
  if (!image.spec().sha256().empty() && image.spec().sha256() != digest) {
    return absl::FailedPreconditionError("image " + ref + ": spec.sha256 " + image.spec().sha256() +
                                         " is not the digest of its uploaded content " + digest);
  }
  const int64_t size = std::strtoll(Detail(image, "sizeBytes").c_str(), nullptr, 10);
  const std::string path = blobs_ + "/" + digest;
  auto lock = DigestLock(digest);
  std::lock_guard held(*lock);
  if (struct stat st{}; ::stat(path.c_str(), &st) == 0) {
    auto got = HashFile(path);
    if (got.ok() && *got == digest) {
      Touch(path);
      {
        std::lock_guard l(mu_);
        ++stats_.hits;
      }
      return Hold(path, holder, digest);
    }
    spdlog::warn("image cache: {} ({}) is damaged (sha256 {}); fetching it again", path, ref,
                 got.ok() ? *got : std::string(got.status().message()));
    ::unlink(path.c_str());
    std::lock_guard l(mu_);
    ++stats_.corrupted;
  }
  PHOTON_RETURN_IF_ERROR(Download(image, digest, size, path).status());
  return Hold(path, holder, digest);
}

StatusOr<std::string> ImageCache::Download(const compute::Image& image, const std::string& digest,
                                           int64_t size, const std::string& path) {
  const std::string ref = image.metadata().namespace_() + "/" + image.metadata().name();
  const std::string api = "/v1/namespaces/" + PercentEncode(image.metadata().namespace_()) +
                          "/images/" + PercentEncode(image.metadata().name()) + "/content";
  const std::string tmp = blobs_ + "/.incoming-" + digest + "-" + RandomHex(6);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("create " + tmp + ": " + strerror(errno));
  const auto t0 = std::chrono::steady_clock::now();
  Hasher h;
  Status st = absl::OkStatus();
  // A few ranges in flight (each its own request), written and hashed in order.
  std::deque<std::pair<int64_t, std::future<StatusOr<std::string>>>> inflight;
  int64_t next = 0;
  auto launch = [&] {
    const int64_t len = std::min(o_.read_bytes, size - next);
    const std::string path =
        api + "?offset=" + std::to_string(next) + "&length=" + std::to_string(len);
    inflight.emplace_back(len,
                          std::async(std::launch::async, [this, path] { return reader_(path); }));
    next += len;
  };
  while (st.ok() && (next < size || !inflight.empty())) {
    while (next < size && static_cast<int>(inflight.size()) < o_.parallel_reads) launch();
    const int64_t len = inflight.front().first;
    auto bytes = inflight.front().second.get();
    inflight.pop_front();
    if (!bytes.ok()) {
      st = absl::Status(bytes.status().code(),
                        "fetching image " + ref + ": " + std::string(bytes.status().message()));
    } else if (static_cast<int64_t>(bytes->size()) != len) {
      st = absl::DataLossError("fetching image " + ref + ": a short read");
    } else if (st = WriteAll(fd, *bytes, tmp); st.ok()) {
      h.Update(bytes->data(), bytes->size());
    }
  }
  inflight.clear();  // waits for reads still running after a failure
  if (st.ok() && ::fsync(fd) != 0)
    st = absl::InternalError("fsync " + tmp + ": " + strerror(errno));
  ::close(fd);
  if (st.ok()) {
    const std::string got = h.HexDigest();
    if (got != digest) {
      st = absl::DataLossError("fetching image " + ref + ": received bytes hash to " + got +
                               ", not " + digest);
    }
  }
  if (st.ok() && image.spec().format() == "qcow2") st = RefuseQcow2BackingFile(ref, tmp);
  if (st.ok() && (::chmod(tmp.c_str(), 0444) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0)) {
    st = absl::InternalError("storing " + path + ": " + strerror(errno));
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("image cache: fetched {} ({} bytes, sha256 {}) in {:.2f} s, {:.1f} MB/s", ref, size,
               digest, s, s > 0 ? size / s / 1e6 : 0.0);
  std::lock_guard l(mu_);
  ++stats_.fetches;
  return path;
}

int ImageCache::CollectGarbage() {
  struct Entry {
    std::string digest, path;
    int64_t size;
    std::time_t used;
  };
  std::vector<Entry> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(blobs_, ec)) {
    const std::string name = e.path().filename().string();
    struct stat st {};
    if (!IsHex64(name) || ::lstat(e.path().c_str(), &st) != 0) continue;
    if (st.st_nlink > 1) continue;  // an instance holds it
    entries.push_back({name, e.path().string(), st.st_size, st.st_mtime});
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used > b.used; });  // newest first
  const std::time_t now = std::time(nullptr);
  int64_t kept = 0;
  int removed = 0;
  for (const auto& e : entries) {
    const bool stale = now - e.used > static_cast<std::time_t>(o_.ttl.count());
    const bool over = o_.max_bytes > 0 && kept + e.size > o_.max_bytes;
    if (!stale && !over) {
      kept += e.size;
      continue;
    }
    auto lock = DigestLock(e.digest);
    std::unique_lock held(*lock, std::try_to_lock);  // being fetched or checked: in use
    if (!held.owns_lock()) {
      kept += e.size;
      continue;
    }
    if (::unlink(e.path.c_str()) == 0) {
      ++removed;
      spdlog::info("image cache: removed {} ({})", e.digest, stale ? "unused" : "over the bound");
    }
  }
  std::lock_guard l(mu_);
  stats_.collected += removed;
  return removed;
}

}  // namespace photon::agent
