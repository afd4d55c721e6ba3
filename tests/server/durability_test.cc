// An acknowledged create survives kill -9 of the real photon-server binary.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.h"

namespace photon::testing {
namespace {

pid_t StartServer(const std::string& dir, int port) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string listen = "127.0.0.1:" + std::to_string(port);
    std::string grpc = "127.0.0.1:" + std::to_string(FreePort());
    execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", dir.c_str(), "--listen", listen.c_str(),
          "--grpc-listen", grpc.c_str(), "--log-level", "warn", nullptr);
    _exit(127);
  }
  return pid;
}

bool WaitHealthy(int port) {
  auto c = *cli::HttpClient::Create("http://127.0.0.1:" + std::to_string(port), "");
  for (int i = 0; i < 200; ++i) {
    auto r = c.Do("GET", "/healthz");
    if (r.ok() && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(Durability, AcknowledgedCreatesSurviveKill9) {
  std::string dir = MakeTempDir("durable");
  int port = FreePort();
  pid_t pid = StartServer(dir, port);
  ASSERT_TRUE(WaitHealthy(port));
  std::string token = Trim(*ReadFile(dir + "/admin.token"));
  std::string base = "http://127.0.0.1:" + std::to_string(port);

  // Four clients create as fast as they can; the server dies under them.
  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto c = *cli::HttpClient::Create(base, token);
      for (int i = 0; !stop; ++i) {
        std::string name = "d" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c.Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance(name));
        if (!r.ok()) break;
        if (r->status == 202) {
          std::lock_guard lock(mu);
          acked.push_back(name);
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GT(acked.size(), 20u);

  pid = StartServer(dir, port);
  ASSERT_TRUE(WaitHealthy(port));
  auto c = *cli::HttpClient::Create(base, token);
  std::set<std::string> present;
  std::string cont;
  do {
    auto r = c.Do("GET", "/v1/namespaces/default/computeinstances?limit=1000" +
                             (cont.empty() ? "" : "&continue=" + cont));
    ASSERT_EQ(r->status, 200);
    auto j = Json(*r);
    for (auto& it : j["items"]) present.insert(it["metadata"]["name"]);
    cont = j["continue"];
  } while (!cont.empty());
  for (const auto& name : acked)
    EXPECT_TRUE(present.count(name)) << name << " was acknowledged but is gone";
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
}

TEST(Bootstrap, AdminTokenIsPrivate) {
  TestServer s;
  struct stat st {};
  ASSERT_EQ(stat((s.dir + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((s.dir + "/join.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

}  // namespace
}  // namespace photon::testing
