// photon console end to end: the real photon CLI attached to a real VM's serial line (TCG)
// through photon-server's relay and the node's photon-agent, which connects to QEMU's serial
// socket (nothing listens on the node for the user). The guest answers each line it reads on
// its serial port; the CLI writes a line, reads the answer, detaches with Ctrl-] and the VM
// keeps running. One cluster and one VM serve the suite.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "agent/host/run.h"
#include "cluster.h"
#include "test_env.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The guest's user-data script: says it listens, then answers every line of its serial port.
const char kEchoScript[] =
    "#!/bin/sh\n"
    "echo guest-listening\n"
    "while read -r line; do echo \"guest-heard:$line\"; done </dev/ttyS0 >/dev/ttyS0\n";

// `photon console NAME` as a child process: stdin a pipe the test writes (no terminal: the
// CLI passes input as it comes), stdout and stderr to files.
class ConsoleCli {
 public:
  ConsoleCli(const std::string& dir, const std::string& server, const std::string& token,
             const std::string& name)
      : out_(dir + "/console-" + std::to_string(++count_) + ".out"), err_(out_ + ".err") {
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0) return;
    std::vector<std::string> argv = {PHOTON_CLI_BIN, "console", name};
    std::vector<std::string> env = {"PHOTON_SERVER=" + server, "PHOTON_TOKEN=" + token,
                                    "HOME=" + dir, "PATH=/usr/bin:/bin"};
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    for (auto& s : env) e.push_back(s.data());
    a.push_back(nullptr);
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (posix_spawn(&pid_, a[0], &fa, nullptr, a.data(), e.data()) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    stdin_ = in[1];
  }
  ~ConsoleCli() {
    CloseStdin();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool Type(const std::string& keys) {
    return stdin_ >= 0 && write(stdin_, keys.data(), keys.size()) == ssize_t(keys.size());
  }
  void CloseStdin() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
  }
  std::string Out() const { return Slurp(out_); }
  std::string Err() const { return Slurp(err_); }
  // The exit status, or -1 when it still runs at the deadline.
  int Wait(std::chrono::milliseconds timeout = 20s) {
    int st = 0;
    if (pid_ <= 0 || !WaitFor([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, timeout)) {
      return -1;
    }
    pid_ = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  static inline int count_ = 0;
  std::string out_, err_;
  pid_t pid_ = 0;
  int stdin_ = -1;
};

class ConsoleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;  // SetUp skips, saying why
    signal(SIGPIPE, SIG_IGN);    // typing to a CLI that has ended fails, not kills the test
    cluster_ = new Cluster();
    node_ = "cn" + std::to_string(getpid() % 100000);
    const std::string dir = cluster_->dir();
    auto made =
        RunCommand({std::string(PHOTON_SOURCE_DIR) + "/scripts/make-vm-image.sh", dir + "/image"},
                   std::chrono::seconds(120));
    if (!made.ok() || made->exit_code != 0) return;
    const std::string config = dir + "/agent.yaml";
    if (!WriteFileAtomic(config,
                         "drivers:\n  vm: {ready_timeout_s: \"240\", images_root: \"" + dir +
                             "\"}\n  container: {enabled: \"false\"}\n",
                         0600)
             .ok() ||
        !cluster_->StartAgent(node_, "zone=z1", {"--config", config})) {
      return;
    }
    admin_ = Slurp(dir + "/server/admin.token");
    while (!admin_.empty() && admin_.back() == '\n') admin_.pop_back();
    for (const auto& [name, file, format] :
         {std::tuple{"kernel", "vmlinuz", "kernel"}, {"initrd", "initrd.img", "initrd"}}) {
      std::string sha = Slurp(dir + "/image/" + file + ".sha256");
      while (!sha.empty() && (sha.back() == '\n' || sha.back() == ' ')) sha.pop_back();
      json img = {
          {"metadata", {{"name", name}}},
          {"spec", {{"sourcePath", dir + "/image/" + file}, {"format", format}, {"sha256", sha}}}};
      if (cluster_->Call("POST", "/v1/namespaces/default/images", img).status != 202) return;
    }
    json vm = {
        {"metadata", {{"name", "guest"}, {"agentId", node_}}},
        {"spec",
         {{"vm",
           {{"kernel", "kernel"}, {"initrd", "initrd"}, {"kernelArgs", "console=ttyS0 quiet"}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "256"}}},
          // The agent runs in network mode shared: a VM there needs the node's network.
          {"network", {{"hostNetwork", true}}},
          {"userData", kEchoScript}}}};
    if (cluster_->Call("POST", "/v1/namespaces/default/computeinstances", vm).status != 202) return;
    running_ = WaitFor([] { return cluster_->Phase("guest") == "RUNNING"; }, 240s);
    // The script reads its serial port once it has said so.
    listening_ =
        running_ &&
        WaitFor([] { return ConsoleLog().find("guest-listening") != std::string::npos; }, 60s);
  }
  static void TearDownTestSuite() {
    // The agent leaves its VMs running when it stops (and the sweep knows no QEMU): the
    // guest's QEMU would outlive the suite.
    const pid_t qemu = cluster_ && running_ ? QemuPid() : 0;
    delete cluster_;
    cluster_ = nullptr;
    if (qemu > 0) kill(qemu, SIGKILL);
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the agent needs root for its VMs";
    ASSERT_TRUE(running_) << "the VM did not reach RUNNING: " << cluster_->Instance("guest").dump()
                          << "\n"
                          << Slurp(cluster_->dir() + "/agent-" + node_ + ".log");
    ASSERT_TRUE(listening_) << ConsoleLog();
  }

  static std::string InstanceDir() {
    return cluster_->agent(node_).dir + "/providers/vm/instances/" +
           cluster_->Instance("guest")["metadata"].value("id", "");
  }
  static std::string ConsoleLog() { return Slurp(InstanceDir() + "/console.log"); }
  static pid_t QemuPid() {
    auto st = json::parse(Slurp(InstanceDir() + "/state.json"), nullptr, false);
    return st.is_object() ? st.value("pid", 0) : 0;
  }
  std::string Token(const std::string& who, const std::string& role) {
    auto r = cluster_->Call(
        "POST", "/v1/tokens",
        {{"principal", who}, {"bindings", {{{"namespace", "default"}, {"role", role}}}}});
    return json::parse(r.body, nullptr, false).value("token", "");
  }

  static inline Cluster* cluster_ = nullptr;
  static inline std::string node_, admin_;
  static inline bool running_ = false, listening_ = false;
};

