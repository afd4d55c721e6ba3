#include "agent/hollow/async_http.h"

#include <boost/asio/connect.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <limits>

#include "common/http_server.h"

namespace photon::hollow {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// A unary call that has no answer after this long failed (the server is stuck or gone).
constexpr auto kCallTimeout = std::chrono::seconds(60);

http::request<http::string_body> MakeRequest(const std::string& host, const std::string& method,
                                             const std::string& target, const std::string& token,
                                             std::string body) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "photon-hollow");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  req.keep_alive(true);
  return req;
}

}  // namespace

struct AsyncHttp::Request {
  std::string method;
  std::string target;
  std::string token;
  std::string body;
  Callback cb;
  bool retried = false;  // a stale keep-alive connection gets one more try on a fresh one
};

struct AsyncHttp::Conn {
  explicit Conn(asio::io_context* io) : stream(*io) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  bool busy = false;
  bool connected = false;
  bool used = false;  // has answered a request since it connected
};

StatusOr<std::unique_ptr<AsyncHttp>> AsyncHttp::Create(asio::io_context* io,
                                                       const std::string& base_url,
                                                       int connections) {
  if (base_url.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError("server URL '" + base_url +
                                      "': photon-hollow speaks plain http:// only");
  }
  std::string hostport = base_url.substr(7);
  while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  std::string host;
  int port = 0;
  PHOTON_RETURN_IF_ERROR(ParseHostPort(hostport, &host, &port));
  beast::error_code ec;
  tcp::resolver resolver(*io);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) {
    return absl::UnavailableError("resolving " + host + ": " + ec.message());
  }
  std::unique_ptr<AsyncHttp> client(new AsyncHttp(io, hostport, results.begin()->endpoint()));
  for (int i = 0; i < std::max(1, connections); ++i) {
    client->conns_.push_back(std::make_shared<Conn>(io));
  }
  return client;
}

AsyncHttp::AsyncHttp(asio::io_context* io, std::string host, tcp::endpoint endpoint)
    : io_(io), host_(std::move(host)), endpoint_(endpoint) {}

AsyncHttp::~AsyncHttp() {
  for (auto& c : conns_) {
    beast::error_code ec;
    c->stream.socket().close(ec);
  }
}

void AsyncHttp::Call(std::string method, std::string target, std::string token, std::string body,
                     Callback cb) {
  auto req = std::make_shared<Request>();
  req->method = std::move(method);
  req->target = std::move(target);
  req->token = std::move(token);
  req->body = std::move(body);
  req->cb = std::move(cb);
  queue_.push_back(std::move(req));
  Pump();
}

void AsyncHttp::Pump() {
  for (auto& conn : conns_) {
    if (queue_.empty()) return;
    if (conn->busy) continue;
    auto req = std::move(queue_.front());
    queue_.pop_front();
    Send(conn, std::move(req));
  }
}

void AsyncHttp::Send(const std::shared_ptr<Conn>& conn, std::shared_ptr<Request> req) {
  conn->busy = true;
  conn->req = MakeRequest(host_, req->method, req->target, req->token, req->body);
  conn->res = {};
  auto exchange = [this, conn, req] {
    conn->stream.expires_after(kCallTimeout);
    http::async_write(conn->stream, conn->req, [this, conn, req](beast::error_code ec, size_t) {
      if (ec) return Finish(conn, req, Reply{0, "", "write: " + ec.message()}, false);
      http::async_read(
          conn->stream, conn->buffer, conn->res, [this, conn, req](beast::error_code ec2, size_t) {
            if (ec2) {
              return Finish(conn, req, Reply{0, "", "read: " + ec2.message()}, false);
            }
            bool keep = conn->res.keep_alive();
            Finish(conn, req,
                   Reply{static_cast<int>(conn->res.result_int()), std::move(conn->res.body()), ""},
                   keep);
          });
    });
  };
  if (conn->connected) return exchange();
  conn->stream.expires_after(kCallTimeout);
  conn->stream.async_connect(endpoint_, [this, conn, req, exchange](beast::error_code ec) {
    if (ec) return Finish(conn, req, Reply{0, "", "connect: " + ec.message()}, false);
    conn->connected = true;
    conn->used = false;
    conn->buffer.clear();
    exchange();
  });
}

