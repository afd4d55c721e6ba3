#include "common/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <climits>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "common/tls.h"
#include "common/util.h"

namespace photon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

HttpResponse HttpResponse::Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::Later(std::function<void(HttpReply)> start) {
  HttpResponse r;
  r.later = std::move(start);
  return r;
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

Status ParseHostPort(const std::string& hostport, std::string* host, int* port) {
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("address '" + hostport + "': want HOST:PORT");
  }
  std::string h = hostport.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = hostport.substr(colon + 1);
  if (h.empty() || p.empty() || p.size() > 5 ||
      p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) > 65535) {
    return absl::InvalidArgumentError("address '" + hostport + "': want HOST:PORT");
  }
  *host = h;
  *port = std::stoi(p);
  return absl::OkStatus();
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && isxdigit(s[i + 1]) && isxdigit(s[i + 2])) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

namespace {

const char* Reason(int status) {
  return http::obsolete_reason(static_cast<http::status>(status)).data();
}

class SessionBase : public ResponseStream {
 public:
  // Only once the server's threads have stopped.
  virtual void ForceClose() = 0;
};

// One client connection: reads requests in a keep-alive loop; a streaming response takes the
// connection over until it ends. Stream is beast::tcp_stream (plain) or TlsStream.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>>, public SessionBase {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // stream_args: the accepted socket (and the SSL context for TLS).
  template <typename... StreamArgs>
  Session(const HttpHandler* handler, const HttpServerOptions* options, std::atomic<int>* owed,
          StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        strand_(stream_.get_executor()),
        handler_(handler),
        options_(options),
        owed_(owed) {}

  void Start() {
    if constexpr (kTls) {
      // A peer that connects and never completes the handshake must not hold a session.
      Lowest().expires_after(std::chrono::seconds(10));
      // The first bytes decide: a TLS handshake opens with a record of type 0x16; anything
      // else is most likely plain HTTP, which gets a readable 400 instead of a dropped
      // connection. The bytes read are handed to the handshake.
      Lowest().async_read_some(
          hello_.prepare(4096), asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                                 beast::error_code ec, size_t n) {
            if (ec) {
              self->Shutdown();
              return;
            }
            self->hello_.commit(n);
            if (n > 0 && *static_cast<const unsigned char*>(self->hello_.data().data()) != 0x16) {
              self->RefusePlainHttp();
              return;
            }
            self->Handshake();
          }));
    } else {
      ReadRequest();
    }
  }
  void ForceClose() override { Shutdown(); }

  // ResponseStream
  bool Write(std::string data) override {
    if (data.empty()) return IsOpen();
    char head[32];
    int n = snprintf(head, sizeof head, "%zx\r\n", data.size());
    std::string chunk(head, n);
    chunk += data;
    chunk += "\r\n";
    return Enqueue(std::move(chunk), false);
  }
  bool WriteShared(std::vector<std::shared_ptr<const std::string>> parts) override {
    size_t total = 0;
    for (const auto& p : parts) total += p->size();
    if (total == 0) return IsOpen();
    char head[32];
    int n = snprintf(head, sizeof head, "%zx\r\n", total);
    Pending item;
    item.own.assign(head, n);
    item.shared = std::move(parts);
    item.tail = "\r\n";
    return Enqueue(std::move(item), false);
  }
  void Close() override { Enqueue("0\r\n\r\n", true); }
  bool IsOpen() const override {
    std::lock_guard lock(mu_);
    return open_;
  }
  void SetOnClose(std::function<void()> on_close) override {
    std::unique_lock lock(mu_);
    if (!open_) {
      lock.unlock();
      if (on_close) on_close();
      return;
    }
    on_close_ = std::move(on_close);
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void Handshake() {
    if constexpr (kTls) {
      stream_.async_handshake(
          ssl::stream_base::server, hello_.data(),
          asio::bind_executor(
              strand_, [self = this->shared_from_this()](beast::error_code ec, size_t used) {
                if (ec) {
                  spdlog::debug("{}: TLS handshake failed: {}", self->options_->name, ec.message());
                  self->Shutdown();
                  return;
                }
                self->hello_.consume(used);
                self->ReadPeerCertificate();
                self->ReadRequest();
              }));
    }
  }

  void ReadPeerCertificate() {
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      X509* cert = SSL_get0_peer_certificate(ssl);
      if (!cert) return;
      peer_.present = true;
      if (long v = SSL_get_verify_result(ssl); v != X509_V_OK) {
        peer_.verify_error = CertificateVerifyError(v);
      }
      char cn[256] = {};
      if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) >
          0) {
        peer_.common_name = cn;
      }
      if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
        if (char* hex = BN_bn2hex(bn)) {
          peer_.serial_hex = hex;
          OPENSSL_free(hex);
        }
        BN_free(bn);
      }
      std::tm tm{};
      if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) peer_.not_after_unix = timegm(&tm);
    }
  }

  void RefusePlainHttp() {
    static const std::string kBody = "this port speaks HTTPS: use https:// and the server's CA\n";
    static const std::string kAnswer =
        "HTTP/1.1 400 Bad Request\r\nServer: photon\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: " +
        std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
    asio::async_write(Lowest(), asio::buffer(kAnswer),
                      asio::bind_executor(
                          strand_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) {
                              self->Shutdown();
                              return;
                            }
                            self->LingerClose();
                          }));
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(options_->max_body_bytes);
    parser_->header_limit(64 * 1024);
    // A large body before was read through a large buffer: give that memory back, since an
    // idle keep-alive or watch connection (10,000 agents) should cost little.
    if (buffer_.size() == 0 && buffer_.capacity() > kSmallBuffer) buffer_.shrink_to_fit();
    Lowest().expires_after(std::chrono::seconds(300));
    http::async_read_header(stream_, buffer_, *parser_,
                            asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                             beast::error_code ec, size_t) {
                              if (ec || self->parser_->is_done()) {
                                self->OnRead(ec);
                                return;
                              }
                              self->ReadBody();
                            }));
  }

  // Beast reads into the free space of the buffer, at least 512 bytes and at most 64 KiB a
  // call: the small buffer left after the header made a 4 MiB body 8,000 reads of 512 bytes,
  // each a trip through the strand and the timer (7 CPU s a GiB of image upload).
  void ReadBody() {
    const auto length = parser_->content_length();
    if (!length || *length > kSmallBuffer) buffer_.reserve(buffer_.size() + kLargeBuffer);
    http::async_read(
        stream_, buffer_, *parser_,
        asio::bind_executor(strand_, [self = this->shared_from_this()](
                                         beast::error_code ec, size_t) { self->OnRead(ec); }));
  }
  static constexpr size_t kSmallBuffer = 16 * 1024;
  static constexpr size_t kLargeBuffer = 64 * 1024;

  void OnRead(beast::error_code ec) {
    if constexpr (!kTls) {
      // What the read brought (a request, or the end of the connection) while an earlier
      // deferred answer is still owed waits for it: answers go out in request order.
      std::lock_guard lock(mu_);
      if (awaiting_reply_) {
        early_read_ = ec;
        has_early_read_ = true;
        return;
      }
    }
    if (ec == http::error::body_limit) {
      HttpResponse r = HttpResponse::Json(
          413, "{\"error\":{\"code\":\"INVALID_ARGUMENT\",\"message\":\"request body exceeds " +
                   std::to_string(options_->max_body_bytes) + " bytes\"}}");
      SendPlain(std::move(r), false, /*linger=*/true);
      return;
    }
    if (ec) {
      if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted &&
          ec != beast::error::timeout && ec != asio::error::connection_reset) {
        // A malformed request: answer 400 and close.
        if (std::string(ec.category().name()) == "beast.http") {
          SendPlain(HttpResponse::Json(400,
                                       "{\"error\":{\"code\":\"INVALID_ARGUMENT\","
                                       "\"message\":\"malformed HTTP request\"}}"),
                    false);
          return;
        }
      }
      Shutdown();
      return;
    }
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    auto q = req.target.find('?');
    req.path = PercentDecode(req.target.substr(0, q));
    if (q != std::string::npos) {
      std::string qs = req.target.substr(q + 1);
      size_t pos = 0;
      while (pos <= qs.size()) {
        size_t amp = qs.find('&', pos);
        if (amp == std::string::npos) amp = qs.size();
        std::string kv = qs.substr(pos, amp - pos);
        if (!kv.empty()) {
          auto eq = kv.find('=');
          if (eq == std::string::npos)
            req.query[PercentDecode(kv)] = "";
          else
            req.query[PercentDecode(kv.substr(0, eq))] = PercentDecode(kv.substr(eq + 1));
        }
        pos = amp + 1;
      }
    }
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(tolower(c));
      req.headers[name] = std::string(f.value());
    }
    req.body = std::move(msg.body());
    beast::error_code rec;
    auto ep = Lowest().socket().remote_endpoint(rec);
    if (!rec) req.remote_address = ep.address().to_string();
    req.peer_cert = peer_;
    bool keep_alive = msg.keep_alive();

    HttpResponse resp;
    try {
      resp = (*handler_)(req);
    } catch (const std::exception& e) {
      spdlog::error("{}: handler threw: {}", options_->name, e.what());
      resp = HttpResponse::Json(
          500, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"internal error\"}}");
    }
    if (resp.start_stream) {
      StartStream(std::move(resp));
      return;
    }
    if (resp.later) {
      StartDeferred(std::move(resp.later), keep_alive);
      return;
    }
    SendPlain(std::move(resp), keep_alive);
  }

  // The answer is owed until the HttpReply handed to `later` is called. A plain connection
  // reads on meanwhile (the next request waits in OnRead), so when the answer is sent straight
  // from the replying thread no I/O thread has to be woken for it; a TLS stream's reads and
  // writes belong to its strand, so there the answer is posted and the read follows it.
  void StartDeferred(std::function<void(HttpReply)> later, bool keep_alive) {
    // Holds the session while the answer is owed and counts it for Stop(); a reply dropped
    // without being called still answers (500), so the connection never hangs.
    struct Owed {
      std::shared_ptr<Session> session;
      std::atomic<int>* count = nullptr;
      bool keep_alive = false;
      std::atomic<bool> answered{false};
      ~Owed() {
        if (!answered.exchange(true)) {
          session->Reply(HttpResponse::Json(500,
                                            "{\"error\":{\"code\":\"INTERNAL\","
                                            "\"message\":\"request dropped without an answer\"}}"),
                         keep_alive);
        }
        session.reset();
        count->fetch_sub(1);
      }
    };
    {
      std::lock_guard lock(mu_);
      awaiting_reply_ = true;
    }
    owed_->fetch_add(1);
    auto owed = std::make_shared<Owed>();
    owed->session = this->shared_from_this();
    owed->count = owed_;
    owed->keep_alive = keep_alive;
    if constexpr (!kTls) {
      if (keep_alive) ReadRequest();
    }
    try {
      later([owed](HttpResponse r) {
        if (owed->answered.exchange(true)) return;
        owed->session->Reply(std::move(r), owed->keep_alive);
      });
    } catch (const std::exception& e) {
      spdlog::error("{}: deferred handler threw: {}", options_->name, e.what());
    }
  }

  // Any thread. Sends a deferred answer.
  void Reply(HttpResponse r, bool keep_alive) {
    if constexpr (kTls) {
      asio::post(strand_,
                 [self = this->shared_from_this(), r = std::move(r), keep_alive]() mutable {
                   {
                     std::lock_guard lock(self->mu_);
                     self->awaiting_reply_ = false;
                   }
                   self->SendPlain(std::move(r), keep_alive);
                 });
    } else {
      Pending p;
      p.own = Head(r, keep_alive, false, r.body.size());
      if (r.body.size() <= 64 * 1024) {
        p.own += r.body;  // one buffer, one send
      } else {
        p.shared.push_back(std::make_shared<const std::string>(std::move(r.body)));
      }
      size_t total = 0;
      p.ForEachPart([&](const char*, size_t n) { total += n; });
      std::unique_lock lock(mu_);
      if (!open_) return;
      // Between two answers nothing else writes to this socket: send right here.
      const ssize_t sent = SendNow(p);
      if (sent < 0) {
        lock.unlock();
        asio::post(strand_, [self = this->shared_from_this()] { self->Shutdown(); });
        return;
      }
      if (static_cast<size_t>(sent) == total) {
        FinishReply(lock, keep_alive);
        return;
      }
      // The socket did not take it all: the rest goes through the write queue, and the
      // answer counts as sent once the queue is empty (WriteNext).
      p.skip = static_cast<size_t>(sent);
      queue_.push_back(std::move(p));
      writing_ = true;
      reply_in_queue_ = true;
      reply_keep_alive_ = keep_alive;
      lock.unlock();
      asio::post(strand_, [self = this->shared_from_this()] { self->WriteNext(); });
    }
  }

  // The deferred answer is out (mu_ held by `lock`): close, or serve what the read brought
  // meanwhile; otherwise the pending read goes on.
  void FinishReply(std::unique_lock<std::mutex>& lock, bool keep_alive) {
    awaiting_reply_ = false;
    const bool early = has_early_read_;
    has_early_read_ = false;
    const beast::error_code ec = early_read_;
    lock.unlock();
    if (!keep_alive) {
      asio::post(strand_, [self = this->shared_from_this()] { self->Shutdown(); });
    } else if (early) {
      asio::post(strand_, [self = this->shared_from_this(), ec] { self->OnRead(ec); });
    }
  }

  static std::string Head(const HttpResponse& r, bool keep_alive, bool chunked, size_t length) {
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n";
    head += "Server: photon\r\nContent-Type: " + r.content_type + "\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    if (chunked)
      head += "Transfer-Encoding: chunked\r\n";
    else
      head += "Content-Length: " + std::to_string(length) + "\r\n";
    head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    return head;
  }

  void SendPlain(HttpResponse r, bool keep_alive, bool linger = false) {
    // Head and body go out as two buffers: a list page of several MB is not copied again.
    auto out = std::make_shared<std::pair<std::string, std::string>>(
        Head(r, keep_alive, false, r.body.size()), std::move(r.body));
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(out->first),
                                                 asio::buffer(out->second)};
    Lowest().expires_after(std::chrono::seconds(60));
    asio::async_write(
        stream_, buffers,
        asio::bind_executor(strand_, [self = this->shared_from_this(), out, keep_alive, linger](
                                         beast::error_code ec, size_t) {
          if (!ec && linger) {
            self->LingerClose();
            return;
          }
          if (ec || !keep_alive) {
            self->Shutdown();
            return;
          }
          self->ReadRequest();
        }));
  }

  // After refusing a request whose body we did not read: closing at once would reset the
  // connection and the client could lose our answer, so half-close and drain for a while.
  void LingerClose() {
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    Lowest().expires_after(std::chrono::seconds(2));
    Drain();
  }
  // Raw bytes, also under TLS: they are thrown away, and the refusal of plain HTTP on a TLS
  // port has no TLS session to read through.
  void Drain() {
    Lowest().async_read_some(asio::buffer(discard_),
                             asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                              beast::error_code ec, size_t) {
                               if (ec) {
                                 self->Shutdown();
                                 return;
                               }
                               self->Drain();
                             }));
  }

  void StartStream(HttpResponse resp) {
    Lowest().expires_never();
    Enqueue(Head(resp, false, true, 0), false);
    // Detect a client that goes away: a read completes with an error.
    stream_.async_read_some(
        asio::buffer(discard_),
        asio::bind_executor(strand_, [self = this->shared_from_this()](beast::error_code, size_t) {
          self->Shutdown();
        }));
    resp.start_stream(this->shared_from_this());
  }

  // A queued piece of output: own bytes, then shared ones, then a tail; the first `skip`
  // bytes already went out.
  struct Pending {
    std::string own;
    std::vector<std::shared_ptr<const std::string>> shared;
    std::string tail;
    size_t skip = 0;
    template <typename Fn>
    void ForEachPart(Fn fn) const {
      size_t skip_left = skip;
      auto part = [&](const char* data, size_t n) {
        const size_t k = std::min(skip_left, n);
        skip_left -= k;
        if (n > k) fn(data + k, n - k);
      };
      part(own.data(), own.size());
      for (const auto& p : shared) part(p->data(), p->size());
      part(tail.data(), tail.size());
    }
  };

  bool Enqueue(std::string data, bool last) {
    Pending item;
    item.own = std::move(data);
    return Enqueue(std::move(item), last);
  }

  bool Enqueue(Pending data, bool last) {
    std::unique_lock lock(mu_);
    if (!open_ || closing_) return false;
    if (last) closing_ = true;
    if (!kTls && !writing_ && queue_.empty()) {
      // Nothing in flight: try the socket right here (for a watch, on the cache's dispatch
      // thread). A round of events for 1,000 watchers then costs 1,000 non-blocking sends
      // instead of 1,000 hand-offs to I/O threads; only what the socket does not take waits.
      const ssize_t sent = SendNow(data);
      if (sent < 0) {
        lock.unlock();
        asio::post(strand_, [self = this->shared_from_this()] { self->Shutdown(); });
        return false;
      }
      size_t total = 0;
      data.ForEachPart([&](const char*, size_t n) { total += n; });
      if (static_cast<size_t>(sent) == total) {
        if (!last) return true;
        close_after_queue_ = true;
        writing_ = true;
        lock.unlock();
        asio::post(strand_, [self = this->shared_from_this()] { self->WriteNext(); });
        return true;
      }
      data.skip += sent;
    }
    queue_.push_back(std::move(data));
    if (last) close_after_queue_ = true;
    if (!writing_) {
      writing_ = true;
      lock.unlock();
      asio::post(strand_, [self = this->shared_from_this()] { self->WriteNext(); });
    }
    return true;
  }

  // One non-blocking sendmsg of `p` (mu_ held, no write in flight). Bytes sent (0 when the
  // socket is full), or -1 when the connection is gone.
  ssize_t SendNow(const Pending& p) {
    // TLS records are the SSL stream's business: its bytes never go to the socket directly.
    if constexpr (kTls) return 0;
    iovec iov[IOV_MAX];
    int n = 0;
    bool fits = true;
    p.ForEachPart([&](const char* data, size_t len) {
      if (n == IOV_MAX) {
        fits = false;
        return;
      }
      iov[n].iov_base = const_cast<char*>(data);
      iov[n].iov_len = len;
      ++n;
    });
    if (!fits || n == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    const ssize_t r =
        ::sendmsg(Lowest().socket().native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return r;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
  }

  void WriteNext() {
    std::unique_lock lock(mu_);
    if (queue_.empty()) {
      writing_ = false;
      if (reply_in_queue_) {
        reply_in_queue_ = false;
        FinishReply(lock, reply_keep_alive_);
        return;
      }
      const bool close = close_after_queue_;
      lock.unlock();
      if (close) Shutdown();
      return;
    }
    // Everything queued goes out in one gathered write: a slow reader gets few large writes.
    // Queued items stay put until the write completes (deque push_back keeps references).
    size_t taken = std::min<size_t>(queue_.size(), 64);
    auto buffers = std::make_shared<std::vector<asio::const_buffer>>();
    for (size_t i = 0; i < taken; ++i) {
      queue_[i].ForEachPart(
          [&](const char* data, size_t n) { buffers->push_back(asio::buffer(data, n)); });
    }
    lock.unlock();
    auto done = asio::bind_executor(
        strand_, [self = this->shared_from_this(), buffers, taken](beast::error_code ec, size_t) {
          {
            std::lock_guard lock(self->mu_);
            for (size_t i = 0; i < taken; ++i) self->queue_.pop_front();
          }
          if (ec) {
            self->Shutdown();
            return;
          }
          self->WriteNext();
        });
    // Plain: straight to the socket (no timer: a watch is idle for long). TLS: through the SSL
    // stream, which coalesces the small parts into records.
    if constexpr (kTls)
      asio::async_write(stream_, *buffers, std::move(done));
    else
      asio::async_write(Lowest().socket(), *buffers, std::move(done));
  }

  void Shutdown() {
    std::function<void()> cb;
    {
      std::lock_guard lock(mu_);
      if (!open_) return;
      open_ = false;
      cb = std::move(on_close_);
    }
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().socket().close(ec);
    if (cb) cb();
  }

  Stream stream_;
  asio::strand<asio::any_io_executor> strand_;
  const HttpHandler* handler_;
  const HttpServerOptions* options_;
  beast::flat_buffer buffer_;
  beast::flat_buffer hello_;  // TLS: the first bytes, read before the handshake
  PeerCertificate peer_;      // TLS: the client's certificate, if it showed one
  std::optional<http::request_parser<http::string_body>> parser_;
  char discard_[512];
  std::atomic<int>* owed_;  // the server's count of deferred answers not yet given
  std::deque<Pending> queue_;
  bool writing_ = false;
  // Deferred answers (plain HTTP): one is owed; what a read completed with meanwhile; the
  // answer's tail is in queue_.
  bool awaiting_reply_ = false;
  bool has_early_read_ = false;
  beast::error_code early_read_;
  bool reply_in_queue_ = false;
  bool reply_keep_alive_ = false;
  bool close_after_queue_ = false;
  mutable std::mutex mu_;
  bool open_ = true;
  bool closing_ = false;
  std::function<void()> on_close_;
};

class BeastHttpServer : public HttpServer {
 public:
  BeastHttpServer(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ios_(MakeContexts(options_.threads)),
        acceptor_(*ios_[0]) {}

  // TLS 1.2 and newer only, with the given chain and key.
  Status InitTls() {
    if (options_.tls_cert.empty() != options_.tls_key.empty()) {
      return absl::InvalidArgumentError(options_.name + ": TLS needs both a certificate and a key");
    }
    if (options_.tls_cert.empty()) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(CheckCertAndKey(options_.tls_cert, options_.tls_key));
    try {
      tls_.emplace(ssl::context::tls_server);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use);
      SSL_CTX_set_min_proto_version(tls_->native_handle(), TLS1_2_VERSION);
      tls_->use_certificate_chain_file(options_.tls_cert);
      tls_->use_private_key_file(options_.tls_key, ssl::context::pem);
      if (!options_.tls_client_ca.empty()) RequestClientCertificates();
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(options_.name + ": TLS: " + e.what());
    }
    return absl::OkStatus();
  }
  // Asks for a client certificate without requiring one; the verdict is kept, not enforced
  // (PeerCertificate). No session resumption: every connection shows its certificate anew.
  void RequestClientCertificates() {
    SSL_CTX* ctx = tls_->native_handle();
    tls_->load_verify_file(options_.tls_client_ca);
    SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(options_.tls_client_ca.c_str()));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  ~BeastHttpServer() override { Stop(); }

  Status Listen() {
    PHOTON_RETURN_IF_ERROR(InitTls());
    std::string host;
    int port = 0;
    PHOTON_RETURN_IF_ERROR(ParseHostPort(options_.listen, &host, &port));
    beast::error_code ec;
    auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec)
      return absl::InvalidArgumentError("listen address '" + options_.listen +
                                        "': " + ec.message());
    tcp::endpoint ep(addr, static_cast<uint16_t>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return absl::UnavailableError("listen on " + options_.listen + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (auto& io : ios_) {
      threads_.emplace_back([io = io.get()] {
        SetThreadName("http");
        // A context without a connection yet has no work; run() must not return then.
        auto busy = asio::make_work_guard(*io);
        io->run();
      });
    }
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    asio::post(*ios_[0], [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Streams still held by the application must learn that they are over before the
    // io_context they live on goes away.
    std::lock_guard lock(sessions_mu_);
    for (auto& w : sessions_) {
      if (auto s = w.lock()) s->ForceClose();
    }
    sessions_.clear();
    // A deferred answer still owed holds its session, whose socket belongs to io_: wait for
    // the work behind it (still running: the owner stops it after this server) to answer.
    for (int i = 0; owed_.load() > 0 && i < 10000; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (owed_.load() > 0) {
      spdlog::warn("{}: {} deferred answers still owed at stop", options_.name, owed_.load());
    }
  }

 private:
  void Accept() {
    // Connections are spread over the contexts; each has one thread, so a request's handlers
    // run where its socket's readiness was seen, with no hand-off between threads.
    asio::io_context& io = *ios_[next_io_++ % ios_.size()];
    acceptor_.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
      } else {
        beast::error_code nec;
        s.set_option(tcp::no_delay(true), nec);
        if (tls_) {
          Track(std::make_shared<Session<TlsStream>>(&handler_, &options_, &owed_, std::move(s),
                                                     *tls_));
        } else {
          Track(std::make_shared<Session<beast::tcp_stream>>(&handler_, &options_, &owed_,
                                                             std::move(s)));
        }
      }
      Accept();
    });
  }

  template <typename S>
  void Track(std::shared_ptr<S> session) {
    {
      std::lock_guard lock(sessions_mu_);
      std::erase_if(sessions_, [](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
      sessions_.push_back(session);
    }
    session->Start();
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int i = 0; i < std::max(1, n); ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  // One io_context per thread (not one shared by all threads): with a shared one, every
  // completion woke another thread through a futex, which cost a fifth of the REST path.
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  size_t next_io_ = 0;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> owed_{0};
  int port_ = 0;
  std::mutex sessions_mu_;
  std::vector<std::weak_ptr<SessionBase>> sessions_;
  std::optional<ssl::context> tls_;
};

}  // namespace

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        HttpHandler handler) {
  auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
  PHOTON_RETURN_IF_ERROR(server->Listen());
  spdlog::info("{}: listening on port {}{}", options.name, server->port(),
               options.tls_cert.empty() ? "" : " (TLS)");
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace photon
