// photon-bench-events: the operations pipeline (docs/operations.md) against a real
// photon-server on its embedded store.
//
//   photon-bench-events [--server-bin PATH] [--seconds N] [--connections N] [--keys N]
//                       [--batch N] [--background-rate N] [--rules N] [--cases 1,2,3]
//
// Prints, measured in the same run on this machine:
//   1. ingest: events/s through POST /v1/namespaces/NS/events with dedup and rule evaluation
//      (N keep-alive connections, random keys of --keys, mostly repeats of an issued event),
//      and the answer's p50/p99 (an event is answered once it is stored); the same through
//      POST /v1/namespaces/NS/events/batch with --batch events per request; and the peer: raw
//      puts/s of the embedded store itself (SqliteStore, 16 writers, in this process);
//   2. event → alert: a Critical event crossing an Action rule (CREATE_ALERT + API_HOOK) with
//      --background-rate events/s of others going on; p50/p99 until the alert arrives on a
//      watch of alerts and until the webhook arrives at a receiver in this process;
//   3. rule cost: with --rules more (non-matching) rules and as many open alerts, the server's
//      CPU per event against case 1's.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "../../tests/free_port.h"
#include "common/file_util.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "store/store.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

using ::photon::testing::FreePort;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// utime + stime of a process, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

// A keep-alive REST client (the shared client opens a connection per call).
class KeepAlive {
 public:
  KeepAlive(int port, std::string token) : stream_(io_), token_(std::move(token)) {
    stream_.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }
  int Do(http::verb verb, const std::string& target, const std::string& body,
         std::string* answer = nullptr) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + token_);
    req.keep_alive(true);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream_, req);
    http::response_parser<http::string_body> p;
    http::read(stream_, buf_, p);
    if (answer) *answer = p.get().body();
    return p.get().result_int();
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::string token_;
};