void AsyncHttp::Finish(const std::shared_ptr<Conn>& conn, std::shared_ptr<Request> req, Reply reply,
                       bool reusable) {
  const bool stale = reply.status == 0 && conn->used && !req->retried;
  if (reply.status != 0) conn->used = true;
  if (!reusable) {
    beast::error_code ec;
    conn->stream.socket().close(ec);
    conn->connected = false;
    conn->buffer.clear();
  }
  conn->busy = false;
  if (stale) {
    // The server closed an idle keep-alive connection under us: once more on a fresh one.
    req->retried = true;
    queue_.push_front(std::move(req));
  } else {
    req->cb(std::move(reply));
  }
  Pump();
}

// ---- watch streams --------------------------------------------------------------------------

namespace {

class Stream : public WatchHandle, public std::enable_shared_from_this<Stream> {
 public:
  Stream(asio::io_context* io, AsyncHttp::LineCallback on_line, AsyncHttp::Callback on_end)
      : stream_(*io), on_line_(std::move(on_line)), on_end_(std::move(on_end)) {}

  void Start(const tcp::endpoint& endpoint, http::request<http::string_body> req) {
    req_ = std::move(req);
    auto self = shared_from_this();
    stream_.expires_after(kCallTimeout);
    stream_.async_connect(endpoint, [self](beast::error_code ec) {
      if (ec) return self->End(Reply{0, "", "connect: " + ec.message()});
      http::async_write(self->stream_, self->req_, [self](beast::error_code ec2, size_t) {
        if (ec2) return self->End(Reply{0, "", "write: " + ec2.message()});
        self->ReadHeader();
      });
    });
  }

  void Cancel() override {
    cancelled_ = true;
    beast::error_code ec;
    stream_.socket().close(ec);
  }

 private:
  void ReadHeader() {
    auto self = shared_from_this();
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
    // The parser keeps a reference to the callback, which therefore is a member.
    parser_.on_chunk_body(on_chunk_);
    http::async_read_header(stream_, buffer_, parser_, [self](beast::error_code ec, size_t) {
      if (ec) return self->End(Reply{0, "", "read: " + ec.message()});
      if (self->parser_.get().result_int() != 200) {
        // An error answer: read its (plain) body and report it.
        http::async_read(self->stream_, self->buffer_, self->parser_,
                         [self](beast::error_code, size_t) {
                           self->End(Reply{static_cast<int>(self->parser_.get().result_int()),
                                           self->parser_.get().body(), ""});
                         });
        return;
      }
      self->stream_.expires_never();  // a watch is idle for as long as nothing changes
      self->ReadBody();
    });
  }

  void ReadBody() {
    auto self = shared_from_this();
    http::async_read_some(stream_, buffer_, parser_, [self](beast::error_code ec, size_t) {
      if (self->stopped_) return self->End(Reply{200, "", ""});
      if (ec) return self->End(Reply{0, "", "read: " + ec.message()});
      if (self->parser_.is_done()) return self->End(Reply{200, "", ""});
      self->ReadBody();
    });
  }

  void OnData(std::string_view data) {
    if (stopped_) return;
    pending_.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending_.data() + start, nl - start);
      if (line.empty()) continue;
      if (!on_line_(line)) {
        stopped_ = true;
        break;
      }
    }
    pending_.erase(0, start);
  }

  void End(Reply reply) {
    if (ended_) return;
    ended_ = true;
    beast::error_code ec;
    stream_.socket().close(ec);
    if (!cancelled_) on_end_(std::move(reply));
    on_line_ = nullptr;  // drops what the callbacks hold
    on_end_ = nullptr;
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response_parser<http::string_body> parser_;
  std::string pending_;
  AsyncHttp::LineCallback on_line_;
  AsyncHttp::Callback on_end_;
  // `this`, not a shared_ptr: the parser holding one would keep the stream alive forever.
  std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk_ =
      [this](std::uint64_t, beast::string_view data, beast::error_code&) -> std::size_t {
    OnData(std::string_view(data.data(), data.size()));
    return data.size();
  };
  bool cancelled_ = false;
  bool stopped_ = false;
  bool ended_ = false;
};

}  // namespace

std::shared_ptr<WatchHandle> AsyncHttp::Watch(std::string target, std::string token,
                                              LineCallback on_line, Callback on_end) {
  auto s = std::make_shared<Stream>(io_, std::move(on_line), std::move(on_end));
  s->Start(endpoint_, MakeRequest(host_, "GET", target, token, ""));
  return s;
}

}  // namespace photon::hollow
