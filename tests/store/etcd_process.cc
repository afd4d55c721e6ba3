// Starts and stops a real etcd for tests and benchmarks. Not thread-safe; see etcd_process.h.
#include "etcd_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "../free_port.h"
#include "store/etcd_store.h"

namespace photon::store::testing {

std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/photon-" + tag + "-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) return {};
  return std::string(buffer.data());
}

int PickFreePort() { return ::photon::testing::FreePort(); }

bool EtcdProcess::Available() { return access(kEtcdBinary, X_OK) == 0; }

StatusOr<std::unique_ptr<EtcdProcess>> EtcdProcess::Start() {
  if (!Available()) return absl::UnavailableError(std::string(kEtcdBinary) + " not installed");
  std::unique_ptr<EtcdProcess> etcd(new EtcdProcess());
  etcd->dir_ = MakeTempDir("etcd");
  if (etcd->dir_.empty()) return absl::InternalError("cannot create a temp dir for etcd");
  int client_port = PickFreePort();
  int peer_port = PickFreePort();
  if (client_port <= 0 || peer_port <= 0 || client_port == peer_port) {
    return absl::InternalError("no free port for etcd");
  }
  etcd->endpoint_ = "127.0.0.1:" + std::to_string(client_port);
  std::string client_url = "http://" + etcd->endpoint_;
  std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port);
  std::vector<std::string> args = {kEtcdBinary,
                                   "--name=photon-test",
                                   "--data-dir=" + etcd->dir_ + "/data",
                                   "--listen-client-urls=" + client_url,
                                   "--advertise-client-urls=" + client_url,
                                   "--listen-peer-urls=" + peer_url,
                                   "--initial-advertise-peer-urls=" + peer_url,
                                   "--initial-cluster=photon-test=" + peer_url,
                                   "--initial-cluster-state=new"};
  etcd->args_ = std::move(args);
  PHOTON_RETURN_IF_ERROR(etcd->Spawn());
  return etcd;
}

Status EtcdProcess::Spawn() {
  std::string log_path = dir_ + "/etcd.log";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // Never outlive the test: the kernel kills etcd when its parent goes, even by SIGKILL.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      close(log);
    }
    std::vector<char*> argv;
    for (auto& arg : args_) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(kEtcdBinary, argv.data());
    _exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Status last = absl::UnavailableError("etcd did not answer");
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      pid_ = -1;
      return absl::InternalError("etcd exited at start-up; see " + log_path);
    }
    auto store = EtcdStore::Open({endpoint_});
    if (store.ok()) return absl::OkStatus();
    last = store.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::UnavailableError("etcd did not answer in time: " + std::string(last.message()));
}

Status EtcdProcess::Restart() {
  Kill();
  return Spawn();
}

EtcdProcess::~EtcdProcess() { Stop(); }

void EtcdProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void EtcdProcess::Stop() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      int wstatus = 0;
      if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }
}

}  // namespace photon::store::testing
