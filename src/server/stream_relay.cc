#include "server/stream_relay.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/instance_driver.h"
#include "common/util.h"
#include "photon/compute.pb.h"
#include "server/object_util.h"
#include "server/rest_gateway.h"

namespace photon::server {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct StreamRelay::Session {
  std::string id, node, owner, owner_token, ns, name;
  json announcement;  // what the agent is told
  Clock::time_point created = Clock::now();
  std::mutex mu;
  bool ended = false;
  bool announced = false;
  uint64_t cut_id = 0;  // the Authenticator's registration for its opener's token (0: none)
  std::shared_ptr<ResponseStream> user;   // the user's output stream, once attached
  std::shared_ptr<ResponseStream> agent;  // the agent's input stream, once attached
  std::vector<std::string> user_backlog, agent_backlog;
  size_t agent_bytes = 0;
  // Flow control of the output: data bytes sent to (or kept for) the user and not yet
  // acknowledged by it. Past the window the agent's output POST is held (`held`), so the
  // agent stops reading its command, which blocks on its full pipe.
  uint64_t unacked = 0;
  HttpReply held;
  Clock::time_point held_at;
  // Flow control of the input: data bytes sent towards the workload and not yet acknowledged
  // by the agent (written out). Past the input window the user's input POST is held
  // (`in_held`), so the client sends no more; a client that sends more anyway is refused.
  uint64_t in_unacked = 0;
  HttpReply in_held;
  Clock::time_point in_held_at;
};

namespace {

const std::string kPing = "{\"t\":\"ping\"}\n";

std::string Line(const json& frame) { return frame.dump() + "\n"; }
std::string ErrorFrame(const std::string& message) {
  return Line({{"t", "error"}, {"message", message}});
}

HttpResponse NdjsonStream(std::chrono::milliseconds ping,
                          std::function<void(std::shared_ptr<ResponseStream>)> start) {
  HttpResponse r;
  r.content_type = "application/x-ndjson";
  r.headers.push_back({"Photon-Bookmark-Interval-Ms", std::to_string(ping.count())});
  r.start_stream = std::move(start);
  return r;
}

struct Frame {
  std::string type;
  std::string line;  // re-rendered, as passed on
  size_t data = 0;   // out, err, in: bytes of data
  uint64_t ack = 0;  // ack: output bytes the user has written out
};

// A window size in a tty request or a resize frame: 1..65535 like struct winsize.
bool ValidSize(const json& v) {
  return v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= 65535;
}

// {"frames":[…]} of the types `allowed`, each checked.
StatusOr<std::vector<Frame>> ParseFrames(const std::string& body,
                                         const std::vector<std::string>& allowed) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("frames") || !j["frames"].is_array()) {
    return absl::InvalidArgumentError("want {\"frames\":[{\"t\":…},…]}");
  }
  std::vector<Frame> frames;
  for (const auto& f : j["frames"]) {
    Frame frame;
    frame.type = f.is_object() ? f.value("t", "") : "";
    const std::string& t = frame.type;
    if (std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
      return absl::InvalidArgumentError("frame type '" + t + "' is not accepted here");
    }
    std::string data;
    if ((t == "out" || t == "err" || t == "in") &&
        !(f.contains("d") && f["d"].is_string() &&
          Base64Decode(f["d"].get<std::string>(), &data))) {
      return absl::InvalidArgumentError("frame '" + t + "': d (base64) required");
    }
    if (t == "ack" && !(f.contains("n") && f["n"].is_number_unsigned())) {
      return absl::InvalidArgumentError("frame 'ack': n (bytes written out, ≥ 0) required");
    }
    if (t == "resize" && !(f.contains("rows") && ValidSize(f["rows"]) && f.contains("cols") &&
                           ValidSize(f["cols"]))) {
      return absl::InvalidArgumentError("frame 'resize': rows and cols (1..65535) required");
    }
    frame.data = data.size();
    if (t == "ack") frame.ack = f["n"].get<uint64_t>();
    frame.line = Line(f);
    frames.push_back(std::move(frame));
  }
  return frames;
}

// Sends `line` on `stream`, or keeps it until the stream is there.
void Deliver(const std::shared_ptr<ResponseStream>& stream, std::vector<std::string>* backlog,
             std::string line) {
  if (stream) {
    stream->Write(std::move(line));
  } else {
    backlog->push_back(std::move(line));
  }
}

