// See image_commands.h.
#include "cli/image_commands.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/hex.h"

namespace photon::cli {

using nlohmann::json;

namespace {

std::string ErrorText(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) return j["error"].value("message", r.body);
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
}

int Fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Progress on stderr: a bar redrawn at most 10 times a second on a terminal, else a line at
// every tenth of the way.
class Progress {
 public:
  Progress(std::string what, int64_t total)
      : what_(std::move(what)),
        total_(total),
        tty_(isatty(2) == 1),
        start_(std::chrono::steady_clock::now()) {}
  void Update(int64_t done) {
    const auto now = std::chrono::steady_clock::now();
    if (tty_) {
      if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
      last_ = now;
      const int width = 30;
      const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
      std::fprintf(stderr, "\r%s [%s%s] %3d%% %.1f/%.1f MiB %.1f MB/s", what_.c_str(),
                   std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                   Percent(done), done / 1048576.0, total_ / 1048576.0, Rate(done, now));
      if (done >= total_) std::fputc('\n', stderr);
    } else {
      const int p = Percent(done);
      if (p / 10 <= last_tenth_ && done < total_) return;
      last_tenth_ = p / 10;
      std::fprintf(stderr, "%s: %d%% (%lld of %lld bytes, %.1f MB/s)\n", what_.c_str(), p,
                   static_cast<long long>(done), static_cast<long long>(total_), Rate(done, now));
    }
    std::fflush(stderr);
  }
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  int Percent(int64_t done) const {
    return total_ > 0 ? static_cast<int>(100 * done / total_) : 100;
  }
  double Rate(int64_t done, std::chrono::steady_clock::time_point now) const {
    const double s = std::chrono::duration<double>(now - start_).count();
    return s > 0 ? done / s / 1e6 : 0.0;
  }
  std::string what_;
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
  int last_tenth_ = -1;
};

std::string HexDigest(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  return HexEncode(std::string(reinterpret_cast<char*>(md), len));
}

std::string ImagePath(const std::string& ns, const std::string& name) {
  return "/v1/namespaces/" + PercentEncode(ns) + "/images/" + PercentEncode(name);
}

// Reads exactly n bytes (less only at the end of the file).
ssize_t ReadFull(int fd, char* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

int SendChunks(HttpClient& client, const std::string& upload, int fd, int64_t size, size_t chunk,
               EVP_MD_CTX* sha, const std::string& label) {
  Progress progress(label, size);
  std::string buf(chunk, '\0');
  int64_t off = 0;
  while (off < size) {
    ssize_t n = ReadFull(fd, buf.data(), buf.size());
    if (n < 0) return Fail(std::string("read: ") + strerror(errno));
    if (n == 0) return Fail("the file shrank while it was being sent");
    EVP_DigestUpdate(sha, buf.data(), static_cast<size_t>(n));
    auto r = client.Do("PUT", upload + "?offset=" + std::to_string(off),
                       std::string(buf.data(), static_cast<size_t>(n)), "application/octet-stream");
    if (!r.ok()) return Fail(std::string(r.status().message()));
    if (r->status != 200) return Fail(ErrorText(*r));
    off += n;
    progress.Update(off);
  }
  return 0;
}

int Upload(const ImageArgs& a, HttpClient client, const std::string& ns) {
  const std::string format = a.format.empty() ? GuessImageFormat(a.file) : a.format;
  if (format.empty()) {
    return Fail("cannot tell the format of " + a.file +
                " from its name: give --format qcow2|raw|kernel|initrd|rootfs-tar");
  }
  int fd = ::open(a.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(a.file + ": " + strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(a.file + ": not a regular file");
  }
  const int64_t size = st.st_size;
  std::string begin = ImagePath(ns, a.name) + "/upload?format=" + PercentEncode(format) +
                      "&size=" + std::to_string(size);
  if (!a.sha256.empty()) begin += "&sha256=" + PercentEncode(a.sha256);
  auto r = client.Do("POST", begin, "");
  if (!r.ok() || r->status != 201) {
    ::close(fd);
    return Fail(r.ok() ? ErrorText(*r) : std::string(r.status().message()));
  }
  auto j = json::parse(r->body, nullptr, false);
  const std::string id = j.is_object() ? j.value("uploadId", "") : "";
  const size_t chunk = j.is_object() ? j.value("chunkBytes", size_t{1 << 20}) : 0;
  if (id.empty() || chunk == 0) {
    ::close(fd);
    return Fail("unexpected answer: " + r->body.substr(0, 200));
  }
  const std::string upload = ImagePath(ns, a.name) + "/upload/" + id;
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  Progress timer("", 0);
  int rc = SendChunks(client, upload, fd, size, chunk, sha, "upload " + a.name);
  ::close(fd);
  const std::string digest = HexDigest(sha);
  EVP_MD_CTX_free(sha);
  if (rc != 0) {
    (void)client.Do("DELETE", upload, "");
    return rc;
  }
  client.set_timeout(std::chrono::minutes(10));  // the store joins the parts
  r = client.Do("POST", upload + "/complete?sha256=" + digest, "");
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorText(*r));
  const double s = timer.Seconds();
  std::cout << "image " << ns << "/" << a.name << " uploaded: " << size << " bytes, " << format
            << ", sha256 " << digest << " (" << (s > 0 ? size / s / 1e6 : 0.0) << " MB/s)\n";
  return 0;
}

int Download(const ImageArgs& a, HttpClient client, const std::string& ns) {
  auto r = client.Do("GET", ImagePath(ns, a.name) + "/content?length=0", "");
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorText(*r));
  const int64_t size = std::strtoll(r->headers["photon-image-size"].c_str(), nullptr, 10);
  const std::string want = r->headers["photon-image-sha256"];
  const std::string tmp = a.file + ".part";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(tmp + ": " + strerror(errno));
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  Progress progress("download " + a.name, size);
  std::string err;
  // Four ranges in flight (a client copy each: one is not thread-safe), written in order.
  std::deque<std::pair<int64_t, std::future<StatusOr<HttpResult>>>> inflight;
  int64_t next = 0, done = 0;
  while (err.empty() && (next < size || !inflight.empty())) {
    while (next < size && inflight.size() < 4) {
      const int64_t len = std::min<int64_t>(8 << 20, size - next);
      const std::string path = ImagePath(ns, a.name) + "/content?offset=" + std::to_string(next) +
                               "&length=" + std::to_string(len);
      inflight.emplace_back(len, std::async(std::launch::async, [client, path]() mutable {
                              return client.Do("GET", path, "");
                            }));
      next += len;
    }
    const int64_t len = inflight.front().first;
    auto got = inflight.front().second.get();
    inflight.pop_front();
    if (!got.ok()) {
      err = std::string(got.status().message());
    } else if (got->status != 200 || static_cast<int64_t>(got->body.size()) != len) {
      err = ErrorText(*got);
    } else if (::write(fd, got->body.data(), got->body.size()) != static_cast<ssize_t>(len)) {
      err = std::string("write: ") + strerror(errno);
    } else {
      EVP_DigestUpdate(sha, got->body.data(), got->body.size());
      done += len;
      progress.Update(done);
    }
  }
  inflight.clear();
  ::close(fd);
  const std::string got = HexDigest(sha);
  EVP_MD_CTX_free(sha);
  if (err.empty() && got != want) err = "received bytes hash to " + got + ", not " + want;
  if (err.empty() && ::rename(tmp.c_str(), a.file.c_str()) != 0) err = strerror(errno);
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    return Fail(err);
  }
  std::cout << a.file << ": " << size << " bytes, sha256 " << got << "\n";
  return 0;
}

