// The HTTP request/response model between the Beast connection code (http/server.cc) and the
// S3 service. Bodies are streamed both ways: a request body is pulled through BodyReader as it
// arrives from the socket; a response body is either a string or a producer that pushes bytes
// into a sink (so a 64 MiB GET never sits in memory). One Request/Response pair belongs to one
// connection thread; nothing here is shared.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace photon::lightningstor::http {

// Pulls request body bytes. Read returns 0 at the end of the body.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

struct Request {
  std::string method;
  std::string target;                                        // raw request target
  std::string raw_path;                                      // still percent-encoded
  std::string path;                                          // percent-decoded
  std::string raw_query;                                     // after '?', still encoded
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names, in order
  std::optional<uint64_t> content_length;
  bool chunked = false;  // Transfer-Encoding: chunked
  bool tls = false;
  std::string remote;
  BodyReader* body = nullptr;

  // First header with this lower-case name, or "".
  const std::string& Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // Query parameter (decoded), or nullptr when absent.
  const std::string* Query(std::string_view name) const;
  bool HasQuery(std::string_view name) const { return Query(name) != nullptr; }
};

// Receives response body bytes; returns an error when the client has gone.
using BodySink = std::function<Status(const char* data, size_t n)>;
// Sends bytes [offset, offset+n) of an open file as response body without copying them
// through user space (sendfile). Offered on plain TCP connections only.
using FileSink = std::function<Status(int fd, uint64_t offset, uint64_t n)>;

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the body is produced by `stream` and is exactly `stream_length` bytes; an error
  // from `stream` after the head has gone out aborts the connection, so the client sees a
  // truncated body and never silently wrong bytes.
  std::optional<uint64_t> stream_length;
  // `file` is null where the body cannot be sent from a file directly (TLS).
  std::function<Status(const BodySink& bytes, const FileSink* file)> stream;
  // HEAD responses carry Content-Length without a body.
  bool head_only = false;
  uint64_t head_length = 0;
  bool close = false;

  void AddHeader(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

std::string PercentDecode(std::string_view s, bool plus_is_space);
// Fills raw_path, path, raw_query and query from target.
void ParseTarget(Request& req);

}  // namespace photon::lightningstor::http