// The body of an exec or logs request, checked field by field (nothing is ignored).
StatusOr<json> ParseRequest(const std::string& type, const std::string& body) {
  auto j = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (!j.is_object()) return absl::InvalidArgumentError("malformed JSON: want an object");
  json out = json::object();
  for (auto& [k, v] : j.items()) {
    if (type == "exec" && k == "command" && v.is_array() && !v.empty()) {
      for (const auto& a : v) {
        if (!a.is_string()) return absl::InvalidArgumentError("command: want strings");
      }
      out[k] = v;
    } else if (type == "exec" && k == "tty" && v.is_boolean()) {
      out[k] = v;
    } else if (type == "exec" && (k == "rows" || k == "cols") && ValidSize(v)) {
      out[k] = v;
    } else if (type == "logs" && k == "follow" && v.is_boolean()) {
      out[k] = v;
    } else if (type == "logs" && k == "tail" && v.is_number_integer() && v.get<int64_t>() >= 0) {
      out[k] = v;
    } else if (type == "console" && (k == "rows" || k == "cols")) {
      // A serial line has no window size: the guest's own stty decides.
      return absl::InvalidArgumentError(k + ": a serial console has no window size");
    } else if (type == "logs" && k == "sinceSeconds") {
      // output.log holds what the workload wrote, without a time per line.
      return absl::InvalidArgumentError(
          "sinceSeconds: the node's instance logs carry no time stamps, so --since cannot be "
          "honoured; use --tail");
    } else {
      return absl::InvalidArgumentError("field '" + k + "': unknown or of the wrong type");
    }
  }
  if (type == "exec" && !out.contains("command")) {
    return absl::InvalidArgumentError("command: required (a non-empty argv)");
  }
  if ((out.contains("rows") || out.contains("cols")) && !out.value("tty", false)) {
    return absl::InvalidArgumentError("rows, cols: a window size needs tty: true");
  }
  return out;
}

// What a user may open on this instance: exec needs a running process or container, console
// a running VM.
Status CheckTarget(const compute::ComputeInstance& ci, const std::string& type) {
  const std::string where = ci.metadata().namespace_() + "/" + ci.metadata().name();
  if (ci.metadata().agent_id().empty()) {
    return absl::FailedPreconditionError(where + " is not placed on a node yet");
  }
  if (type == "logs") return absl::OkStatus();
  std::string driver = DriverOf(ci);
  if (type == "exec" && driver != "process" && driver != "container") {
    return absl::InvalidArgumentError("exec runs in process and container instances; " + where +
                                      " is a " + driver + " (its console: photon console)");
  }
  if (type == "console" && driver != "vm") {
    return absl::InvalidArgumentError("console attaches to a VM's serial line; " + where +
                                      " is a " + driver + " (a shell in it: photon exec -it)");
  }
  if (ci.status().phase() != resource::ResourceStatus::RUNNING) {
    return absl::FailedPreconditionError(where + " is " +
                                         resource::ResourceStatus::Phase_Name(ci.status().phase()) +
                                         ", not RUNNING");
  }
  return absl::OkStatus();
}

}  // namespace

StreamRelay::StreamRelay(ResourceManager* resources, Authenticator* auth,
                         StreamRelayOptions options)
    : resources_(resources), auth_(auth), options_(options) {
  ticker_ = std::thread([this] {
    SetThreadName("stream-relay");
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(500));
      if (stopping_) break;
      lock.unlock();
      Tick();
      lock.lock();
    }
  });
}

StreamRelay::~StreamRelay() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  ticker_.join();
  for (auto& [id, s] : sessions_) {
    // A revocation after this must not call into a relay that is gone.
    if (auth_ && s->cut_id != 0) auth_->ForgetStream(s->cut_id);
    for (HttpReply* r : {&s->held, &s->in_held}) {
      if (*r) (*r)(ErrorResponse(absl::UnavailableError("the server is stopping")));
    }
  }
}

bool StreamRelay::Owns(const std::string& path) {
  auto p = SplitPath(path);
  if (p.size() >= 3 && p[0] == "v1" &&
      (p[1] == "sessions" || (p[1] == "agent" && p[2] == "sessions")))
    return true;
  return p.size() == 6 && p[0] == "v1" && p[1] == "namespaces" && p[3] == "computeinstances" &&
         (p[5] == "exec" || p[5] == "logs" || p[5] == "console");
}

