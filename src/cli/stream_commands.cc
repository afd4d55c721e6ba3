#include "cli/stream_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
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

int Fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

void WriteAll(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Prints the session's output until its exit frame; the exit status.
int ReadOutput(HttpClient client, const std::string& id) {
  int code = -1;
  auto r = client.Stream("/v1/sessions/" + id, [&](const std::string& line) {
    auto f = json::parse(line, nullptr, false);
    const std::string t = f.is_object() ? f.value("t", "") : "";
    std::string data;
    if ((t == "out" || t == "err") && !Base64Decode(f.value("d", ""), &data)) {
      code = Fail("the server sent a malformed output frame");
    }
    if (t == "out" || t == "err") WriteAll(t == "out" ? 1 : 2, data);
    if (t == "exit") code = f.value("code", 1);
    if (t == "error") code = Fail(f.value("message", "the session failed"));
    return code < 0;
  });
  if (code >= 0) return code;
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorOf(*r));
  return Fail("the session ended without an exit status");
}

// Sends this process's stdin to the session, then its end.
void SendInput(HttpClient client, const std::string& id) {
  char buf[32 * 1024];
  const std::string path = "/v1/sessions/" + id + "/input";
  while (true) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    json frame = n > 0 ? json{{"t", "in"},
                              {"d", Base64Encode(std::string_view(buf, static_cast<size_t>(n)))}}
                       : json{{"t", "eof"}};
    auto r = client.Do("POST", path, json{{"frames", json::array({frame})}}.dump());
    if (n <= 0 || !r.ok() || r->status != 200) return;
  }
}

StatusOr<std::string> OpenSession(HttpClient& client, const std::string& ns,
                                  const std::string& name, const std::string& type,
                                  const json& body) {
  auto r = client.Do("POST",
                     "/v1/namespaces/" + PercentEncode(ns) + "/computeinstances/" +
                         PercentEncode(name) + "/" + type,
                     body.dump());
  if (!r.ok()) return r.status();
  if (r->status != 201) return absl::UnknownError(ErrorOf(*r));
  return json::parse(r->body, nullptr, false).value("session", "");
}

int Logs(const StreamArgs& a, HttpClient client, const std::string& ns) {
  if (a.tail < 0) return Fail("--tail: want a number of lines ≥ 0");
  json body = {{"follow", a.follow}, {"tail", a.tail}};
  if (!a.since.empty()) {
    auto d = ParseDuration(a.since);
    if (!d.ok()) return Fail("--since: " + std::string(d.status().message()));
    body["sinceSeconds"] = d->count() / 1000;  // the server says whether it can honour it
  }
  auto id = OpenSession(client, ns, a.name, "logs", body);
  if (!id.ok()) return Fail(std::string(id.status().message()));
  return ReadOutput(client, *id);
}

int Exec(const StreamArgs& a, HttpClient client, const std::string& ns) {
  auto id = OpenSession(client, ns, a.name, "exec", {{"command", a.argv}});
  if (!id.ok()) return Fail(std::string(id.status().message()));
  // Detached: it may sit in a read of a terminal the command never wanted; the exit below
  // ends it.
  std::thread([client, id = *id]() mutable { SendInput(client, id); }).detach();
  int code = ReadOutput(client, *id);
  std::cout.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace

void AddStreamCommands(CLI::App& app, StreamArgs* a) {
  a->logs = app.add_subcommand("logs", "print an instance's output (a VM's serial log)");
  a->logs->add_option("name", a->name)->required();
  a->logs->add_flag("-f,--follow", a->follow, "keep printing what it writes");
  a->logs->add_option("--tail", a->tail, "lines from the end (default 100)");
  a->logs->add_option("--since", a->since, "only output younger than this, e.g. 10m");
  a->exec = app.add_subcommand("exec", "run a command in a process or container instance");
  a->exec->add_option("name", a->name)->required();
  a->exec->add_option("command", a->argv, "the command and its arguments, after --")->required();
}

int RunStreamCommand(const StreamArgs& a, HttpClient client, const std::string& ns) {
  if (a.logs && a.logs->parsed()) return Logs(a, std::move(client), ns);
  if (a.exec && a.exec->parsed()) return Exec(a, std::move(client), ns);
  return -1;
}

}  // namespace photon::cli
