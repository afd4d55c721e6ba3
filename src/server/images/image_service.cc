// See image_service.h.
#include "server/images/image_service.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <future>
#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "common/util.h"
#include "server/object_util.h"
#include "server/providers/lightningstor/s3_client.h"
#include "server/rest_gateway.h"

namespace photon::server::images {

using nlohmann::json;

namespace {

constexpr int kWriteAttempts = 8;
constexpr int64_t kMaxRead = 16 << 20;  // one content read

Principal SystemPrincipal() {
  Principal p;
  p.name = "system:images";
  auth::RoleBinding b;
  b.set_namespace_("*");
  b.set_role("admin");
  p.bindings.push_back(b);
  return p;
}

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

StatusOr<int64_t> IntParam(const HttpRequest& req, const std::string& name, bool required) {
  auto it = req.query.find(name);
  if (it == req.query.end()) {
    if (required) return absl::InvalidArgumentError(name + ": required");
    return int64_t{-1};
  }
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno != 0 || v < 0) {
    return absl::InvalidArgumentError(name + ": want a non-negative integer, not '" + it->second +
                                      "'");
  }
  return static_cast<int64_t>(v);
}

std::string Param(const HttpRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? "" : it->second;
}

std::string Detail(const compute::Image& img, const std::string& key) {
  auto it = img.status().details().find(key);
  return it == img.status().details().end() ? "" : it->second;
}

const KindInfo& ImagesKind() { return *FindKind("images"); }

}  // namespace

bool KnownFormat(const std::string& f) {
  return f == "qcow2" || f == "raw" || f == "kernel" || f == "initrd" || f == "rootfs-tar";
}

struct ImageService::Upload {
  std::string id, ns, name, format, owner, want_sha256, key, store_id;
  int64_t size = 0;
  std::mutex mu;  // the fields below; held while a full part waits for the one before it
  int64_t received = 0;
  std::string part;
  std::vector<std::string> etags;
  std::future<StatusOr<std::string>> pending;  // the part being written: its ETag
  EVP_MD_CTX* sha = nullptr;
  bool done = false;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  ~Upload() { EVP_MD_CTX_free(sha); }
};

StatusOr<std::unique_ptr<ImageService>> ImageService::Create(
    ResourceManager* resources, const std::vector<ProviderConfig>& providers,
    ImageServiceOptions options) {
  std::unique_ptr<BlobStore> store;
  for (const auto& p : providers) {
    if (p.driver != "lightningstor") continue;
    auto get = [&](const std::string& k, const std::string& def) {
      auto it = p.settings.find(k);
      return it == p.settings.end() ? def : it->second;
    };
    BlobStoreOptions bo;
    bo.endpoint = get("endpoint", "");
    bo.region = get("region", "us-east-1");
    PHOTON_ASSIGN_OR_RETURN(s3::Credentials creds,
                            s3::ReadCredentialsFile(get("credentials_file", "")));
    bo.access_key_id = creds.access_key_id;
    bo.secret_access_key = creds.secret_access_key;
    store = std::make_unique<BlobStore>(bo);
    break;
  }
  std::unique_ptr<ImageService> svc(
      new ImageService(resources, std::move(store), std::move(options)));
  if (svc->store_) PHOTON_RETURN_IF_ERROR(svc->WatchDeletes());
  return svc;
}

Status ImageService::WatchDeletes() {
  janitor_ = std::thread([this] { RunJanitor(); });
  WatchSink sink;
  sink.on_events = [this](const std::vector<CacheEvent>& events) {
    for (const auto& e : events) {
      if (e.type != CacheEvent::Type::kDeleted || !e.object) continue;
      auto msg = e.object->Decoded();
      const auto* img = dynamic_cast<const compute::Image*>(msg.get());
      const std::string key = img ? Detail(*img, "object") : "";
      if (key.empty()) continue;
      std::lock_guard lock(janitor_mu_);
      doomed_.push_back(key);
      janitor_cv_.notify_one();
    }
  };
  PHOTON_ASSIGN_OR_RETURN(watch_id_,
                          resources_->Watch(SystemPrincipal(), ImagesKind(), "", "", "", "", sink));
  return absl::OkStatus();
}

void ImageService::RunJanitor() {
  std::unique_lock lock(janitor_mu_);
  for (;;) {
    janitor_cv_.wait(lock, [this] { return stopping_ || !doomed_.empty(); });
    if (stopping_) return;
    const std::string key = doomed_.front();
    doomed_.pop_front();
    lock.unlock();
    Status st = store_->Delete(key);
    if (st.ok()) {
      spdlog::info("image content {} deleted with its Image", key);
    } else {
      spdlog::warn("image content {}: not deleted: {}", key, std::string(st.message()));
    }
    lock.lock();
  }
}

