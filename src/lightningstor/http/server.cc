#include "lightningstor/http/server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <limits>
#include <memory_resource>
#include <mutex>
#include <set>
#include <thread>

namespace photon::lightningstor::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

constexpr size_t kHeaderLimit = 64 << 10;
constexpr int kIoTimeoutSeconds = 120;

Status SplitHostPort(const std::string& hostport, std::string* host, int* port) {
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos)
    return absl::InvalidArgumentError("listen: want HOST:PORT, got " + hostport);
  *host = hostport.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  if (host->empty()) *host = "0.0.0.0";
  try {
    *port = std::stoi(hostport.substr(colon + 1));
  } catch (...) {
    return absl::InvalidArgumentError("listen: bad port in " + hostport);
  }
  if (*port < 0 || *port > 65535)
    return absl::InvalidArgumentError("listen: bad port in " + hostport);
  return absl::OkStatus();
}

// A request head's fields live in a per-connection arena that each request starts afresh,
// so parsing allocates nothing per field once the arena has its size.
using FieldAlloc = std::pmr::polymorphic_allocator<char>;
using Parser = bhttp::parser<true, bhttp::buffer_body, FieldAlloc>;

// Pulls body bytes. A Content-Length body is read straight from the socket into the caller's
// buffer (after what Beast already buffered with the head): one copy, large reads. Chunked
// transfer coding goes through Beast's buffer_body parser. Sends "100 Continue" first when the
// client asked for it, so rejected requests never make the client send their body.
template <typename Stream>
class BeastBodyReader : public BodyReader {
 public:
  BeastBodyReader(Stream& stream, beast::flat_buffer& buffer, Parser& parser, bool expect_continue)
      : stream_(stream), buffer_(buffer), parser_(parser), expect_continue_(expect_continue) {
    direct_ = !parser_.chunked() && parser_.content_length().has_value();
    if (direct_) remaining_ = *parser_.content_length();
  }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    if (done()) return size_t{0};
    if (expect_continue_) {
      expect_continue_ = false;
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      net::write(stream_, net::buffer(kContinue, sizeof kContinue - 1), ec);
      if (ec) return absl::UnavailableError("write 100-continue: " + ec.message());
    }
    if (direct_) return ReadDirect(buf, n);
    while (true) {
      if (parser_.is_done()) return size_t{0};
      parser_.get().body().data = buf;
      parser_.get().body().size = n;
      beast::error_code ec;
      bhttp::read(stream_, buffer_, parser_, ec);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        failed_ = true;
        return absl::DataLossError("reading request body: " + ec.message());
      }
      size_t got = n - parser_.get().body().size;
      if (got > 0 || parser_.is_done()) return got;
    }
  }
  bool done() const { return direct_ ? remaining_ == 0 : parser_.is_done(); }
  bool failed() const { return failed_; }

 private:
  StatusOr<size_t> ReadDirect(char* buf, size_t n) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
    size_t got = 0;
    if (buffer_.size() > 0) {
      got = net::buffer_copy(net::buffer(buf, want), buffer_.data());
      buffer_.consume(got);
    } else {
      beast::error_code ec;
      got = stream_.read_some(net::buffer(buf, want), ec);
      if (ec) {
        failed_ = true;
        return absl::DataLossError("reading request body: " + ec.message());
      }
    }
    remaining_ -= got;
    return got;
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  bool expect_continue_;
  bool direct_ = false;
  uint64_t remaining_ = 0;
  bool failed_ = false;
};