HttpResponse StreamRelay::Handle(HttpRequest& req, const Principal& who) {
  auto p = SplitPath(req.path);
  const std::string& m = req.method;
  if (p[1] == "namespaces" && m == "POST") return Open(req, who, p);
  if (p[1] == "sessions" && p.size() == 3 && m == "GET") return ClientOutput(who, p[2]);
  if (p[1] == "sessions" && p.size() == 4 && p[3] == "input" && m == "POST") {
    return ClientInput(req, who, p[2]);
  }
  if (p[1] == "agent" && p.size() == 3 && m == "GET") return AgentAnnouncements(who);
  if (p[1] == "agent" && p.size() == 5 && p[4] == "input" && m == "GET") {
    return AgentInput(who, p[3]);
  }
  if (p[1] == "agent" && p.size() == 5 && p[4] == "output" && m == "POST") {
    return AgentOutput(req, who, p[3]);
  }
  return ErrorResponse(absl::NotFoundError("no route for " + m + " " + req.path));
}

HttpResponse StreamRelay::Open(HttpRequest& req, const Principal& who,
                               const std::vector<std::string>& p) {
  const std::string &ns = p[2], &name = p[4], &type = p[5];
  auto s = NewSession(req, who, ns, name, type);
  resources_->AuditCall(who, type, "computeinstances/" + ns + "/" + name,
                        s.ok() ? 201 : HttpStatusFromCode(s.status().code()));
  if (!s.ok()) return ErrorResponse(s.status());
  {
    std::lock_guard lock(mu_);
    sessions_[(*s)->id] = *s;
  }
  if (auth_) {
    // As for watches: revoking the opener's token ends the session at once, saying why (the
    // token is checked on each request, but a stream already open would run on).
    uint64_t cut = auth_->CutOnRevocation(
        who, [this, weak = std::weak_ptr<Session>(*s)](const std::string& why) {
          auto session = weak.lock();
          if (!session) return;
          {
            std::lock_guard lock(session->mu);
            session->cut_id = 0;  // the Authenticator forgot it already
          }
          End(session, ErrorFrame("the session ended: " + why));
        });
    std::lock_guard lock((*s)->mu);
    if (!(*s)->ended) (*s)->cut_id = cut;
  }
  Announce(*s);
  spdlog::info("session {}: {} {}/{} on node {} for {}", (*s)->id, type, ns, name, (*s)->node,
               who.name);
  return HttpResponse::Json(201, json{{"session", (*s)->id},
                                      {"output", "/v1/sessions/" + (*s)->id},
                                      {"input", "/v1/sessions/" + (*s)->id + "/input"},
                                      {"window", options_.window_bytes},
                                      {"inputWindow", options_.input_window_bytes}}
                                     .dump());
}

StatusOr<std::shared_ptr<StreamRelay::Session>> StreamRelay::NewSession(const HttpRequest& req,
                                                                        const Principal& who,
                                                                        const std::string& ns,
                                                                        const std::string& name,
                                                                        const std::string& type) {
  PHOTON_RETURN_IF_ERROR(ValidateName("namespace", ns));
  PHOTON_RETURN_IF_ERROR(ValidateName("name", name));
  if (!who.AgentNode().empty()) {
    return absl::PermissionDeniedError("agents take sessions; they do not open them");
  }
  // Whoever may not read the namespace learns nothing about what is in it.
  if (!who.Allowed(Verb::kGet, "computeinstances", ns)) {
    return absl::NotFoundError("computeinstances " + ns + "/" + name + " not found");
  }
  // A console's input is as powerful as a command in the instance.
  if (type != "logs" && !who.Allowed(Verb::kAction, "computeinstances", ns)) {
    return absl::PermissionDeniedError(type + " in " + ns + "/" + name +
                                       " needs the right to run actions on computeinstances in " +
                                       ns + " (editor)");
  }
  PHOTON_ASSIGN_OR_RETURN(json body, ParseRequest(type, req.body));
  PHOTON_ASSIGN_OR_RETURN(ConstMessagePtr obj,
                          resources_->Get(who, *FindKind("computeinstances"), ns, name));
  const auto* ci = dynamic_cast<const compute::ComputeInstance*>(obj.get());
  if (ci == nullptr) return absl::InternalError("computeinstances: unexpected message type");
  PHOTON_RETURN_IF_ERROR(CheckTarget(*ci, type));
  auto s = std::make_shared<Session>();
  s->id = RandomHex(16);
  s->node = ci->metadata().agent_id();
  s->owner = who.name;
  s->owner_token = who.token_id;
  s->ns = ns;
  s->name = name;
  body["id"] = s->id;
  body["type"] = type;
  // The agent acknowledges written input every quarter input window, not every frame (a POST
  // each): what it has written and not yet acknowledged stays below a quarter window, so a held
  // input POST is always released once the workload reads.
  body["inputAckBytes"] = std::max<uint64_t>(options_.input_window_bytes / 4, 1);
  body["instance"] = {
      {"namespace", ns}, {"name", name}, {"id", ci->metadata().id()}, {"driver", DriverOf(*ci)}};
  s->announcement = std::move(body);
  return s;
}