ImageService::ImageService(ResourceManager* resources, std::unique_ptr<BlobStore> store,
                           ImageServiceOptions options)
    : resources_(resources), store_(std::move(store)), o_(std::move(options)) {}

ImageService::~ImageService() {
  if (!store_) return;
  if (watch_id_ != 0) resources_->Unwatch(watch_id_);
  {
    std::lock_guard lock(janitor_mu_);
    stopping_ = true;
  }
  janitor_cv_.notify_all();
  if (janitor_.joinable()) janitor_.join();
  std::lock_guard lock(mu_);
  for (auto& [id, up] : uploads_) store_->AbortUpload(up->key, up->store_id);
}

bool ImageService::Owns(const std::string& path) {
  auto p = SplitPath(path);
  return p.size() >= 6 && p[0] == "v1" && p[1] == "namespaces" && p[3] == "images" &&
         (p[5] == "upload" || p[5] == "content" || p[5] == "share");
}

HttpResponse ImageService::Handle(HttpRequest& req, const Principal& who) {
  auto p = SplitPath(req.path);
  const std::string &ns = p[2], &name = p[4], &m = req.method;
  if (!store_) {
    return ErrorResponse(absl::FailedPreconditionError(
        "this photon-server has no image store: give it a `lightningstor` providers entry "
        "(docs/images.md)"));
  }
  for (auto [field, value] : {std::pair{"namespace", &ns}, std::pair{"name", &name}}) {
    if (Status st = ValidateName(field, *value); !st.ok()) return ErrorResponse(st);
  }
  const std::string target = "images/" + ns + "/" + name;
  if (p[5] == "upload" && p.size() == 6 && m == "POST") {
    auto id = Begin(req, who, ns, name);
    resources_->AuditCall(who, "upload", target,
                          id.ok() ? 201 : HttpStatusFromCode(id.status().code()));
    if (!id.ok()) return ErrorResponse(id.status());
    return HttpResponse::Json(
        201, json{{"uploadId", *id}, {"chunkBytes", o_.chunk_bytes}, {"offset", 0}}.dump());
  }
  if (p[5] == "upload" && (p.size() == 7 || p.size() == 8)) {
    auto up = Find(who, ns, name, p[6]);
    if (!up.ok()) return ErrorResponse(up.status());
    if (p.size() == 7 && m == "PUT") {
      auto got = Chunk(req, who, *up);
      if (!got.ok()) return ErrorResponse(got.status());
      return HttpResponse::Json(200, json{{"offset", *got}}.dump());
    }
    if (p.size() == 8 && p[7] == "complete" && m == "POST") {
      auto out = Complete(req, who, *up);
      if (!out.ok()) return ErrorResponse(out.status());
      return HttpResponse::Json(200, *out);
    }
    if (p.size() == 7 && m == "DELETE") {
      Forget(p[6], true);
      return HttpResponse::Json(200, "{}");
    }
  }
  if (p[5] == "content" && p.size() == 6 && m == "GET") return Content(req, who, ns, name);
  if (p[5] == "share" && p.size() == 6 && m == "POST") {
    auto out = Share(req, who, ns, name);
    resources_->AuditCall(who, "share", target,
                          out.ok() ? 200 : HttpStatusFromCode(out.status().code()));
    if (!out.ok()) return ErrorResponse(out.status());
    return HttpResponse::Json(200, *out);
  }
  return ErrorResponse(absl::NotFoundError("no route for " + m + " " + req.path));
}

StatusOr<compute::Image> ImageService::ReadImage(const std::string& ns, const std::string& name) {
  PHOTON_ASSIGN_OR_RETURN(ConstMessagePtr obj,
                          resources_->Get(SystemPrincipal(), ImagesKind(), ns, name));
  const auto* img = dynamic_cast<const compute::Image*>(obj.get());
  if (img == nullptr) return absl::InternalError("images: unexpected message type");
  return *img;
}

