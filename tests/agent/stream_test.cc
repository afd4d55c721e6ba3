// photon logs / photon exec end to end: the real photon CLI, photon-server relaying and two
// real photon-agents that dial back for the sessions of their own node (docs/api.md
// "Streams"). One cluster, a process instance and a container serve the whole suite.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

#include <sstream>

#include "agent/host/run.h"
#include "cluster.h"
#include "common/base64.h"
#include "test_env.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct CliRun {
  int code = -1;  // -1: killed at the deadline
  std::string out, err;
};

// The photon CLI as a child process: stdin from `stdin_file` (/dev/null when empty), stdout
// and stderr to files under `dir`.
class Cli {
 public:
  Cli(const std::string& dir, const std::string& server, const std::string& token,
      std::vector<std::string> args, const std::string& stdin_file = "")
      : out_(dir + "/cli-" + std::to_string(++count_) + ".out"), err_(out_ + ".err") {
    std::vector<std::string> argv = {PHOTON_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = {"PHOTON_SERVER=" + server, "PHOTON_TOKEN=" + token,
                                    "HOME=" + dir, "PATH=/usr/bin:/bin"};
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    for (auto& s : env) e.push_back(s.data());
    a.push_back(nullptr);
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_file.empty() ? "/dev/null" : stdin_file.c_str(),
                                     O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (posix_spawn(&pid_, a[0], &fa, nullptr, a.data(), e.data()) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Cli() { Kill(); }
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = 0;
  }
  std::string Out() const { return Slurp(out_); }
  // Waits for the exit (bounded); kills it at the deadline.
  CliRun Wait(std::chrono::milliseconds timeout = 30s) {
    CliRun r;
    int st = 0;
    bool done = WaitFor([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, timeout);
    if (done) {
      r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      pid_ = 0;
    }
    r.out = Slurp(out_);
    r.err = Slurp(err_);
    return r;
  }

 private:
  static inline int count_ = 0;
  std::string out_, err_;
  pid_t pid_ = 0;
};

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || InChroot()) return;  // SetUp skips, saying why
    suffix_ = std::to_string(getpid() % 100000);
    cluster_ = new Cluster();
    a_ = "sa" + suffix_;
    b_ = "sb" + suffix_;
    // Containers: images from a root of the test's own, confined rootfs trees where every
    // directory above them is searchable.
    images_root_ = MakeTempDir("stream-images");
    ctr_root_ = "/var/tmp/photon-stream-ctr-XXXXXX";
    if (mkdtemp(ctr_root_.data()) == nullptr || chmod(ctr_root_.c_str(), 0711) != 0) return;
    std::string config = cluster_->dir() + "/a.yaml";
    if (!WriteFileAtomic(config, "drivers:\n  container: {images_root: \"" + images_root_ +
                                     "\", rootfs_root: \"" + ctr_root_ + "\"}\n")
             .ok() ||
        !cluster_->StartAgent(a_, "zone=z1", {"--config", config}) ||
        !cluster_->StartAgent(b_, "zone=z2")) {
      return;
    }
    admin_ = Slurp(cluster_->dir() + "/server/admin.token");
    while (!admin_.empty() && admin_.back() == '\n') admin_.pop_back();
    // The workload: five lines, "ready", then a line each time /tmp/go (its private /tmp,
    // which exec shares) appears.
    json inst = {{"metadata", {{"name", "talker"}, {"agentId", a_}}},
                 {"spec",
                  {{"process",
                    {{"command",
                      {"sh", "-c",
                       "for i in 1 2 3 4 5; do echo line$i; done; echo ready; "
                       "while :; do if [ -f /tmp/go ]; then echo after-start; rm -f /tmp/go; fi; "
                       "sleep 0.05; done"}}}},
                   {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
    if (cluster_->Call("POST", "/v1/namespaces/default/computeinstances", inst).status != 202) {
      return;
    }
    running_ = WaitFor([] { return cluster_->Phase("talker") == "RUNNING"; }, 20s);
    StartContainer();
  }
  // "boxed": a busybox container that says hello and sleeps.
  static void StartContainer() {
    std::string rootfs = images_root_ + "/busybox";
    auto made =
        RunCommand({"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-rootfs.sh", rootfs});
    if (!made.ok() || made->exit_code != 0) return;
    json img = {{"metadata", {{"name", "busybox"}}},
                {"spec", {{"sourcePath", rootfs}, {"format", "rootfs-dir"}}}};
    if (cluster_->Call("POST", "/v1/namespaces/default/images", img).status != 202) return;
    json inst = {
        {"metadata", {{"name", "boxed"}, {"agentId", a_}}},
        {"spec",
         {{"container",
           {{"image", "busybox"}, {"command", {"sh", "-c", "echo boxed-hello; exec sleep 3600"}}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}}}};
    if (cluster_->Call("POST", "/v1/namespaces/default/computeinstances", inst).status != 202) {
      return;
    }
    boxed_ = WaitFor([] { return cluster_->Phase("boxed") == "RUNNING"; }, 60s);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    std::error_code ec;
    if (!images_root_.empty()) std::filesystem::remove_all(images_root_, ec);
    if (!ctr_root_.empty()) std::filesystem::remove_all(ctr_root_, ec);
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the agent needs root for namespaces and cgroups";
    if (InChroot()) GTEST_SKIP() << "SKIPPED LOUDLY: inside a chroot";
    ASSERT_TRUE(running_) << "the suite's instance did not reach RUNNING";
  }

  CliRun Photon(std::vector<std::string> args, const std::string& token = "",
                const std::string& stdin_file = "") {
    Cli cli(cluster_->dir(), cluster_->base(), token.empty() ? admin_ : token, std::move(args),
            stdin_file);
    return cli.Wait();
  }
  // A user token with one role binding.
  std::string Token(const std::string& who, const std::string& ns, const std::string& role) {
    auto r =
        cluster_->Call("POST", "/v1/tokens",
                       {{"principal", who}, {"bindings", {{{"namespace", ns}, {"role", role}}}}});
    return json::parse(r.body, nullptr, false).value("token", "");
  }
  cli::HttpResult As(const std::string& token, const std::string& method, const std::string& path,
                     const json& body = nullptr) {
    auto c = cli::HttpClient::Create(cluster_->base(), token);
    auto r = c->Do(method, path, body.is_null() ? "" : body.dump());
    return r.ok() ? *r : cli::HttpResult{0, r.status().ToString(), {}};
  }

  static inline Cluster* cluster_ = nullptr;
  static inline std::string suffix_, a_, b_, admin_;
  static inline std::string images_root_, ctr_root_;
  static inline bool running_ = false, boxed_ = false;
};

TEST_F(StreamTest, LogsTailPrintsTheLastLines) {
  auto r = Photon({"logs", "talker", "--tail", "3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "line4\nline5\nready\n");
  r = Photon({"logs", "talker", "--tail", "-1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--tail"), std::string::npos) << r.err;
  // No time stamps in the output log: refused, never ignored.
  r = Photon({"logs", "talker", "--since", "10m"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("sinceSeconds"), std::string::npos) << r.err;
}

TEST_F(StreamTest, LogsFollowReceivesALineWrittenAfterItStarted) {
  Cli follow(cluster_->dir(), cluster_->base(), admin_, {"logs", "talker", "-f", "--tail", "1"});
  // The tail arrived: the stream is live before the workload writes its next line.
  ASSERT_TRUE(WaitFor([&] { return follow.Out().find("ready\n") != std::string::npos; }, 20s))
      << follow.Out();
  EXPECT_EQ(follow.Out().find("after-start"), std::string::npos);
  auto touch = Photon({"exec", "talker", "--", "touch", "/tmp/go"});
  ASSERT_EQ(touch.code, 0) << touch.err;
  EXPECT_TRUE(WaitFor([&] { return follow.Out().find("after-start\n") != std::string::npos; }, 20s))
      << follow.Out();
}

TEST_F(StreamTest, ExecExitCodeBecomesTheCliExitCode) {
  auto r = Photon({"exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  r = Photon({"exec", "talker", "--", "no-such-command-here"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("command not found"), std::string::npos) << r.err;
}

TEST_F(StreamTest, ExecRunsAsTheWorkloadInItsNamespaces) {
  auto inst = cluster_->Instance("talker");
  std::string state = Slurp(cluster_->agent(a_).dir + "/providers/process/instances/" +
                            inst["metadata"].value("id", "") + "/state.json");
  int64_t uid = json::parse(state, nullptr, false).value("uid", int64_t{-1});
  ASSERT_GT(uid, 0) << state;
  auto r = Photon({"exec", "talker", "--", "id", "-u"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(uid) + "\n");
  // Its pid namespace: the workload's init is pid 1 there, not the host's init.
  r = Photon({"exec", "talker", "--", "cat", "/proc/1/cmdline"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("systemd"), std::string::npos) << r.out;
  EXPECT_NE(r.out, Slurp("/proc/1/cmdline"));
}

// Processes on this host whose command line is exactly `argv`.
std::vector<pid_t> PidsRunning(const std::vector<std::string>& argv) {
  std::string want;
  for (const auto& a : argv) want += a + '\0';
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (Slurp(e.path().string() + "/cmdline") == want) out.push_back(std::stoi(name));
  }
  return out;
}

TEST_F(StreamTest, ACommandEndsWhenTheUserGoesAway) {
  const std::vector<std::string> cmd = {"sleep", std::to_string(900 + getpid() % 97)};
  std::vector<std::string> args = {"exec", "talker", "--"};
  args.insert(args.end(), cmd.begin(), cmd.end());
  Cli cli(cluster_->dir(), cluster_->base(), admin_, args);
  ASSERT_TRUE(WaitFor([&] { return PidsRunning(cmd).size() == 1; }, 20s));
  cli.Kill();  // as Ctrl-C would: the connection closes, the server cancels the session
  EXPECT_TRUE(WaitFor([&] { return PidsRunning(cmd).empty(); }, 20s));
}

// As docker and kubectl: -i passes stdin; without it the command reads an immediate end.
TEST_F(StreamTest, ExecPassesStdinWithDashI) {
  std::string in = cluster_->dir() + "/stdin.txt";
  ASSERT_TRUE(WriteFileAtomic(in, "hi\nthere\n", 0644).ok());
  auto r = Photon({"exec", "-i", "talker", "--", "cat"}, "", in);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hi\nthere\n");
  r = Photon({"exec", "talker", "--", "cat"}, "", in);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

// The photon CLI on a terminal of the test's own (a pty of 33 x 101), as a user at a shell.
class TerminalCli {
 public:
  TerminalCli(const std::string& server, const std::string& token, std::vector<std::string> args) {
    winsize ws{};
    ws.ws_row = 33;
    ws.ws_col = 101;
    int slave = -1;
    if (openpty(&master_, &slave, nullptr, nullptr, &ws) != 0) return;
    fcntl(master_, F_SETFL, O_NONBLOCK);
    std::vector<std::string> argv = {PHOTON_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = {"PHOTON_SERVER=" + server, "PHOTON_TOKEN=" + token,
                                    "PATH=/usr/bin:/bin"};
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    for (auto& s : env) e.push_back(s.data());
    a.push_back(nullptr);
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd : {0, 1, 2}) posix_spawn_file_actions_adddup2(&fa, slave, fd);
    posix_spawn_file_actions_addclose(&fa, master_);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    if (posix_spawn(&pid_, a[0], &fa, &attr, a.data(), e.data()) != 0) pid_ = 0;
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(slave);
  }
  ~TerminalCli() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }
  // Everything the terminal showed so far.
  std::string Screen() {
    char buf[4096];
    ssize_t n;
    while ((n = read(master_, buf, sizeof buf)) > 0) screen_.append(buf, n);
    return screen_;
  }
  void Type(const std::string& keys) {
    if (write(master_, keys.data(), keys.size()) < 0) ADD_FAILURE() << "write to the pty";
  }
  void Resize(int rows, int cols) {
    winsize ws{};
    ws.ws_row = rows;
    ws.ws_col = cols;
    ioctl(master_, TIOCSWINSZ, &ws);
    kill(pid_, SIGWINCH);  // as the terminal emulator's kernel does for its foreground
  }
  int Wait(std::chrono::milliseconds timeout = 20s) {
    int st = 0;
    if (pid_ <= 0 || !WaitFor(
                         [&] {
                           Screen();
                           return waitpid(pid_, &st, WNOHANG) == pid_;
                         },
                         timeout)) {
      return -1;
    }
    pid_ = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  // The terminal's mode as the CLI left it: raw (no echo, no canonical input) or not.
  bool Raw() {
    termios t{};
    tcgetattr(master_, &t);
    return !(t.c_lflag & (ICANON | ECHO));
  }

 private:
  int master_ = -1;
  pid_t pid_ = 0;
  std::string screen_;
};

// exec -t: a terminal of the user's window size, resized with it; -i on a terminal puts it in
// raw mode (Ctrl-C reaches the command as its terminal's interrupt) and restores it after.
TEST_F(StreamTest, ExecOnATerminalFollowsTheWindowAndPassesCtrlC) {
  TerminalCli cli(cluster_->base(), admin_,
                  {"exec", "-it", "talker", "--", "sh", "-c",
                   "stty size; while read x; do stty size; done; echo never"});
  ASSERT_TRUE(WaitFor([&] { return cli.Screen().find("33 101") != std::string::npos; }, 20s))
      << cli.Screen();
  EXPECT_TRUE(cli.Raw());
  cli.Resize(40, 120);
  EXPECT_TRUE(WaitFor(
      [&] {
        cli.Type("\r");  // each line typed prints the size again
        return WaitFor([&] { return cli.Screen().find("40 120") != std::string::npos; }, 1s);
      },
      20s))
      << cli.Screen();
  cli.Type("\x03");  // Ctrl-C: SIGINT to the command, from its own terminal
  EXPECT_EQ(cli.Wait(), 130) << cli.Screen();
  EXPECT_EQ(cli.Screen().find("never"), std::string::npos);
  EXPECT_FALSE(cli.Raw()) << "the terminal was not restored";
}

TEST_F(StreamTest, ExecTtyWithoutATerminalAndItsRefusals) {
  // -t alone from a pipe: a terminal of 24 x 80 on the node, both outputs on it.
  auto r = Photon({"exec", "-t", "talker", "--", "sh", "-c",
                   "stty size; [ -t 0 ] && echo on-a-tty; echo to-stderr >&2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("24 80\r\non-a-tty\r\nto-stderr\r\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
  // -it needs a terminal to read from (as docker says).
  r = Photon({"exec", "-it", "talker", "--", "true"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a terminal"), std::string::npos) << r.err;
  // A window size without a terminal is refused, never ignored.
  auto sized = As(admin_, "POST", "/v1/namespaces/default/computeinstances/talker/exec",
                  {{"command", {"true"}}, {"rows", 10}, {"cols", 10}});
  EXPECT_EQ(sized.status, 400) << sized.body;
}

// Output that outruns its reader is flow-controlled end to end: with the CLI's stdout a pipe
// nobody reads, the command is held back (its writes block) within a bounded amount, and
// every byte arrives once the reader reads.
TEST_F(StreamTest, OutputThatOutrunsASlowReaderHoldsTheCommandBack) {
  const std::string progress = "/tmp/progress-" + suffix_;
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  std::vector<std::string> argv = {PHOTON_CLI_BIN,
                                   "exec",
                                   "talker",
                                   "--",
                                   "sh",
                                   "-c",
                                   "i=0; while [ $i -lt 32 ]; do head -c 1048576 /dev/zero; "
                                   "i=$((i+1)); echo $i >" +
                                       progress + "; done"};
  std::vector<std::string> env = {"PHOTON_SERVER=" + cluster_->base(), "PHOTON_TOKEN=" + admin_,
                                  "PATH=/usr/bin:/bin"};
  std::vector<char*> a, e;
  for (auto& s : argv) a.push_back(s.data());
  for (auto& s : env) e.push_back(s.data());
  a.push_back(nullptr);
  e.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, a[0], &fa, nullptr, a.data(), e.data()), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  struct Reap {
    pid_t pid;
    int fd;
    ~Reap() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      close(fd);
    }
  } reap{pid, out[0]};
  // The count of MiB written stops rising while nothing is read.
  auto written = [&] {
    auto r = Photon({"exec", "talker", "--", "cat", progress});
    return r.code == 0 ? std::atoi(r.out.c_str()) : 0;
  };
  int last = -1, now = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while ((now = written()) != last || now == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "still writing: " << now;
    last = now;
    std::this_thread::sleep_for(1s);  // a poll interval: the count must hold still over it
  }
  // A window (1 MiB), an output POST (up to 1 MiB) and the pipes in between; not 32.
  EXPECT_LE(now, 6) << "the output was buffered instead of holding the command back";
  // Reading it all: every byte, then the exit status.
  size_t total = 0;
  char buf[65536];
  ssize_t n = 1;
  deadline = std::chrono::steady_clock::now() + 120s;
  while (n > 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    if ((n = read(out[0], buf, sizeof buf)) > 0) total += n;
  }
  EXPECT_EQ(n, 0) << "the output did not end";
  EXPECT_EQ(total, 32u << 20);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  reap.pid = -1;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_EQ(written(), 32);
}

TEST_F(StreamTest, ContainersExecAsTheirOwnUserAndShowTheirLogs) {
  ASSERT_TRUE(boxed_) << "the busybox container did not reach RUNNING";
  auto r = Photon({"logs", "boxed"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "boxed-hello\n");
  // Root inside, an unprivileged host uid outside: its user namespace maps 0 elsewhere.
  r = Photon({"exec", "boxed", "--", "sh", "-c", "id -u; cat /proc/self/uid_map; exit 3"});
  EXPECT_EQ(r.code, 3) << r.err;
  std::istringstream out(r.out);
  std::string uid;
  int64_t inside = -1, outside = -1;
  out >> uid >> inside >> outside;
  EXPECT_EQ(uid, "0") << r.out;
  EXPECT_EQ(inside, 0) << r.out;
  EXPECT_GT(outside, 0) << r.out;
  std::string in = cluster_->dir() + "/boxed-stdin.txt";
  ASSERT_TRUE(WriteFileAtomic(in, "to the box\n", 0644).ok());
  r = Photon({"exec", "-i", "boxed", "--", "cat"}, "", in);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "to the box\n");
}

TEST_F(StreamTest, ViewersReadLogsButCannotExecAndOtherNamespacesAreNotFound) {
  std::string viewer = Token("viewer-" + suffix_, "default", "viewer");
  std::string other = Token("other-" + suffix_, "team-" + suffix_, "editor");
  ASSERT_FALSE(viewer.empty());
  const std::string base = "/v1/namespaces/default/computeinstances/talker/";
  EXPECT_EQ(As(viewer, "POST", base + "exec", {{"command", {"id"}}}).status, 403);
  EXPECT_EQ(As(viewer, "POST", base + "logs", {{"tail", 1}}).status, 201);
  EXPECT_EQ(As(other, "POST", base + "exec", {{"command", {"id"}}}).status, 404);
  EXPECT_EQ(As(other, "POST", base + "logs", json::object()).status, 404);
  auto r = Photon({"exec", "talker", "--", "id"}, viewer);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("editor"), std::string::npos) << r.err;
  // A session is its opener's: another token cannot read it.
  auto opened = As(admin_, "POST", base + "logs", {{"tail", 1}});
  ASSERT_EQ(opened.status, 201);
  std::string id = json::parse(opened.body).value("session", "");
  EXPECT_EQ(As(viewer, "GET", "/v1/sessions/" + id).status, 404);
  // Users do not take sessions.
  EXPECT_EQ(As(viewer, "GET", "/v1/agent/sessions").status, 403);
}

// A command that ends before its user reads the session (the CLI opens, then reads) keeps its
// output and exit status for that reader; it used to be forgotten at the exit frame, and the
// CLI's read then found no session about one time in five.
TEST_F(StreamTest, ASessionThatEndsBeforeItIsReadKeepsItsOutput) {
  auto opened = As(admin_, "POST", "/v1/namespaces/default/computeinstances/talker/exec",
                   {{"command", {"sh", "-c", "echo early; exit 7"}}});
  ASSERT_EQ(opened.status, 201) << opened.body;
  const std::string path = "/v1/sessions/" + json::parse(opened.body).value("session", "");
  // No input frames: 200 while the command runs, 404 once the session has ended.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (As(admin_, "POST", path + "/input", {{"frames", json::array()}}).status == 200) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the command never ended";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto read = As(admin_, "GET", path);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find(R"("code":7)"), std::string::npos) << read.body;
  EXPECT_NE(read.body.find(R"("t":"out")"), std::string::npos) << read.body;
  EXPECT_EQ(As(admin_, "GET", path).status, 404) << "a read session is forgotten";
}

// As for watches: a session already open ends when its opener's token is revoked (each new
// request is refused anyway), and the CLI says why.
TEST_F(StreamTest, RevokingTheTokenEndsItsOpenSession) {
  std::string editor = Token("revoked-" + suffix_, "default", "editor");
  ASSERT_GT(editor.size(), 20u);
  Cli follow(cluster_->dir(), cluster_->base(), editor, {"logs", "talker", "-f", "--tail", "20"});
  ASSERT_TRUE(WaitFor([&] { return follow.Out().find("ready\n") != std::string::npos; }, 20s))
      << follow.Out();
  auto revoked = cluster_->Call("DELETE", "/v1/tokens/" + editor.substr(4, 16));
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  auto r = follow.Wait(10s);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("revoked"), std::string::npos) << r.err;
}

TEST_F(StreamTest, InputFramesThatAreNotBase64AreRefused) {
  auto opened = As(admin_, "POST", "/v1/namespaces/default/computeinstances/talker/exec",
                   {{"command", {"cat"}}});
  ASSERT_EQ(opened.status, 201) << opened.body;
  const std::string input =
      "/v1/sessions/" + json::parse(opened.body).value("session", "") + "/input";
  EXPECT_EQ(As(admin_, "POST", input, {{"frames", {{{"t", "in"}, {"d", "not base64!"}}}}}).status,
            400);
  EXPECT_EQ(As(admin_, "POST", input, {{"frames", {{{"t", "in"}, {"d", "aGk"}}}}}).status, 400);
  EXPECT_EQ(As(admin_, "POST", input, {{"frames", {{{"t", "in"}}}}}).status, 400);
  EXPECT_EQ(As(admin_, "POST", input, {{"frames", {{{"t", "in"}, {"d", "aGkK"}}}}}).status, 200);
}

// Input flow control: input the command does not read is held back within an input window
// (the server holds the POST that reaches it and refuses more), not buffered without bound;
// and everything arrives once the command reads, through the CLI, which waits on held POSTs.
TEST_F(StreamTest, InputThatTheCommandDoesNotReadIsHeldBack) {
  auto opened = As(admin_, "POST", "/v1/namespaces/default/computeinstances/talker/exec",
                   {{"command", {"sleep", "60"}}});
  ASSERT_EQ(opened.status, 201) << opened.body;
  auto session = json::parse(opened.body);
  const uint64_t window = session.value("inputWindow", uint64_t{0});
  ASSERT_GT(window, 0u) << opened.body;
  const std::string input = "/v1/sessions/" + session.value("session", "") + "/input";
  const std::string chunk = Base64Encode(std::string(64 << 10, 'x'));
  uint64_t accepted = 0;
  bool held_back = false;
  for (int i = 0; i < 64 && !held_back; ++i) {  // up to 4 MiB
    auto r = As(admin_, "POST", input, {{"frames", {{{"t", "in"}, {"d", chunk}}}}});
    if (r.status == 429) {
      held_back = true;
      break;
    }
    ASSERT_EQ(r.status, 200) << r.body;
    accepted += 64 << 10;
    held_back = json::parse(r.body, nullptr, false).value("paused", false);
  }
  EXPECT_TRUE(held_back) << "4 MiB of input nobody reads were all taken";
  // The window, the pipe (64 KiB), the frame the agent is writing and the POST that crossed.
  EXPECT_LE(accepted, window + (256u << 10)) << "the input was buffered instead of held back";
  // More input now is refused, saying why; nothing of it is taken.
  auto more = As(admin_, "POST", input, {{"frames", {{{"t", "in"}, {"d", chunk}}}}});
  EXPECT_EQ(more.status, 429) << more.body;
  EXPECT_NE(more.body.find("has not read"), std::string::npos) << more.body;
  // Acks from the user (output) still pass: they never wait on the input.
  EXPECT_EQ(As(admin_, "POST", input, {{"frames", {{{"t", "ack"}, {"n", 0}}}}}).status, 200);
  // The CLI with 4 MiB for a command that reads only after 3 s (longer than the server holds
  // a POST): every byte arrives.
  std::string in = cluster_->dir() + "/big-stdin";
  ASSERT_TRUE(WriteFileAtomic(in, std::string(4 << 20, 'y'), 0644).ok());
  auto r = Photon({"exec", "-i", "talker", "--", "sh", "-c", "sleep 3; wc -c"}, "", in);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::atoll(r.out.c_str()), 4 << 20) << r.out;
}

TEST_F(StreamTest, AnAgentAttachesOnlySessionsOfItsOwnNode) {
  std::string b_cred = Slurp(cluster_->agent(b_).dir + "/credential");
  while (!b_cred.empty() && b_cred.back() == '\n') b_cred.pop_back();
  ASSERT_FALSE(b_cred.empty());
  auto opened = As(admin_, "POST", "/v1/namespaces/default/computeinstances/talker/exec",
                   {{"command", {"sleep", "30"}}});
  ASSERT_EQ(opened.status, 201) << opened.body;
  std::string id = json::parse(opened.body).value("session", "");
  EXPECT_EQ(As(b_cred, "GET", "/v1/agent/sessions/" + id + "/input").status, 404);
  json exit_frame = {{"frames", {{{"t", "exit"}, {"code", 0}}}}};
  EXPECT_EQ(As(b_cred, "POST", "/v1/agent/sessions/" + id + "/output", exit_frame).status, 404);
}

}  // namespace
}  // namespace photon::agent::testing