std::shared_ptr<StreamRelay::Session> StreamRelay::Find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

// Tells every announcement stream of the session's node (normally one: its agent).
void StreamRelay::Announce(const std::shared_ptr<Session>& s) {
  std::vector<std::shared_ptr<ResponseStream>> streams;
  {
    std::lock_guard lock(mu_);
    auto [b, e] = agents_.equal_range(s->node);
    for (auto it = b; it != e; ++it) streams.push_back(it->second);
  }
  std::lock_guard lock(s->mu);
  if (s->announced || s->ended) return;
  for (auto& st : streams) s->announced = st->Write(Line(s->announcement)) || s->announced;
}

void StreamRelay::End(const std::shared_ptr<Session>& s, const std::string& last) {
  uint64_t cut = 0;
  bool unread = false;
  HttpReply held, in_held;
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return;
    s->ended = true;
    unread = !s->user;
    std::swap(cut, s->cut_id);
    std::swap(held, s->held);
    std::swap(in_held, s->in_held);
    if (s->agent) {
      s->agent->Write(Line({{"t", "cancel"}}));
      s->agent->Close();
    }
    if (!s->user) {  // kept for ClientOutput (or Tick) to deliver and forget
      if (!last.empty()) s->user_backlog.push_back(last);
    } else {
      if (!last.empty()) s->user->Write(last);
      s->user->Close();
    }
  }
  if (cut != 0 && auth_) auth_->ForgetStream(cut);
  for (HttpReply* r : {&held, &in_held}) {
    if (*r) (*r)(ErrorResponse(absl::NotFoundError("session " + s->id + " has ended")));
  }
  if (unread) return;
  std::lock_guard lock(mu_);
  sessions_.erase(s->id);
}

HttpResponse StreamRelay::ClientOutput(const Principal& who, const std::string& id) {
  auto s = Find(id);
  if (!s || s->owner != who.name || s->owner_token != who.token_id) {
    return ErrorResponse(absl::NotFoundError("session " + id + " not found"));
  }
  std::lock_guard lock(s->mu);
  if (s->user) {
    return ErrorResponse(absl::AlreadyExistsError("session " + id + " is already being read"));
  }
  return NdjsonStream(options_.ping_interval, [this, s](std::shared_ptr<ResponseStream> stream) {
    bool ended;
    {
      std::lock_guard lock(s->mu);
      ended = s->ended;
      s->user = stream;
      for (auto& l : s->user_backlog) stream->Write(std::move(l));
      s->user_backlog.clear();
    }
    if (ended) {  // it ended before this reader came: its whole output was just sent
      stream->Close();
      std::lock_guard lock(mu_);
      sessions_.erase(s->id);
      return;
    }
    // The user went away (Ctrl-C): the agent stops the command or the follow.
    stream->SetOnClose([this, s] { End(s, ""); });
  });
}