StatusOr<std::string> ImageService::Begin(const HttpRequest& req, const Principal& who,
                                          const std::string& ns, const std::string& name) {
  if (!who.Allowed(Verb::kCreate, "images", ns) || !who.Allowed(Verb::kUpdate, "images", ns)) {
    return absl::PermissionDeniedError("uploading images to namespace " + ns +
                                       " needs the editor role there");
  }
  const std::string format = Param(req, "format");
  if (!KnownFormat(format)) {
    return absl::InvalidArgumentError("format '" + format +
                                      "': want one of qcow2, raw, kernel, initrd, rootfs-tar");
  }
  PHOTON_ASSIGN_OR_RETURN(int64_t size, IntParam(req, "size", true));
  if (size == 0) return absl::InvalidArgumentError("size: an empty file is not an image");
  if (size > o_.max_image_bytes) {
    return absl::InvalidArgumentError("an image of " + std::to_string(size) +
                                      " bytes exceeds this server's image_max_bytes (" +
                                      std::to_string(o_.max_image_bytes) + ")");
  }
  const std::string want = Param(req, "sha256");
  if (!want.empty() && !IsHex64(want)) {
    return absl::InvalidArgumentError("sha256: want 64 lower-case hex digits");
  }
  if (auto cur = ReadImage(ns, name);
      cur.ok() && Detail(*cur, "public") == "true" && !who.IsAdmin()) {
    return absl::PermissionDeniedError("image " + ns + "/" + name +
                                       " is public: only cluster admins may replace it");
  }
  ExpireIdle();
  auto up = std::make_shared<Upload>();
  up->id = RandomHex(16);
  up->ns = ns;
  up->name = name;
  up->format = format;
  up->owner = who.name;
  up->want_sha256 = want;
  up->size = size;
  up->key = "blobs/" + ns + "/" + name + "/" + up->id;
  up->sha = EVP_MD_CTX_new();
  if (up->sha == nullptr || EVP_DigestInit_ex(up->sha, EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256: cannot initialise");
  }
  {
    std::lock_guard lock(mu_);
    if (uploads_.size() >= o_.max_open_uploads) {
      return absl::ResourceExhaustedError("this server has " + std::to_string(uploads_.size()) +
                                          " image uploads in progress; try again later");
    }
    uploads_[up->id] = up;  // holds the slot while the store is asked
  }
  Status st = store_->EnsureBucket();
  auto store_id = st.ok() ? store_->BeginUpload(up->key) : StatusOr<std::string>(st);
  if (!store_id.ok()) {
    Forget(up->id, false);
    return store_id.status();
  }
  up->store_id = *store_id;
  spdlog::info("image upload {}: {}/{} {} bytes ({}) by {}", up->id, ns, name, size, format,
               who.name);
  return up->id;
}

StatusOr<std::shared_ptr<ImageService::Upload>> ImageService::Find(const Principal& who,
                                                                   const std::string& ns,
                                                                   const std::string& name,
                                                                   const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = uploads_.find(id);
  // Someone else's upload is as unknown as a missing one.
  if (it == uploads_.end() || it->second->owner != who.name || it->second->ns != ns ||
      it->second->name != name || it->second->store_id.empty()) {
    return absl::NotFoundError("upload " + id + " of image " + ns + "/" + name +
                               " not found on this server (finished, abandoned or idle too "
                               "long: start again)");
  }
  return it->second;
}

void ImageService::Forget(const std::string& id, bool abort_in_store) {
  std::shared_ptr<Upload> up;
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) return;
    up = it->second;
    uploads_.erase(it);
  }
  if (abort_in_store && !up->store_id.empty()) store_->AbortUpload(up->key, up->store_id);
}

void ImageService::ExpireIdle() {
  std::vector<std::string> idle;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    for (auto& [id, up] : uploads_) {
      std::unique_lock ul(up->mu, std::try_to_lock);  // a busy upload is not idle
      if (ul.owns_lock() && now - up->last > o_.idle_timeout) idle.push_back(id);
    }
  }
  for (const auto& id : idle) {
    spdlog::warn("image upload {}: idle for {} s, abandoned", id, o_.idle_timeout.count());
    Forget(id, true);
  }
}

StatusOr<int64_t> ImageService::Chunk(const HttpRequest& req, const Principal& who,
                                      std::shared_ptr<Upload> up) {
  (void)who;
  PHOTON_ASSIGN_OR_RETURN(int64_t offset, IntParam(req, "offset", true));
  std::lock_guard lock(up->mu);
  if (up->done) return absl::FailedPreconditionError("upload " + up->id + " is finished");
  up->last = std::chrono::steady_clock::now();
  if (offset != up->received) {
    return absl::AbortedError("offset " + std::to_string(offset) + ": the server has " +
                              std::to_string(up->received) + " bytes of upload " + up->id +
                              "; send from there");
  }
  if (req.body.empty()) return absl::InvalidArgumentError("an empty chunk");
  if (up->received + static_cast<int64_t>(req.body.size()) > up->size) {
    up->done = true;
    Forget(up->id, true);
    return absl::InvalidArgumentError("upload " + up->id + ": more bytes than the declared size " +
                                      std::to_string(up->size) + "; upload abandoned");
  }
  EVP_DigestUpdate(up->sha, req.body.data(), req.body.size());
  up->part += req.body;
  up->received += static_cast<int64_t>(req.body.size());
  if (up->part.size() >= o_.part_bytes) {
    if (Status st = SendPart(up.get(), false); !st.ok()) {
      up->done = true;
      Forget(up->id, true);
      return st;
    }
  }
  return up->received;
}

