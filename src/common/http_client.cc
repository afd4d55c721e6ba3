#include "common/http_client.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>

#include "common/tls.h"

namespace photon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

bool IsIp(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void CloseSocket(beast::tcp_stream& s) {
  beast::error_code ec;
  s.socket().shutdown(tcp::socket::shutdown_both, ec);
}

// Runs one asynchronous operation to completion on io, the call's own context. Beast's stream
// expiry bounds asynchronous operations only (a blocking read on a silent server never
// returns), so each step of a bounded call is an async one awaited here.
template <typename Initiate>
beast::error_code Await(asio::io_context& io, Initiate initiate) {
  beast::error_code result;
  initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

std::string Describe(const beast::error_code& ec, const std::chrono::milliseconds* timeout) {
  if (ec == beast::error::timeout && timeout) {
    return "no answer within " + std::to_string(timeout->count()) + " ms";
  }
  return ec.message();
}

}  // namespace

namespace {

// One entry of a server list: *https is set from its scheme (kept when it has none).
Status ParseServerUrl(const std::string& url, bool* https, std::string* host, std::string* port) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
    *https = false;
  } else if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    *https = true;
  } else if (rest.find("://") != std::string::npos) {
    return absl::InvalidArgumentError("server URL '" + url + "': want http:// or https://");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("server URL '" + url +
                                      "': want http://HOST:PORT or https://HOST:PORT");
  }
  *host = rest.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = rest.substr(colon + 1);
  return absl::OkStatus();
}

// Which server of a list answered last, per list, for every client of the process.
std::shared_ptr<std::atomic<size_t>> SharedCurrent(const std::string& base_url) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<std::atomic<size_t>>> lists;
  std::lock_guard lock(mu);
  auto& current = lists[base_url];
  if (!current) current = std::make_shared<std::atomic<size_t>>(0);
  return current;
}

}  // namespace

StatusOr<HttpClient> HttpClient::Create(const std::string& base_url, const std::string& token,
                                        const std::string& ca_file) {
  HttpClient c;
  bool https = false;
  size_t from = 0;
  while (true) {
    const size_t comma = base_url.find(',', from);
    std::string url = base_url.substr(from, comma - from);
    url.erase(0, url.find_first_not_of(' '));
    url.erase(url.find_last_not_of(' ') + 1);
    Endpoint e;
    const bool was_https = https;
    PHOTON_RETURN_IF_ERROR(ParseServerUrl(url, &https, &e.host, &e.port));
    if (!c.endpoints_.empty() && https != was_https) {
      return absl::InvalidArgumentError("server list '" + base_url +
                                        "': mixes http:// and https:// servers");
    }
    c.endpoints_.push_back(std::move(e));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  c.host_ = c.endpoints_[0].host;
  c.port_ = c.endpoints_[0].port;
  if (c.endpoints_.size() > 1) c.current_ = SharedCurrent(base_url);
  c.token_ = token;
  c.ca_file_ = ca_file;
  if (!https) return c;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_verify_mode(ssl::verify_peer);
  beast::error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    std::error_code fec;
    if (!std::filesystem::is_regular_file(ca_file, fec)) {
      return absl::InvalidArgumentError("CA file " + ca_file + ": no such file");
    }
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) {
    return absl::InvalidArgumentError(
        "CA file " + (ca_file.empty() ? std::string("(system)") : ca_file) + ": " + ec.message());
  }
  c.tls_ = std::move(ctx);
  return c;
}

Status HttpClient::SetClientCertificate(const std::string& cert_pem, const std::string& key_pem) {
  if (!tls_) return absl::InvalidArgumentError("a client certificate needs an https:// server");
  beast::error_code ec;
  tls_->use_certificate_chain(asio::buffer(cert_pem), ec);
  if (!ec) tls_->use_private_key(asio::buffer(key_pem), ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError("client certificate: " + ec.message());
  if (SSL_CTX_check_private_key(tls_->native_handle()) != 1) {
    return absl::InvalidArgumentError("client certificate: the key does not match it");
  }
  return absl::OkStatus();
}

template <typename Fn>
auto HttpClient::WithConnection(const std::chrono::milliseconds* timeout, Fn fn)
    -> StatusOr<HttpResult> {
  const size_t n = endpoints_.size();
  const size_t start = current_ ? current_->load() % n : 0;
  std::string errors;
  for (size_t i = 0; i < n; ++i) {
    used_ = (start + i) % n;
    host_ = endpoints_[used_].host;
    port_ = endpoints_[used_].port;
    bool connected = false;
    auto r = WithEndpoint(timeout, fn, &connected);
    if (connected || n == 1) {
      if (connected && current_) current_->store(used_);
      return r;
    }
    errors += (errors.empty() ? "" : "; ") + std::string(r.status().message());
  }
  return absl::UnavailableError("no server of " + std::to_string(n) + " answered: " + errors);
}

// Connects (and for https completes a verified handshake), then runs fn(stream) on a
// beast::tcp_stream or an SSL stream over one.
template <typename Fn>
auto HttpClient::WithEndpoint(const std::chrono::milliseconds* timeout, Fn& fn, bool* connected)
    -> StatusOr<HttpResult> {
  const std::string where = host_ + ":" + port_;
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(host_, port_);
    if (!tls_) {
      beast::tcp_stream stream(io);
      if (timeout) stream.expires_after(*timeout);
      if (auto ec = Await(io, [&](auto done) { stream.async_connect(endpoints, done); })) {
        return absl::UnavailableError("cannot reach " + where + ": " + Describe(ec, timeout));
      }
      *connected = true;
      auto r = fn(stream, io);
      CloseSocket(stream);
      return r;
    }
    beast::ssl_stream<beast::tcp_stream> stream(io, *tls_);
    auto& low = beast::get_lowest_layer(stream);
    if (timeout) low.expires_after(*timeout);
    if (auto ec = Await(io, [&](auto done) { low.async_connect(endpoints, done); })) {
      return absl::UnavailableError("cannot reach " + where + ": " + Describe(ec, timeout));
    }
    SSL* ssl = stream.native_handle();
    // The certificate must name the host we dialled: an IP in an IP SAN, a name in a DNS SAN.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (IsIp(host_)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host_.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, host_.c_str(), host_.size());
    }
    beast::error_code ec =
        Await(io, [&](auto done) { stream.async_handshake(ssl::stream_base::client, done); });
    if (ec == beast::error::timeout) {
      return absl::UnavailableError("TLS handshake with " + where + ": " + Describe(ec, timeout));
    }
    if (ec) {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        return absl::UnavailableError(
            CertificateVerifyError(verify) + " (server " + where + ", trusting " +
            (ca_file_.empty() ? std::string("the system CAs; set a CA file") : ca_file_) + ")");
      }
      return absl::UnavailableError("TLS handshake with " + where + " failed: " + ec.message());
    }
    *connected = true;
    auto r = fn(stream, io);
    CloseSocket(low);
    return r;
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot reach " + where + ": " + e.what());
  }
}

