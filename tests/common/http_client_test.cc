// HttpClient's timeout bounds a call against a server that accepts and then never answers
// (a hung or half-dead peer), and does not cut short an answer that comes in time.
#include "common/http_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/http_server.h"

namespace photon {
namespace {

using Clock = std::chrono::steady_clock;

// Listens on a loopback port, accepts connections and reads them, never writes.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        conns_.push_back(c);
      }
    });
  }
  ~SilentServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int c : conns_) close(c);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> conns_;
  std::thread thread_;
};

TEST(HttpClientTimeout, SilentServerGivesAnErrorWithinTheTimeout) {
  SilentServer silent;
  auto c = HttpClient::Create("http://127.0.0.1:" + std::to_string(silent.port()), "t");
  ASSERT_TRUE(c.ok());
  c->set_timeout(std::chrono::milliseconds(300));
  auto t0 = Clock::now();
  auto r = c->Do("GET", "/v1/anything");
  auto took = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(r.status().message()).find("no answer within 300 ms"), std::string::npos)
      << r.status().message();
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_GE(took, std::chrono::milliseconds(250));
}

TEST(HttpClientTimeout, AnswerInTimeIsNotCutShort) {
  HttpServerOptions o;
  o.threads = 1;
  std::vector<std::thread> workers;
  std::mutex mu;
  auto s = HttpServer::Start(o, [&](HttpRequest& req) {
    if (req.path == "/slow") {
      return HttpResponse::Later([&](HttpReply reply) {
        std::lock_guard lock(mu);
        workers.emplace_back([reply = std::move(reply)] {
          std::this_thread::sleep_for(std::chrono::milliseconds(150));
          reply(HttpResponse::Text(200, "late but in time"));
        });
      });
    }
    return HttpResponse::Text(200, "now");
  });
  ASSERT_TRUE(s.ok());
  auto c = HttpClient::Create("http://127.0.0.1:" + std::to_string((*s)->port()), "t");
  ASSERT_TRUE(c.ok());
  c->set_timeout(std::chrono::milliseconds(2000));
  auto r = c->Do("GET", "/slow");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "late but in time");
  r = c->Do("POST", "/now", "{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "now");
  (*s)->Stop();
  for (auto& t : workers) t.join();
}

TEST(HttpClientTimeout, RefusedConnectionIsAClearError) {
  int port;
  {
    SilentServer gone;  // a port that was just free again
    port = gone.port();
  }
  auto c = HttpClient::Create("http://127.0.0.1:" + std::to_string(port), "t");
  ASSERT_TRUE(c.ok());
  c->set_timeout(std::chrono::milliseconds(1000));
  auto r = c->Do("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("cannot reach 127.0.0.1:"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace photon