TEST_F(ConsoleTest, RoundTripDetachAndTheVmRunsOn) {
  const pid_t qemu = QemuPid();
  ASSERT_GT(qemu, 0);
  const std::string word = "hello-" + std::to_string(getpid());
  {
    ConsoleCli cli(cluster_->dir(), cluster_->base(), admin_, "guest");
    ASSERT_TRUE(WaitFor([&] { return cli.Err().find("Ctrl-]") != std::string::npos; }, 20s))
        << cli.Err();
    // The guest's answer, not the line discipline's echo of what was typed.
    ASSERT_TRUE(WaitFor(
        [&] {
          cli.Type(word + "\r");  // typed again until the agent is connected and it arrives
          return WaitFor([&] { return cli.Out().find("guest-heard:" + word) != std::string::npos; },
                         1s);
        },
        30s))
        << cli.Out() << cli.Err();
    // One console at a time: a second is refused, saying so.
    ConsoleCli second(cluster_->dir(), cluster_->base(), admin_, "guest");
    EXPECT_EQ(second.Wait(), 1);
    EXPECT_NE(second.Err().find("attached elsewhere"), std::string::npos) << second.Err();
    // Ctrl-] (cli::kDetachKey) detaches: the CLI ends with 0 and says so.
    ASSERT_TRUE(cli.Type("\x1d"));
    EXPECT_EQ(cli.Wait(), 0) << cli.Err();
    EXPECT_NE(cli.Err().find("detached"), std::string::npos) << cli.Err();
  }
  // The VM runs on: same QEMU, still RUNNING, its log kept what went over the console.
  EXPECT_EQ(cluster_->Phase("guest"), "RUNNING");
  EXPECT_EQ(QemuPid(), qemu);
  EXPECT_EQ(kill(qemu, 0), 0);
  EXPECT_NE(ConsoleLog().find("guest-heard:" + word), std::string::npos);
  // Attaching again works (the detach released the console); the end of stdin detaches too.
  ConsoleCli again(cluster_->dir(), cluster_->base(), admin_, "guest");
  EXPECT_TRUE(WaitFor(
      [&] {
        again.Type("again\r");
        return WaitFor([&] { return again.Out().find("guest-heard:again") != std::string::npos; },
                       1s);
      },
      30s))
      << again.Out() << again.Err();
  again.CloseStdin();
  EXPECT_EQ(again.Wait(), 0) << again.Err();
  EXPECT_EQ(kill(qemu, 0), 0);
}

