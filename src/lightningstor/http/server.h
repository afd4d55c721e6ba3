// The HTTP/1.1 front of lightningstor (Boost.Beast, optionally TLS). One thread per connection
// with blocking I/O: request bodies are pulled from the socket only as fast as the handler
// consumes them (so uploads stream to disk), responses are written as they are produced, and
// a handler may block on disk or on the metadata group commit without stalling other
// connections. Handlers run concurrently on many threads. Start/Stop are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "lightningstor/http/message.h"

namespace photon::lightningstor::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  std::string tls_cert;  // PEM files; TLS when set
  std::string tls_key;
  int max_connections = 1024;
};

using Handler = std::function<Response(Request&)>;

class Server {
 public:
  virtual ~Server() = default;
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  virtual int port() const = 0;
  // Stops accepting, shuts connections down and waits for their threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace photon::lightningstor::http
