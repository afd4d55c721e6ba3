// A small HTTP/1.1 server (Boost.Beast underneath, hidden behind this header) shared by every
// daemon: the REST gateway, /healthz and /metrics, the flashdns API.
//
// Handlers run on the server's I/O threads: `threads` threads, each with its own io_context
// and its share of the connections. A handler may block a short while (a store read), which
// holds up that thread's other connections; one that would only wait (for a commit) returns
// HttpResponse::Later instead and answers from whichever thread learns the outcome.
// Long-lived responses (watch streams) return a `start_stream` callback instead of a body and
// then write chunks from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/hex.h"  // PercentEncode, which callers of PercentDecode use too
#include "common/status.h"

namespace photon {

// The certificate a client presented on a listener with tls_client_ca.
struct PeerCertificate {
  bool present = false;
  std::string verify_error;  // empty: it chains to tls_client_ca (and was valid at handshake)
  std::string common_name;
  std::string serial_hex;
  int64_t not_after_unix = 0;  // checked again per request: a connection outlives a handshake
};

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // raw request target
  std::string path;                            // percent-decoded path, no query
  std::map<std::string, std::string> query;    // percent-decoded query parameters
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string remote_address;
  PeerCertificate peer_cert;

  // Header value by lower-case name, or "" when absent.
  std::string Header(const std::string& lower_name) const;
};

// A response body written over time (chunked transfer encoding). Thread-safe.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues one chunk; false once the client has gone or Close() was called.
  virtual bool Write(std::string data) = 0;
  // Queues one chunk made of shared parts, sent without copying them (fan-out of the same
  // bytes to many streams).
  virtual bool WriteShared(std::vector<std::shared_ptr<const std::string>> parts) = 0;
  // Ends the response and closes the connection after queued chunks are sent.
  virtual void Close() = 0;
  virtual bool IsOpen() const = 0;
  // Called once, on any thread, when the stream ends for any reason.
  virtual void SetOnClose(std::function<void()> on_close) = 0;
};

struct HttpResponse;
// Sends the answer of a deferred request. Call it once, from any thread; later calls are
// ignored.
using HttpReply = std::function<void(HttpResponse)>;

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
  // When set, the server sends the head and hands the stream to this callback.
  std::function<void(std::shared_ptr<ResponseStream>)> start_stream;
  // When set, the answer comes later: once the handler has returned, the server calls this
  // with the HttpReply that sends it. No thread waits meanwhile; the connection already reads
  // the client's next request, which is served after this answer. Stop() waits for deferred
  // answers still owed (the work behind them must still be running then).
  std::function<void(HttpReply)> later;

  static HttpResponse Json(int status, std::string body);
  static HttpResponse Text(int status, std::string body);
  static HttpResponse Later(std::function<void(HttpReply)> start);
};

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one
  int threads = 4;
  size_t max_body_bytes = 4 << 20;  // larger bodies get 413 and are never read whole
  std::string name = "http";        // for logs
  // PEM certificate chain and private key: when set, the listener speaks HTTPS only
  // (TLS 1.2+); a plain HTTP request on it fails the handshake and is closed.
  std::string tls_cert;
  std::string tls_key;
  // PEM CA file: when set (with tls_cert), the listener asks clients for a certificate and
  // checks it against this CA. A client without one still connects; a certificate that does
  // not verify does not fail the handshake either, so the handler can answer why
  // (HttpRequest::peer_cert).
  std::string tls_client_ca;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                     HttpHandler handler);
  virtual int port() const = 0;
  // Stops accepting, closes connections and joins the threads. Idempotent.
  virtual void Stop() = 0;
};

// Splits "host:port" or "[v6]:port"; the port must be 0..65535.
Status ParseHostPort(const std::string& hostport, std::string* host, int* port);

std::string PercentDecode(const std::string& s);

// The non-empty segments of a request path: "/v1/ns//x/" -> {"v1", "ns", "x"}.
std::vector<std::string> SplitPath(const std::string& path);

}  // namespace photon
