// The image service (docs/images.md): `photon image upload` streams a file through the API into
// lightningstor, and nodes fetch it back by range; the server hashes what it received and
// records the SHA-256 and size on the Image.
//
// Routes (namespaced like the Image; NS/NAME below):
//   POST   /v1/namespaces/NS/images/NAME/upload?format=F&size=N[&sha256=HEX]
//          opens an upload (editor of NS): {"uploadId", "chunkBytes"}
//   PUT    .../upload/ID?offset=K   the next chunk (at most chunkBytes; K = bytes so far)
//   POST   .../upload/ID/complete[?sha256=HEX]   checks size and digest (the one given at the
//          start and the one given here, which the CLI computes as it sends), writes the Image: its
//          spec (format, sha256, no sourcePath) and status.details (sha256, sizeBytes)
//   DELETE .../upload/ID            abandons it
//   GET    .../content?offset=K&length=L   bytes of the uploaded content (readers of NS, the
//          nodes' agents, and everyone authenticated for a public image)
//   POST   .../share?public=true|false   admins only: a public image can be used from every
//          namespace (spec.vm.kernel: "NS/NAME") and changed by admins only
//
// Why chunks rather than one long PUT: every request body stays within the REST listener's
// max_body_bytes (the one bounded HTTP server), a client that loses its connection resumes at
// the offset the server reports, and the server never holds more than two S3 parts (8 MiB each)
// of an upload: one being written to the store while the next fills. The chunks go through the
// server as the S3 parts of one multipart upload.
//
// An upload lives in the memory of the server that opened it: with several servers the CLI
// keeps talking to that one (common/http_client.h); after a failover it starts again.
//
// Thread-safety: thread-safe; handlers run on the REST threads (a chunk that fills a part
// holds its thread while the part before it is still being written).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http_server.h"
#include "photon/compute.pb.h"
#include "server/auth.h"
#include "server/images/blob_store.h"
#include "server/providers/service_provider.h"
#include "server/resource_manager.h"

namespace photon::server::images {

// The formats an uploaded image may have (what the vm and container drivers boot).
bool KnownFormat(const std::string& format);

struct ImageServiceOptions {
  int64_t max_image_bytes = int64_t{64} << 30;
  size_t chunk_bytes = 1 << 20;  // at most the REST listener's max_body_bytes
  size_t part_bytes = 8 << 20;   // S3 part size (lightningstor wants >= 5 MiB but the last)
  size_t max_open_uploads = 8;   // each holds up to part_bytes in memory
  std::chrono::seconds idle_timeout{600};  // an upload nobody writes to is abandoned
};

class ImageService {
 public:
  // `providers`: the server's provider entries; the first `lightningstor` one names the store
  // (endpoint, region, credentials_file). Without one every route answers FAILED_PRECONDITION.
  static StatusOr<std::unique_ptr<ImageService>> Create(
      ResourceManager* resources, const std::vector<ProviderConfig>& providers,
      ImageServiceOptions options);
  ~ImageService();

  static bool Owns(const std::string& path);
  HttpResponse Handle(HttpRequest& req, const Principal& who);

 private:
  struct Upload;
  ImageService(ResourceManager* resources, std::unique_ptr<BlobStore> store,
               ImageServiceOptions options);
  StatusOr<std::string> Begin(const HttpRequest& req, const Principal& who, const std::string& ns,
                              const std::string& name);
  StatusOr<int64_t> Chunk(const HttpRequest& req, const Principal& who, std::shared_ptr<Upload> up);
  Status SendPart(Upload* up, bool last);
  Status WaitPart(Upload* up);
  StatusOr<std::string> Complete(const HttpRequest& req, const Principal& who,
                                 std::shared_ptr<Upload> up);
  HttpResponse Content(const HttpRequest& req, const Principal& who, const std::string& ns,
                       const std::string& name);
  StatusOr<std::string> Share(const HttpRequest& req, const Principal& who, const std::string& ns,
                              const std::string& name);
  StatusOr<std::shared_ptr<Upload>> Find(const Principal& who, const std::string& ns,
                                         const std::string& name, const std::string& id);
  void Forget(const std::string& id, bool abort_in_store);
  void ExpireIdle();
  // The image as stored, read as the system (no caller's rights involved).
  StatusOr<compute::Image> ReadImage(const std::string& ns, const std::string& name);
  // Writes the Image for a finished upload: spec as the caller, status as the system.
  Status Record(const Principal& who, const Upload& up, const std::string& digest);
  // A deleted Image's content is deleted from the store by a thread of its own (watch events
  // must be handled quickly). Deletes while no server ran are not seen (docs/images.md).
  Status WatchDeletes();
  void RunJanitor();

  ResourceManager* resources_;
  std::unique_ptr<BlobStore> store_;
  ImageServiceOptions o_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Upload>> uploads_;
  uint64_t watch_id_ = 0;
  std::mutex janitor_mu_;
  std::condition_variable janitor_cv_;
  std::deque<std::string> doomed_;  // objects of deleted Images
  bool stopping_ = false;
  std::thread janitor_;
};

}  // namespace photon::server::images