// The status line and fields of a response whose whole body is `resp.body`, with its
// Content-Length (none on 204 and 304) and Connection: close when the connection ends.
std::string ResponseHead(const Response& resp, bool close) {
  size_t size = 64;
  for (const auto& [k, v] : resp.headers) size += k.size() + v.size() + 4;
  std::string head;
  head.reserve(size);
  head += "HTTP/1.1 ";
  head += std::to_string(resp.status);
  head += ' ';
  beast::string_view reason =
      bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(resp.status)));
  head.append(reason.data(), reason.size());
  head += "\r\n";
  for (const auto& [k, v] : resp.headers) {
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  if (resp.status != 204 && resp.status != 304) {
    head += "Content-Length: ";
    head += std::to_string(resp.body.size());
    head += "\r\n";
  }
  if (close) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

// Serves one connection until it closes. Returns when the peer goes or on any error.
template <typename Stream>
void ServeConnection(Stream& stream, bool tls, const std::string& remote, const Handler& handler) {
  beast::flat_buffer buffer;
  std::vector<char> drain(64 << 10);
  // One Request for the connection's life: its header strings keep their capacity, so a
  // keep-alive client's requests cost no allocation per header.
  Request req;
  std::array<std::byte, 8192> arena_buffer;
  std::pmr::monotonic_buffer_resource arena(arena_buffer.data(), arena_buffer.size());
  while (true) {
    arena.release();
    Parser parser(std::piecewise_construct, std::make_tuple(), std::make_tuple(FieldAlloc(&arena)));
    parser.header_limit(kHeaderLimit);
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // sizes are checked by the
                                                                   // handler, bodies are streamed
    beast::error_code ec;
    bhttp::read_header(stream, buffer, parser, ec);
    // need_buffer only says the (empty) body had nowhere to go yet; the head is complete.
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      if (ec != bhttp::error::end_of_stream && ec != net::error::eof)
        spdlog::debug("read header: {}", ec.message());
      return;
    }
    auto& msg = parser.get();
    req.method.assign(msg.method_string().data(), msg.method_string().size());
    req.target.assign(msg.target().data(), msg.target().size());
    req.query.clear();
    req.raw_query.clear();
    ParseTarget(req);
    size_t n = 0;
    for (const auto& f : msg) {
      if (n == req.headers.size()) req.headers.emplace_back();
      auto& [name, value] = req.headers[n++];
      name.assign(f.name_string().data(), f.name_string().size());
      for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      value.assign(f.value().data(), f.value().size());
    }
    req.headers.resize(n);
    req.content_length.reset();
    if (auto len = parser.content_length()) req.content_length = *len;
    req.chunked = parser.chunked();
    req.tls = tls;
    req.remote = remote;
    bool expect_continue = beast::iequals(msg[bhttp::field::expect], "100-continue");
    BeastBodyReader<Stream> body(stream, buffer, parser, expect_continue);
    req.body = &body;
    bool keep_alive = msg.keep_alive();

    Response resp = handler(req);

    // A body the handler did not read: drain a little of it to keep the connection, else close.
    if (!body.done()) {
      if (!body.failed() && !expect_continue && req.content_length &&
          *req.content_length <= (1 << 20)) {
        while (true) {
          auto n = body.Read(drain.data(), drain.size());
          if (!n.ok()) return;
          if (*n == 0) break;
        }
      } else {
        resp.close = true;
      }
    }
    if (body.failed()) return;
    bool close = resp.close || !keep_alive;

    auto fill_head = [&](auto& res) {
      res.result(static_cast<unsigned>(resp.status));
      for (auto& [k, v] : resp.headers) res.insert(k, v);
      res.keep_alive(!close);
    };
    if (resp.stream && !resp.head_only) {
      bhttp::response<bhttp::empty_body> res;
      fill_head(res);
      res.content_length(*resp.stream_length);
      bhttp::response_serializer<bhttp::empty_body> sr(res);
      bhttp::write_header(stream, sr, ec);
      if (ec) return;
      uint64_t sent = 0;
      BodySink bytes = [&](const char* data, size_t n) -> Status {
        beast::error_code wec;
        net::write(stream, net::buffer(data, n), wec);
        if (wec) return absl::UnavailableError("client went away: " + wec.message());
        sent += n;
        return absl::OkStatus();
      };
      Status st;
      if constexpr (std::is_same_v<Stream, tcp::socket>) {
        const int sock = stream.native_handle();
        FileSink file = [&](int fd, uint64_t offset, uint64_t n) -> Status {
          auto off = static_cast<off_t>(offset);
          while (n > 0) {
            ssize_t w = sendfile(sock, fd, &off, std::min<uint64_t>(n, 1 << 30));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
              pollfd p{sock, POLLOUT, 0};
              poll(&p, 1, 30000);
              continue;
            }
            if (w <= 0) return absl::UnavailableError("client went away");
            n -= static_cast<uint64_t>(w);
            sent += static_cast<uint64_t>(w);
          }
          return absl::OkStatus();
        };
        st = resp.stream(bytes, &file);
      } else {
        st = resp.stream(bytes, nullptr);
      }
      // Abort (close without completing the body) rather than send wrong or missing bytes.
      if (!st.ok() || sent != *resp.stream_length) return;
    } else if (resp.head_only) {
      bhttp::response<bhttp::empty_body> res;
      fill_head(res);
      res.content_length(resp.head_length);
      bhttp::response_serializer<bhttp::empty_body> sr(res);
      bhttp::write_header(stream, sr, ec);
      if (ec) return;
    } else {
      // Head and body leave in one gather write, the head built as one string: most answers
      // are small, and Beast's field list and serializer cost a malloc per header.
      std::string head = ResponseHead(resp, close);
      std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(resp.body)};
      net::write(stream, out, ec);
      if (ec) return;
    }
    if (close) return;
  }
}

