#include "lightningstor/types.h"

#include <nlohmann/json.hpp>

#include "lightningstor/checksum.h"

namespace photon::lightningstor {

// One line per segment: "<blob_id> <size> <base64 block crcs>[ <base64 iv>]".
std::string EncodeSegments(const std::vector<Segment>& segments) {
  std::string out;
  for (const auto& s : segments) {
    out += s.blob_id;
    out += ' ';
    out += std::to_string(s.size);
    out += ' ';
    out += Base64Encode(s.block_crcs);
    if (!s.iv.empty()) {
      out += ' ';
      out += Base64Encode(s.iv);
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
    size_t a = line.find(' ');
    size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
    if (b == std::string::npos) return false;
    Segment s;
    s.blob_id = line.substr(0, a);
    s.size = std::strtoull(line.c_str() + a + 1, nullptr, 10);
    size_t c = line.find(' ', b + 1);
    if (!Base64Decode(line.substr(b + 1, c == std::string::npos ? c : c - b - 1), &s.block_crcs))
      return false;
    if (c != std::string::npos && (!Base64Decode(line.substr(c + 1), &s.iv) || s.iv.size() != 16))
      return false;
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
