// Test helper: opens a SqliteStore in argv[1] and puts keys from several threads forever,
// printing "<key>\n" on stdout after each put is acknowledged. The durability test kills it
// with SIGKILL and checks that every printed key is in the store.
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
    return 2;
  }
  auto store = photon::store::OpenStore({"sqlite", argv[1]});
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  std::mutex out_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        std::string key = "crash/" + std::to_string(t) + "/" + std::to_string(i);
        auto revision = (*store)->Put(key, "value-" + key);
        if (!revision.ok()) {
          std::fprintf(stderr, "put: %s\n", revision.status().ToString().c_str());
          _exit(1);
        }
        std::string line = key + "\n";
        std::lock_guard lock(out_mu);
        // write(2), not stdio: nothing acknowledged may sit in a user-space buffer.
        if (write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          _exit(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return 0;
}
