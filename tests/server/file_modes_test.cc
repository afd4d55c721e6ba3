// Modes of what photon-server and the file helpers leave on disk: data dirs 0700, databases
// and secrets 0600, directories we did not create untouched, atomic writes through a private
// temporary name.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.h"

namespace photon::testing {
namespace {

int ModeOf(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// Names in dir containing ".tmp." (leftover temporary files).
std::vector<std::string> TempLeftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) out.push_back(name);
  }
  return out;
}

TEST(FileModes, ServerBinaryMakesItsDataPrivate) {
  std::string parent = MakeTempDir("modes");
  // Neither level exists yet: the server creates both.
  std::string dir = parent + "/var/photon";
  int port = FreePort();
  pid_t pid = fork();
  if (pid == 0) {
    umask(022);  // the usual umask, which would leave 0755 directories and 0644 files
    std::string listen = "127.0.0.1:" + std::to_string(port);
    std::string grpc = "127.0.0.1:" + std::to_string(FreePort());
    execl(PHOTON_SERVER_BIN, "photon-server", "--data-dir", dir.c_str(), "--listen", listen.c_str(),
          "--grpc-listen", grpc.c_str(), "--log-level", "warn", nullptr);
    _exit(127);
  }
  auto c = *cli::HttpClient::Create("http://127.0.0.1:" + std::to_string(port), "");
  bool healthy = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!healthy && std::chrono::steady_clock::now() < deadline) {
    auto r = c.Do("GET", "/healthz");
    healthy = r.ok() && r->status == 200;
    if (!healthy) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(healthy);
  // Checked while the server runs: the -wal and -shm files exist only while it has the
  // database open.
  EXPECT_EQ(ModeOf(parent + "/var"), 0700);
  EXPECT_EQ(ModeOf(dir), 0700);
  for (const char* file :
       {"state.db", "state.db-wal", "state.db-shm", "state.db.lock", "admin.token", "join.token"}) {
    EXPECT_EQ(ModeOf(dir + "/" + file), 0600) << file;
  }
  EXPECT_TRUE(TempLeftovers(dir).empty());
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::filesystem::remove_all(parent);
}

TEST(FileModes, MakeDirsLeavesDirectoriesItDidNotCreate) {
  std::string parent = MakeTempDir("mkdirs");
  std::string shared = parent + "/shared";
  ASSERT_EQ(mkdir(shared.c_str(), 0755), 0);
  ASSERT_EQ(chmod(shared.c_str(), 0755), 0);
  ASSERT_TRUE(MakeDirs(shared + "/mine/deeper", 0700).ok());
  EXPECT_EQ(ModeOf(shared), 0755);
  EXPECT_EQ(ModeOf(shared + "/mine"), 0700);
  EXPECT_EQ(ModeOf(shared + "/mine/deeper"), 0700);
  // Again, on what exists: nothing changes, not even what we created with another mode.
  ASSERT_TRUE(MakeDirs(shared, 0700).ok());
  ASSERT_TRUE(MakeDirs(shared + "/mine", 0755).ok());
  EXPECT_EQ(ModeOf(shared), 0755);
  EXPECT_EQ(ModeOf(shared + "/mine"), 0700);
  // A file in the way is an error, not a directory.
  ASSERT_TRUE(WriteFileAtomic(parent + "/file", "x").ok());
  EXPECT_FALSE(MakeDirs(parent + "/file/sub", 0700).ok());
  std::filesystem::remove_all(parent);
}

TEST(FileModes, AtomicWriteGivesTheExactMode) {
  std::string dir = MakeTempDir("atomic-mode");
  mode_t old = umask(077);
  Status st = WriteFileAtomic(dir + "/public", "x", 0644);
  umask(old);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(ModeOf(dir + "/public"), 0644);
  ASSERT_TRUE(WriteFileAtomic(dir + "/secret", "x", 0600).ok());
  EXPECT_EQ(ModeOf(dir + "/secret"), 0600);
  std::filesystem::remove_all(dir);
}

TEST(FileModes, AtomicWriteNeverFollowsASymlinkAtTheTemporaryName) {
  std::string dir = MakeTempDir("atomic-link");
  std::string victim = dir + "/victim";
  ASSERT_TRUE(WriteFileAtomic(victim, "untouched", 0600).ok());
  std::string tmp = dir + "/target.tmp.planted";
  ASSERT_EQ(symlink(victim.c_str(), tmp.c_str()), 0);
  Status st = WriteFileAtomicVia(dir + "/target", tmp, "payload", 0600);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  EXPECT_EQ(*ReadFile(victim), "untouched");
  EXPECT_FALSE(std::filesystem::exists(dir + "/target"));
  // The planted link is still a link (not replaced through), and the target was not written.
  EXPECT_TRUE(std::filesystem::is_symlink(tmp));
  // A stale regular file at the name is not reused either.
  std::string stale = dir + "/target.tmp.stale";
  ASSERT_TRUE(WriteFileAtomic(stale, "old", 0600).ok());
  EXPECT_EQ(WriteFileAtomicVia(dir + "/target", stale, "payload", 0600).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*ReadFile(stale), "old");
  // WriteFileAtomic itself picks a fresh name and succeeds.
  ASSERT_TRUE(WriteFileAtomic(dir + "/target", "payload", 0600).ok());
  EXPECT_EQ(*ReadFile(dir + "/target"), "payload");
  std::filesystem::remove_all(dir);
}

TEST(FileModes, FailedAtomicWriteLeavesNoTemporaryFile) {
  std::string dir = MakeTempDir("atomic-fail");
  // A directory at the target: the rename fails after the temporary file was written.
  ASSERT_EQ(mkdir((dir + "/target").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir + "/target/sub").c_str(), 0700), 0);
  Status st = WriteFileAtomic(dir + "/target", "payload", 0600);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(TempLeftovers(dir).empty());
  std::filesystem::remove_all(dir);
}

TEST(FileModes, ConcurrentWritersOfOnePathDoNotShareATemporaryFile) {
  std::string dir = MakeTempDir("atomic-race");
  const std::string path = dir + "/handle.json";
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (char fill : {'a', 'b', 'c'}) {
    writers.emplace_back([&, fill] {
      std::string data(256 * 1024, fill);
      for (int i = 0; i < 40; ++i) {
        if (!WriteFileAtomic(path, data, 0600).ok()) ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::string got = *ReadFile(path);
  ASSERT_EQ(got.size(), 256u * 1024);
  EXPECT_EQ(got.find_first_not_of(got[0]), std::string::npos) << "torn: two writers mixed";
  EXPECT_TRUE(TempLeftovers(dir).empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace photon::testing
