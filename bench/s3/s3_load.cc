// s3_load: the load generator of the lightningstor benchmark (bench/s3/run_bench.sh).
// Blocking keep-alive HTTP/1.1 connections, one per client thread, SigV4-signed requests
// (UNSIGNED-PAYLOAD, as SDKs do over TLS), optional unsigned mode for nginx. Prints one
// "RESULT key=value ..." line per run for the script to parse.
//
//   s3_load put-large|get-large  --port P --bucket B --size BYTES --count N [--sse AES256]
//                                (put-large checks that each ETag is the body's MD5)
//   s3_load put-multipart        --port P --bucket B --size BYTES --count N --clients C
//   s3_load prep-small           --port P --bucket B --size BYTES --count N
//   s3_load put-small|get-small  --port P --bucket B --size BYTES --count N --clients C --seconds S
//   s3_load get-plain            --port P --count N --clients C --seconds S   (nginx, unsigned)
//   s3_load seed                 --data-dir DIR --bucket B --count N          (store API, no HTTP)
//   s3_load list                 --port P --bucket B [--prefix X]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/hex.h"
#include "lightningstor/checksum.h"
#include "lightningstor/http/message.h"
#include "lightningstor/meta_store.h"
#include "lightningstor/sigv4.h"

namespace photon::lightningstor::bench {
namespace {

struct Options {
  std::string mode;
  int port = 0;
  std::string bucket = "bench";
  uint64_t size = 4096;
  int count = 1000;
  int clients = 16;
  double seconds = 5;
  std::string data_dir;
  std::string prefix;
  std::string sse;  // x-amz-server-side-encryption of put-large ("" = none)
  std::string access_key = getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "";
  std::string secret_key = getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "";
  std::string region = "us-east-1";
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string AmzDate() {
  time_t t = time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// One keep-alive connection speaking just enough HTTP/1.1 for S3 requests.
class Conn {
 public:
  Conn(const Options& o, bool sign) : o_(o), sign_(sign) {}
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }

  bool Connect() {
    if (fd_ >= 0) close(fd_);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    buf_.clear();
    return connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }

  // Sends a request; returns the HTTP status (0 on I/O error). The body is discarded but
  // counted in *body_bytes; when keep is set it is appended there.
  int Do(const std::string& method, const std::string& path, const std::string& query,
         const char* body, uint64_t body_len, uint64_t* body_bytes, std::string* keep = nullptr) {
    if (fd_ < 0 && !Connect()) return 0;
    std::string host = "127.0.0.1:" + std::to_string(o_.port);
    std::string head = method + " " + path + (query.empty() ? "" : "?" + query) +
                       " HTTP/1.1\r\nHost: " + host + "\r\n";
    if (sign_) {
      std::string date = AmzDate();
      std::vector<std::pair<std::string, std::string>> headers = {
          {"host", host}, {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}, {"x-amz-date", date}};
      bool sse = !o_.sse.empty() && method == "PUT";
      if (sse) headers.emplace_back("x-amz-server-side-encryption", o_.sse);
      std::vector<std::pair<std::string, std::string>> q;
      size_t pos = 0;
      while (pos < query.size()) {
        size_t amp = query.find('&', pos);
        if (amp == std::string::npos) amp = query.size();
        std::string kv = query.substr(pos, amp - pos);
        size_t eq = kv.find('=');
        q.emplace_back(
            http::PercentDecode(kv.substr(0, eq), false),
            eq == std::string::npos ? "" : http::PercentDecode(kv.substr(eq + 1), false));
        pos = amp + 1;
      }
      std::vector<std::string> names = {"host", "x-amz-content-sha256", "x-amz-date"};
      std::string signed_names = "host;x-amz-content-sha256;x-amz-date";
      if (sse) {
        names.push_back("x-amz-server-side-encryption");
        signed_names += ";x-amz-server-side-encryption";
      }
      std::string creq = sigv4::CanonicalRequest(method, path, sigv4::CanonicalQuery(q),
                                                 sigv4::CanonicalHeaders(headers, names),
                                                 signed_names, "UNSIGNED-PAYLOAD");
      std::string day = date.substr(0, 8);
      if (day != key_day_) {
        key_ = sigv4::SigningKey(o_.secret_key, day, o_.region, "s3");
        key_day_ = day;
      }
      std::string scope = day + "/" + o_.region + "/s3/aws4_request";
      std::string sig = sigv4::Sign(key_, sigv4::StringToSign(date, scope, creq));
      head += "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nx-amz-date: " + date + "\r\n";
      if (sse) head += "x-amz-server-side-encryption: " + o_.sse + "\r\n";
      head += "Authorization: AWS4-HMAC-SHA256 Credential=" + o_.access_key + "/" + scope +
              ", SignedHeaders=" + signed_names + ", Signature=" + sig + "\r\n";
    }
    if (method == "PUT" || method == "POST")
      head += "Content-Length: " + std::to_string(body_len) + "\r\n";
    head += "\r\n";
    if (!SendAll(head.data(), head.size())) return Fail();
    if (body_len && !SendAll(body, body_len)) return Fail();
    // Response head.
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return Fail();
    }
    std::string resp_head = buf_.substr(0, end);
    last_head_ = resp_head;
    buf_.erase(0, end + 4);
    int status = std::atoi(resp_head.c_str() + 9);
    uint64_t length = 0;
    size_t cl = resp_head.find("Content-Length: ");
    if (cl == std::string::npos) cl = resp_head.find("content-length: ");
    if (cl != std::string::npos) length = std::strtoull(resp_head.c_str() + cl + 16, nullptr, 10);
    if (method == "HEAD") length = 0;
    uint64_t got = 0;
    while (got < length) {
      if (buf_.empty() && !keep) {
        // A discarded body goes from the socket into scratch space and no further, so the
        // client costs one copy per byte (like curl -o /dev/null) and does not eat into the
        // server's share of the CPU.
        static thread_local std::vector<char> scratch(4 << 20);
        ssize_t r = recv(fd_, scratch.data(), std::min<uint64_t>(scratch.size(), length - got), 0);
        if (r <= 0) return Fail();
        got += static_cast<uint64_t>(r);
        continue;
      }
      if (buf_.empty() && !Fill()) return Fail();
      uint64_t take = std::min<uint64_t>(buf_.size(), length - got);
      if (keep) keep->append(buf_.data(), take);
      buf_.erase(0, take);
      got += take;
    }
    if (body_bytes) *body_bytes += got;
    if (resp_head.find("Connection: close") != std::string::npos) {
      close(fd_);
      fd_ = -1;
    }
    return status;
  }

