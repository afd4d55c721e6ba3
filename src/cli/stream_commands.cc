#include "cli/stream_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli/wait_commands.h"
#include "common/base64.h"
#include "common/hex.h"

namespace photon::cli {
namespace {

using json = nlohmann::json;

std::string ErrorOf(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) return j["error"].value("message", r.body);
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
}

// The terminal on stdin in raw mode (keys go to the instance as typed, Ctrl-C included), put
// back on every way out: a normal end, a detach, an error, SIGTERM or SIGHUP.
class RawTerminal {
 public:
  // False when stdin is no terminal (input is then passed as it comes).
  static bool Enter() {
    if (!::isatty(0) || ::tcgetattr(0, &saved_) != 0) return false;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = true;
    for (int sig : {SIGTERM, SIGHUP}) ::signal(sig, OnSignal);
    return ::tcsetattr(0, TCSADRAIN, &raw) == 0;
  }
  static void Restore() {
    if (active_) ::tcsetattr(0, TCSADRAIN, &saved_);  // async-signal-safe
    active_ = false;
  }

 private:
  static void OnSignal(int sig) {
    Restore();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  static inline termios saved_{};
  static inline volatile sig_atomic_t active_ = 0;
};

int Fail(const std::string& message) {
  RawTerminal::Restore();  // a message on a raw terminal would lose its line ends
  std::cerr << "error: " << message << "\n";
  return 1;
}

[[noreturn]] void Exit(int code) {
  RawTerminal::Restore();
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

void WriteAll(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

struct Session {
  std::string id;
  uint64_t window = 1 << 20;  // output bytes the server sends before it waits for an ack
};

// Prints the session's output until its exit frame; the exit status. What is written out is
// acknowledged every quarter window, so the server sends no more than a window ahead of what
// this process's stdout took (a slow pipe holds the command back instead of filling memory).
int ReadOutput(HttpClient client, const Session& session) {
  int code = -1;
  HttpClient acks = client;  // a call of its own while the stream is being read
  const std::string input = "/v1/sessions/" + session.id + "/input";
  uint64_t unacked = 0;
  auto r = client.Stream("/v1/sessions/" + session.id, [&](const std::string& line) {
    auto f = json::parse(line, nullptr, false);
    const std::string t = f.is_object() ? f.value("t", "") : "";
    std::string data;
    if ((t == "out" || t == "err") && !Base64Decode(f.value("d", ""), &data)) {
      code = Fail("the server sent a malformed output frame");
    }
    if (t == "out" || t == "err") {
      WriteAll(t == "out" ? 1 : 2, data);
      unacked += data.size();
      if (unacked >= session.window / 4) {
        // A failed ack means the session is gone: its stream says why.
        acks.Do("POST", input, json{{"frames", {{{"t", "ack"}, {"n", unacked}}}}}.dump())
            .IgnoreError();
        unacked = 0;
      }
    }
    if (t == "exit") code = f.value("code", 1);
    if (t == "error") code = Fail(f.value("message", "the session failed"));
    return code < 0;
  });
  if (code >= 0) return code;
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorOf(*r));
  return Fail("the session ended without an exit status");
}

// Posts one input frame. The server answers an input POST once the workload is less than an
// input window behind ({"paused":true} after a while: then this waits on with empty POSTs), so
// input that is not read is held back here, in the pipe or the terminal, not in the server.
bool PostInput(HttpClient& client, const std::string& id, const json& frame) {
  std::string body = json{{"frames", json::array({frame})}}.dump();
  while (true) {
    auto r = client.Do("POST", "/v1/sessions/" + id + "/input", body);
    if (!r.ok() || r->status != 200) return false;
    auto j = json::parse(r->body, nullptr, false);
    if (!(j.is_object() && j.value("paused", false))) return true;
    body = R"({"frames":[]})";
  }
}

// Sends this process's stdin to the session, then its end.
void SendInput(HttpClient client, const std::string& id) {
  char buf[32 * 1024];
  while (true) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    json frame = n > 0 ? json{{"t", "in"},
                              {"d", Base64Encode(std::string_view(buf, static_cast<size_t>(n)))}}
                       : json{{"t", "eof"}};
    if (!PostInput(client, id, frame) || n <= 0) return;
  }
}

// The terminal's window size (on stdin, else stdout), if either is a terminal.
std::optional<winsize> WindowSize() {
  winsize ws{};
  for (int fd : {0, 1}) {
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) return ws;
  }
  return std::nullopt;
}

// SIGWINCH: the handler only writes to a pipe; a thread sends the new size.
int winch_pipe[2] = {-1, -1};
void OnWinch(int) {
  const int saved = errno;
  [[maybe_unused]] ssize_t n = ::write(winch_pipe[1], "w", 1);
  errno = saved;
}
void ForwardWindowSize(HttpClient client, std::string id) {
  char c;
  while (::read(winch_pipe[0], &c, 1) > 0 || errno == EINTR) {
    if (auto ws = WindowSize()) {
      PostInput(client, id, {{"t", "resize"}, {"rows", ws->ws_row}, {"cols", ws->ws_col}});
    }
  }
}

StatusOr<Session> OpenSession(HttpClient& client, const std::string& ns, const std::string& name,
                              const std::string& type, const json& body) {
  auto r = client.Do("POST",
                     "/v1/namespaces/" + PercentEncode(ns) + "/computeinstances/" +
                         PercentEncode(name) + "/" + type,
                     body.dump());
  if (!r.ok()) return r.status();
  if (r->status != 201) return absl::UnknownError(ErrorOf(*r));
  auto j = json::parse(r->body, nullptr, false);
  Session s;
  s.id = j.value("session", "");
  s.window = std::max<uint64_t>(j.value("window", uint64_t{1} << 20), 4);
  return s;
}

int Logs(const StreamArgs& a, HttpClient client, const std::string& ns) {
  if (a.tail < 0) return Fail("--tail: want a number of lines ≥ 0");
  json body = {{"follow", a.follow}, {"tail", a.tail}};
  if (!a.since.empty()) {
    auto d = ParseDuration(a.since);
    if (!d.ok()) return Fail("--since: " + std::string(d.status().message()));
    body["sinceSeconds"] = d->count() / 1000;  // the server says whether it can honour it
  }
  auto session = OpenSession(client, ns, a.name, "logs", body);
  if (!session.ok()) return Fail(std::string(session.status().message()));
  return ReadOutput(client, *session);
}

// Sends what is typed to the console until the detach key or the end of stdin, then leaves:
// the server sees the output stream close and ends the session; the VM runs on.
[[noreturn]] void ConsoleInput(HttpClient client, const std::string& id, const std::string& where) {
  char buf[4096];
  while (true) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    const char* end = n > 0 ? static_cast<const char*>(std::memchr(buf, kDetachKey, n)) : nullptr;
    const size_t send = n <= 0 ? 0 : end ? static_cast<size_t>(end - buf) : static_cast<size_t>(n);
    if (send > 0 &&
        !PostInput(client, id, {{"t", "in"}, {"d", Base64Encode(std::string_view(buf, send))}})) {
      break;  // the output side reports why
    }
    if (n <= 0 || end != nullptr) break;
  }
  RawTerminal::Restore();
  std::cerr << "\ndetached from the console of " << where << " (it keeps running)\n";
  Exit(0);
}

