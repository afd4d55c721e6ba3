// Exactly once across kill -9 (docs/operations.md "Crash safety"): duplicate events over many
// keys flow into the real photon-server while it is killed with SIGKILL and restarted again and
// again. Each key goes Critical, Success, Critical, ... (PHASES transitions, each reported
// several times); afterwards every key has exactly one alert, raised once per Critical phase
// and resolved, and the webhook receiver saw exactly one delivery id per transition, in order,
// none missing.
//
// Scale from the environment (the full run: PHOTON_OPS_CRASH_EVENTS=100000):
//   PHOTON_OPS_CRASH_EVENTS (default 20000), PHOTON_OPS_CRASH_KEYS (1000),
//   PHOTON_OPS_CRASH_KILLS (10), PHOTON_OPS_CRASH_PHASES (10, even).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../agent/cluster.h"
#include "common/http_server.h"

namespace photon::agent::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

int EnvInt(const char* name, int fallback) {
  const char* v = getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// photon-server on a fixed data dir and fixed ports, killed and started again at will.
class Server {
 public:
  Server() : dir_(MakeTempDir("ops-crash")), port_(FreePort()), grpc_port_(FreePort()) {}
  ~Server() {
    daemon_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool Start() {
    daemon_ = std::make_unique<Daemon>(
        std::vector<std::string>{PHOTON_SERVER_BIN, "--data-dir", dir_ + "/server", "--listen",
                                 "127.0.0.1:" + std::to_string(port_), "--grpc-listen",
                                 "127.0.0.1:" + std::to_string(grpc_port_)},
        dir_ + "/server.log");
    const bool up = WaitFor(
        [&] {
          auto c = cli::HttpClient::Create(base(), "");
          auto r = c->Do("GET", "/healthz");
          return r.ok() && r->status == 200;
        },
        30s);
    if (!up) {
      // Say why (a port taken meanwhile, a crash at start): the log goes with the temp dir.
      auto log = ReadFile(dir_ + "/server.log");
      std::string text = log.ok() ? *log : std::string(log.status().message());
      ADD_FAILURE() << "photon-server did not answer /healthz in 30 s (running: "
                    << daemon_->Running() << "); the end of its log:\n"
                    << text.substr(text.size() > 4000 ? text.size() - 4000 : 0);
    }
    auto tok = ReadFile(dir_ + "/server/admin.token");
    std::lock_guard lock(mu_);
    token_ = tok.ok() ? *tok : "";
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    return up;
  }
  void Kill9() { daemon_->Kill(SIGKILL); }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  cli::HttpResult Call(const std::string& method, const std::string& path,
                       const json& body = nullptr) {
    std::string token;
    {
      std::lock_guard lock(mu_);
      token = token_;
    }
    auto c = cli::HttpClient::Create(base(), token);
    c->set_timeout(10s);
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? *r : cli::HttpResult{0, r.status().ToString(), {}};
  }
  // Every item of a list, following its pages.
  json List(const std::string& path) {
    json out = json::array();
    std::string cont;
    for (;;) {
      auto r = Call("GET", path + "?limit=500" + (cont.empty() ? "" : "&continue=" + cont));
      if (r.status != 200) return nullptr;
      json page = json::parse(r.body, nullptr, false);
      for (auto& item : page["items"]) out.push_back(std::move(item));
      cont = page.value("continue", "");
      if (cont.empty()) return out;
    }
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int port_, grpc_port_;
  std::mutex mu_;
  std::string token_;
  std::unique_ptr<Daemon> daemon_;
};

// Counts webhook deliveries by delivery id, remembering each id's key and severity.
class Receiver {
 public:
  Receiver() {
    auto s = HttpServer::Start({}, [this](HttpRequest& r) {
      json body = json::parse(r.body, nullptr, false);
      std::lock_guard lock(mu_);
      const std::string id = r.Header("x-photon-delivery");
      if (++times_[id] == 1 && body.is_object()) {
        const auto& o = body["event"]["spec"]["opsEvent"];
        transitions_[o.value("dedupKey", "")].push_back(o.value("severity", ""));
      }
      return HttpResponse::Text(200, "ok\n");
    });
    if (s.ok()) server_ = std::move(*s);
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + "/hook";
  }
  size_t distinct() {
    std::lock_guard lock(mu_);
    return times_.size();
  }
  int repeats() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [id, times] : times_) n += times - 1;
    return n;
  }
  std::map<std::string, std::vector<std::string>> transitions() {
    std::lock_guard lock(mu_);
    return transitions_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> times_;
  std::map<std::string, std::vector<std::string>> transitions_;
  std::unique_ptr<HttpServer> server_;
};

std::string Key(int i) { return "crash/k" + std::to_string(i); }

json CrashEvent(int k, const std::string& severity, int round) {
  return json{{"spec",
               {{"opsEvent",
                 {{"check", "crash"},
                  {"severity", severity},
                  {"dedupKey", Key(k)},
                  {"output", "round " + std::to_string(round)},
                  {"reissueDurationSeconds", "3600"}}}}}};
}

// Reports `events` (keys of one sender, one event each) in batches of `batch` through
// POST .../events/batch until each is answered 201; an event whose answer was lost to a kill
// (the whole request, or its own 5xx) is sent again. False on a refusal.
bool SendBatches(Server& server, const std::vector<json>& events, size_t batch,
                 std::chrono::steady_clock::time_point deadline) {
  for (size_t from = 0; from < events.size(); from += batch) {
    std::vector<json> left(events.begin() + from,
                           events.begin() + std::min(events.size(), from + batch));
    while (!left.empty()) {
      auto r = server.Call("POST", "/v1/namespaces/default/events/batch", json{{"items", left}});
      if ((r.status != 0 && r.status != 200 && r.status < 500) ||
          std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "batch: " << r.status << " " << r.body.substr(0, 400);
        return false;
      }
      if (r.status != 200) {
        std::this_thread::sleep_for(20ms);  // the server is down: try again
        continue;
      }
      json answers = json::parse(r.body, nullptr, false)["items"];
      std::vector<json> again;
      for (size_t i = 0; i < left.size(); ++i) {
        const int st = i < answers.size() ? answers[i].value("status", 0) : 0;
        if (st == 201) continue;
        if (st != 0 && st < 500) {
          ADD_FAILURE() << "event " << left[i].dump() << ": " << answers[i].dump();
          return false;
        }
        again.push_back(left[i]);
      }
      left.swap(again);
    }
  }
  return true;
}

// batch 0: one event per request (POST .../events); else batches of that many.
void KillNineWhileEventsFlow(size_t batch) {
  const int keys = EnvInt("PHOTON_OPS_CRASH_KEYS", 1000);
  const int total = EnvInt("PHOTON_OPS_CRASH_EVENTS", 20000);
  const int kills = EnvInt("PHOTON_OPS_CRASH_KILLS", 10);
  const int phases = std::max(2, EnvInt("PHOTON_OPS_CRASH_PHASES", 10) / 2 * 2);
  const int repeats = std::max(1, total / keys / phases);  // reports of one phase
  const int per_key = phases * repeats;
  Server server;
  Receiver hook;
  ASSERT_TRUE(server.Start());
  auto rule = [&](const std::string& name, const std::string& match, const json& actions) {
    auto r =
        server.Call("POST", "/v1/namespaces/system/eventrules",
                    json{{"metadata", {{"name", name}}},
                         {"spec", {{"type", "ACTION"}, {"match", match}, {"actions", actions}}}});
    ASSERT_EQ(r.status, 202) << r.body;
  };
  rule("page", "severity=CRITICAL",
       {{{"type", "CREATE_ALERT"}}, {{"type", "API_HOOK"}, {"url", hook.url()}}});
  rule("recover", "severity=SUCCESS",
       {{{"type", "DELETE_ALERT"}}, {{"type", "API_HOOK"}, {"url", hook.url()}}});

  // Senders own disjoint keys, so each key's events arrive in order; a report whose answer was
  // lost to a kill is sent again, as an agent does.
  std::atomic<int> sent{0};
  std::atomic<bool> failed{false};
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  auto sender = [&](int first, int step) {
    for (int round = 0; round < per_key && !failed; ++round) {
      const std::string severity = (round / repeats) % 2 == 0 ? "CRITICAL" : "SUCCESS";
      if (batch > 0) {
        std::vector<json> evs;
        for (int k = first; k < keys; k += step) evs.push_back(CrashEvent(k, severity, round));
        if (!SendBatches(server, evs, batch, deadline)) {
          failed = true;
          return;
        }
        sent += static_cast<int>(evs.size());
        continue;
      }
      for (int k = first; k < keys && !failed; k += step) {
        json ev = CrashEvent(k, severity, round);
        for (;;) {
          auto r = server.Call("POST", "/v1/namespaces/default/events", ev);
          if (r.status == 201) break;
          if ((r.status != 0 && r.status < 500) || std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "event " << Key(k) << ": " << r.status << " " << r.body;
            failed = true;
            return;
          }
          std::this_thread::sleep_for(20ms);  // the server is down: try again
        }
        ++sent;
      }
    }
  };
  const int senders = 4;
  const int events = per_key * keys;
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) threads.emplace_back(sender, s, senders);
  // Kills spread evenly over the flow, so they land during Critical and Success issues and
  // while webhooks go out.
  int done_kills = 0;
  for (int k = 1; k <= kills && !failed; ++k) {
    const int at = static_cast<int>(int64_t{events} * k / (kills + 1));
    if (!WaitFor([&] { return sent >= at || failed; }, 240s)) break;
    server.Kill9();
    ++done_kills;
    if (!server.Start()) {
      ADD_FAILURE() << "photon-server did not come back after kill " << k;
      failed = true;
    }
  }
  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed);
  EXPECT_EQ(done_kills, kills);
  ASSERT_EQ(sent, events);

  // Nothing lost: every transition of every key delivered.
  const size_t want_ids = static_cast<size_t>(phases) * keys;
  EXPECT_TRUE(WaitFor([&] { return hook.distinct() >= want_ids; }, 120s))
      << hook.distinct() << " delivery ids of " << want_ids;
  json alerts;
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = server.List("/v1/namespaces/default/alerts");
        return alerts.is_array() && alerts.size() >= static_cast<size_t>(keys);
      },
      30s));
  // Nothing doubled: one alert per key, raised once per Critical phase, resolved at the end.
  std::map<std::string, int> per_alert_key;
  int unresolved = 0, wrong_count = 0;
  for (const auto& a : alerts) {
    ++per_alert_key[a["spec"].value("dedupKey", "")];
    unresolved += !a["status"].value("resolved", false);
    if (a["status"].value("count", "") != std::to_string(phases / 2) && ++wrong_count <= 5) {
      ADD_FAILURE() << a["spec"].value("dedupKey", "") << " raised " << a["status"]["count"]
                    << " times, want " << phases / 2;
    }
    EXPECT_EQ(a["status"].value("state", ""), "OPEN");
  }
  EXPECT_EQ(alerts.size(), static_cast<size_t>(keys));
  EXPECT_EQ(per_alert_key.size(), static_cast<size_t>(keys));
  EXPECT_EQ(unresolved, 0);
  EXPECT_EQ(wrong_count, 0);
  auto transitions = hook.transitions();
  EXPECT_EQ(transitions.size(), static_cast<size_t>(keys));
  int wrong = 0;
  std::vector<std::string> want;
  for (int p = 0; p < phases; ++p) want.push_back(p % 2 == 0 ? "CRITICAL" : "SUCCESS");
  for (int k = 0; k < keys; ++k) {
    if (transitions[Key(k)] != want) {
      if (++wrong <= 5) ADD_FAILURE() << Key(k) << ": " << json(transitions[Key(k)]);
    }
  }
  EXPECT_EQ(wrong, 0);
  // A delivery in flight when the server died goes again with the same id (the receiver
  // drops it); at most one per kill, as deliveries go out one at a time.
  EXPECT_LE(hook.repeats(), kills);
  std::cout << "events " << events << ", keys " << keys << ", kills " << done_kills
            << ", delivery ids " << hook.distinct() << ", repeated deliveries " << hook.repeats()
            << "\n";
  // The stored events end in their last state.
  json stored = server.List("/v1/namespaces/default/events");
  ASSERT_TRUE(stored.is_array());
  int success = 0;
  for (const auto& e : stored) {
    const json o = e["spec"].value("opsEvent", json::object());
    success += o.value("check", "") == "crash" && o.value("severity", "") == "SUCCESS";
  }
  EXPECT_EQ(success, keys);
}

TEST(OpsCrash, KillNineWhileEventsFlowLosesNothingAndDoublesNothing) { KillNineWhileEventsFlow(0); }

// The same through the batch endpoint: a kill lands while a batch's issues are in one group
// commit.
TEST(OpsCrash, KillNineWhileBatchesFlowLosesNothingAndDoublesNothing) {
  KillNineWhileEventsFlow(50);
}

}  // namespace
}  // namespace photon::agent::testing
