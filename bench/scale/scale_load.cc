// photon-scale-load: the load side of bench/scale (run_bench.py starts the server and the
// hollow fleet). One event loop, keep-alive connections, and one watch on the instances that
// times every change it causes:
//   create --count N     N process instances as fast as accepted; time to all placed and to
//                        all RUNNING, per-instance create->placed and create->RUNNING
//                        percentiles; --delete then deletes them all and times that too.
//   churn --rate R       R operations/s for --seconds, creates and deletes alternating over a
//                        population of --population; create->placed percentiles.
//   update --rate R      R metadata changes/s over instances PREFIX0..PREFIX(count-1), each
//                        stamped with hollow.photon/sent-unix-ns (the fleet samples delivery);
//                        updateMs: stamp -> PUT answered, the write's share of a delivery.
// Prints one JSON object with the figures on stdout.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "agent/hollow/async_http.h"
#include "agent/hollow/fleet.h"
#include "common/file_util.h"

namespace {
using photon::hollow::AsyncHttp;
using photon::hollow::Reply;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

json Percentiles(std::vector<double> v) {
  json out{{"count", v.size()}};
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))]; };
  out["p50"] = at(0.5);
  out["p90"] = at(0.9);
  out["p99"] = at(0.99);
  out["max"] = v.back();
  return out;
}

struct Track {
  Clock::time_point sent{};
  Clock::time_point placed{};
  Clock::time_point running{};
  Clock::time_point gone{};
};

class Load {
 public:
  Load(boost::asio::io_context* io, std::unique_ptr<AsyncHttp> http, std::string token,
       std::string ns)
      : io_(io), http_(std::move(http)), token_(std::move(token)), ns_(std::move(ns)) {}

  // Lists (for the revision), then watches the namespace's instances; `ready` once watching.
  void StartWatch(std::function<void()> ready) {
    http_->Call("GET", Base() + "?limit=1", token_, "", [this, ready](Reply r) {
      json page = json::parse(r.body, nullptr, false);
      if (r.status != 200 || !page.is_object()) {
        std::cerr << "list: " << r.status << " " << r.body << r.error << "\n";
        std::exit(1);
      }
      std::string rv = page.value("resourceVersion", "");
      watch_ = http_->Watch(
          Base() + "?watch=true&resourceVersion=" + rv, token_,
          [this](std::string_view line) {
            OnEvent(json::parse(line, nullptr, false));
            return true;
          },
          [](Reply end) {
            std::cerr << "watch ended: " << end.status << " " << end.body << end.error << "\n";
            std::exit(1);
          });
      ready();
    });
  }

  // The default subnet is a /20 (4,091 addresses): a bulk of 10,000 names a larger one.
  void UseSubnet(std::string vpc, std::string subnet) {
    vpc_ = std::move(vpc);
    subnet_ = std::move(subnet);
  }

  void Create(const std::string& name, std::function<void(bool)> done) {
    json body = json::object();
    body["metadata"]["name"] = name;
    body["spec"]["process"]["command"] = json::array({"sleep", "100000"});
    body["spec"]["resources"]["vcpu"] = 1;
    body["spec"]["resources"]["memoryMb"] = "16";
    if (!vpc_.empty()) {
      body["spec"]["network"]["vpc"] = vpc_;
      body["spec"]["network"]["subnet"] = subnet_;
    }
    tracks_[name].sent = Clock::now();
    http_->Call("POST", Base(), token_, body.dump(), [name, done](Reply r) {
      if (r.status != 202 && r.status != 200 && r.status != 201) {
        std::cerr << "create " << name << ": " << r.status << " " << r.body << r.error << "\n";
      }
      done(r.status >= 200 && r.status < 300);
    });
  }
  void Delete(const std::string& name, std::function<void(bool)> done) {
    http_->Call("DELETE", Base() + "/" + name, token_, "", [name, done](Reply r) {
      if (r.status >= 300)
        std::cerr << "delete " << name << ": " << r.status << " " << r.body << "\n";
      done(r.status >= 200 && r.status < 300);
    });
  }
  void Update(const std::string& name, std::function<void()> done) {
    auto it = objects_.find(name);
    if (it == objects_.end()) {
      http_->Call("GET", Base() + "/" + name, token_, "", [this, name, done](Reply r) {
        json obj = json::parse(r.body, nullptr, false);
        if (r.status == 200 && obj.is_object()) {
          objects_[name] = obj;
          return Update(name, done);
        }
        ++update_errors_;
        done();
      });
      return;
    }
    json obj = it->second;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    obj["metadata"]["annotations"][photon::hollow::Fleet::kSentAnnotation] =
        std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
    const auto sent = Clock::now();
    http_->Call("PUT", Base() + "/" + name, token_, obj.dump(), [this, name, done, sent](Reply r) {
      json fresh = json::parse(r.body, nullptr, false);
      if (r.status == 200 && fresh.is_object()) {
        objects_[name] = std::move(fresh);
        ++updates_;
        update_ms_.push_back(Ms(sent, Clock::now()));
      } else {
        objects_.erase(name);  // conflict or error: read it again next time
        ++update_errors_;
      }
      done();
    });
  }

