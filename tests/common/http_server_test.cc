// HttpServer's deferred answers (HttpResponse::Later) over real loopback sockets: answers
// given from other threads, in request order even when requests are pipelined, large ones
// that do not fit the socket at once, dropped ones, and Stop() while answers are owed.
#include "common/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace photon {
namespace {

using namespace std::chrono_literals;

// A blocking client on one connection: raw bytes out, whole responses back.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{10, 0};  // every read is bounded
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() { close(fd_); }

  void Send(const std::string& bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // One response: status code and body (Content-Length framing). -1 on EOF or timeout.
  std::pair<int, std::string> Read() {
    for (;;) {
      auto head_end = buf_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = buf_.substr(0, head_end);
        auto cl = head.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
        if (buf_.size() >= head_end + 4 + len) {
          int status = std::stoi(head.substr(9, 3));
          std::string body = buf_.substr(head_end + 4, len);
          buf_.erase(0, head_end + 4 + len);
          return {status, body};
        }
      }
      char tmp[65536];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return {-1, ""};
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  void HalfClose() { shutdown(fd_, SHUT_WR); }
  // True when the server closed the connection (EOF) within the receive timeout.
  bool ReadsEof() {
    char c;
    return buf_.empty() && recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

std::string Get(const std::string& path, bool close = false) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + (close ? "Connection: close\r\n" : "") +
         "\r\n";
}

// /later/N/MS answers "N" from another thread after MS ms; /later-big answers 8 MiB from
// another thread; /drop never answers (drops the reply); anything else answers at once.
class DeferredServer {
 public:
  DeferredServer() {
    HttpServerOptions o;
    o.threads = 2;
    auto s = HttpServer::Start(o, [this](HttpRequest& r) { return Handle(r); });
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  ~DeferredServer() {
    server_->Stop();
    for (auto& t : workers_) t.join();
  }
  int port() const { return server_->port(); }
  HttpServer& server() { return *server_; }

 private:
  // A deferred answer that `work` gives on a thread of its own.
  HttpResponse OnWorker(std::function<void(HttpReply)> work) {
    return HttpResponse::Later([this, work = std::move(work)](HttpReply reply) {
      std::lock_guard lock(mu_);
      workers_.emplace_back([work, reply = std::move(reply)] { work(reply); });
    });
  }

  HttpResponse Handle(HttpRequest& r) {
    if (r.path.rfind("/later/", 0) == 0) {
      std::string rest = r.path.substr(7);
      std::string id = rest.substr(0, rest.find('/'));
      int ms = std::stoi(rest.substr(rest.find('/') + 1));
      return OnWorker([id, ms](const HttpReply& reply) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        reply(HttpResponse::Text(200, id));
        reply(HttpResponse::Text(500, "second call must be ignored"));
      });
    }
    if (r.path == "/later-big") {
      return OnWorker([](const HttpReply& reply) {
        std::string body(8 << 20, 'x');
        for (size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>('a' + i % 26);
        reply(HttpResponse::Text(200, std::move(body)));
      });
    }
    if (r.path == "/drop") {
      return HttpResponse::Later([](HttpReply) {});
    }
    return HttpResponse::Text(200, "now:" + r.path);
  }

  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

TEST(HttpDeferred, AnswerFromAnotherThreadThenKeepAlive) {
  DeferredServer s;
  RawClient c(s.port());
  c.Send(Get("/later/1/20"));
  auto r = c.Read();
  EXPECT_EQ(r.first, 200);
  EXPECT_EQ(r.second, "1");
  c.Send(Get("/plain"));
  r = c.Read();
  EXPECT_EQ(r.first, 200);
  EXPECT_EQ(r.second, "now:/plain");
  c.Send(Get("/later/2/0"));
  EXPECT_EQ(c.Read().second, "2");
}

TEST(HttpDeferred, PipelinedRequestsAreAnsweredInOrder) {
  DeferredServer s;
  RawClient c(s.port());
  // The slow deferred answer comes first; the two behind it are ready long before it.
  c.Send(Get("/later/slow/150") + Get("/plain") + Get("/later/fast/0"));
  EXPECT_EQ(c.Read().second, "slow");
  EXPECT_EQ(c.Read().second, "now:/plain");
  EXPECT_EQ(c.Read().second, "fast");
}

TEST(HttpDeferred, LargeAnswerThatDoesNotFitTheSocketArrivesWhole) {
  DeferredServer s;
  RawClient c(s.port());
  c.Send(Get("/later-big") + Get("/plain"));
  auto r = c.Read();
  ASSERT_EQ(r.first, 200);
  ASSERT_EQ(r.second.size(), 8u << 20);
  for (size_t i = 0; i < r.second.size(); i += 4096) {
    ASSERT_EQ(r.second[i], static_cast<char>('a' + i % 26)) << "at " << i;
  }
  EXPECT_EQ(c.Read().second, "now:/plain");
}

TEST(HttpDeferred, DroppedReplyAnswers500AndTheConnectionGoesOn) {
  DeferredServer s;
  RawClient c(s.port());
  c.Send(Get("/drop"));
  auto r = c.Read();
  EXPECT_EQ(r.first, 500);
  EXPECT_NE(r.second.find("dropped without an answer"), std::string::npos);
  c.Send(Get("/plain"));
  EXPECT_EQ(c.Read().second, "now:/plain");
}

TEST(HttpDeferred, ConnectionCloseIsHonouredAfterTheAnswer) {
  DeferredServer s;
  RawClient c(s.port());
  c.Send(Get("/later/bye/10", /*close=*/true));
  EXPECT_EQ(c.Read().second, "bye");
  EXPECT_TRUE(c.ReadsEof());
}

TEST(HttpDeferred, ClientHalfClosedAfterTheRequestStillGetsTheAnswer) {
  DeferredServer s;
  RawClient c(s.port());
  c.Send(Get("/later/half/50"));
  // The end of the stream reaches the server while the answer is owed: the answer still goes
  // out, then the connection closes.
  c.HalfClose();
  EXPECT_EQ(c.Read().second, "half");
  EXPECT_TRUE(c.ReadsEof());
}

TEST(HttpDeferred, StopWaitsForOwedAnswers) {
  auto s = std::make_unique<DeferredServer>();
  RawClient c(s->port());
  c.Send(Get("/later/owed/200"));
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  s->server().Stop();  // must not return while the worker still holds the connection
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  s.reset();
}

}  // namespace
}  // namespace photon
