// An asynchronous HTTP/1.1 client for photon-hollow, where one process speaks for thousands of
// nodes: unary calls share a few keep-alive connections (a queue in front of them), and each
// watch stream has a connection of its own whose newline-delimited lines are handed over as
// they arrive. No thread waits on a socket; everything runs on one io_context.
// Plain http:// only (Create refuses https://, which hollow fleets on a test machine never need).
// Thread-safety: none. Every call, and every callback, runs on the io_context's one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace photon::hollow {

// An answer: status 0 means the transport failed (then `error` says how).
struct Reply {
  int status = 0;
  std::string body;
  std::string error;
};

// A running watch; Cancel() closes it without calling its on_end.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
  virtual void Cancel() = 0;
};

class AsyncHttp {
 public:
  using Callback = std::function<void(Reply)>;
  // on_line gets each non-empty line; returning false ends the stream (on_end is then called
  // with status 200).
  using LineCallback = std::function<bool(std::string_view line)>;

  // base_url: http://HOST:PORT. connections: keep-alive connections for unary calls.
  static StatusOr<std::unique_ptr<AsyncHttp>> Create(boost::asio::io_context* io,
                                                     const std::string& base_url, int connections);
  ~AsyncHttp();

  // Queues one call; `cb` runs once with the answer. `token` goes out as a Bearer token.
  void Call(std::string method, std::string target, std::string token, std::string body,
            Callback cb);
  // Opens a watch stream. on_end runs once, when the stream ends or fails (not after Cancel).
  std::shared_ptr<WatchHandle> Watch(std::string target, std::string token, LineCallback on_line,
                                     Callback on_end);

  size_t queued() const { return queue_.size(); }

 private:
  struct Request;
  struct Conn;
  AsyncHttp(boost::asio::io_context* io, std::string host, boost::asio::ip::tcp::endpoint endpoint);
  void Pump();
  void Send(const std::shared_ptr<Conn>& conn, std::shared_ptr<Request> req);
  void Finish(const std::shared_ptr<Conn>& conn, std::shared_ptr<Request> req, Reply reply,
              bool reusable);

  boost::asio::io_context* io_;
  std::string host_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::deque<std::shared_ptr<Request>> queue_;
};

}  // namespace photon::hollow
