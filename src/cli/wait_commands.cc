#include "cli/wait_commands.h"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/hex.h"

namespace photon::cli {

using nlohmann::json;

StatusOr<WaitCondition> ParseWaitCondition(const std::string& text) {
  if (text == "delete") return WaitCondition{WaitCondition::Type::kDelete, ""};
  const auto eq = text.find('=');
  if (eq != std::string::npos && eq + 1 < text.size()) {
    const std::string key = text.substr(0, eq);
    const std::string value = text.substr(eq + 1);
    if (key == "phase") return WaitCondition{WaitCondition::Type::kPhase, value};
    if (key == "condition") return WaitCondition{WaitCondition::Type::kCondition, value};
  }
  return absl::InvalidArgumentError("--for: '" + text +
                                    "' is not phase=PHASE, condition=CONDITION or delete");
}

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  static const std::map<std::string, int64_t> kMs = {
      {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  auto it = kMs.find(unit);
  if (digits == 0 || digits > 9 || it == kMs.end()) {
    return absl::InvalidArgumentError("'" + text + "' is not a duration like 500ms, 60s, 5m, 1h");
  }
  return std::chrono::milliseconds(std::stoll(text.substr(0, digits)) * it->second);
}

namespace {

std::string At(const json& o, const char* a, const char* b) {
  if (!o.is_object() || !o.contains(a) || !o[a].is_object()) return "";
  const json& v = o[a].value(b, json());
  return v.is_string() ? v.get<std::string>() : "";
}

// What the object shows now, for the condition (e.g. "RUNNING"), or "gone" when deleted.
std::string Current(const json* obj, const WaitCondition& cond) {
  if (obj == nullptr) return "gone";
  switch (cond.type) {
    case WaitCondition::Type::kPhase:
      return At(*obj, "status", "phase");
    case WaitCondition::Type::kCondition:
      return At(*obj, "nodeStatus", "condition");
    case WaitCondition::Type::kDelete:
      return "present";
  }
  return "";
}

bool Holds(const json* obj, const WaitCondition& cond) {
  if (cond.type == WaitCondition::Type::kDelete) return obj == nullptr;
  return obj != nullptr && Current(obj, cond) == cond.value;
}

std::string ErrorOf(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) return j["error"].value("message", "");
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
}

// Shared between the waiting caller and the watching thread.
struct WaitState {
  std::mutex mu;
  std::condition_variable cv;
  bool met = false;
  std::string now = "not seen yet";  // what the object shows at the last event
  std::string error;                 // the server refused the list or the watch
};

// Lists the one object by name, then watches it from the list's revision, re-listing when a
// stream ends; records every state it sees until the condition holds or the server refuses.
void Follow(HttpClient client, const std::string& base, const std::string& name,
            const WaitCondition& cond, const std::shared_ptr<WaitState>& st) {
  const std::string selector = "fieldSelector=" + PercentEncode("metadata.name=" + name);
  auto update = [&](const json* obj) {
    std::lock_guard<std::mutex> l(st->mu);
    st->now = Current(obj, cond);
    if (Holds(obj, cond)) st->met = true;
    st->cv.notify_all();
    return !st->met;
  };
  auto fail = [&](const std::string& why) {
    std::lock_guard<std::mutex> l(st->mu);
    st->error = why;
    st->cv.notify_all();
  };
  while (true) {
    auto list = client.Do("GET", base + "?" + selector);
    if (!list.ok()) return fail(std::string(list.status().message()));
    if (list->status != 200) return fail(ErrorOf(*list));
    auto j = json::parse(list->body, nullptr, false);
    if (!j.is_object()) return fail("malformed answer from the server");
    const json& items = j["items"];
    if (!update(items.empty() ? nullptr : &items[0])) return;
    const std::string path = base + "?watch=true&" + selector +
                             "&resourceVersion=" + j.value("resourceVersion", std::string());
    std::string ended;  // the server's last word on a watch it ends (a revoked token)
    auto r = client.Stream(path, [&](const std::string& line) {
      auto ev = json::parse(line, nullptr, false);
      if (!ev.is_object()) return true;
      const std::string type = ev.value("type", "");
      if (type == "BOOKMARK") return true;
      if (type == "ERROR") {  // not an event of the object: the end of the watch
        const json err = ev.value("error", json::object());
        ended = err.value("code", "ERROR") + ": " + err.value("message", line);
        return false;
      }
      if (type == "DELETED") return update(nullptr);
      return update(&ev["object"]);
    });
    {
      std::lock_guard<std::mutex> l(st->mu);
      if (st->met) return;
    }
    if (!ended.empty()) return fail("the server ended the watch: " + ended);
    if (r.ok() && r->status != 200 && r->status != 410) return fail(ErrorOf(*r));
    // The stream ended (server restart, compaction, dead connection): list again.
  }
}

}  // namespace

int WaitFor(HttpClient client, const std::string& ns, const std::string& plural,
            const std::string& name, const WaitCondition& cond, std::chrono::milliseconds timeout) {
  const std::string base = "/v1/namespaces/" + PercentEncode(ns) + "/" + PercentEncode(plural);
  auto st = std::make_shared<WaitState>();
  client.set_stream_idle_timeout(std::chrono::milliseconds(0));
  std::thread watcher(Follow, client, base, name, cond, st);
  std::unique_lock<std::mutex> l(st->mu);
  st->cv.wait_for(l, timeout, [&] { return st->met || !st->error.empty(); });
  const std::string what = plural + "/" + name;
  const std::string want =
      cond.type == WaitCondition::Type::kDelete
          ? "deleted"
          : (cond.type == WaitCondition::Type::kPhase ? "phase=" : "condition=") + cond.value;
  if (st->met) {
    l.unlock();
    watcher.join();
    std::cout << what << " " << (cond.type == WaitCondition::Type::kDelete ? "deleted" : want)
              << "\n";
    return 0;
  }
  if (!st->error.empty()) {
    const std::string why = st->error;
    l.unlock();
    watcher.join();
    std::cerr << "error: wait " << what << ": " << why << "\n";
    return 1;
  }
  std::cerr << "error: timed out after " << timeout.count() / 1000.0 << " s waiting for " << what
            << " to be " << want << " (now: " << st->now << ")\n";
  // The watcher is blocked in a read that only the server ends: leave without unwinding it.
  std::cout.flush();
  std::cerr.flush();
  std::_Exit(1);
}

int AwaitOperation(HttpClient client, const std::string& id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(20);
  while (true) {
    auto r = client.Do("GET", "/v1/operations/" + PercentEncode(id));
    if (!r.ok()) {
      std::cerr << "error: operation " << id << ": " << r.status().message() << "\n";
      return 1;
    }
    if (r->status != 200) {
      std::cerr << "error: operation " << id << ": " << ErrorOf(*r) << "\n";
      return 1;
    }
    auto j = json::parse(r->body, nullptr, false);
    const std::string state = At(j, "status", "state");
    if (state == "DONE") {
      const std::string out = At(j, "status", "message");
      std::cout << out << (out.empty() || out.back() == '\n' ? "" : "\n");
      return 0;
    }
    if (state == "FAILED") {
      std::cerr << "error: " << At(j, "status", "message") << " (operation " << id << ")\n";
      return 1;
    }
    if (std::chrono::steady_clock::now() + pause > deadline) {
      std::cerr << "error: operation " << id << " is still " << (state.empty() ? "PENDING" : state)
                << " after " << timeout.count() / 1000.0 << " s (" << At(j, "status", "message")
                << "); see photon operations " << id << "\n";
      return 1;
    }
    // An operation ends in one agent round trip: start fast, then back off.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

}  // namespace photon::cli
