#include "lightningstor/http/message.h"

namespace photon::lightningstor::http {

const std::string& Request::Header(std::string_view name) const {
  static const std::string kEmpty;
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return kEmpty;
}

bool Request::HasHeader(std::string_view name) const {
  for (const auto& kv : headers)
    if (kv.first == name) return true;
  return false;
}

const std::string* Request::Query(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return &v;
  return nullptr;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

void ParseTarget(Request& req) {
  size_t q = req.target.find('?');
  req.raw_path = req.target.substr(0, q);
  req.path = PercentDecode(req.raw_path, false);
  if (q == std::string::npos) return;
  req.raw_query = req.target.substr(q + 1);
  size_t pos = 0;
  const std::string& qs = req.raw_query;
  while (pos <= qs.size()) {
    size_t amp = qs.find('&', pos);
    if (amp == std::string::npos) amp = qs.size();
    std::string_view kv(qs.data() + pos, amp - pos);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos) {
        req.query.emplace_back(PercentDecode(kv, true), "");
      } else {
        req.query.emplace_back(PercentDecode(kv.substr(0, eq), true),
                               PercentDecode(kv.substr(eq + 1), true));
      }
    }
    pos = amp + 1;
  }
}

}  // namespace photon::lightningstor::http