StatusOr<HttpResult> HttpClient::Do(const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& content_type,
                                    const std::map<std::string, std::string>& headers) {
  auto r = DoOnce(method, target, body, content_type, headers);
  // A read cut off by a server that went away is safe to send to the next one.
  if (!r.ok() && r.status().code() == StatusCode::kUnavailable && current_ &&
      (method == "GET" || method == "HEAD")) {
    current_->store((used_ + 1) % endpoints_.size());
    return DoOnce(method, target, body, content_type, headers);
  }
  return r;
}

StatusOr<HttpResult> HttpClient::DoOnce(const std::string& method, const std::string& target,
                                        const std::string& body, const std::string& content_type,
                                        const std::map<std::string, std::string>& headers) {
  return WithConnection(&timeout_, [&](auto& stream, asio::io_context& io) -> StatusOr<HttpResult> {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, user_agent_);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    req.prepare_payload();
    beast::error_code write_ec =
        Await(io, [&](auto done) { http::async_write(stream, req, done); });
    // A server may answer (413, say) and stop reading before the body is sent: read its answer.
    // Beast reads at most the buffer's free space a call (64 KiB at most): a small buffer
    // makes a large answer thousands of 512-byte reads.
    beast::flat_buffer buffer;
    buffer.reserve(64 * 1024);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    beast::error_code read_ec =
        write_ec == beast::error::timeout
            ? write_ec
            : Await(io, [&](auto done) { http::async_read(stream, buffer, parser, done); });
    if (read_ec) {
      const auto& ec = write_ec && read_ec != beast::error::timeout ? write_ec : read_ec;
      return absl::UnavailableError("cannot reach " + host_ + ":" + port_ + ": " +
                                    Describe(ec, &timeout_));
    }
    HttpResult out;
    out.status = parser.get().result_int();
    out.body = std::move(parser.get().body());
    for (const auto& f : parser.get()) {
      std::string name(f.name_string());
      for (auto& ch : name) ch = static_cast<char>(tolower(ch));
      out.headers[name] = std::string(f.value());
    }
    return out;
  });
}

StatusOr<HttpResult> HttpClient::Stream(const std::string& target,
                                        const std::function<bool(const std::string&)>& on_line) {
  return WithConnection(&timeout_, [&](auto& stream, asio::io_context& io) -> StatusOr<HttpResult> {
    auto& low = beast::get_lowest_layer(stream);
    const std::string where = host_ + ":" + port_;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    low.expires_after(timeout_);
    if (auto ec = Await(io, [&](auto done) { http::async_write(stream, req, done); })) {
      return absl::UnavailableError("cannot reach " + where + ": " + Describe(ec, &timeout_));
    }
    beast::flat_buffer buffer;
    buffer.reserve(64 * 1024);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (auto ec =
            Await(io, [&](auto done) { http::async_read_header(stream, buffer, parser, done); })) {
      return absl::UnavailableError("cannot reach " + where + ": " + Describe(ec, &timeout_));
    }
    HttpResult out;
    out.status = parser.get().result_int();
    std::chrono::milliseconds idle = stream_idle_.value_or(std::chrono::milliseconds(0));
    if (!stream_idle_) {
      auto it = parser.get().find("Photon-Bookmark-Interval-Ms");
      if (it != parser.get().end()) {
        long every = std::strtol(std::string(it->value()).c_str(), nullptr, 10);
        if (every > 0) idle = std::chrono::milliseconds(3 * every);
      }
    }
    std::string pending;
    char buf[8192];
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      if (idle.count() > 0) {
        low.expires_after(idle);
      } else {
        low.expires_never();
      }
      // read_some, not read: read() would wait until the buffer fills or the stream ends.
      beast::error_code ec =
          Await(io, [&](auto done) { http::async_read_some(stream, buffer, parser, done); });
      if (ec == http::error::need_buffer) ec = {};
      if (ec == beast::error::timeout) {
        return absl::DeadlineExceededError("stream from " + where + ": nothing arrived within " +
                                           std::to_string(idle.count()) +
                                           " ms (the connection is presumed dead)");
      }
      if (ec) break;
      size_t n = sizeof buf - parser.get().body().size;
      if (out.status != 200) {
        out.body.append(buf, n);
        continue;
      }
      pending.append(buf, n);
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (!on_line(line)) return out;
      }
    }
    return out;
  });
}

}  // namespace photon
