// The agent's side of `photon logs`, `photon exec` and `photon console` (docs/api.md
// "Streams"): it follows the
// server's announcements of sessions for its node (GET /v1/agent/sessions) and serves each on
// a thread of its own, dialling back over its authenticated channel: the user's input as a
// stream (GET /v1/agent/sessions/ID/input), output as POSTed frames. No port is opened on the
// node. The server only announces sessions of instances placed on this node, and refuses
// (404) this node's attach to anyone else's.
// Thread-safety: Run once on a thread of its own; the destructor stops the sessions.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "agent/api_client.h"

namespace photon::agent {

class SessionRunner {
 public:
  SessionRunner(ApiClient* api, std::string data_dir) : api_(api), data_dir_(std::move(data_dir)) {}
  // Kills the commands still running and waits (a few seconds at most) for their threads.
  ~SessionRunner();

  // Follows the announcements until *stop, reconnecting after a failure.
  void Run(const std::atomic<bool>* stop);

  struct Live;  // one session being served

 private:
  void Serve(const nlohmann::json& announcement);
  void Exec(const nlohmann::json& a, Live* live);
  void Logs(const nlohmann::json& a, Live* live);
  // Connects to the VM's serial socket and relays it both ways until the user detaches (the
  // session is cancelled) or QEMU closes it. One console per VM at a time: QEMU serves one
  // client and would leave a second waiting silently.
  void Console(const nlohmann::json& a, Live* live);
  // POSTs frames to the session, returning once the server lets the output go on (it holds
  // the answer while the user is a window behind); false once the server no longer has it.
  bool Send(const std::string& id, nlohmann::json frames);

  ApiClient* api_;
  std::string data_dir_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<Live*> live_;
  std::set<std::string> consoles_;  // instance ids with an attached console
  bool stopping_ = false;
};

}  // namespace photon::agent
