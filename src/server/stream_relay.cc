#include "server/stream_relay.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/base64.h"
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
  std::shared_ptr<ResponseStream> user;   // the user's output stream, once attached
  std::shared_ptr<ResponseStream> agent;  // the agent's input stream, once attached
  std::vector<std::string> user_backlog, agent_backlog;
  size_t user_bytes = 0, agent_bytes = 0;
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

// {"frames":[…]} of the types `allowed`; each frame re-rendered as one line.
StatusOr<std::vector<std::string>> ParseFrames(const std::string& body,
                                               const std::vector<std::string>& allowed,
                                               bool* last) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("frames") || !j["frames"].is_array()) {
    return absl::InvalidArgumentError("want {\"frames\":[{\"t\":…},…]}");
  }
  std::vector<std::string> lines;
  for (const auto& f : j["frames"]) {
    std::string t = f.is_object() ? f.value("t", "") : "";
    if (std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
      return absl::InvalidArgumentError("frame type '" + t + "' is not accepted here");
    }
    std::string data;
    if ((t == "out" || t == "err" || t == "in") &&
        !(f.contains("d") && f["d"].is_string() &&
          Base64Decode(f["d"].get<std::string>(), &data))) {
      return absl::InvalidArgumentError("frame '" + t + "': d (base64) required");
    }
    if (t == "exit" || t == "error") *last = true;
    lines.push_back(Line(f));
  }
  return lines;
}

// Sends `line` on `stream`, or keeps it until the stream is there. False when over `max`.
bool Deliver(const std::shared_ptr<ResponseStream>& stream, std::vector<std::string>* backlog,
             size_t* bytes, size_t max, std::string line) {
  if (stream) {
    stream->Write(std::move(line));
    return true;
  }
  *bytes += line.size();
  backlog->push_back(std::move(line));
  return *bytes <= max;
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
    } else if (type == "logs" && k == "follow" && v.is_boolean()) {
      out[k] = v;
    } else if (type == "logs" && k == "tail" && v.is_number_integer() && v.get<int64_t>() >= 0) {
      out[k] = v;
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
  return out;
}

std::string DriverOf(const compute::ComputeInstance& ci) {
  switch (ci.spec().backend_case()) {
    case compute::ComputeInstanceSpec::kProcess:
      return "process";
    case compute::ComputeInstanceSpec::kContainer:
      return "container";
    case compute::ComputeInstanceSpec::kVm:
      return "vm";
    default:
      return "";
  }
}

// What a user may open on this instance: exec needs a running process or container.
Status CheckTarget(const compute::ComputeInstance& ci, const std::string& type) {
  const std::string where = ci.metadata().namespace_() + "/" + ci.metadata().name();
  if (ci.metadata().agent_id().empty()) {
    return absl::FailedPreconditionError(where + " is not placed on a node yet");
  }
  if (type != "exec") return absl::OkStatus();
  std::string driver = DriverOf(ci);
  if (driver != "process" && driver != "container") {
    return absl::InvalidArgumentError("exec runs in process and container instances; " + where +
                                      " is a " + driver + " (its serial log: photon logs)");
  }
  if (ci.status().phase() != resource::ResourceStatus::RUNNING) {
    return absl::FailedPreconditionError(where + " is " +
                                         resource::ResourceStatus::Phase_Name(ci.status().phase()) +
                                         ", not RUNNING");
  }
  return absl::OkStatus();
}

}  // namespace

StreamRelay::StreamRelay(ResourceManager* resources, StreamRelayOptions options)
    : resources_(resources), options_(options) {
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
}

bool StreamRelay::Owns(const std::string& path) {
  auto p = SplitPath(path);
  if (p.size() >= 3 && p[0] == "v1" &&
      (p[1] == "sessions" || (p[1] == "agent" && p[2] == "sessions")))
    return true;
  return p.size() == 6 && p[0] == "v1" && p[1] == "namespaces" && p[3] == "computeinstances" &&
         (p[5] == "exec" || p[5] == "logs");
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
  Announce(*s);
  spdlog::info("session {}: {} {}/{} on node {} for {}", (*s)->id, type, ns, name, (*s)->node,
               who.name);
  return HttpResponse::Json(201, json{{"session", (*s)->id},
                                      {"output", "/v1/sessions/" + (*s)->id},
                                      {"input", "/v1/sessions/" + (*s)->id + "/input"}}
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
  if (type == "exec" && !who.Allowed(Verb::kAction, "computeinstances", ns)) {
    return absl::PermissionDeniedError("exec in " + ns + "/" + name +
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
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return;
    s->ended = true;
    if (s->agent) {
      s->agent->Write(Line({{"t", "cancel"}}));
      s->agent->Close();
    }
    if (!s->user) {  // kept for ClientOutput (or Tick) to deliver and forget
      if (!last.empty()) s->user_backlog.push_back(last);
      return;
    }
    if (!last.empty()) s->user->Write(last);
    s->user->Close();
  }
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
  bool last = false;
  auto lines = ParseFrames(req.body, {"in", "eof"}, &last);
  if (!lines.ok()) return ErrorResponse(lines.status());
  std::lock_guard lock(s->mu);
  if (s->ended) return ErrorResponse(absl::NotFoundError("session " + id + " has ended"));
  for (auto& l : *lines) {
    if (!Deliver(s->agent, &s->agent_backlog, &s->agent_bytes, options_.max_backlog_bytes,
                 std::move(l))) {
      return ErrorResponse(
          absl::ResourceExhaustedError("session " + id + ": the node has not taken the input"));
    }
  }
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
  bool last = false;
  auto lines = ParseFrames(req.body, {"out", "err", "exit", "error"}, &last);
  if (!lines.ok()) return ErrorResponse(lines.status());
  bool fits = true;
  {
    std::lock_guard lock(s->mu);
    if (s->ended) return ErrorResponse(absl::NotFoundError("session " + id + " has ended"));
    for (auto& l : *lines) {
      fits = Deliver(s->user, &s->user_backlog, &s->user_bytes, options_.max_backlog_bytes,
                     std::move(l)) &&
             fits;
    }
  }
  if (!fits) {
    End(s, ErrorFrame("the output outran its reader (more than " +
                      std::to_string(options_.max_backlog_bytes) + " bytes waiting)"));
  } else if (last) {
    End(s, "");
  }
  return HttpResponse::Json(200, "{}");
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
