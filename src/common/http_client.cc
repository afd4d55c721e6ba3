#include "common/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <limits>

namespace photon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

StatusOr<HttpClient> HttpClient::Create(const std::string& base_url, const std::string& token) {
  std::string rest = base_url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    return absl::UnimplementedError("https:// URLs are not supported yet: " + base_url);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("server URL '" + base_url + "': want http://HOST:PORT");
  }
  HttpClient c;
  c.host_ = rest.substr(0, colon);
  c.port_ = rest.substr(colon + 1);
  c.token_ = token;
  return c;
}

StatusOr<HttpResult> HttpClient::Do(const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& content_type,
                                    const std::map<std::string, std::string>& headers) {
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(timeout_);
    stream.connect(resolver.resolve(host_, port_));
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
    beast::error_code write_ec;
    http::write(stream, req, write_ec);
    // A server may answer (413, say) and stop reading before the body is sent: read its answer.
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    beast::error_code read_ec;
    http::read(stream, buffer, parser, read_ec);
    if (read_ec) {
      return absl::UnavailableError("cannot reach " + host_ + ":" + port_ + ": " +
                                    (write_ec ? write_ec.message() : read_ec.message()));
    }
    HttpResult out;
    out.status = parser.get().result_int();
    out.body = parser.get().body();
    for (const auto& f : parser.get()) {
      std::string name(f.name_string());
      for (auto& ch : name) ch = static_cast<char>(tolower(ch));
      out.headers[name] = std::string(f.value());
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot reach " + host_ + ":" + port_ + ": " + e.what());
  }
}

StatusOr<HttpResult> HttpClient::Stream(const std::string& target,
                                        const std::function<bool(const std::string&)>& on_line) {
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.connect(resolver.resolve(host_, port_));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(stream, buffer, parser);
    HttpResult out;
    out.status = parser.get().result_int();
    std::string pending;
    char buf[8192];
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      beast::error_code ec;
      // read_some, not read: read() would wait until the buffer fills or the stream ends.
      http::read_some(stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
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
  } catch (const std::exception& e) {
    return absl::UnavailableError("cannot reach " + host_ + ":" + port_ + ": " + e.what());
  }
}

}  // namespace photon
