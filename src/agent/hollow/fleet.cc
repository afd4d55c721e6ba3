#include "agent/hollow/fleet.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "agent/api_client.h"
#include "agent/hollow/async_http.h"
#include "agent/hollow/hollow_node.h"
#include "common/file_util.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::hollow {
namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

json Percentiles(std::vector<double> v) {
  json out{{"count", v.size()}};
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  out["p50"] = at(0.50);
  out["p90"] = at(0.90);
  out["p99"] = at(0.99);
  out["max"] = v.back();
  return out;
}

}  // namespace

// One event loop and the nodes on it.
class Shard {
 public:
  Shard(Fleet* fleet, std::unique_ptr<asio::io_context> io, std::unique_ptr<AsyncHttp> http)
      : fleet_(fleet),
        io_(std::move(io)),
        http_(std::move(http)),
        work_(asio::make_work_guard(*io_)),
        pace_(*io_) {}

  void Add(std::string name) {
    nodes_.push_back(std::make_unique<HollowNode>(fleet_, this, std::move(name)));
  }
  void Run(int per_second) {
    per_tick_ = std::max(1, per_second / 100);  // started every 10 ms
    thread_ = std::thread([this] {
      SetThreadName("hollow-loop");
      asio::post(*io_, [this] { StartSome(); });
      io_->run();
    });
  }
  void Stop() {
    io_->stop();
    if (thread_.joinable()) thread_.join();
  }

  asio::io_context* io() { return io_.get(); }
  AsyncHttp* http() { return http_.get(); }
  void Sample(Series series, double ms) {
    std::lock_guard l(mu_);
    samples_[static_cast<int>(series)].push_back(ms);
  }
  std::vector<double> Samples(Series series, bool reset) {
    std::lock_guard l(mu_);
    auto& v = samples_[static_cast<int>(series)];
    std::vector<double> out = v;
    if (reset) v.clear();
    return out;
  }

 private:
  void StartSome() {
    for (int i = 0; i < per_tick_ && started_ < nodes_.size(); ++i) nodes_[started_++]->Start();
    if (started_ >= nodes_.size()) return;
    pace_.expires_after(std::chrono::milliseconds(10));
    pace_.async_wait([this](boost::system::error_code ec) {
      if (!ec) StartSome();
    });
  }

  Fleet* fleet_;
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<AsyncHttp> http_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer pace_;
  std::vector<std::unique_ptr<HollowNode>> nodes_;
  size_t started_ = 0;
  int per_tick_ = 1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<double> samples_[kSeriesCount];
};

// ---- the fleet ------------------------------------------------------------------------------

Fleet::Fleet(FleetOptions options) : options_(std::move(options)) {}

Fleet::~Fleet() { Stop(); }

Status Fleet::Start() {
  if (options_.nodes < 1) return absl::InvalidArgumentError("--nodes: at least 1");
  if (options_.threads < 1) return absl::InvalidArgumentError("--threads: at least 1");
  if (options_.heartbeat_seconds < 1) {
    return absl::InvalidArgumentError("--heartbeat-seconds: at least 1");
  }
  if (options_.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: required");
  PHOTON_RETURN_IF_ERROR(MakeDirs(options_.data_dir, 0700));
  PHOTON_ASSIGN_OR_RETURN(std::string token, ReadFile(options_.join_token_file));
  join_token_ = Trim(token);
  if (join_token_.empty()) {
    return absl::InvalidArgumentError("--join-token: " + options_.join_token_file + " is empty");
  }
  const int shards = std::min(options_.threads, options_.nodes);
  for (int i = 0; i < shards; ++i) {
    auto io = std::make_unique<asio::io_context>(1);
    PHOTON_ASSIGN_OR_RETURN(auto http,
                            AsyncHttp::Create(io.get(), options_.server, options_.connections));
    shards_.push_back(std::make_unique<Shard>(this, std::move(io), std::move(http)));
  }
  for (int i = 0; i < options_.nodes; ++i) {
    shards_[static_cast<size_t>(i % shards)]->Add(options_.name_prefix + "-" +
                                                  std::to_string(options_.first_index + i));
  }
  const int per_shard = std::max(1, options_.start_per_second / shards);
  for (auto& s : shards_) s->Run(per_shard);
  return absl::OkStatus();
}

void Fleet::Stop() {
  for (auto& s : shards_) s->Stop();
  shards_.clear();
}

json Fleet::Stats(bool reset) {
  std::vector<double> beats, deliveries, running;
  for (auto& s : shards_) {
    auto b = s->Samples(Series::kHeartbeat, reset);
    beats.insert(beats.end(), b.begin(), b.end());
    auto d = s->Samples(Series::kDelivery, reset);
    deliveries.insert(deliveries.end(), d.begin(), d.end());
    auto r = s->Samples(Series::kAssignedToRunning, reset);
    running.insert(running.end(), r.begin(), r.end());
  }
  const auto& c = counters_;
  return json{{"nodes", options_.nodes},
              {"nodesReady", c.nodes_ready.load()},
              {"heartbeats", c.heartbeats.load()},
              {"heartbeatFailures", c.heartbeat_failures.load()},
              {"statusWrites", c.status_writes.load()},
              {"statusConflicts", c.status_conflicts.load()},
              {"deletes", c.deletes.load()},
              {"watchEvents", c.watch_events.load()},
              {"foreignEvents", c.foreign_events.load()},
              {"relists", c.relists.load()},
              {"running", c.running.load()},
              {"errors", c.errors.load()},
              {"heartbeatMs", Percentiles(std::move(beats))},
              {"deliveryMs", Percentiles(std::move(deliveries))},
              {"assignedToRunningMs", Percentiles(std::move(running))}};
}

std::string Fleet::Metrics() {
  const auto& c = counters_;
  std::string out;
  auto line = [&](const char* name, const char* help, const char* type, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  line("photon_hollow_nodes", "Simulated nodes", "gauge", options_.nodes);
  line("photon_hollow_nodes_ready", "Nodes registered and heartbeating", "gauge",
       c.nodes_ready.load());
  line("photon_hollow_heartbeats_total", "Heartbeats written", "counter", c.heartbeats.load());
  line("photon_hollow_heartbeat_failures_total", "Heartbeats that failed", "counter",
       c.heartbeat_failures.load());
  line("photon_hollow_status_writes_total", "Instance status writes", "counter",
       c.status_writes.load());
  line("photon_hollow_deletes_total", "Deletes finished", "counter", c.deletes.load());
  line("photon_hollow_watch_events_total", "Watch events received", "counter",
       c.watch_events.load());
  line("photon_hollow_foreign_events_total",
       "Watch events about an instance of another node (a filtered watch gets none)", "counter",
       c.foreign_events.load());
  line("photon_hollow_instances_running", "Instances reported RUNNING", "gauge", c.running.load());
  return out;
}

// ---- glue for the nodes ---------------------------------------------------------------------

asio::io_context* ShardIo(Shard* s) { return s->io(); }
AsyncHttp* ShardHttp(Shard* s) { return s->http(); }
void ShardSample(Shard* s, Series series, double ms) { s->Sample(series, ms); }

}  // namespace photon::hollow