HttpResponse StreamRelay::ClientInput(const HttpRequest& req, const Principal& who,
                                      const std::string& id) {
  auto s = Find(id);
  if (!s || s->owner != who.name || s->owner_token != who.token_id) {
    return ErrorResponse(absl::NotFoundError("session " + id + " not found"));
  }
  auto frames = ParseFrames(req.body, {"in", "eof", "ack", "resize"});
  if (!frames.ok()) return ErrorResponse(frames.status());
  uint64_t in_bytes = 0;
  for (const auto& f : *frames) in_bytes += f.type == "in" ? f.data : 0;
  HttpReply release;
  bool wait = false;
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return ErrorResponse(absl::NotFoundError("session " + id + " has ended"));
    // Refusals come before anything of the POST is taken: it is all or nothing.
    const uint64_t window = options_.input_window_bytes;
    if (in_bytes > 0 && s->in_unacked >= window) {
      return ErrorResponse(absl::ResourceExhaustedError(
          "session " + id + ": the workload has not read the " + std::to_string(s->in_unacked) +
          " bytes of input before (input window " + std::to_string(window) +
          "): wait for the answer to the earlier input POST"));
    }
    // An input POST (or an empty one, to wait on) is answered once the workload is less than
    // an input window behind.
    wait = (in_bytes > 0 || frames->empty()) && s->in_unacked + in_bytes >= window;
    if (wait && s->in_held) {
      return ErrorResponse(absl::ResourceExhaustedError(
          "session " + id + ": an input POST is already waiting for the workload (one at a time)"));
    }
    s->in_unacked += in_bytes;
    for (auto& f : *frames) {
      if (f.type == "ack") {
        s->unacked -= std::min(f.ack, s->unacked);
        continue;
      }
      if (!s->agent) {
        s->agent_bytes += f.line.size();
        if (s->agent_bytes > options_.max_backlog_bytes) {
          return ErrorResponse(
              absl::ResourceExhaustedError("session " + id + ": the node has not taken the input"));
        }
      }
      Deliver(s->agent, &s->agent_backlog, std::move(f.line));
    }
    if (s->held && s->unacked <= options_.window_bytes) std::swap(release, s->held);
  }
  if (release) release(HttpResponse::Json(200, "{}"));  // the agent reads on
  if (wait)
    return HttpResponse::Later([this, s](HttpReply reply) { HoldInput(s, std::move(reply)); });
  return HttpResponse::Json(200, "{}");
}

HttpResponse StreamRelay::AgentAnnouncements(const Principal& who) {
  const std::string node = who.AgentNode();
  if (node.empty()) {
    return ErrorResponse(absl::PermissionDeniedError("only node agents take sessions"));
  }
  return NdjsonStream(options_.ping_interval, [this, node](std::shared_ptr<ResponseStream> stream) {
    std::vector<std::shared_ptr<Session>> waiting;
    {
      std::lock_guard lock(mu_);
      agents_.emplace(node, stream);
      for (auto& [id, s] : sessions_) {
        if (s->node == node) waiting.push_back(s);
      }
    }
    for (auto& s : waiting) Announce(s);
    stream->SetOnClose([this, node, raw = stream.get()] {
      std::lock_guard lock(mu_);
      auto [b, e] = agents_.equal_range(node);
      for (auto it = b; it != e; ++it) {
        if (it->second.get() == raw) {
          agents_.erase(it);
          break;
        }
      }
    });
  });
}

// Another node's session is NOT_FOUND: a node learns nothing of sessions elsewhere.
HttpResponse StreamRelay::AgentInput(const Principal& who, const std::string& id) {
  auto s = Find(id);
  if (!s || who.AgentNode().empty() || s->node != who.AgentNode()) {
    return ErrorResponse(absl::NotFoundError("session " + id + " not found"));
  }
  std::lock_guard lock(s->mu);
  if (s->agent || s->ended) {
    return ErrorResponse(absl::AlreadyExistsError("session " + id + " is already taken"));
  }
  return NdjsonStream(options_.ping_interval, [this, s](std::shared_ptr<ResponseStream> stream) {
    bool ended;
    {
      std::lock_guard lock(s->mu);
      ended = s->ended;
      s->agent = stream;
      for (auto& l : s->agent_backlog) stream->Write(std::move(l));
      s->agent_backlog.clear();
    }
    if (ended) stream->Close();
    stream->SetOnClose([this, s] { End(s, ErrorFrame("the node's agent went away")); });
  });
}

