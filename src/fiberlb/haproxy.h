// The HAProxy data plane process, run and supervised by fiberlb.
//
// HAProxy runs in master-worker mode as fiberlb's child: the master re-executes itself on
// "reload" (sent on its master socket), the new worker takes the listening sockets over from
// the old one (expose-fd listeners) and the old one finishes its connections, so a reload
// refuses no connection. The master is started with PR_SET_PDEATHSIG=SIGTERM from a thread
// that lives as long as this object (the signal follows the forking thread), so fiberlb
// killed with SIGKILL takes HAProxy down with it; HAProxy's workers exit with their master.
// A master left over anyway (its pidfile names a live haproxy on our configuration) is
// stopped before a new one starts. A master that dies on its own is restarted.
//
// Thread-safety: all methods may be called from any thread; Reload() calls are serialised.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace photon::fiberlb {

struct HaproxyOptions {
  std::string binary = "/usr/sbin/haproxy";
  std::string run_dir;          // holds haproxy.cfg, the sockets and the pidfile
  std::string access_log_path;  // the workers' stdout (log stdout); "" : /dev/null
};

// One row of "show stat": column name → value.
using StatRow = std::map<std::string, std::string>;

class Haproxy {
 public:
  explicit Haproxy(HaproxyOptions options);
  ~Haproxy();  // Stop()
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  std::string ConfigPath() const { return options_.run_dir + "/haproxy.cfg"; }
  // `haproxy -c` on a configuration file; the error names HAProxy's complaint.
  Status Check(const std::string& config_path);
  // Starts the master with ConfigPath() and waits until a worker serves.
  Status Start();
  // Installs `config_path` as the configuration and reloads hitlessly; waits for the new worker.
  Status Reload(const std::string& config_path);
  // Stops HAProxy (workers finish nothing: fiberlb is going away) and the supervisor thread.
  void Stop();

  // One runtime API command on the worker's stats socket; returns its output.
  StatusOr<std::string> Command(const std::string& command);
  StatusOr<std::vector<StatRow>> ShowStat();
  pid_t master_pid() const;

 private:
  void Supervise();
  pid_t Spawn();
  void KillStale();
  StatusOr<std::string> MasterCommand(const std::string& command);
  // Pids of the current workers ("show proc", reloads == 0).
  StatusOr<std::vector<pid_t>> NewWorkers();
  Status WaitForWorker(const std::vector<pid_t>& not_these);

  HaproxyOptions options_;
  std::mutex reload_mu_;  // one reload at a time
  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t master_ = 0;
  bool stopping_ = false;
  bool start_requested_ = false;
  int spawn_errno_ = 0;
  std::thread supervisor_;
};

// Talks the runtime API over a unix socket: sends one line, reads to EOF.
StatusOr<std::string> UnixSocketCommand(const std::string& socket_path, const std::string& line);

}  // namespace photon::fiberlb