// The buffered part goes to the store in the background once the previous one is written, so
// the client sends the next part meanwhile; an upload holds at most two parts in memory. A
// failed part is reported at the next part or at completion.
Status ImageService::SendPart(Upload* up, bool last) {
  PHOTON_RETURN_IF_ERROR(WaitPart(up));
  if (!up->part.empty()) {
    up->pending =
        std::async(std::launch::async,
                   [store = store_.get(), key = up->key, id = up->store_id,
                    n = static_cast<int>(up->etags.size()) + 1,
                    data = std::move(up->part)] { return store->UploadPart(key, id, n, data); });
    up->part = std::string();
  }
  return last ? WaitPart(up) : absl::OkStatus();
}

Status ImageService::WaitPart(Upload* up) {
  if (!up->pending.valid()) return absl::OkStatus();
  auto etag = up->pending.get();
  if (!etag.ok()) return etag.status();
  up->etags.push_back(*etag);
  return absl::OkStatus();
}

StatusOr<std::string> ImageService::Complete(const HttpRequest& req, const Principal& who,
                                             std::shared_ptr<Upload> up) {
  // The digest the client computed while sending, checked like one given at the start.
  const std::string said = Param(req, "sha256");
  if (!said.empty() && !IsHex64(said)) {
    return absl::InvalidArgumentError("sha256: want 64 lower-case hex digits");
  }
  std::lock_guard lock(up->mu);
  if (up->done) return absl::FailedPreconditionError("upload " + up->id + " is finished");
  if (up->received != up->size) {
    return absl::FailedPreconditionError("upload " + up->id + " has " +
                                         std::to_string(up->received) + " of its " +
                                         std::to_string(up->size) + " bytes");
  }
  up->done = true;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(up->sha, md, &len);
  const std::string digest = HexEncode(std::string(reinterpret_cast<char*>(md), len));
  for (const std::string& want : {up->want_sha256, said}) {
    if (!want.empty() && want != digest) {
      Forget(up->id, true);
      return absl::InvalidArgumentError("sha256 mismatch: the client said " + want +
                                        ", the server received bytes hashing to " + digest +
                                        "; nothing was stored");
    }
  }
  Status st = SendPart(up.get(), true);
  if (st.ok()) st = store_->CompleteUpload(up->key, up->store_id, up->etags);
  if (!st.ok()) {
    Forget(up->id, true);
    return st;
  }
  Forget(up->id, false);
  st = Record(who, *up, digest);
  if (!st.ok()) {
    (void)store_->Delete(up->key);
    return st;
  }
  spdlog::info("image upload {}: {}/{} stored, {} bytes, sha256 {}", up->id, up->ns, up->name,
               up->size, digest);
  PHOTON_ASSIGN_OR_RETURN(compute::Image img, ReadImage(up->ns, up->name));
  return ToJson(ImagesKind(), img);
}

Status ImageService::Record(const Principal& who, const Upload& up, const std::string& digest) {
  const KindInfo& kind = ImagesKind();
  std::string old_key;
  Status st = absl::AbortedError("the image kept changing");
  for (int i = 0; i < kWriteAttempts && !st.ok(); ++i) {
    auto cur = ReadImage(up.ns, up.name);
    if (!cur.ok() && cur.status().code() != absl::StatusCode::kNotFound) return cur.status();
    auto obj = std::make_shared<compute::Image>(cur.ok() ? *cur : compute::Image());
    obj->mutable_metadata()->set_name(up.name);
    obj->mutable_metadata()->set_namespace_(up.ns);
    obj->mutable_spec()->clear_source_path();
    obj->mutable_spec()->set_format(up.format);
    obj->mutable_spec()->set_sha256(digest);
    if (cur.ok()) {
      old_key = Detail(*cur, "object");
      st = resources_->Update(who, kind, up.ns, up.name, obj, false).status();
    } else {
      st = resources_->Create(who, kind, up.ns, obj).status();
    }
    if (!st.ok() && st.code() != absl::StatusCode::kAborted &&
        st.code() != absl::StatusCode::kAlreadyExists) {
      return st;
    }
  }
  PHOTON_RETURN_IF_ERROR(st);
  // The content's record is status, which only the system writes: what the nodes fetch and
  // check is what this server received, whatever an editor later puts into the spec.
  st = absl::AbortedError("the image kept changing");
  for (int i = 0; i < kWriteAttempts && !st.ok(); ++i) {
    PHOTON_ASSIGN_OR_RETURN(compute::Image img, ReadImage(up.ns, up.name));
    auto* s = img.mutable_status();
    s->set_phase(resource::ResourceStatus::RUNNING);
    s->set_message("uploaded: " + std::to_string(up.size) + " bytes");
    (*s->mutable_details())["sha256"] = digest;
    (*s->mutable_details())["sizeBytes"] = std::to_string(up.size);
    (*s->mutable_details())["object"] = up.key;
    st = resources_->WriteStatusAsSystem(kind, img);
    if (!st.ok() && st.code() != absl::StatusCode::kAborted) return st;
  }
  PHOTON_RETURN_IF_ERROR(st);
  if (!old_key.empty() && old_key != up.key) {
    if (Status d = store_->Delete(old_key); !d.ok()) {
      spdlog::warn("image {}/{}: replaced content {} not deleted: {}", up.ns, up.name, old_key,
                   std::string(d.message()));
    }
  }
  return absl::OkStatus();
}