  std::map<std::string, Track>& tracks() { return tracks_; }
  int64_t updates() const { return updates_; }
  int running() const { return running_; }
  int gone() const { return gone_; }
  int64_t update_errors() const { return update_errors_; }
  // Stamp -> PUT answered (the write committed), per successful update, in ms.
  const std::vector<double>& update_ms() const { return update_ms_; }
  AsyncHttp* http() { return http_.get(); }
  std::function<void()> on_change;

 private:
  std::string Base() const { return "/v1/namespaces/" + ns_ + "/computeinstances"; }
  void OnEvent(const json& ev) {
    if (!ev.is_object() || !ev.contains("object")) return;
    const json& obj = ev["object"];
    const std::string name = obj["metadata"].value("name", "");
    auto it = tracks_.find(name);
    if (it == tracks_.end()) return;
    Track& t = it->second;
    const auto now = Clock::now();
    if (ev.value("type", "") == "DELETED") {
      if (t.gone == Clock::time_point{}) {
        t.gone = now;
        ++gone_;
      }
    } else {
      if (t.placed == Clock::time_point{} && !obj["metadata"].value("agentId", "").empty()) {
        t.placed = now;
      }
      if (t.running == Clock::time_point{} && obj.contains("status") &&
          obj["status"].value("phase", "") == "RUNNING") {
        t.running = now;
        ++running_;
      }
    }
    if (on_change) on_change();
  }

  boost::asio::io_context* io_;
  std::unique_ptr<AsyncHttp> http_;
  std::string token_;
  std::string vpc_, subnet_;
  std::string ns_;
  std::shared_ptr<photon::hollow::WatchHandle> watch_;
  std::map<std::string, Track> tracks_;
  std::map<std::string, json> objects_;
  int64_t updates_ = 0;
  int64_t update_errors_ = 0;
  std::vector<double> update_ms_;
  int running_ = 0;
  int gone_ = 0;
};

// Calls `tick(n)` with the number of operations due every 5 ms, for `seconds`.
void Paced(boost::asio::io_context* io, double rate, double seconds, std::function<void(int)> tick,
           std::function<void()> end) {
  auto timer = std::make_shared<boost::asio::steady_timer>(*io);
  auto start = Clock::now();
  auto issued = std::make_shared<int64_t>(0);
  auto step = std::make_shared<std::function<void()>>();
  *step = [=] {
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed >= seconds) {
      auto finish = end;  // this lambda is destroyed by the next line
      *step = nullptr;    // breaks the self-reference
      return finish();
    }
    int64_t due = static_cast<int64_t>(elapsed * rate) - *issued;
    if (due > 0) {
      *issued += due;
      tick(static_cast<int>(due));
    }
    timer->expires_after(std::chrono::milliseconds(5));
    timer->async_wait([step](boost::system::error_code ec) {
      if (!ec && *step) (*step)();
    });
  };
  (*step)();
}

