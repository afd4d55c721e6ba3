// The node's cache of uploaded images (docs/images.md): content fetched by digest from the
// control plane (GET /v1/namespaces/NS/images/NAME/content, in ranges, with the agent's own
// credential; the agent never holds lightningstor keys) into DIR/images/sha256/<digest>.
//
//  - Content addressed: two Images with the same bytes share one file; a file is 0444 in a
//    0700 directory and only ever appears by rename once its whole content hashed right.
//  - Verified before every use: the file is hashed again each time a driver asks for it, so a
//    copy damaged on disk is detected, removed and fetched again (never booted).
//  - The digest trusted is the one the server computed on upload (status.details.sha256);
//    an Image whose spec.sha256 says otherwise is refused.
//  - Held by hard links: a driver gets a link in its instance's own directory (HOLDER/image-
//    <digest>), which goes with the instance, so a file whose only name is the cache's is used
//    by no instance on the node.
//  - Garbage-collected: a file no instance holds and unused for `ttl` is removed by a sweep
//    every min(ttl, 60 s); beyond `max_bytes` the least recently used unheld ones go first.
//
// Options: the agent config's `drivers: images:` entry (cache_ttl_s, cache_max_bytes).
// Thread-safety: thread-safe; one fetch per digest at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "photon/compute.pb.h"

namespace photon::agent {

struct ImageCacheOptions {
  std::string dir;  // the cache's directory (DATA/images)
  std::chrono::seconds ttl{7 * 24 * 3600};
  int64_t max_bytes = 0;         // 0: no bound but the ttl
  int64_t read_bytes = 8 << 20;  // one ranged read from the server
  int parallel_reads = 4;        // ranged reads in flight at once
};

// Options from the `drivers: images:` map; unknown keys are refused.
Status ParseImageCacheOptions(const std::map<std::string, std::string>& config,
                              ImageCacheOptions* options);

class ImageCache {
 public:
  // Reads bytes from the control plane: `path` is an API path with its query.
  using Reader = std::function<StatusOr<std::string>(const std::string& path)>;
  ImageCache(ImageCacheOptions options, Reader reader);
  ~ImageCache();
  // Creates the directory (0700), drops partial downloads and starts the sweeper.
  Status Start();

  // The verified content of an uploaded image, fetched when missing or damaged, as a hard
  // link in `holder` (an instance's directory): the path to use.
  StatusOr<std::string> Fetch(const compute::Image& image, const std::string& holder);
  // Removes what the ttl and max_bytes say should go; how many files it removed.
  int CollectGarbage();

  struct Stats {
    int64_t fetches = 0;
    int64_t hits = 0;
    int64_t corrupted = 0;
    int64_t collected = 0;
  };
  Stats stats();

 private:
  StatusOr<std::string> Download(const compute::Image& image, const std::string& digest,
                                 int64_t size, const std::string& path);
  std::shared_ptr<std::mutex> DigestLock(const std::string& digest);

  ImageCacheOptions o_;
  Reader reader_;
  std::string blobs_;  // dir/sha256
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;
  Stats stats_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread sweeper_;
};

}  // namespace photon::agent
