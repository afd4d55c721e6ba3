#include "lightningstor/types.h"

#include <nlohmann/json.hpp>

#include "lightningstor/checksum.h"

namespace photon::lightningstor {

// One line per segment: "<blob_id> <size> <base64 block crcs>[ <base64 iv>|-[ g2:<base64 block
// tags>]]" (the last field only for format 2 encrypted segments; lines written before it
// existed read as format 0/1).
std::string EncodeSegments(const std::vector<Segment>& segments) {
  std::string out;
  for (const auto& s : segments) {
    out += s.blob_id;
    out += ' ';
    out += std::to_string(s.size);
    out += ' ';
    out += Base64Encode(s.block_crcs);
    if (!s.iv.empty() || s.sse_format == 2) {
      out += ' ';
      out += s.iv.empty() ? "-" : Base64Encode(s.iv);
    }
    if (s.sse_format == 2) {
      out += " g2:";
      out += Base64Encode(s.block_tags);
    }
    out += '\n';
  }
  return out;
}

bool DecodeSegments(const std::string& text, std::vector<Segment>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    std::vector<std::string> f;
    for (size_t at = 0; at <= line.size();) {
      size_t sp = line.find(' ', at);
      if (sp == std::string::npos) sp = line.size();
      f.push_back(line.substr(at, sp - at));
      at = sp + 1;
    }
    if (f.size() < 3 || f.size() > 5) return false;
    Segment s;
    s.blob_id = f[0];
    s.size = std::strtoull(f[1].c_str(), nullptr, 10);
    if (!Base64Decode(f[2], &s.block_crcs)) return false;
    if (f.size() > 3 && f[3] != "-" && (!Base64Decode(f[3], &s.iv) || s.iv.size() != 16))
      return false;
    if (f.size() > 4) {
      if (f[4].rfind("g2:", 0) != 0 || !Base64Decode(f[4].substr(3), &s.block_tags) ||
          s.block_tags.size() % 16 != 0)
        return false;
      s.sse_format = 2;
    }
    out->push_back(std::move(s));
  }
  return true;
}

std::string EncodeHeaders(const std::map<std::string, std::string>& headers) {
  if (headers.empty()) return "";
  nlohmann::json doc = headers;
  // Header values are bytes, not always UTF-8; replace rather than throw.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::map<std::string, std::string> DecodeHeaders(const std::string& text) {
  if (text.empty()) return {};
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::map<std::string, std::string> out;
  if (!doc.is_object()) return out;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

}  // namespace photon::lightningstor
