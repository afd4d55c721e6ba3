// The stream relay: `photon logs`, `photon exec`, `photon console` (docs/api.md "Streams").
// A user's byte stream to a workload goes CLI -> photon-server -> the node's agent, over
// connections the CLI and the agent open themselves, so nothing listens on the node for users.
//
// A session is opened by a user (POST .../computeinstances/NAME/exec|logs|console) and kept
// here; the agent of the instance's node learns of it on its announcement stream
// (GET /v1/agent/sessions) and dials back: a stream of the user's input for it
// (GET /v1/agent/sessions/ID/input) and POSTs of output frames. The user reads the output
// frames from GET /v1/sessions/ID and POSTs input to /v1/sessions/ID/input. Frames are JSON
// lines: {"t":"out"|"err","d":BASE64}, {"t":"exit","code":N}, {"t":"error","message":…},
// {"t":"in","d":BASE64}, {"t":"eof"}, {"t":"resize","rows":R,"cols":C}, {"t":"cancel"},
// {"t":"ping"}, the user's {"t":"ack","n":BYTES} (output written out: flow control, the
// agent's output POST waits while more than a window is unacknowledged) and the agent's
// {"t":"ack","n":BYTES} (input written to the workload: the user's input POST waits while an
// input window is unacknowledged, so input the workload does not read is held back, not
// buffered here without bound).
//
// Thread-safety: thread-safe; handlers run on the REST server's threads, a ticker thread
// pings quiet streams, answers long-held output POSTs and ends sessions nobody took up.
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
  size_t max_backlog_bytes = 8 << 20;  // input frames held for an agent not attached yet
  // Output flow control: at most this many data bytes sent to (or kept for) the user and not
  // acknowledged by it ({"t":"ack","n":N} on the input) before the agent's output POST is held.
  uint64_t window_bytes = 1 << 20;
  // Input flow control: at most this many input bytes sent towards the workload and not
  // acknowledged by the agent (written to the command's stdin or the VM's serial socket);
  // the user's input POST that reaches it is held, a further one refused (429).
  uint64_t input_window_bytes = 256 << 10;
  // A held output (or input) POST is answered {"paused":true} after this; its sender POSTs
  // {"frames":[]} to wait on.
  std::chrono::milliseconds max_hold{2000};
};

class StreamRelay {
 public:
  // `auth` (may be null in tests) ends a session when its opener's token is revoked.
  StreamRelay(ResourceManager* resources, Authenticator* auth, StreamRelayOptions options = {});
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
  // Keeps the agent's output POST unanswered while the user is a window behind.
  void Hold(const std::shared_ptr<Session>& s, HttpReply reply);
  // Keeps the user's input POST unanswered while the workload is an input window behind.
  void HoldInput(const std::shared_ptr<Session>& s, HttpReply reply);
  void Tick();

  ResourceManager* resources_;
  Authenticator* auth_;
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