struct ServerProc {
  pid_t pid = 0;
  int port = 0;
  std::string dir;
  std::string token;
  ~ServerProc() {
    if (pid) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
};

void StartServer(const std::string& bin, ServerProc* s) {
  std::string t = (std::filesystem::temp_directory_path() / "photon-bench-events-XXXXXX").string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
  s->dir = t;
  s->port = FreePort();
  const int grpc = FreePort();
  s->pid = fork();
  if (s->pid == 0) {
    std::string l = "127.0.0.1:" + std::to_string(s->port);
    std::string g = "127.0.0.1:" + std::to_string(grpc);
    std::vector<const char*> argv = {
        "photon-server", "--data-dir", s->dir.c_str(), "--listen", l.c_str(),
        "--grpc-listen", g.c_str(),    "--log-level",  "warn",     nullptr};
    execv(bin.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  for (int i = 0; i < 600; ++i) {
    auto tok = photon::ReadFile(s->dir + "/admin.token");
    if (tok.ok() && !tok->empty()) {
      try {
        KeepAlive probe(s->port, "");
        if (probe.Do(http::verb::get, "/healthz", "") == 200) {
          s->token = *tok;
          while (!s->token.empty() && s->token.back() == '\n') s->token.pop_back();
          return;
        }
      } catch (...) {
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("photon-server did not start");
}

double Metric(const ServerProc& s, const std::string& name) {
  KeepAlive k(s.port, "");
  std::string text;
  if (k.Do(http::verb::get, "/metrics", "", &text) != 200) return 0;
  std::istringstream in(text);
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    if (line[name.size()] != ' ' && line[name.size()] != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

std::string Event(const std::string& check, const std::string& key, const std::string& severity,
                  const std::string& node = "") {
  json o{{"check", check},
         {"severity", severity},
         {"dedupKey", key},
         {"output", check + " " + severity},
         {"reissueDurationSeconds", "3600"}};
  if (!node.empty()) {
    o["node"] = node;
    o["labels"] = {{"team", "bench"}};
  }
  return json{{"spec", {{"opsEvent", o}}}}.dump();
}

// The sum of a metric's series on photon-server's /metrics (0 when absent).
double Metric(const ServerProc& s, const std::string& name);

void CreateRule(KeepAlive& k, const std::string& name, const json& spec) {
  const int st = k.Do(http::verb::post, "/v1/namespaces/bench/eventrules",
                      json{{"metadata", {{"name", name}}}, {"spec", spec}}.dump());
  if (st != 202) throw std::runtime_error("rule " + name + ": HTTP " + std::to_string(st));
}

struct IngestFigures {
  double rate = 0, p50_ms = 0, p99_ms = 0, cpu_us_per_event = 0;
  int64_t events = 0, errors = 0, issued = 0;
  double rule_us_per_event = 0;  // the server's own rule evaluation time (its /metrics)
};

// What the clients of Ingest send besides their key: events of `nodes` nodes (label team=bench;
// 0: no node), and with `flip` a random severity (Critical or Warning), so about half the
// reports change their key's severity and are issued (matched by every rule, alerts raised).
struct EventShape {
  int nodes = 0;
  bool flip = false;
};

// `connections` clients post events as fast as answered for `seconds` (or at `rate` events/s
// in total when rate > 0) over `keys` keys of check `check`.
IngestFigures Ingest(const ServerProc& s, int connections, int keys, double seconds, double rate,
                     const std::string& check, const std::atomic<bool>* stop = nullptr,
                     int batch = 0, EventShape shape = {}) {
  std::atomic<int64_t> events{0}, errors{0}, issued{0};
  std::mutex mu;
  std::vector<double> lat;
  const double cpu0 = CpuSeconds(s.pid);
  const double rule_s0 = Metric(s, "photon_ops_rule_evaluation_seconds_total");
  const double rule_n0 = Metric(s, "photon_ops_rule_evaluations_total");
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> ts;
  for (int c = 0; c < connections; ++c) {
    ts.emplace_back([&, c] {
      std::mt19937 rng(c * 7919 + 1);
      std::vector<double> mine;
      try {
        KeepAlive k(s.port, s.token);
        for (int64_t i = 0;; ++i) {
          const auto now = Clock::now();
          if (now >= end || (stop && *stop)) break;
          if (rate > 0) {  // paced: this connection's share of the rate, each at its own phase
            // (all at once, 16 batches of 25 arrived together every 40 ms: bursts of 400)
            const auto due = start + std::chrono::duration<double>((i * connections + c) *
                                                                   std::max(1, batch) / rate);
            if (due > now) std::this_thread::sleep_until(due);
          }
          auto one = [&] {
            const uint32_t k = rng() % keys;
            return Event(check, "k" + std::to_string(k),
                         shape.flip && rng() % 2 ? "WARNING" : "CRITICAL",
                         shape.nodes ? "node" + std::to_string(k % shape.nodes) : "");
          };
          if (batch > 0) {  // one request of `batch` events, each answered in the body
            std::string body = "{\"items\":[";
            for (int b = 0; b < batch; ++b) {
              if (b) body += ',';
              body += one();
            }
            body += "]}";
            const auto t0 = Clock::now();
            std::string answer;
            const int st =
                k.Do(http::verb::post, "/v1/namespaces/bench/events/batch", body, &answer);
            mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            json a = json::parse(answer, nullptr, false);
            int64_t stored = 0;
            if (st == 200 && a.is_object()) {
              for (const auto& item : a["items"]) stored += item.value("status", 0) == 201;
            }
            events += stored;
            errors += batch - stored;
            continue;
          }
          const auto t0 = Clock::now();
          std::string answer;
          const int st = k.Do(http::verb::post, "/v1/namespaces/bench/events", one(), &answer);
          mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          (st == 201 ? events : errors)++;
          issued += answer.find("\"issued\":true") != std::string::npos;
        }
      } catch (const std::exception& e) {
        errors++;
      }
      std::lock_guard lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : ts) t.join();
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  IngestFigures f;
  f.events = events;
  f.errors = errors;
  f.rate = events / took;
  f.p50_ms = Percentile(lat, 0.5);
  f.p99_ms = Percentile(lat, 0.99);
  f.cpu_us_per_event = events ? 1e6 * (CpuSeconds(s.pid) - cpu0) / events : 0;
  f.issued = issued;
  const double rule_n = Metric(s, "photon_ops_rule_evaluations_total") - rule_n0;
  if (rule_n > 0) {
    f.rule_us_per_event =
        1e6 * (Metric(s, "photon_ops_rule_evaluation_seconds_total") - rule_s0) / rule_n;
  }
  return f;
}

void Print(const std::string& what, const IngestFigures& f) {
  std::printf(
      "%s: %.0f events/s (%lld stored, %lld errors), answer p50 %.2f ms p99 %.2f ms, "
      "server CPU %.1f us/event, of it rule evaluation %.2f us/event\n",
      what.c_str(), f.rate, static_cast<long long>(f.events), static_cast<long long>(f.errors),
      f.p50_ms, f.p99_ms, f.cpu_us_per_event, f.rule_us_per_event);
  std::fflush(stdout);
}

// The peer: what the embedded store itself takes, puts/s of 16 writers on a SqliteStore of its
// own (100-byte values; bench/store measures the same), on the machine as loaded now.
double RawStorePuts(double seconds) {
  std::string dir = (std::filesystem::temp_directory_path() / "photon-bench-raw-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw std::runtime_error("mkdtemp");
  double rate = 0;
  {
    auto store = photon::store::OpenStore({.spec = "sqlite", .data_dir = dir});
    if (!store.ok()) throw std::runtime_error(store.status().ToString());
    std::atomic<int64_t> done{0};
    const std::string value(100, 'v');
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    std::vector<std::thread> ts;
    for (int t = 0; t < 16; ++t) {
      ts.emplace_back([&, t] {
        for (int64_t i = 0; Clock::now() < end; ++i) {
          if ((*store)->Put("w" + std::to_string(t) + "/" + std::to_string(i), value).ok()) ++done;
        }
      });
    }
    for (auto& t : ts) t.join();
    rate = done / std::chrono::duration<double>(Clock::now() - start).count();
  }
  std::filesystem::remove_all(dir);
  return rate;
}

// Case 2: probes crossing the rule while the background load runs.
void AlertLatency(const ServerProc& s, double seconds, double background_rate, int connections,
                  int background_batch) {
  std::mutex mu;
  std::map<std::string, Clock::time_point> sent, hooked, watched;
  auto receiver = photon::HttpServer::Start({}, [&](photon::HttpRequest& r) {
    json b = json::parse(r.body, nullptr, false);
    const auto now = Clock::now();
    if (b.is_object()) {
      std::lock_guard lock(mu);
      hooked.try_emplace(b["event"]["spec"]["opsEvent"].value("dedupKey", ""), now);
    }
    return photon::HttpResponse::Text(200, "ok\n");
  });
  if (!receiver.ok()) throw std::runtime_error(receiver.status().ToString());
  // A rule and check of this run's own (its webhook goes to this run's receiver).
  const std::string probe = "probe" + std::to_string(background_batch);
  const std::string url = "http://127.0.0.1:" + std::to_string((*receiver)->port()) + "/hook";
  {
    KeepAlive k(s.port, s.token);
    CreateRule(k, probe,
               {{"type", "ACTION"},
                {"match", "check=" + probe},
                {"actions", {{{"type", "CREATE_ALERT"}}, {{"type", "API_HOOK"}, {"url", url}}}}});
  }
  // The alerts arrive on a watch, as `photon alerts watch` shows them.
  auto client = photon::HttpClient::Create("http://127.0.0.1:" + std::to_string(s.port), s.token);
  std::atomic<bool> stop{false};
  int rewatches = 0;
  std::thread watcher([&] {
    // A watch the server ends (one that fell behind) is resumed from the last version seen,
    // as `photon watch` does.
    std::string rv;
    for (; !stop; ++rewatches) {
      const std::string path =
          "/v1/namespaces/bench/alerts?watch=true" + (rv.empty() ? "" : "&resourceVersion=" + rv);
      (void)client->Stream(path, [&](const std::string& line) {
        json j = json::parse(line, nullptr, false);
        const auto now = Clock::now();
        if (j.is_object() && j.contains("object")) {
          rv = j["object"]["metadata"].value("resourceVersion", rv);
          const std::string key = j["object"]["spec"].value("dedupKey", "");
          std::lock_guard lock(mu);
          watched.try_emplace(key, now);
        }
        return !stop;
      });
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the watch is open
  IngestFigures bg;
  std::thread background([&] {
    bg = Ingest(s, connections, 10000, seconds + 2, background_rate, "background", &stop,
                background_batch);
  });
  {
    KeepAlive k(s.port, s.token);
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    for (int i = 0; Clock::now() < end; ++i) {
      const std::string key = probe + "/" + std::to_string(i);
      {
        std::lock_guard lock(mu);
        sent[key] = Clock::now();
      }
      k.Do(http::verb::post, "/v1/namespaces/bench/events", Event(probe, key, "CRITICAL"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  // Let the last probes arrive, then stop.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  background.join();
  {  // one more alert change so the watch's callback sees `stop`
    KeepAlive k(s.port, s.token);
    k.Do(http::verb::post, "/v1/namespaces/bench/events", Event(probe, probe + "/end", "CRITICAL"));
  }
  watcher.join();
  std::vector<double> w, h;
  int missing = 0, no_watch = 0, no_hook = 0;
  for (const auto& [key, t0] : sent) {
    auto a = watched.find(key), b = hooked.find(key);
    no_watch += a == watched.end();
    no_hook += b == hooked.end();
    if (a == watched.end() || b == hooked.end()) {
      ++missing;
      continue;
    }
    w.push_back(std::chrono::duration<double, std::milli>(a->second - t0).count());
    h.push_back(std::chrono::duration<double, std::milli>(b->second - t0).count());
  }
  std::printf(
      "2. event -> alert (%zu probes; background %.0f events/s asked, %s, %.0f/s taken): "
      "watch p50 %.1f ms p99 %.1f ms; webhook p50 %.1f ms p99 %.1f ms; %d not arrived (%d on the "
      "watch, %d webhooks); watch resumed %d times\n",
      sent.size(), background_rate,
      background_batch > 0 ? (std::to_string(background_batch) + " a request").c_str()
                           : "one a request",
      bg.rate, Percentile(w, 0.5), Percentile(w, 0.99), Percentile(h, 0.5), Percentile(h, 0.99),
      missing, no_watch, no_hook, rewatches - 1);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"photon-bench-events: the operations pipeline against a real photon-server"};
  std::string server_bin = PHOTON_SERVER_BIN;
  double seconds = 30, background_rate = 10000;
  int connections = 16, keys = 10000, rules = 10000, batch = 100;
  std::string cases = "1,2,3";
  std::vector<int> background_batches = {0, 25};
  app.add_option("--server-bin", server_bin, "photon-server binary");
  app.add_option("--seconds", seconds, "length of each measured case (the issue asks 600)");
  app.add_option("--connections", connections, "concurrent keep-alive clients");
  app.add_option("--keys", keys, "distinct dedup keys");
  app.add_option("--batch", batch, "events per request of the batch ingest (case 1)");
  app.add_option("--background-rate", background_rate, "events/s behind the alert probes");
  app.add_option("--background-batch", background_batches,
                 "events per request of the background, one case 2 each (0: one a request; "
                 "agents send batches)")
      ->delimiter(',');
  app.add_option("--rules", rules, "rules and open alerts for the rule-cost case");
  app.add_option("--cases", cases, "which cases to run (1 ingest, 2 event -> alert, 3 rules)");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  std::printf("photon-bench-events: %u cores, load %s\n", std::thread::hardware_concurrency(),
              [] {
                std::ifstream in("/proc/loadavg");
                std::string a;
                in >> a;
                return a;
              }()
                  .c_str());
  // Any failure ends the run through here, so the server is stopped and its files removed.
  try {
    ServerProc s;
    StartServer(server_bin, &s);
    {
      KeepAlive k(s.port, s.token);
      CreateRule(k, "page",
                 {{"type", "ACTION"},
                  {"match", "severity=CRITICAL,check=load"},
                  {"actions", {{{"type", "CREATE_ALERT"}}}}});
      CreateRule(k, "quiet", {{"type", "SILENCED"}, {"match", "check=quiet"}});
    }
    // Every key issued once (its alert opened), then the measured run of repeats.
    Ingest(s, connections, keys, std::max(2.0, seconds / 10), 0, "load");
    const IngestFigures base = Ingest(s, connections, keys, seconds, 0, "load");
    if (cases.find('1') != std::string::npos) {
      Print("1. ingest (" + std::to_string(connections) + " connections, " + std::to_string(keys) +
                " keys, 2 rules), one event per request",
            base);
      const IngestFigures batched =
          Ingest(s, connections, keys, seconds, 0, "load", nullptr, std::max(1, batch));
      Print("1. ingest, " + std::to_string(batch) + " events per request (POST .../events/batch)",
            batched);
      std::printf("   peer, the embedded store itself: %.0f puts/s (16 writers, SqliteStore)\n",
                  RawStorePuts(std::min(seconds, 10.0)));
      std::fflush(stdout);
    }
    if (cases.find('2') != std::string::npos) {
      for (int b : background_batches) AlertLatency(s, seconds, background_rate, connections, b);
    }
    if (cases.find('3') != std::string::npos) {
      // 3. Many rules and as many open alerts. The rules require a node and a team
      // ("node=nodeN,team=tI": ten per node, none matching the bench's team), so they are not
      // told apart by check: an event of a node meets that node's ten. Half the reports change
      // severity and are issued, so the Silenced/Aggregate/Action match runs too.
      std::atomic<int> next{0};
      std::vector<std::thread> ts;
      for (int c = 0; c < 8; ++c) {
        ts.emplace_back([&] {
          try {
            KeepAlive k(s.port, s.token);
            for (int i; (i = next++) < rules;) {
              CreateRule(k, "r" + std::to_string(i),
                         {{"type", "ACTION"},
                          {"match",
                           "node=node" + std::to_string(i % 1000) + ",team=t" + std::to_string(i)},
                          {"actions", {{{"type", "CREATE_ALERT"}}}}});
              k.Do(http::verb::post, "/v1/namespaces/bench/events",
                   Event("load", "open/" + std::to_string(i), "CRITICAL"));
            }
          } catch (const std::exception& e) {
            std::fprintf(stderr, "photon-bench-events: creating rules: %s\n", e.what());
            next = rules;
          }
        });
      }
      for (auto& t : ts) t.join();
      const std::string many =
          std::to_string(rules + 2) + " rules and " + std::to_string(rules + keys) + " open alerts";
      Print("3. ingest with " + many + " (repeats)",
            Ingest(s, connections, keys, seconds, 0, "load"));
      const IngestFigures flips = Ingest(s, connections, keys, seconds, 0, "load", nullptr, 0,
                                         {.nodes = 1000, .flip = true});
      Print("3. ingest with " + many + ", 1,000 nodes, half the reports issued (" +
                std::to_string(flips.issued) + ")",
            flips);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "photon-bench-events: %s\n", e.what());
    return 1;
  }
  return 0;
}