HttpResponse ImageService::Content(const HttpRequest& req, const Principal& who,
                                   const std::string& ns, const std::string& name) {
  const Status hidden = absl::NotFoundError("images " + ns + "/" + name + " not found");
  auto img = ReadImage(ns, name);
  if (!img.ok())
    return ErrorResponse(img.status().code() == absl::StatusCode::kNotFound ? hidden
                                                                            : img.status());
  // Readers of the namespace and the nodes' agents; everyone else only for a public image.
  if (!who.Allowed(Verb::kGet, "images", ns) && Detail(*img, "public") != "true") {
    return ErrorResponse(hidden);
  }
  const std::string key = Detail(*img, "object");
  if (key.empty()) {
    return ErrorResponse(absl::FailedPreconditionError(
        "image " + ns + "/" + name + " has no uploaded content (photon image upload)"));
  }
  const int64_t size = std::strtoll(Detail(*img, "sizeBytes").c_str(), nullptr, 10);
  auto offset = IntParam(req, "offset", false);
  auto length = IntParam(req, "length", false);
  if (!offset.ok()) return ErrorResponse(offset.status());
  if (!length.ok()) return ErrorResponse(length.status());
  const int64_t off = std::max<int64_t>(*offset, 0);
  const int64_t len = *length < 0 ? std::min(size - off, int64_t{8} << 20) : *length;
  if (off > size || len > kMaxRead || off + len > size) {
    return ErrorResponse(absl::OutOfRangeError(
        "offset " + std::to_string(off) + " length " + std::to_string(len) + ": the image has " +
        std::to_string(size) + " bytes (and a read at most " + std::to_string(kMaxRead) + ")"));
  }
  std::string bytes;
  if (len > 0) {
    auto r = store_->Read(key, off, len);
    if (!r.ok()) return ErrorResponse(r.status());
    bytes = std::move(*r);
  }
  HttpResponse resp;
  resp.status = 200;
  resp.content_type = "application/octet-stream";
  resp.body = std::move(bytes);
  resp.headers.push_back({"Photon-Image-Sha256", Detail(*img, "sha256")});
  resp.headers.push_back({"Photon-Image-Size", std::to_string(size)});
  return resp;
}

StatusOr<std::string> ImageService::Share(const HttpRequest& req, const Principal& who,
                                          const std::string& ns, const std::string& name) {
  if (!who.IsAdmin()) {
    return absl::PermissionDeniedError("only cluster admins may share or unshare images");
  }
  const std::string pub = Param(req, "public");
  if (pub != "true" && pub != "false") {
    return absl::InvalidArgumentError("public: want true or false");
  }
  Status st = absl::AbortedError("the image kept changing");
  for (int i = 0; i < kWriteAttempts && !st.ok(); ++i) {
    PHOTON_ASSIGN_OR_RETURN(compute::Image img, ReadImage(ns, name));
    if (pub == "true") {
      (*img.mutable_status()->mutable_details())["public"] = "true";
    } else {
      img.mutable_status()->mutable_details()->erase("public");
    }
    st = resources_->WriteStatusAsSystem(ImagesKind(), img);
    if (!st.ok() && st.code() != absl::StatusCode::kAborted) return st;
  }
  PHOTON_RETURN_IF_ERROR(st);
  PHOTON_ASSIGN_OR_RETURN(compute::Image img, ReadImage(ns, name));
  return ToJson(ImagesKind(), img);
}

}  // namespace photon::server::images
