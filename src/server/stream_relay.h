// The stream relay: `photon logs`, `photon exec` (docs/api.md "Streams"). A user's byte stream
// to a workload goes CLI -> photon-server -> the node's agent, over connections the CLI and
// the agent open themselves, so nothing listens on the node for users.
//
// A session is opened by a user (POST .../computeinstances/NAME/exec|logs) and kept here;
// the agent of the instance's node learns of it on its announcement stream
// (GET /v1/agent/sessions) and dials back: a stream of the user's input for it
// (GET /v1/agent/sessions/ID/input) and POSTs of output frames. The user reads the output
// frames from GET /v1/sessions/ID and POSTs input to /v1/sessions/ID/input. Frames are JSON
// lines: {"t":"out"|"err","d":BASE64}, {"t":"exit","code":N}, {"t":"error","message":…},
// {"t":"in","d":BASE64}, {"t":"eof"}, {"t":"cancel"}, {"t":"ping"}.
//
// Thread-safety: thread-safe; handlers run on the REST server's threads, a ticker thread
// pings quiet streams and ends sessions nobody took up.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http_server.h"
#include "server/auth.h"
#include "server/resource_manager.h"

namespace photon::server {

struct StreamRelayOptions {
  // A session the node's agent has not taken up by then (or whose user never read it) ends
  // with an error.
  std::chrono::milliseconds attach_timeout{30000};
  // A ping on every stream this often, so both ends see a dead connection (the header
  // Photon-Bookmark-Interval-Ms tells clients: they give up after three silent intervals).
  std::chrono::milliseconds ping_interval{10000};
  size_t max_backlog_bytes = 8 << 20;  // frames held for an end that has not attached yet
};

class StreamRelay {
 public:
  StreamRelay(ResourceManager* resources, StreamRelayOptions options = {});
  ~StreamRelay();

  // True for the relay's routes; the gateway hands those to Handle (unaudited per chunk: the
  // relay audits the opening of a session itself).
  static bool Owns(const std::string& path);
  HttpResponse Handle(HttpRequest& req, const Principal& who);

 private:
  struct Session;
  HttpResponse Open(HttpRequest& req, const Principal& who, const std::vector<std::string>& parts);
  StatusOr<std::shared_ptr<Session>> NewSession(const HttpRequest& req, const Principal& who,
                                                const std::string& ns, const std::string& name,
                                                const std::string& type);
  HttpResponse ClientOutput(const Principal& who, const std::string& id);
  HttpResponse ClientInput(const HttpRequest& req, const Principal& who, const std::string& id);
  HttpResponse AgentAnnouncements(const Principal& who);
  HttpResponse AgentInput(const Principal& who, const std::string& id);
  HttpResponse AgentOutput(const HttpRequest& req, const Principal& who, const std::string& id);
  std::shared_ptr<Session> Find(const std::string& id);
  void Announce(const std::shared_ptr<Session>& s);
  // Sends `last` to the user (if not empty), cancels the agent's side and forgets the session.
  // A session that ends before its user attached (a command that exits at once) keeps its
  // output until the user reads it or the attach timeout passes.
  void End(const std::shared_ptr<Session>& s, const std::string& last);
  void Tick();

  ResourceManager* resources_;
  StreamRelayOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::multimap<std::string, std::shared_ptr<ResponseStream>> agents_;  // node -> streams
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_ping_ = std::chrono::steady_clock::now();  // ticker's
  std::condition_variable cv_;
  std::thread ticker_;
};

}  // namespace photon::server