 private:
  int Fail() {
    close(fd_);
    fd_ = -1;
    return 0;
  }
  bool SendAll(const char* p, uint64_t n) {
    while (n > 0) {
      ssize_t w = send(fd_, p, std::min<uint64_t>(n, 4 << 20), MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<uint64_t>(w);
    }
    return true;
  }
  bool Fill() {
    char tmp[256 << 10];
    ssize_t r = recv(fd_, tmp, sizeof tmp, 0);
    if (r <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(r));
    return true;
  }

  const Options& o_;
  bool sign_;
  int fd_ = -1;
  std::string buf_;
  std::string key_, key_day_;

 public:
  // The head of the last response (status line and headers).
  std::string last_head_;
};

std::string RandomBody(uint64_t size, unsigned seed) {
  std::string body(size, '\0');
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    memcpy(&body[i], &v, 8);
  }
  return body;
}

int Large(const Options& o) {
  Conn conn(o, true);
  std::string body = o.mode == "put-large" ? RandomBody(o.size, 7) : "";
  // S3 clients check a single PUT's ETag against the body's MD5; so does this benchmark.
  std::string want_etag = body.empty() ? "" : "ETag: \"" + photon::HexEncode(Md5Raw(body)) + "\"";
  std::string dir = o.sse.empty() ? "/large/" : "/large-sse/";
  for (int i = 0; i < o.count; ++i) {
    std::string path = "/" + o.bucket + dir + std::to_string(i);
    uint64_t bytes = 0;
    double start = Now();
    int status = o.mode == "put-large" ? conn.Do("PUT", path, "", body.data(), body.size(), &bytes)
                                       : conn.Do("GET", path, "", nullptr, 0, &bytes);
    double secs = Now() - start;
    if (status != 200 || (o.mode == "get-large" && bytes != o.size)) {
      fprintf(stderr, "%s %s: status %d, %llu bytes\n", o.mode.c_str(), path.c_str(), status,
              static_cast<unsigned long long>(bytes));
      return 1;
    }
    if (!want_etag.empty() && conn.last_head_.find(want_etag) == std::string::npos) {
      fprintf(stderr, "%s %s: the ETag is not the body's MD5:\n%s\n", o.mode.c_str(), path.c_str(),
              conn.last_head_.c_str());
      return 1;
    }
    printf("RESULT mode=%s i=%d seconds=%.4f mbps=%.1f\n", o.mode.c_str(), i, secs,
           static_cast<double>(o.size) / secs / 1e6);
  }
  return 0;
}

// The 64 MiB object the way `aws s3 cp` sends it: a multipart upload of 8 MiB parts (its
// default multipart_chunksize), parts in parallel on --clients connections. Each part is its
// own MD5, so the hashing no longer runs on one core.
int PutMultipart(const Options& o) {
  const uint64_t part_size = 8 << 20;
  std::string body = RandomBody(o.size, 7);
  const int parts = static_cast<int>((o.size + part_size - 1) / part_size);
  for (int i = 0; i < o.count; ++i) {
    std::string path = "/" + o.bucket + "/multipart/" + std::to_string(i);
    double start = Now();
    Conn conn(o, true);
    uint64_t bytes = 0;
    std::string xml;
    if (conn.Do("POST", path, "uploads=", nullptr, 0, &bytes, &xml) != 200) {
      fprintf(stderr, "initiate %s failed\n", path.c_str());
      return 1;
    }
    auto a = xml.find("<UploadId>"), b = xml.find("</UploadId>");
    if (a == std::string::npos || b == std::string::npos) return 1;
    const std::string upload = xml.substr(a + 10, b - a - 10);
    std::vector<std::string> etags(static_cast<size_t>(parts));
    std::atomic<int> next{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < std::max(1, o.clients); ++t) {
      threads.emplace_back([&] {
        Conn c(o, true);
        int n;
        while ((n = next++) < parts) {
          const uint64_t off = static_cast<uint64_t>(n) * part_size;
          const uint64_t len = std::min<uint64_t>(part_size, o.size - off);
          uint64_t got = 0;
          if (c.Do("PUT", path, "partNumber=" + std::to_string(n + 1) + "&uploadId=" + upload,
                   body.data() + off, len, &got) != 200) {
            ++failed;
            continue;
          }
          auto e = c.last_head_.find("ETag: ");
          if (e == std::string::npos) e = c.last_head_.find("etag: ");
          if (e == std::string::npos) {
            ++failed;
            continue;
          }
          etags[static_cast<size_t>(n)] =
              c.last_head_.substr(e + 6, c.last_head_.find("\r\n", e) - e - 6);
        }
      });
    }
    for (auto& t : threads) t.join();
    if (failed) {
      fprintf(stderr, "%d parts failed\n", failed.load());
      return 1;
    }
    std::string complete = "<CompleteMultipartUpload>";
    for (int n = 0; n < parts; ++n) {
      complete += "<Part><PartNumber>" + std::to_string(n + 1) + "</PartNumber><ETag>" +
                  etags[static_cast<size_t>(n)] + "</ETag></Part>";
    }
    complete += "</CompleteMultipartUpload>";
    std::string answer;
    if (conn.Do("POST", path, "uploadId=" + upload, complete.data(), complete.size(), &bytes,
                &answer) != 200 ||
        answer.find("<Error>") != std::string::npos) {
      fprintf(stderr, "complete failed: %s\n", answer.c_str());
      return 1;
    }
    double secs = Now() - start;
    printf("RESULT mode=%s i=%d seconds=%.4f mbps=%.1f\n", o.mode.c_str(), i, secs,
           static_cast<double>(o.size) / secs / 1e6);
  }
  return 0;
}

int PrepSmall(const Options& o) {
  std::atomic<int> next{0}, failed{0};
  std::string body = RandomBody(o.size, 11);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.clients; ++t) {
    threads.emplace_back([&] {
      Conn conn(o, true);
      int i;
      while ((i = next++) < o.count) {
        uint64_t bytes = 0;
        if (conn.Do("PUT", "/" + o.bucket + "/small/" + std::to_string(i), "", body.data(),
                    body.size(), &bytes) != 200)
          ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  printf("RESULT mode=prep-small count=%d failed=%d\n", o.count, failed.load());
  return failed ? 1 : 0;
}

int Rate(const Options& o) {
  std::atomic<uint64_t> ops{0}, errors{0};
  std::atomic<bool> stop{false};
  std::string body = RandomBody(o.size, 13);
  bool sign = o.mode != "get-plain";
  std::vector<std::thread> threads;
  for (int t = 0; t < o.clients; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(o, sign);
      std::mt19937 rng(t * 7919 + 1);
      uint64_t local = 0, local_err = 0, n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t bytes = 0;
        int status;
        if (o.mode == "put-small") {
          std::string path =
              "/" + o.bucket + "/put/" + std::to_string(t) + "/" + std::to_string(n++);
          status = conn.Do("PUT", path, "", body.data(), body.size(), &bytes);
        } else if (o.mode == "get-small") {
          status = conn.Do("GET", "/" + o.bucket + "/small/" + std::to_string(rng() % o.count), "",
                           nullptr, 0, &bytes);
          if (bytes != o.size) status = 0;
        } else {
          status = conn.Do("GET", "/" + std::to_string(rng() % o.count), "", nullptr, 0, &bytes);
          if (bytes != o.size) status = 0;
        }
        if (status == 200)
          ++local;
        else
          ++local_err;
      }
      ops += local;
      errors += local_err;
    });
  }
  double start = Now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& th : threads) th.join();
  double secs = Now() - start;
  printf("RESULT mode=%s clients=%d ops=%llu errors=%llu seconds=%.2f rate=%.0f\n", o.mode.c_str(),
         o.clients, static_cast<unsigned long long>(ops.load()),
         static_cast<unsigned long long>(errors.load()), secs,
         static_cast<double>(ops.load()) / secs);
  return errors.load() > 0 ? 1 : 0;
}

int Seed(const Options& o) {
  auto meta = MetaStore::Open(o.data_dir + "/meta.db");
  if (!meta.ok()) {
    fprintf(stderr, "seed: %s\n", std::string(meta.status().message()).c_str());
    return 1;
  }
  BucketMeta b;
  b.name = o.bucket;
  b.created_ms = 1;
  (void)(*meta)->CreateBucket(b);
  std::atomic<int> next{0}, failed{0};
  double start = Now();
  std::vector<std::thread> threads;
  std::string etag = HexEncode(Md5Raw(""));
  for (int t = 0; t < o.clients; ++t) {
    threads.emplace_back([&] {
      int i;
      char key[32];
      while ((i = next++) < o.count) {
        snprintf(key, sizeof key, "obj/%07d", i);
        ObjectMeta obj;
        obj.bucket = o.bucket;
        obj.key = key;
        obj.etag = etag;
        obj.mtime_ms = 1700000000000;
        obj.content_type = "binary/octet-stream";
        obj.has_inline = true;
        if (!(*meta)->PutObject(obj).ok()) ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  printf("RESULT mode=seed count=%d failed=%d seconds=%.1f\n", o.count, failed.load(),
         Now() - start);
  return failed ? 1 : 0;
}

int List(const Options& o) {
  Conn conn(o, true);
  std::string token;
  uint64_t keys = 0;
  int pages = 0;
  double start = Now();
  while (true) {
    std::string query = "list-type=2&max-keys=1000";
    if (!o.prefix.empty()) query += "&prefix=" + sigv4::UriEncode(o.prefix, true);
    if (!token.empty()) query += "&continuation-token=" + sigv4::UriEncode(token, true);
    std::string xml;
    uint64_t bytes = 0;
    if (conn.Do("GET", "/" + o.bucket, query, nullptr, 0, &bytes, &xml) != 200) {
      fprintf(stderr, "list failed: %s\n", xml.c_str());
      return 1;
    }
    ++pages;
    for (size_t p = 0; (p = xml.find("<Key>", p)) != std::string::npos; p += 5) ++keys;
    size_t t = xml.find("<NextContinuationToken>");
    if (t == std::string::npos) break;
    size_t e = xml.find("</NextContinuationToken>", t);
    token = xml.substr(t + 23, e - t - 23);
  }
  printf("RESULT mode=list keys=%llu pages=%d seconds=%.2f\n",
         static_cast<unsigned long long>(keys), pages, Now() - start);
  return 0;
}

}  // namespace
}  // namespace photon::lightningstor::bench

int main(int argc, char** argv) {
  using namespace photon::lightningstor::bench;
  if (argc < 2) {
    fprintf(stderr,
            "usage: s3_load MODE [--port P] [--bucket B] [--size N] [--count N] [--clients N] "
            "[--seconds S] [--data-dir D] [--prefix X] [--sse AES256]\n");
    return 2;
  }
  Options o;
  o.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      o.port = std::atoi(value.c_str());
    else if (flag == "--bucket")
      o.bucket = value;
    else if (flag == "--size")
      o.size = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--count")
      o.count = std::atoi(value.c_str());
    else if (flag == "--clients")
      o.clients = std::atoi(value.c_str());
    else if (flag == "--seconds")
      o.seconds = std::atof(value.c_str());
    else if (flag == "--data-dir")
      o.data_dir = value;
    else if (flag == "--prefix")
      o.prefix = value;
    else if (flag == "--sse")
      o.sse = value;
    else {
      fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.mode == "put-large" || o.mode == "get-large") return Large(o);
  if (o.mode == "put-multipart") return PutMultipart(o);
  if (o.mode == "prep-small") return PrepSmall(o);
  if (o.mode == "put-small" || o.mode == "get-small" || o.mode == "get-plain") return Rate(o);
  if (o.mode == "seed") return Seed(o);
  if (o.mode == "list") return List(o);
  fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
  return 2;
}
