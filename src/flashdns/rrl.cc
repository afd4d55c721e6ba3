// Response-rate limiting; see rrl.h.
#include "flashdns/rrl.h"

#include <cstring>
#include <thread>

#include "absl/hash/hash.h"

namespace photon::flashdns {
namespace {

constexpr int64_t kNanosPerSecond = 1000000000;

// Copies the first `bits` bits of `addr` to `out` and zeroes the rest of its `size` bytes.
void CopyPrefix(const uint8_t* addr, size_t size, int bits, uint8_t* out) {
  memset(out, 0, size);
  size_t full = static_cast<size_t>(bits) / 8;
  memcpy(out, addr, full);
  if (bits % 8 != 0) out[full] = static_cast<uint8_t>(addr[full] & (0xFF00 >> (bits % 8)));
}

// Spins on a group's flag; the critical section is short and never blocks.
class GroupLock {
 public:
  explicit GroupLock(std::atomic<bool>& locked) : locked_(locked) {
    while (locked_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
  }
  ~GroupLock() { locked_.store(false, std::memory_order_release); }
  GroupLock(const GroupLock&) = delete;
  GroupLock& operator=(const GroupLock&) = delete;

 private:
  std::atomic<bool>& locked_;
};

}  // namespace

StatusOr<std::unique_ptr<ResponseRateLimiter>> ResponseRateLimiter::Create(
    const RrlOptions& options) {
  if (options.rate == 0) return absl::InvalidArgumentError("rrl: rate 0 means no limiter");
  std::unique_ptr<ResponseRateLimiter> rrl(new ResponseRateLimiter(options));
  for (const auto& text : options.exempt) {
    auto m = AddressMatcher::Parse(text);
    if (!m.ok())
      return absl::InvalidArgumentError("rrl.exempt: " + std::string(m.status().message()));
    rrl->exempt_.push_back(*m);
  }
  return rrl;
}

ResponseRateLimiter::ResponseRateLimiter(const RrlOptions& options)
    : interval_ns_(std::max<int64_t>(1, kNanosPerSecond / options.rate)),
      tolerance_ns_(interval_ns_ * (options.burst > 0 ? options.burst : options.rate)),
      slip_(options.slip),
      ipv4_prefix_(options.ipv4_prefix),
      ipv6_prefix_(options.ipv6_prefix),
      groups_((std::max<uint32_t>(options.table_size, 1) + kWays - 1) / kWays) {}

RrlAction ResponseRateLimiter::Account(const sockaddr_storage& peer, const ParsedQuery& q,
                                       const AnswerInfo& info, int64_t now_ns) {
  if (info.kind == AnswerKind::kAnswer || info.kind == AnswerKind::kNoData) {
    std::string_view qname(reinterpret_cast<const char*>(q.lower), q.qname_len);
    return Account(peer, info.kind, q.qtype, qname, now_ns);
  }
  return Account(peer, info.kind, 0, info.group_name, now_ns);
}

RrlAction ResponseRateLimiter::Account(const sockaddr_storage& peer, AnswerKind kind,
                                       uint16_t qtype, std::string_view name, int64_t now_ns) {
  if (Exempt(peer)) return RrlAction::kSend;
  uint64_t hash = Hash(peer, kind, qtype, name);
  // High bits pick the group (multiply-shift maps them onto any group count).
  Group& group = groups_[((hash >> 32) * groups_.size()) >> 32];
  GroupLock lock(group.locked);
  return Charge(FindOrEvict(group, hash | 1, now_ns), now_ns);
}

bool ResponseRateLimiter::Exempt(const sockaddr_storage& peer) const {
  for (const auto& m : exempt_) {
    if (m.Matches(peer)) return true;
  }
  return false;
}

uint64_t ResponseRateLimiter::Hash(const sockaddr_storage& peer, AnswerKind kind, uint16_t qtype,
                                   std::string_view name) const {
  // family | address prefix | kind | qtype | name. absl's hash is seeded per process, so
  // a client cannot aim its keys at one group to evict another's.
  uint8_t key[1 + 16 + 1 + 2 + kMaxNameLength] = {};
  size_t n = 0;
  if (peer.ss_family == AF_INET) {
    const auto& a4 = reinterpret_cast<const sockaddr_in&>(peer).sin_addr;
    key[n++] = 4;
    CopyPrefix(reinterpret_cast<const uint8_t*>(&a4), 4, ipv4_prefix_, key + n);
    n += 4;
  } else {
    const auto* a6 =
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr);
    key[n++] = 6;
    CopyPrefix(a6, 16, ipv6_prefix_, key + n);
    n += 16;
  }
  key[n++] = static_cast<uint8_t>(kind);
  Store16(key + n, qtype);
  n += 2;
  size_t name_len = std::min(name.size(), kMaxNameLength);
  memcpy(key + n, name.data(), name_len);
  n += name_len;
  return absl::HashOf(std::string_view(reinterpret_cast<const char*>(key), n));
}

ResponseRateLimiter::Slot* ResponseRateLimiter::FindOrEvict(Group& group, uint64_t tag,
                                                            int64_t now_ns) {
  Slot* victim = &group.slots[0];
  for (Slot& slot : group.slots) {
    if (slot.tag == tag) return &slot;
    // The slot whose bucket is fullest (earliest TAT) loses least when taken over: an empty
    // or idle one has TAT <= now, a key being limited has the latest TAT of all.
    if (slot.tat < victim->tat) victim = &slot;
  }
  *victim = Slot{tag, now_ns, 0};
  return victim;
}

RrlAction ResponseRateLimiter::Charge(Slot* slot, int64_t now_ns) const {
  int64_t tat = std::max(slot->tat, now_ns);
  if (tat + interval_ns_ - now_ns <= tolerance_ns_) {
    slot->tat = tat + interval_ns_;
    return RrlAction::kSend;
  }
  ++slot->limited;
  return slip_ > 0 && slot->limited % slip_ == 0 ? RrlAction::kSlip : RrlAction::kDrop;
}

}  // namespace photon::flashdns