class BeastServer : public Server {
 public:
  BeastServer(const ServerOptions& options, Handler handler)
      : options_(options),
        handler_(std::move(handler)),
        acceptor_(io_),
        ssl_ctx_(net::ssl::context::tls_server) {}
  ~BeastServer() override { Stop(); }

  Status Init() {
    try {
      if (!options_.tls_cert.empty()) {
        ssl_ctx_.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                             net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                             net::ssl::context::no_tlsv1_1);
        ssl_ctx_.use_certificate_chain_file(options_.tls_cert);
        ssl_ctx_.use_private_key_file(options_.tls_key, net::ssl::context::pem);
        tls_ = true;
      }
      std::string host;
      int port = 0;
      PHOTON_RETURN_IF_ERROR(SplitHostPort(options_.listen, &host, &port));
      tcp::endpoint ep(net::ip::make_address(host), static_cast<unsigned short>(port));
      acceptor_.open(ep.protocol());
      acceptor_.set_option(net::socket_base::reuse_address(true));
      acceptor_.bind(ep);
      acceptor_.listen(1024);
      port_ = acceptor_.local_endpoint().port();
    } catch (const std::exception& e) {
      return absl::UnavailableError(std::string("listen ") + options_.listen + ": " + e.what());
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    beast::error_code ec;
    // shutdown(2) on the listening fd wakes the accept() blocked in the accept thread.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    acceptor_.close(ec);
    std::unique_lock<std::mutex> lock(mu_);
    for (tcp::socket* s : sockets_) s->shutdown(tcp::socket::shutdown_both, ec);
    cv_.wait(lock, [this] { return active_ == 0; });
  }

 private:
  void AcceptLoop() {
    while (!stopped_) {
      tcp::socket socket(io_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec) {
        if (stopped_) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (active_ >= options_.max_connections) {
          socket.close(ec);
          continue;
        }
        ++active_;
      }
      std::thread([this, s = std::move(socket)]() mutable {
        RunConnection(std::move(s));
      }).detach();
    }
  }

  void RunConnection(tcp::socket socket) {
    beast::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    // Idle or stalled peers must not hold a thread forever: blocking reads and writes give up
    // after kIoTimeoutSeconds and the connection closes.
    timeval timeout{kIoTimeoutSeconds, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string remote;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    {
      std::lock_guard<std::mutex> lock(mu_);
      sockets_.insert(&socket);
    }
    try {
      if (tls_) {
        net::ssl::stream<tcp::socket&> tls_stream(socket, ssl_ctx_);
        tls_stream.handshake(net::ssl::stream_base::server, ec);
        if (!ec) {
          ServeConnection(tls_stream, true, remote, handler_);
          tls_stream.shutdown(ec);
        }
      } else {
        ServeConnection(socket, false, remote, handler_);
      }
    } catch (const std::exception& e) {
      spdlog::warn("connection {}: {}", remote, e.what());
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.erase(&socket);
    --active_;
    cv_.notify_all();
  }

  ServerOptions options_;
  Handler handler_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  net::ssl::context ssl_ctx_;
  bool tls_ = false;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<tcp::socket*> sockets_;
  int active_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  PHOTON_RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace photon::lightningstor::http
