#include "fiberlb/l4/maglev.h"

#include <algorithm>
#include <numeric>
#include <set>

namespace photon::fiberlb::l4 {
namespace {

// Two fixed seeds give the paper's two independent hash functions (offset and skip).
constexpr uint64_t kOffsetSeed = 0x6d61676c65763031ULL;  // "maglev01"
constexpr uint64_t kSkipSeed = 0x6d61676c65763032ULL;    // "maglev02"
constexpr uint32_t kEmpty = UINT32_MAX;

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

Status Validate(const std::vector<MaglevBackend>& backends, uint32_t size) {
  if (!IsPrime(size)) return absl::InvalidArgumentError("maglev table size must be a prime");
  if (backends.empty()) return absl::InvalidArgumentError("maglev: no backends");
  if (backends.size() >= size)
    return absl::InvalidArgumentError("maglev: more backends than slots");
  std::set<std::string> seen;
  for (const auto& b : backends) {
    if (b.key.empty()) return absl::InvalidArgumentError("maglev: backend with an empty key");
    if (b.weight == 0) {
      return absl::InvalidArgumentError("maglev: backend " + b.key + " has weight 0");
    }
    if (!seen.insert(b.key).second) {
      return absl::InvalidArgumentError("maglev: duplicate backend " + b.key);
    }
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t MaglevHash(const std::string& key, uint64_t seed) {
  // FNV-1a over the key, then the splitmix64 finaliser so that nearby keys ("10.0.0.1",
  // "10.0.0.2") still give unrelated offsets and skips.
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

StatusOr<std::vector<uint32_t>> BuildMaglevTable(const std::vector<MaglevBackend>& backends,
                                                 uint32_t size) {
  PHOTON_RETURN_IF_ERROR(Validate(backends, size));
  // Turns are taken in key order, so the table does not depend on the caller's order.
  std::vector<uint32_t> order(backends.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a].key < backends[b].key; });
  const size_t n = order.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  uint32_t max_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    const MaglevBackend& b = backends[order[i]];
    offset[i] = MaglevHash(b.key, kOffsetSeed) % size;
    skip[i] = MaglevHash(b.key, kSkipSeed) % (size - 1) + 1;
    max_weight = std::max(max_weight, b.weight);
  }
  std::vector<uint32_t> table(size, kEmpty);
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; ++i) {
      credit[i] += backends[order[i]].weight;
      while (credit[i] >= max_weight && filled < size) {
        credit[i] -= max_weight;
        // The backend's next preferred slot that is still free (permutation[j] =
        // (offset + j × skip) mod size visits every slot once since size is prime).
        uint64_t c = (offset[i] + next[i] * skip[i]) % size;
        while (table[c] != kEmpty) {
          ++next[i];
          c = (offset[i] + next[i] * skip[i]) % size;
        }
        table[c] = order[i];
        ++next[i];
        ++filled;
      }
    }
  }
  return table;
}

}  // namespace photon::fiberlb::l4