int Share(const ImageArgs& a, HttpClient client, const std::string& ns) {
  if (a.make_public == a.make_private) return Fail("say --public or --private");
  auto r = client.Do(
      "POST", ImagePath(ns, a.name) + "/share?public=" + (a.make_public ? "true" : "false"), "");
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorText(*r));
  std::cout << "image " << ns << "/" << a.name << " is "
            << (a.make_public ? "public: other namespaces use it as " + ns + "/" + a.name
                              : "private to namespace " + ns)
            << "\n";
  return 0;
}

}  // namespace

std::string GuessImageFormat(const std::string& path) {
  const std::string base = path.substr(path.find_last_of('/') + 1);
  if (EndsWith(base, ".qcow2")) return "qcow2";
  if (EndsWith(base, ".raw") || (EndsWith(base, ".img") && base.rfind("initrd", 0) != 0)) {
    return "raw";
  }
  if (EndsWith(base, ".tar") || EndsWith(base, ".tar.gz") || EndsWith(base, ".tgz")) {
    return "rootfs-tar";
  }
  if (base.rfind("vmlinuz", 0) == 0 || base.rfind("bzImage", 0) == 0) return "kernel";
  if (base.rfind("initrd", 0) == 0 || base.rfind("initramfs", 0) == 0) return "initrd";
  return "";
}

void AddImageCommands(CLI::App& app, ImageArgs* a) {
  a->image = app.add_subcommand("image", "upload, download and share images (docs/images.md)");
  a->image->require_subcommand(1);
  a->upload = a->image->add_subcommand(
      "upload", "send FILE to the image store as image NAME (created or replaced)");
  a->upload->add_option("name", a->name)->required();
  a->upload->add_option("file", a->file)->required();
  a->upload->add_option("--format", a->format,
                        "qcow2|raw|kernel|initrd|rootfs-tar (default: from the file name)");
  a->upload->add_option("--sha256", a->sha256, "refuse the upload unless the file has this digest");
  a->download = a->image->add_subcommand("download", "save image NAME's content to FILE");
  a->download->add_option("name", a->name)->required();
  a->download->add_option("file", a->file)->required();
  a->share = a->image->add_subcommand(
      "share", "admins: let every namespace use image NAME as NS/NAME (--public), or stop");
  a->share->add_option("name", a->name)->required();
  a->share->add_flag("--public", a->make_public);
  a->share->add_flag("--private", a->make_private);
}

int RunImageCommand(const ImageArgs& a, HttpClient client, const std::string& ns) {
  if (a.upload && a.upload->parsed()) return Upload(a, std::move(client), ns);
  if (a.download && a.download->parsed()) return Download(a, std::move(client), ns);
  if (a.share && a.share->parsed()) return Share(a, std::move(client), ns);
  return -1;
}

}  // namespace photon::cli
