// Response-rate limiting (RRL) for UDP answers, as NSD, Knot and BIND do it. A spoofed query
// makes flashdns send its (larger) answer to the victim whose address was forged; RRL caps
// how many alike responses one client network gets per second, so flashdns cannot be used as
// an amplifier, while a real client that is limited still gets every `slip`-th response with
// TC set and retries over TCP, which cannot be spoofed and is never limited.
//
// Responses are accounted per (client prefix, response kind): the source address cut to
// ipv4_prefix/ipv6_prefix bits, and the AnswerKind grouping of query.h. Each key has a token
// bucket of `burst` responses refilled at `rate` per second (kept as a GCRA "theoretical
// arrival time", one integer per key). Keys live in a bounded table of groups of kWays slots:
// a new key takes an idle slot of its group, else evicts the slot whose budget refills first,
// so a flood of fresh keys cannot push out the key being limited.
//
// Thread-safety: Account() may be called from any number of threads at once; each group of
// slots has its own spinlock (held for a few dozen instructions, never across a system call).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "flashdns/query.h"
#include "flashdns/transfer.h"

namespace photon::flashdns {

struct RrlOptions {
  uint32_t rate = 200;   // responses per second per key; 0 turns RRL off
  uint32_t burst = 0;    // responses a quiet key may send at once; 0: the same as rate
  uint32_t slip = 2;     // every slip-th limited response is sent truncated; 0: drop all
  int ipv4_prefix = 24;  // client addresses are grouped by these many leading bits
  int ipv6_prefix = 56;
  uint32_t table_size = 65536;  // keys tracked at once (rounded up to a multiple of kWays)
  // Clients never limited. Loopback by default: a packet from off-host cannot carry a loopback
  // source (the kernel drops it as a martian), so these clients are local and not spoofed.
  std::vector<std::string> exempt = {"127.0.0.0/8", "::1"};
};

enum class RrlAction : uint8_t {
  kSend,  // within the rate
  kDrop,  // limited: send nothing
  kSlip,  // limited: send the question only, with TC set
};

class ResponseRateLimiter {
 public:
  static constexpr int kWays = 8;

  // Fails when an exempt entry does not parse; options.rate must be > 0.
  static StatusOr<std::unique_ptr<ResponseRateLimiter>> Create(const RrlOptions& options);

  // Accounts one UDP response to `peer` at `now_ns` (a monotonic clock, passed in so tests
  // control time) and says what to do with it.
  RrlAction Account(const sockaddr_storage& peer, const ParsedQuery& q, const AnswerInfo& info,
                    int64_t now_ns);
  // The same with the key's parts given: `name` is the lower-case wire name the response is
  // grouped by, `qtype` 0 where the kind does not split by type.
  RrlAction Account(const sockaddr_storage& peer, AnswerKind kind, uint16_t qtype,
                    std::string_view name, int64_t now_ns);

 private:
  struct Slot {
    uint64_t tag = 0;  // the key's hash; 0: empty
    int64_t tat = 0;   // when the bucket is full again (GCRA theoretical arrival time)
    uint32_t limited = 0;
  };
  struct alignas(64) Group {
    std::atomic<bool> locked{false};
    Slot slots[kWays];
  };

  explicit ResponseRateLimiter(const RrlOptions& options);
  bool Exempt(const sockaddr_storage& peer) const;
  uint64_t Hash(const sockaddr_storage& peer, AnswerKind kind, uint16_t qtype,
                std::string_view name) const;
  static Slot* FindOrEvict(Group& group, uint64_t tag, int64_t now_ns);
  RrlAction Charge(Slot* slot, int64_t now_ns) const;

  const int64_t interval_ns_;   // one response's cost: 1 s / rate
  const int64_t tolerance_ns_;  // burst × interval
  const uint32_t slip_;
  const int ipv4_prefix_;
  const int ipv6_prefix_;
  std::vector<AddressMatcher> exempt_;
  std::vector<Group> groups_;
};

}  // namespace photon::flashdns
