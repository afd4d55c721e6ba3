// photon-bench-api: API throughput and latency against a real photon-server process.
//
//   photon-bench-api [--server-bin PATH] [--seconds N] [--objects N] [--watchers N]
//
// Prints, all measured in the same run on this machine:
//   1. raw store puts/s (SqliteStore directly, 16 writers) — the ceiling the API is compared to;
//   2. creates/s through REST and through gRPC, 16 concurrent clients, and their ratio to 1;
//   3. watch fan-out: N watchers (default 1,000) over HTTP, 1,000 changes/s, p50/p99 delivery;
//   3b. filtered fan-out: N watchers each selecting its own node (fieldSelector
//       metadata.agentId=nI, as agents watch), 1,000 changes/s spread over the N nodes: p50/p99
//       delivery and the server's CPU;
//   4. paged list of 100,000 objects: total time; server RSS holding them.
#include <grpcpp/grpcpp.h>
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
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "../../tests/free_port.h"
#include "common/file_util.h"
#include "common/metrics.h"
#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/service.grpc.pb.h"
#include "store/store.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::string TempDir(const std::string& tag) {
  std::string t =
      (std::filesystem::temp_directory_path() / ("photon-bench-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
  return t;
}

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

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a;
  in >> a;
  return a;
}

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A keep-alive REST client (the CLI's client opens a connection per call).
class KeepAlive {
 public:
  KeepAlive(int port, std::string token) : stream_(io_), token_(std::move(token)) {
    stream_.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }
  int Do(http::verb verb, const std::string& target, const std::string& body,
         std::string* out = nullptr) {
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
    p.body_limit(1ull << 34);
    http::read(stream_, buf_, p);
    if (out) *out = std::move(p.get().body());
    return p.get().result_int();
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::string token_;
};

// The server's SQLite group-commit counters (from /metrics): requests and commits so far.
struct CommitStats {
  double requests = 0, commits = 0, commit_seconds = 0;
  // The API's own view: how long its store requests took, from queueing to the answer.
  double store_requests = 0, store_seconds = 0;
  // And the API handlers' time for creates (REST or gRPC), from start to answer.
  double handler_requests = 0, handler_seconds = 0;
};
CommitStats ReadCommitStats(int port, const std::string& token) {
  CommitStats c;
  try {
    KeepAlive k(port, token);
    std::string text;
    if (k.Do(http::verb::get, "/metrics", "", &text) != 200) return c;
    std::istringstream in(text);
    std::string line;
    // Series (with their labels) and the field each adds to: the handler figures take REST's
    // and gRPC's creates together, as only one of them runs at a time.
    const std::pair<const char*, double*> series[] = {
        {"photon_store_sqlite_batch_requests_sum", &c.requests},
        {"photon_store_sqlite_batch_requests_count", &c.commits},
        {"photon_store_sqlite_commit_seconds_sum", &c.commit_seconds},
        {"photon_store_request_seconds_sum", &c.store_seconds},
        {"photon_store_request_seconds_count", &c.store_requests},
        {"photon_http_request_duration_seconds_sum{method=\"POST\"}", &c.handler_seconds},
        {"photon_grpc_request_duration_seconds_sum{method=\"Create\"}", &c.handler_seconds},
        {"photon_http_request_duration_seconds_count{method=\"POST\"}", &c.handler_requests},
        {"photon_grpc_request_duration_seconds_count{method=\"Create\"}", &c.handler_requests},
    };
    while (std::getline(in, line)) {
      const size_t space = line.rfind(' ');
      if (space == std::string::npos) continue;
      for (const auto& [name, field] : series) {
        if (line.compare(0, space, name) == 0) *field += std::stod(line.substr(space + 1));
      }
    }
  } catch (const std::exception&) {
  }
  return c;
}
std::string PerCommit(const CommitStats& before, const CommitStats& after) {
  const double commits = after.commits - before.commits;
  if (commits <= 0) return "";
  char buf[192];
  int n = snprintf(buf, sizeof buf, " (%.1f per commit, %.0f us each",
                   (after.requests - before.requests) / commits,
                   1e6 * (after.commit_seconds - before.commit_seconds) / commits);
  const double store_requests = after.store_requests - before.store_requests;
  if (store_requests > 0)
    n += snprintf(buf + n, sizeof buf - n, "; %.0f us in the store per create",
                  1e6 * (after.store_seconds - before.store_seconds) / store_requests);
  const double handled = after.handler_requests - before.handler_requests;
  if (handled > 0)
    snprintf(buf + n, sizeof buf - n, ", %.0f us in the handler",
             1e6 * (after.handler_seconds - before.handler_seconds) / handled);
  return std::string(buf) + ")";
}

std::string Instance(const std::string& name, const std::string& annotation = "") {
  std::string ann =
      annotation.empty() ? "" : R"(,"annotations":{"bench/t0":")" + annotation + "\"}";
  return R"({"metadata":{"name":")" + name + "\"" + ann +
         R"(},"spec":{"process":{"command":["/bin/true"]},"resources":{"vcpu":1,"memoryMb":64}}})";
}