TEST_F(ConsoleTest, ViewersCannotAttachAndASerialLineHasNoWindowSize) {
  std::string viewer = Token("cviewer-" + node_, "viewer");
  ASSERT_FALSE(viewer.empty());
  auto c = cli::HttpClient::Create(cluster_->base(), viewer);
  auto r = c->Do("POST", "/v1/namespaces/default/computeinstances/guest/console", "{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403) << r->body;
  ConsoleCli cli(cluster_->dir(), cluster_->base(), viewer, "guest");
  EXPECT_EQ(cli.Wait(), 1);
  EXPECT_NE(cli.Err().find("editor"), std::string::npos) << cli.Err();
  // A serial line has no window size: refused, not ignored.
  auto sized = cluster_->Call("POST", "/v1/namespaces/default/computeinstances/guest/console",
                              {{"rows", 24}});
  EXPECT_EQ(sized.status, 400) << sized.body;
}

// The README's quick start creates examples/vm.yaml on the node scripts/start.sh runs, in network
// mode shared like this suite's agent: it must run there (it once waited PENDING for good: a VM
// that needs a port has none on a shared node). Its image paths point at this suite's guest.
TEST_F(ConsoleTest, TheReadmesVmExampleRunsOnTheQuickStartsNode) {
  std::string yaml = Slurp(std::string(PHOTON_SOURCE_DIR) + "/examples/vm.yaml");
  const std::string images = "/var/lib/photon/images/";
  ASSERT_NE(yaml.find(images), std::string::npos) << yaml;
  for (size_t at; (at = yaml.find(images)) != std::string::npos;) {
    yaml.replace(at, images.size(), cluster_->dir() + "/image/");
  }
  const std::string file = cluster_->dir() + "/vm-example.yaml";
  ASSERT_TRUE(WriteFileAtomic(file, yaml, 0600).ok());
  auto photon = [&](std::vector<std::string> args, std::chrono::seconds timeout) {
    std::vector<std::string> argv = {"/usr/bin/env", "PHOTON_SERVER=" + cluster_->base(),
                                     "PHOTON_TOKEN=" + admin_, "HOME=" + cluster_->dir(),
                                     PHOTON_CLI_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, timeout);
  };
  auto made = photon({"create", "-f", file}, 30s);
  ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->output : "");
  auto ran = photon({"wait", "ci", "hello-vm", "--for", "phase=RUNNING", "--timeout", "4m"}, 250s);
  EXPECT_TRUE(ran.ok() && ran->exit_code == 0)
      << (ran.ok() ? ran->output : "") << cluster_->Instance("hello-vm").dump();
  // Deleted, its QEMU goes with it.
  auto deleted = cluster_->Call("DELETE", "/v1/namespaces/default/computeinstances/hello-vm");
  EXPECT_LT(deleted.status, 300) << deleted.body;
  EXPECT_TRUE(WaitFor([] { return cluster_->Phase("hello-vm") == "GONE"; }, 60s));
}

}  // namespace
}  // namespace photon::agent::testing
