#include "server/identity/password.h"

#include <sodium.h>

#include <condition_variable>
#include <mutex>

namespace photon::server::identity {

namespace {

constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 1024;
constexpr int kConcurrentHashes = 2;

// Bounds the hashes running at once (each takes MEMLIMIT_INTERACTIVE of memory).
class HashSlots {
 public:
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return free_ > 0; });
    --free_;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_ = kConcurrentHashes;
};

HashSlots& Slots() {
  static HashSlots slots;
  return slots;
}

struct SlotGuard {
  SlotGuard() { Slots().Acquire(); }
  ~SlotGuard() { Slots().Release(); }
};

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

}  // namespace

StatusOr<std::string> HashPassword(const std::string& password) {
  if (password.size() < kMinPassword) {
    return absl::InvalidArgumentError("spec.password: at least " + std::to_string(kMinPassword) +
                                      " characters");
  }
  if (password.size() > kMaxPassword) {
    return absl::InvalidArgumentError("spec.password: at most " + std::to_string(kMaxPassword) +
                                      " characters");
  }
  if (!SodiumReady()) return absl::InternalError("libsodium failed to initialise");
  char out[crypto_pwhash_STRBYTES];
  SlotGuard slot;
  if (crypto_pwhash_str_alg(out, password.data(), password.size(),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("argon2id: out of memory hashing a password");
  }
  return std::string(out);
}

bool VerifyPassword(const std::string& hash, const std::string& password) {
  if (!SodiumReady() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  if (password.size() > kMaxPassword) return false;
  SlotGuard slot;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

void VerifyNothing(const std::string& password) {
  // A hash of a random password, made once: verifying against it costs what a real one does.
  static const std::string dummy = [] {
    (void)SodiumReady();
    auto h = HashPassword("unused-" + std::to_string(randombytes_random()));
    return h.ok() ? *h : std::string();
  }();
  (void)VerifyPassword(dummy, password);
}

}  // namespace photon::server::identity