// More photon-server flags for the next StartServer (the filtered case's --config).
std::vector<std::string> g_server_extra_args;

struct ServerProc {
  pid_t pid = 0;
  int http_port = 0;
  int grpc_port = 0;
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

void StartServer(const std::string& bin, ServerProc* s, const std::string& dir = "") {
  s->dir = dir.empty() ? TempDir("server") : dir;
  s->http_port = FreePort();
  s->grpc_port = FreePort();
  s->pid = fork();
  if (s->pid == 0) {
    std::string l = "127.0.0.1:" + std::to_string(s->http_port);
    std::string g = "127.0.0.1:" + std::to_string(s->grpc_port);
    // The server's own defaults, as a user gets them; BENCH_HTTP_THREADS overrides.
    std::vector<const char*> argv = {"photon-server", "--data-dir",  s->dir.c_str(),
                                     "--listen",      l.c_str(),     "--grpc-listen",
                                     g.c_str(),       "--log-level", "warn"};
    for (const auto& a : g_server_extra_args) argv.push_back(a.c_str());
    if (const char* threads = getenv("BENCH_HTTP_THREADS")) {
      argv.insert(argv.end(), {"--http-threads", threads});
    }
    argv.push_back(nullptr);
    execv(bin.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  for (int i = 0; i < 600; ++i) {
    auto t = photon::ReadFile(s->dir + "/admin.token");
    if (t.ok() && !t->empty()) {
      try {
        KeepAlive probe(s->http_port, "");
        if (probe.Do(http::verb::get, "/healthz", "") == 200) {
          s->token = *t;
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

// Puts/s; *batch gets the group-commit figures, as PerCommit prints them for the server.
double RawStorePuts(int writers, double seconds, std::string* batch) {
  std::string dir = TempDir("store");
  photon::MetricsRegistry metrics;
  auto store = photon::store::OpenStore({.spec = "sqlite", .data_dir = dir, .metrics = &metrics});
  if (!store.ok()) throw std::runtime_error(std::string(store.status().message()));
  std::string value =
      photon::compute::ComputeInstance().SerializeAsString() + std::string(300, 'v');
  std::atomic<long> n{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int w = 0; w < writers; ++w) {
    ts.emplace_back([&, w] {
      for (long i = 0; !stop; ++i) {
        if ((*store)
                ->Put("/registry/computeinstances/default/raw-" + std::to_string(w) + "-" +
                          std::to_string(i),
                      value)
                .ok())
          ++n;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  store->reset();
  CommitStats after;
  auto* commits = metrics.GetHistogram("photon_store_sqlite_commit_seconds", "", {});
  auto* requests = metrics.GetHistogram("photon_store_sqlite_batch_requests", "", {});
  after.commits = static_cast<double>(requests->Count());
  after.requests = requests->Sum();
  after.commit_seconds = commits->Sum();
  *batch = PerCommit({}, after);
  std::filesystem::remove_all(dir);
  return n / seconds;
}

double g_server_cpu_per_create = 0;  // seconds of server CPU per create in the last test
// The clients share the server's 2 cores here, so their own cost bounds the rate too.
double g_client_cpu_per_create = 0;

double RestCreates(const ServerProc& s, int clients, double seconds, const std::string& tag) {
  double cpu0 = CpuSeconds(s.pid), client_cpu0 = CpuSeconds(getpid());
  std::atomic<long> n{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int c = 0; c < clients; ++c) {
    ts.emplace_back([&, c] {
      KeepAlive k(s.http_port, s.token);
      for (long i = 0; !stop; ++i) {
        int code = k.Do(http::verb::post, "/v1/namespaces/bench/computeinstances",
                        Instance(tag + "-" + std::to_string(c) + "-" + std::to_string(i)));
        if (code == 202)
          ++n;
        else
          ++errors;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  if (errors) std::cerr << "  (" << errors << " REST errors)\n";
  g_server_cpu_per_create = n ? (CpuSeconds(s.pid) - cpu0) / n : 0;
  g_client_cpu_per_create = n ? (CpuSeconds(getpid()) - client_cpu0) / n : 0;
  return n / seconds;
}

// Each of the `clients` has its own connection and one create in flight at a time, as the
// REST clients do. They are driven from one completion queue rather than a blocked thread
// each: on this 2-core machine the clients' CPU is taken from the server being measured, and
// the synchronous stub (70-110 us of client CPU per create, against the REST clients' 27-33 us)
// or a queue per core (one thread often woke the other for its completion: 70-77 us and lower
// rates than one queue's 58-61 us in alternating runs) left it less.
double GrpcCreates(const ServerProc& s, int clients, double seconds, const std::string& tag) {
  struct Call {
    int client = 0;
    grpc::ClientContext ctx;
    photon::api::CreateResponse resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<photon::api::CreateResponse>> rpc;
  };
  std::vector<std::unique_ptr<photon::api::ResourceService::Stub>> stubs;
  for (int c = 0; c < clients; ++c) {
    // Channels with equal arguments would share one HTTP/2 connection.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(photon::api::ResourceService::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(s.grpc_port), grpc::InsecureChannelCredentials(), args)));
  }
  photon::compute::ComputeInstance ci;
  ci.mutable_spec()->mutable_process()->add_command("/bin/true");
  ci.mutable_spec()->mutable_resources()->set_vcpu(1);
  const std::string bearer = "Bearer " + s.token;

  double cpu0 = CpuSeconds(s.pid), client_cpu0 = CpuSeconds(getpid());
  std::atomic<long> n{0}, errors{0};
  std::atomic<bool> stop{false};
  std::thread driver([&] {
    grpc::CompletionQueue cq;
    std::vector<long> next(clients, 0);
    photon::compute::ComputeInstance obj = ci;
    auto start = [&](int c) {
      auto* call = new Call;
      call->client = c;
      call->ctx.AddMetadata("authorization", bearer);
      obj.mutable_metadata()->set_name(tag + "-" + std::to_string(c) + "-" +
                                       std::to_string(next[c]++));
      photon::api::CreateRequest req;
      req.set_namespace_("bench");
      req.mutable_object()->PackFrom(obj);
      call->rpc = stubs[c]->AsyncCreate(&call->ctx, req, &cq);
      call->rpc->Finish(&call->resp, &call->status, call);
    };
    for (int c = 0; c < clients; ++c) start(c);
    int in_flight = clients;
    void* tag_out;
    bool ok;
    while (in_flight > 0 && cq.Next(&tag_out, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag_out));
      if (ok && call->status.ok())
        ++n;
      else
        ++errors;
      if (stop)
        --in_flight;
      else
        start(call->client);
    }
    cq.Shutdown();
    while (cq.Next(&tag_out, &ok)) delete static_cast<Call*>(tag_out);
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  driver.join();
  if (errors) std::cerr << "  (" << errors << " gRPC errors)\n";
  g_server_cpu_per_create = n ? (CpuSeconds(s.pid) - cpu0) / n : 0;
  g_client_cpu_per_create = n ? (CpuSeconds(getpid()) - client_cpu0) / n : 0;
  return n / seconds;
}

// N watchers on one io_context; each parses event lines and records now - bench/t0.
struct WatchFanout {
  asio::io_context io;
  std::vector<double> latencies_ms;
  std::mutex mu;
  std::atomic<int> connected{0};
  struct Conn {
    tcp::socket sock;
    std::vector<char> buf = std::vector<char>(1 << 18);
    size_t have = 0;  // bytes in buf not yet scanned into lines
    explicit Conn(asio::io_context& io) : sock(io) {}
  };
  std::vector<std::unique_ptr<Conn>> conns;

  // Lines of this type with a bench/t0 stamp count (ADDED: creates; MODIFIED: changes).
  std::string counted = "{\"type\":\"ADDED\"";
  // Watcher i's target; by default everyone watches the same namespace.
  std::function<std::string(int)> target = [](int) {
    return std::string("/v1/namespaces/watch/computeinstances?watch=true&resourceVersion=");
  };

  void Start(int port, const std::string& token, int n) {
    for (int i = 0; i < n; ++i) {
      auto c = std::make_unique<Conn>(io);
      c->sock.connect(
          tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
      std::string req = "GET " + target(i) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                        token + "\r\n\r\n";
      asio::write(c->sock, asio::buffer(req));
      Read(c.get());
      conns.push_back(std::move(c));
    }
  }
  // Big reads and a memchr scan: the client must not be the bottleneck at ~1 GB/s of lines.
  void Read(Conn* c) {
    if (c->have == c->buf.size()) c->buf.resize(c->buf.size() * 2);
    c->sock.async_read_some(
        asio::buffer(c->buf.data() + c->have, c->buf.size() - c->have),
        [this, c](boost::system::error_code ec, size_t n) {
          if (ec) return;
          c->have += n;
          const int64_t now = photon::MonotonicNanos();
          std::vector<double> got;
          char* begin = c->buf.data();
          char* end = begin + c->have;
          char* line = begin;
          while (char* nl = static_cast<char*>(memchr(line, '\n', end - line))) {
            std::string_view l(line, nl - line);
            line = nl + 1;
            // Only the creation counts: later MODIFIED events of the same object carry the
            // same stamp. Chunk-size lines of the chunked encoding are skipped naturally.
            static constexpr std::string_view kStamp = "\"bench/t0\":\"";
            if (l.substr(0, counted.size()) != counted) continue;
            auto pos = l.find(kStamp);
            if (pos == std::string_view::npos) continue;
            got.push_back((now - std::strtoll(l.data() + pos + kStamp.size(), nullptr, 10)) / 1e6);
          }
          c->have = end - line;
          memmove(begin, line, c->have);
          if (!got.empty()) {
            std::lock_guard lock(mu);
            latencies_ms.insert(latencies_ms.end(), got.begin(), got.end());
          }
          Read(c);
        });
  }
};

// 3b: `nodes` watchers, watcher i selecting fieldSelector=metadata.agentId=n<i> (what each
// agent does), and `rate` changes/s: annotation writes to instance f<j>, placed on node n<j>,
// j cycling over the nodes. Without the built-in scheduler (placement is the bench's, by
// admin writes of metadata.agentId, and no node lifecycle runs for nodes that do not exist).
void FilteredFanout(const std::string& server_bin, int nodes, int rate, double seconds) {
  const std::string config = TempDir("config") + "/server.yaml";
  std::ofstream(config) << "scheduler: false\n";
  g_server_extra_args = {"--config", config};
  ServerProc s;
  StartServer(server_bin, &s);
  g_server_extra_args.clear();
  // Place instance f<j> on node n<j>; keep each one's latest JSON for the changes.
  std::vector<nlohmann::json> objs(nodes);
  {
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < 8; ++c) {
      ts.emplace_back([&] {
        KeepAlive k(s.http_port, s.token);
        for (int j; (j = next++) < nodes;) {
          const std::string path = "/v1/namespaces/fan/computeinstances/f" + std::to_string(j);
          k.Do(http::verb::post, "/v1/namespaces/fan/computeinstances",
               Instance("f" + std::to_string(j)));
          std::string body;
          k.Do(http::verb::get, path, "", &body);
          auto o = nlohmann::json::parse(body);
          o["metadata"]["agentId"] = "n" + std::to_string(j);
          k.Do(http::verb::put, path, o.dump(), &body);
          objs[j] = nlohmann::json::parse(body);
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  WatchFanout w;
  w.counted = "{\"type\":\"MODIFIED\"";
  w.target = [](int i) {
    return "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dn" + std::to_string(i);
  };
  w.Start(s.http_port, s.token, nodes);
  std::thread io_thread([&] {
    auto guard = asio::make_work_guard(w.io);
    w.io.run();
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::atomic<long> sent{0}, failed{0};
  const double cpu0 = CpuSeconds(s.pid);
  auto start = Clock::now();
  std::vector<std::thread> ws;
  for (int t = 0; t < 8; ++t) {
    ws.emplace_back([&, t] {
      KeepAlive k(s.http_port, s.token);
      for (long i = t;; i += 8) {
        auto due = start + std::chrono::microseconds(static_cast<long>(i * 1e6 / rate));
        if (due - start > std::chrono::duration<double>(seconds)) break;
        std::this_thread::sleep_until(due);
        // Writer t owns the objects j ≡ t (mod 8), so no two writers race on one object.
        const long mine = (nodes - t + 7) / 8;
        auto& o = objs[t + 8 * ((i / 8) % mine)];
        o["metadata"]["annotations"]["bench/t0"] = std::to_string(photon::MonotonicNanos());
        std::string body;
        const std::string name = o["metadata"]["name"];
        if (k.Do(http::verb::put, "/v1/namespaces/fan/computeinstances/" + name, o.dump(), &body) ==
            200) {
          o = nlohmann::json::parse(body);
          ++sent;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : ws) t.join();
  const double busy = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds(s.pid) - cpu0;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  w.io.stop();
  io_thread.join();
  std::lock_guard lock(w.mu);
  std::cout << "filtered watch fan-out (load average " << LoadAverage() << "): " << nodes
            << " watchers, each selecting its own node; " << (long)(sent / seconds)
            << " changes/s over " << nodes << " nodes for " << seconds << " s, "
            << w.latencies_ms.size() << " deliveries (expected " << sent << ")"
            << (failed ? ", " + std::to_string(failed) + " writes failed" : "") << "\n"
            << "  delivery latency p50 " << Percentile(w.latencies_ms, 0.5) << " ms, p99 "
            << Percentile(w.latencies_ms, 0.99) << " ms; server CPU " << (int)(100 * cpu / busy)
            << "% of one core\n";
}
}  // namespace

int main(int argc, char** argv) {
  photon::DisableAbslDeadlockDetection();
  CLI::App app{"photon-bench-api"};
  std::string server_bin = std::filesystem::canonical("/proc/self/exe").parent_path().string() +
                           "/../../src/server/photon-server";
  double seconds = 5;
  int objects = 100000, watchers = 1000, rate = 1000, clients = 16;
  bool creates_only = false, list_only = false, watch_only = false;
  app.add_option("--server-bin", server_bin);
  app.add_option("--seconds", seconds);
  app.add_option("--objects", objects);
  app.add_option("--watchers", watchers);
  app.add_option("--rate", rate, "changes/s during the watch test");
  app.add_option("--clients", clients, "concurrent clients for the create test");
  app.add_flag("--creates-only", creates_only, "run only the create test");
  std::string apis = "both";
  int rounds = 3;
  app.add_option("--api", apis, "create test through rest, grpc or both")
      ->check(CLI::IsMember({"rest", "grpc", "both"}));
  app.add_option("--rounds", rounds, "create test rounds (the median is printed)")
      ->check(CLI::Range(1, 99));
  app.add_flag("--list-only", list_only, "run only the list/RSS test");
  app.add_flag("--watch-only", watch_only, "run only the watch fan-out tests");
  bool filtered_only = false;
  app.add_flag("--filtered-only", filtered_only, "run only the filtered (per-node) fan-out test");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  std::cout << "photon-bench-api on " << std::thread::hardware_concurrency() << " cores\n";

  if (filtered_only) {
    FilteredFanout(server_bin, watchers, rate, seconds);
    return 0;
  }
  // 1 + 2: creates against raw store, three rounds, medians.
  std::vector<double> raw, rest, grpc_rates, rest_cpu, grpc_cpu, rest_client_cpu, grpc_client_cpu;
  if (!list_only && !watch_only) {
    ServerProc s;
    StartServer(server_bin, &s);
    for (int round = 0; round < rounds; ++round) {
      std::string raw_batch, rest_batch, grpc_batch;
      raw.push_back(RawStorePuts(clients, seconds, &raw_batch));
      if (apis != "grpc") {
        CommitStats before = ReadCommitStats(s.http_port, s.token);
        rest.push_back(RestCreates(s, clients, seconds, "r" + std::to_string(round)));
        rest_cpu.push_back(g_server_cpu_per_create * 1e6);
        rest_client_cpu.push_back(g_client_cpu_per_create * 1e6);
        rest_batch = PerCommit(before, ReadCommitStats(s.http_port, s.token));
      }
      if (apis != "rest") {
        CommitStats before = ReadCommitStats(s.http_port, s.token);
        grpc_rates.push_back(GrpcCreates(s, clients, seconds, "g" + std::to_string(round)));
        grpc_cpu.push_back(g_server_cpu_per_create * 1e6);
        grpc_client_cpu.push_back(g_client_cpu_per_create * 1e6);
        grpc_batch = PerCommit(before, ReadCommitStats(s.http_port, s.token));
      }
      std::cout << "  round " << round << ": raw store " << (long)raw.back() << " puts/s"
                << raw_batch << ", REST " << (long)(rest.empty() ? 0 : rest.back()) << " creates/s"
                << rest_batch << ", gRPC " << (long)(grpc_rates.empty() ? 0 : grpc_rates.back())
                << " creates/s" << grpc_batch << "\n";
    }
  }
  double raw_m = Percentile(raw, 0.5), rest_m = Percentile(rest, 0.5),
         grpc_m = Percentile(grpc_rates, 0.5);
  // Each round's API rate over the raw rate measured just before it: this VM's speed drifts
  // between minutes, and a ratio of two medians can pair a fast minute with a slow one.
  auto paired = [&](const std::vector<double>& api) {
    std::vector<double> ratios;
    for (size_t i = 0; i < api.size() && i < raw.size(); ++i)
      if (raw[i] > 0) ratios.push_back(100 * api[i] / raw[i]);
    return ratios.empty() ? 0 : static_cast<int>(Percentile(ratios, 0.5));
  };
  if (!list_only && !watch_only)
    std::cout << "creates (" << clients << " clients, median of " << rounds << " x " << seconds
              << " s):\n"
              << "  raw store puts/s   " << (long)raw_m << "\n"
              << "  REST creates/s     " << (long)rest_m << "  (" << (int)(100 * rest_m / raw_m)
              << "% of raw; median of the rounds' own ratios " << paired(rest) << "%)\n"
              << "  gRPC creates/s     " << (long)grpc_m << "  (" << (int)(100 * grpc_m / raw_m)
              << "% of raw; median of the rounds' own ratios " << paired(grpc_rates) << "%)\n"
              << "  server CPU per create (scheduler and controllers included): REST "
              << (long)Percentile(rest_cpu, 0.5) << " us, gRPC " << (long)Percentile(grpc_cpu, 0.5)
              << " us; load average " << LoadAverage() << "\n"
              << "  bench clients' CPU per create: REST " << (long)Percentile(rest_client_cpu, 0.5)
              << " us, gRPC " << (long)Percentile(grpc_client_cpu, 0.5) << " us\n";

  if (creates_only) return 0;
  // 3: watch fan-out.
  if (!list_only) {
    ServerProc s;
    StartServer(server_bin, &s);
    WatchFanout w;
    w.Start(s.http_port, s.token, watchers);
    std::thread io_thread([&] {
      auto guard = asio::make_work_guard(w.io);
      w.io.run();
    });
    std::this_thread::sleep_for(std::chrono::seconds(1));
    // Paced writers: `rate` creates/s over `seconds`, spread over 8 connections.
    std::atomic<long> sent{0};
    auto start = Clock::now();
    std::vector<std::thread> ws;
    for (int t = 0; t < 8; ++t) {
      ws.emplace_back([&, t] {
        KeepAlive k(s.http_port, s.token);
        for (long i = t;; i += 8) {
          auto due = start + std::chrono::microseconds(static_cast<long>(i * 1e6 / rate));
          if (due - start > std::chrono::duration<double>(seconds)) break;
          std::this_thread::sleep_until(due);
          k.Do(http::verb::post, "/v1/namespaces/watch/computeinstances",
               Instance("w" + std::to_string(i), std::to_string(photon::MonotonicNanos())));
          ++sent;
        }
      });
    }
    for (auto& t : ws) t.join();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    w.io.stop();
    io_thread.join();
    std::lock_guard lock(w.mu);
    double achieved = sent / seconds;
    std::cout << "watch fan-out (load average " << LoadAverage() << "): " << watchers
              << " watchers, " << (long)achieved << " changes/s for " << seconds << " s, "
              << w.latencies_ms.size() << " deliveries (expected " << (long)sent * watchers << ")\n"
              << "  delivery latency p50 " << Percentile(w.latencies_ms, 0.5) << " ms, p99 "
              << Percentile(w.latencies_ms, 0.99) << " ms\n";
  }

  if (!list_only) FilteredFanout(server_bin, watchers, rate, seconds);

  // 4: list 100,000 objects paged, and RSS. Objects go in through the API (that is part of
  // what the server holds), in parallel for speed.
  if (!watch_only) {
    ServerProc s;
    StartServer(server_bin, &s);
    long base_rss = RssKiB(s.pid);
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    auto t0 = Clock::now();
    for (int c = 0; c < 16; ++c) {
      ts.emplace_back([&] {
        KeepAlive k(s.http_port, s.token);
        for (int i; (i = next++) < objects;) {
          k.Do(http::verb::post, "/v1/namespaces/list/computeinstances",
               Instance("l" + std::to_string(i)));
        }
      });
    }
    for (auto& t : ts) t.join();
    double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> times;
    long count = 0;
    for (int round = 0; round < 3; ++round) {
      KeepAlive k(s.http_port, s.token);
      auto l0 = Clock::now();
      std::string cont;
      count = 0;
      do {
        std::string body;
        k.Do(http::verb::get,
             "/v1/namespaces/list/computeinstances?limit=5000" +
                 (cont.empty() ? "" : "&continue=" + cont),
             "", &body);
        // Count items and find the continue token without a full parse: the client's JSON
        // parser would dominate the figure otherwise.
        for (size_t p = 0; (p = body.find("{\"kind\":\"ComputeInstance\"", p)) != std::string::npos;
             ++p)
          ++count;
        auto c = body.find("\"continue\":\"");
        cont.clear();
        if (c != std::string::npos) cont = body.substr(c + 12, body.find('"', c + 12) - c - 12);
      } while (!cont.empty());
      times.push_back(std::chrono::duration<double>(Clock::now() - l0).count());
    }
    std::cout << "list: " << count << " objects (loaded in " << load_s
              << " s) listed in pages of 5,000: median " << Percentile(times, 0.5) << " s\n"
              << "  server RSS " << RssKiB(s.pid) / 1024 << " MiB holding them (" << base_rss / 1024
              << " MiB empty)\n";
  }
  return 0;
}
