// Key range helpers shared by the backends: etcd's [key, end) convention where an empty end
// means the single key and "\0" means "every key from key on". Pure functions, thread-safe.
#pragma once

#include <string>

namespace photon::store {

inline bool IsOpenEnd(const std::string& end) { return end.size() == 1 && end[0] == '\0'; }

// Bytewise (unsigned) comparison, the order of etcd and of SQLite BLOBs.
inline bool InRange(const std::string& key, const std::string& begin, const std::string& end) {
  if (end.empty()) return key == begin;
  if (key < begin) return false;
  return IsOpenEnd(end) || key < end;
}

}  // namespace photon::store