int Console(const StreamArgs& a, HttpClient client, const std::string& ns) {
  auto session = OpenSession(client, ns, a.name, "console", json::object());
  if (!session.ok()) return Fail(std::string(session.status().message()));
  const std::string where = ns + "/" + a.name;
  std::cerr << "console of " << where << " (Ctrl-] detaches)\n";
  RawTerminal::Enter();
  std::thread([client, id = session->id, where]() mutable {
    ConsoleInput(client, id, where);
  }).detach();
  // Ends only when the session does (the VM stopped, the server went away): an error.
  Exit(ReadOutput(client, *session));
}

// docker/kubectl exec: -i passes stdin (without it the command reads an immediate end), -t
// runs the command on a terminal of the window's size (output and errors then come as one
// stream, as from any terminal), raw mode when stdin is a terminal and -i passes it.
int Exec(const StreamArgs& a, HttpClient client, const std::string& ns) {
  const bool terminal_in = ::isatty(0);
  if (a.tty && a.interactive && !terminal_in) {
    return Fail(
        "the input device is not a terminal: -t with -i needs one on stdin (drop -t "
        "to pipe input into the command)");
  }
  json body = {{"command", a.argv}};
  if (a.tty) {
    body["tty"] = true;
    if (auto ws = WindowSize()) {  // else the node's pty keeps its 24x80
      body["rows"] = ws->ws_row;
      body["cols"] = ws->ws_col;
    }
  }
  auto session = OpenSession(client, ns, a.name, "exec", body);
  if (!session.ok()) return Fail(std::string(session.status().message()));
  if (!a.interactive) {
    // Not checked: a command that ended at once (one that does not exist) may have ended the
    // session before this end of input came; its output and status wait for ReadOutput, which
    // also reports a session that is really gone.
    (void)PostInput(client, session->id, {{"t", "eof"}});
  } else {
    if (a.tty) RawTerminal::Enter();
    // Detached: it may sit in a read of a terminal the command never wanted; Exit ends it.
    std::thread([client, id = session->id]() mutable { SendInput(client, id); }).detach();
  }
  if (a.tty && ::pipe2(winch_pipe, O_CLOEXEC) == 0) {
    std::thread(ForwardWindowSize, client, session->id).detach();
    ::signal(SIGWINCH, OnWinch);
  }
  Exit(ReadOutput(client, *session));
}

}  // namespace

void AddStreamCommands(CLI::App& app, StreamArgs* a) {
  a->logs = app.add_subcommand("logs", "print an instance's output (a VM's serial log)");
  a->logs->add_option("name", a->name)->required();
  a->logs->add_flag("-f,--follow", a->follow, "keep printing what it writes");
  a->logs->add_option("--tail", a->tail, "lines from the end (default 100)");
  a->logs->add_option("--since", a->since, "only output younger than this, e.g. 10m");
  a->exec = app.add_subcommand("exec", "run a command in a process or container instance");
  a->exec->add_flag("-i,--stdin", a->interactive, "pass stdin to the command");
  a->exec->add_flag("-t,--tty", a->tty,
                    "run the command on a terminal of this window's size (raw mode with -i)");
  a->exec->add_option("name", a->name)->required();
  a->exec->add_option("command", a->argv, "the command and its arguments, after --")->required();
  a->console = app.add_subcommand(
      "console", "attach to a VM's serial console (detach with Ctrl-]; raw mode on a terminal)");
  a->console->add_option("name", a->name)->required();
}

bool StreamCommandParsed(const StreamArgs& a) {
  for (CLI::App* c : {a.logs, a.exec, a.console}) {
    if (c && c->parsed()) return true;
  }
  return false;
}

int RunStreamCommand(const StreamArgs& a, HttpClient client, const std::string& ns) {
  if (a.logs && a.logs->parsed()) return Logs(a, std::move(client), ns);
  if (a.exec && a.exec->parsed()) return Exec(a, std::move(client), ns);
  if (a.console && a.console->parsed()) return Console(a, std::move(client), ns);
  return -1;
}

}  // namespace photon::cli
