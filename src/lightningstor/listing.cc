#include "lightningstor/listing.h"

namespace photon::lightningstor {

std::string PrefixSuccessor(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c < 0xFF) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return "";
}

StatusOr<ListOutcome> ListWithDelimiter(const ListFetch& fetch, const ListParams& params) {
  ListOutcome out;
  if (params.max_keys <= 0) return out;
  std::string cursor = params.start_after;
  bool inclusive = false;
  // If the start marker lies inside a common prefix, continue after that whole prefix.
  if (!params.delimiter.empty() && cursor.size() > params.prefix.size() &&
      cursor.compare(0, params.prefix.size(), params.prefix) == 0) {
    size_t pos = cursor.find(params.delimiter, params.prefix.size());
    if (pos != std::string::npos) {
      std::string cp = cursor.substr(0, pos + params.delimiter.size());
      std::string next = PrefixSuccessor(cp);
      if (next.empty()) return out;
      cursor = next;
      inclusive = true;
    }
  }
  int count = 0;
  const int batch = std::min(params.max_keys + 1, 1000);
  while (true) {
    PHOTON_ASSIGN_OR_RETURN(auto entries, fetch(cursor, inclusive, batch));
    if (entries.empty()) return out;
    bool reseek = false;
    for (const auto& e : entries) {
      cursor = e.key;
      inclusive = false;
      if (e.delete_marker) continue;
      if (!params.delimiter.empty()) {
        size_t pos = e.key.find(params.delimiter, params.prefix.size());
        if (pos != std::string::npos) {
          if (count == params.max_keys) {
            out.truncated = true;
            return out;
          }
          std::string cp = e.key.substr(0, pos + params.delimiter.size());
          out.common_prefixes.push_back(cp);
          out.last = cp;
          ++count;
          std::string next = PrefixSuccessor(cp);
          if (next.empty()) return out;
          cursor = next;
          inclusive = true;
          reseek = true;
          break;
        }
      }
      if (count == params.max_keys) {
        out.truncated = true;
        return out;
      }
      out.contents.push_back(e);
      out.last = e.key;
      ++count;
    }
    if (!reseek && static_cast<int>(entries.size()) < batch) return out;
  }
}

}  // namespace photon::lightningstor