HttpResponse StreamRelay::AgentOutput(const HttpRequest& req, const Principal& who,
                                      const std::string& id) {
  auto s = Find(id);
  if (!s || who.AgentNode().empty() || s->node != who.AgentNode()) {
    return ErrorResponse(absl::NotFoundError("session " + id + " not found"));
  }
  auto frames = ParseFrames(req.body, {"out", "err", "exit", "error", "ack"});
  if (!frames.ok()) return ErrorResponse(frames.status());
  bool last = false;
  bool only_acks = !frames->empty();
  uint64_t acked = 0;
  for (const auto& f : *frames) {
    only_acks = only_acks && f.type == "ack";
    acked += f.ack;
  }
  HttpReply release;
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return ErrorResponse(absl::NotFoundError("session " + id + " has ended"));
    // The agent's acks of input it wrote out: the user's held input POST may go on.
    s->in_unacked -= std::min(acked, s->in_unacked);
    if (s->in_held && s->in_unacked < options_.input_window_bytes) std::swap(release, s->in_held);
  }
  if (release) release(HttpResponse::Json(200, "{}"));
  // Acks alone pass a held output POST: the agent's input side must not wait on its output.
  if (only_acks) return HttpResponse::Json(200, "{}");
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return ErrorResponse(absl::NotFoundError("session " + id + " has ended"));
    if (s->held) {
      return ErrorResponse(absl::FailedPreconditionError(
          "session " + id + ": an output POST is still waiting for the reader (one at a time)"));
    }
    for (auto& f : *frames) {
      if (f.type == "ack") continue;
      last = last || f.type == "exit" || f.type == "error";
      s->unacked += f.data;
      Deliver(s->user, &s->user_backlog, std::move(f.line));
    }
    if (!last && s->unacked > options_.window_bytes) {
      // The answer waits for the reader: the agent sends nothing more until it comes.
      return HttpResponse::Later([this, s](HttpReply reply) { Hold(s, std::move(reply)); });
    }
  }
  if (last) End(s, "");
  return HttpResponse::Json(200, "{}");
}

void StreamRelay::Hold(const std::shared_ptr<Session>& s, HttpReply reply) {
  {
    std::lock_guard lock(s->mu);
    if (!s->ended && s->unacked > options_.window_bytes) {
      s->held = std::move(reply);
      s->held_at = Clock::now();
      return;
    }
  }
  // Acknowledged (or ended) between the POST and now.
  reply(s->ended ? ErrorResponse(absl::NotFoundError("session " + s->id + " has ended"))
                 : HttpResponse::Json(200, "{}"));
}

void StreamRelay::HoldInput(const std::shared_ptr<Session>& s, HttpReply reply) {
  {
    std::lock_guard lock(s->mu);
    if (!s->ended && s->in_unacked >= options_.input_window_bytes && !s->in_held) {
      s->in_held = std::move(reply);
      s->in_held_at = Clock::now();
      return;
    }
  }
  // Acknowledged (or ended) between the POST and now.
  reply(s->ended ? ErrorResponse(absl::NotFoundError("session " + s->id + " has ended"))
                 : HttpResponse::Json(200, "{}"));
}

// Pings quiet streams and ends sessions whose other end never came.
void StreamRelay::Tick() {
  std::vector<std::shared_ptr<Session>> all;
  std::vector<std::shared_ptr<ResponseStream>> agents;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) all.push_back(s);
    for (auto& [node, st] : agents_) agents.push_back(st);
  }
  std::vector<std::string> unread;
  const auto now = Clock::now();
  const bool ping = now - last_ping_ >= options_.ping_interval;
  if (ping) last_ping_ = now;
  for (auto& st : agents) {
    if (ping) st->Write(kPing);
  }
  for (auto& s : all) {
    std::string why;
    HttpReply paused, in_paused;
    {
      std::lock_guard lock(s->mu);
      // A POST is not held for long (proxies and client timeouts): its sender asks again.
      if (s->held && now - s->held_at >= options_.max_hold) std::swap(paused, s->held);
      if (s->in_held && now - s->in_held_at >= options_.max_hold) std::swap(in_paused, s->in_held);
    }
    // Answered here, before any `continue` below (an HttpReply dropped unanswered is a 500).
    if (paused) paused(HttpResponse::Json(200, R"({"paused":true})"));
    if (in_paused) in_paused(HttpResponse::Json(200, R"({"paused":true})"));
    {
      std::lock_guard lock(s->mu);
      if (s->ended) {  // ended before anyone read it: forget it once the attach time is over
        if (now - s->created >= options_.attach_timeout) unread.push_back(s->id);
        continue;
      }
      if (ping && s->user) s->user->Write(kPing);
      if (ping && s->agent) s->agent->Write(kPing);
      if (now - s->created < options_.attach_timeout) continue;
      if (!s->agent) why = "node " + s->node + " did not take the session (is its agent running?)";
      if (!s->user) why = "nobody read the session";
    }
    if (!why.empty()) End(s, ErrorFrame(why));
  }
  std::lock_guard lock(mu_);
  for (const auto& id : unread) sessions_.erase(id);
}

}  // namespace photon::server
