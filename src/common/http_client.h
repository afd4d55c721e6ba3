// A small blocking HTTP/1.1 client (Boost.Beast underneath) shared by the CLI, the agent, the
// server's service providers and the tests. One connection per call; every call is bounded
// by the client's timeout. One object per thread; not thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace boost::asio::ssl {
class context;
}

namespace photon {

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

class HttpClient {
 public:
  // base_url: "http://host:port" or "https://host:port". For https the server's certificate
  // must chain to a CA in `ca_file` (PEM), or to the system's CAs when it is empty, and name
  // the host; there is no way to skip the check.
  //
  // Several servers (one control plane, docs/ha.md): a comma-separated list
  // "http://a:8080,http://b:8080" (an entry without a scheme takes the first entry's; all
  // must share it). A call goes to the server that last answered and moves on to the next
  // one that can be reached when a server cannot be connected to; a GET or HEAD whose server
  // went away mid-answer is sent again to the next. Other calls cut off mid-answer are not
  // repeated (they may have been applied): UNAVAILABLE. The choice is shared by every client
  // made with the same base_url in the process.
  static StatusOr<HttpClient> Create(const std::string& base_url, const std::string& token,
                                     const std::string& ca_file = "");
  // https only: shows this client certificate (PEM, with its PEM key) in every handshake of
  // this client and its copies (agents: docs/security.md "Agent certificates").
  Status SetClientCertificate(const std::string& cert_pem, const std::string& key_pem);
  // Bounds connect + request + response of Do(); streams are unbounded (watches).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // Overrides the stream idle timeout (0: never).
  void set_stream_idle_timeout(std::chrono::milliseconds timeout) { stream_idle_ = timeout; }
  void set_user_agent(const std::string& user_agent) { user_agent_ = user_agent; }
  // `headers` are set after the client's own and replace them (a signed request sets Host).
  StatusOr<HttpResult> Do(const std::string& method, const std::string& target,
                          const std::string& body = "",
                          const std::string& content_type = "application/json",
                          const std::map<std::string, std::string>& headers = {});
  // Streams a chunked response line by line; on_line returns false to stop. Returns the
  // status when the server answered with something other than 200 (and the body), or when
  // the stream ended. A read deadline guards against a connection that died without a FIN or
  // RST (a peer or NAT that silently dropped it): the answer head must come within the
  // client's timeout, and once streaming, DEADLINE_EXCEEDED ends a stream on which nothing
  // arrived for the stream idle timeout — by default three of the intervals the server
  // announces in Photon-Bookmark-Interval-Ms (the watch bookmarks), else none.
  StatusOr<HttpResult> Stream(const std::string& target,
                              const std::function<bool(const std::string& line)>& on_line);

 private:
  StatusOr<HttpResult> DoOnce(const std::string& method, const std::string& target,
                              const std::string& body, const std::string& content_type,
                              const std::map<std::string, std::string>& headers);
  struct Endpoint {
    std::string host;
    std::string port;
  };
  // Runs fn over a connection to the first endpoint (from the current one on) that connects.
  template <typename Fn>
  auto WithConnection(const std::chrono::milliseconds* timeout, Fn fn) -> StatusOr<HttpResult>;
  // The same on host_:port_; *connected tells whether fn ran.
  template <typename Fn>
  auto WithEndpoint(const std::chrono::milliseconds* timeout, Fn& fn, bool* connected)
      -> StatusOr<HttpResult>;

  std::vector<Endpoint> endpoints_;
  std::shared_ptr<std::atomic<size_t>> current_;  // index into endpoints_, shared (see above)
  size_t used_ = 0;                               // the endpoint the last call connected to
  std::string host_;
  std::string port_;
  std::string token_;
  std::chrono::milliseconds timeout_{60000};
  std::optional<std::chrono::milliseconds> stream_idle_;
  std::string user_agent_ = "photon-cli";
  std::string ca_file_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // set for https://, shared by copies
};

}  // namespace photon