std::string Name(const std::string& prefix, int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06d", i);
  return prefix + buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, token_file, ns = "default", prefix = "s", subnet;
  int count = 1000, connections = 16, population = 100;
  double rate = 20, seconds = 30, timeout = 600;
  bool del = false;
  CLI::App app{"photon-scale-load: load for bench/scale"};
  app.require_subcommand(1);
  app.add_option("--server", server, "http://HOST:PORT")->required();
  app.add_option("--token-file", token_file, "admin token file")->required();
  app.add_option("--namespace", ns, "namespace of the instances");
  app.add_option("--prefix", prefix, "instance name prefix");
  app.add_option("--connections", connections, "keep-alive connections");
  app.add_option("--timeout", timeout, "seconds before giving up");
  app.add_option("--subnet", subnet, "VPC/SUBNET the instances are created in");
  auto* create = app.add_subcommand("create", "create N instances, wait for all RUNNING");
  create->add_option("--count", count)->required();
  create->add_flag("--delete", del, "then delete them all and wait until gone");
  auto* churn = app.add_subcommand("churn", "creates and deletes at a rate");
  churn->add_option("--rate", rate, "operations/s (creates + deletes)");
  churn->add_option("--seconds", seconds);
  churn->add_option("--population", population, "instances kept while churning");
  auto* update = app.add_subcommand("update", "metadata changes at a rate");
  update->add_option("--rate", rate, "changes/s");
  update->add_option("--seconds", seconds);
  update->add_option("--count", count, "instances PREFIX000000..");
  CLI11_PARSE(app, argc, argv);

  auto token = photon::ReadFile(token_file);
  if (!token.ok()) {
    std::cerr << token.status().message() << "\n";
    return 2;
  }
  std::string tok = *token;
  while (!tok.empty() && tok.back() == '\n') tok.pop_back();
  boost::asio::io_context io(1);
  auto http = AsyncHttp::Create(&io, server, connections);
  if (!http.ok()) {
    std::cerr << http.status().message() << "\n";
    return 2;
  }
  Load load(&io, std::move(*http), tok, ns);
  if (auto slash = subnet.find('/'); slash != std::string::npos) {
    load.UseSubnet(subnet.substr(0, slash), subnet.substr(slash + 1));
  } else if (!subnet.empty()) {
    std::cerr << "--subnet wants VPC/SUBNET\n";
    return 2;
  }
  json out;
  const auto t0 = Clock::now();
  auto deadline = std::make_shared<boost::asio::steady_timer>(io);
  deadline->expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
  deadline->async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "timed out\n";
    std::exit(1);
  });

  if (create->parsed()) {
    auto accepted = std::make_shared<int>(0);
    Clock::time_point all_accepted{}, delete_start{};
    bool deleting = false;
    auto finish_create = [&] {
      std::vector<double> placed, running;
      Clock::time_point last_placed{}, last_running{};
      for (auto& [n, t] : load.tracks()) {
        placed.push_back(Ms(t.sent, t.placed));
        running.push_back(Ms(t.sent, t.running));
        last_placed = std::max(last_placed, t.placed);
        last_running = std::max(last_running, t.running);
      }
      out["instances"] = count;
      out["acceptedS"] = Ms(t0, all_accepted) / 1000;
      out["allPlacedS"] = Ms(t0, last_placed) / 1000;
      out["allRunningS"] = Ms(t0, last_running) / 1000;
      out["perSecond"] = count / (Ms(t0, last_running) / 1000);
      out["createToPlacedMs"] = Percentiles(placed);
      out["createToRunningMs"] = Percentiles(running);
    };
    load.on_change = [&] {
      if (!deleting) {
        if (load.running() < count) return;
        finish_create();
        if (!del) return io.stop();
        deleting = true;
        delete_start = Clock::now();
        for (int i = 0; i < count; ++i) load.Delete(Name(prefix, i), [](bool) {});
        return;
      }
      if (load.gone() < count) return;
      out["deleteAllS"] = Ms(delete_start, Clock::now()) / 1000;
      io.stop();
    };
    load.StartWatch([&] {
      for (int i = 0; i < count; ++i) {
        load.Create(Name(prefix, i), [&, accepted](bool) {
          if (++*accepted == count) all_accepted = Clock::now();
        });
      }
    });
    io.run();  // in the block: the callbacks refer to its locals
  } else if (churn->parsed()) {
    // The population first, then alternate: create a new one, delete the oldest.
    auto next = std::make_shared<int>(0);
    auto oldest = std::make_shared<int>(0);
    auto created = std::make_shared<int>(0);
    auto measured_from = std::make_shared<int>(population);
    load.StartWatch([&] {
      for (int i = 0; i < population; ++i) {
        load.Create(Name(prefix, (*next)++), [&, created](bool) {
          if (++*created != population) return;
          auto flip = std::make_shared<bool>(false);
          Paced(
              &io, rate, seconds,
              [&, flip](int n) {
                for (int k = 0; k < n; ++k) {
                  *flip = !*flip;
                  if (*flip) {
                    load.Create(Name(prefix, (*next)++), [](bool) {});
                  } else {
                    load.Delete(Name(prefix, (*oldest)++), [](bool) {});
                  }
                }
              },
              [&] {
                // Let the last creates be placed, then report.
                auto grace = std::make_shared<boost::asio::steady_timer>(io);
                grace->expires_after(std::chrono::seconds(3));
                grace->async_wait([&, grace](boost::system::error_code) {
                  std::vector<double> placed;
                  int unplaced = 0;
                  for (int i = *measured_from; i < *next; ++i) {
                    const Track& t = load.tracks()[Name(prefix, i)];
                    if (t.placed == Clock::time_point{}) {
                      ++unplaced;
                    } else {
                      placed.push_back(Ms(t.sent, t.placed));
                    }
                  }
                  out["rate"] = rate;
                  out["seconds"] = seconds;
                  out["creates"] = *next - *measured_from;
                  out["unplaced"] = unplaced;
                  out["createToPlacedMs"] = Percentiles(placed);
                  for (int i = *oldest; i < *next; ++i) load.Delete(Name(prefix, i), [](bool) {});
                  auto drain = std::make_shared<boost::asio::steady_timer>(io);
                  drain->expires_after(std::chrono::seconds(2));
                  drain->async_wait([&, drain](boost::system::error_code) { io.stop(); });
                });
              });
        });
      }
    });
    io.run();
  } else if (update->parsed()) {
    auto i = std::make_shared<int>(0);
    auto start = Clock::now();
    Paced(
        &io, rate, seconds,
        [&, i](int n) {
          for (int k = 0; k < n; ++k) load.Update(Name(prefix, (*i)++ % count), [] {});
        },
        [&] {
          out["rate"] = rate;
          out["achievedPerSecond"] = load.updates() / Ms(start, Clock::now()) * 1000;
          out["updates"] = load.updates();
          out["updateErrors"] = load.update_errors();
          out["updateMs"] = Percentiles(load.update_ms());
          out["queued"] = load.http()->queued();
          io.stop();
        });
    io.run();
  }
  std::cout << out.dump() << std::endl;
  std::_Exit(0);  // the watch and connections go with the process
}
