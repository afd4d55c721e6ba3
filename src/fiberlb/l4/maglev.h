// Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): a lookup table of a prime
// number of slots, each naming a backend, filled from per-backend permutations derived from two
// hashes of the backend's key. Every L4 node computes the same table from the same member set,
// so a flow lands on the same member whichever node the router's ECMP sends it to; adding or
// removing one of N backends moves about 1/N of the slots.
// Weights: in each filling round a backend takes as many turns as its weight allows (credit
// accumulated per round, one turn per max-weight of credit), so its share of slots is
// proportional to its weight.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::fiberlb::l4 {

// The paper's large table size: prime, and ≥ 100 × the backends a pool is expected to hold.
inline constexpr uint32_t kMaglevTableSize = 65537;

struct MaglevBackend {
  std::string key;      // identifies the backend on every node (its address); unique
  uint32_t weight = 1;  // > 0; a drained backend is left out of the list instead
};

// For each slot, the index into `backends` of its backend. The result depends only on the set
// of (key, weight) pairs, not on their order in `backends`. INVALID_ARGUMENT on an empty list,
// a duplicate or empty key, a zero weight, or a size that is not a prime > 1.
StatusOr<std::vector<uint32_t>> BuildMaglevTable(const std::vector<MaglevBackend>& backends,
                                                 uint32_t size = kMaglevTableSize);

// The two hashes behind a backend's permutation (exposed for tests): stable across builds,
// machines and processes (no std::hash, no per-process seed).
uint64_t MaglevHash(const std::string& key, uint64_t seed);

}  // namespace photon::fiberlb::l4
