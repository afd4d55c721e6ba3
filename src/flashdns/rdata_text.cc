// RDATA and TTL parsing; see rdata_text.h.
#include "flashdns/rdata_text.h"

#include <arpa/inet.h>

#include <cctype>

#include "flashdns/wire.h"
#include "flashdns/zone_parser.h"

namespace photon::flashdns {
namespace {

StatusOr<uint32_t> ParseNumber(std::string_view text, uint64_t max, const char* what) {
  if (text.empty() || text.size() > 10) {
    return absl::InvalidArgumentError(std::string("bad ") + what + " '" + std::string(text) + "'");
  }
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(std::string("bad ") + what + " '" + std::string(text) +
                                        "'");
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) {
    return absl::InvalidArgumentError(std::string(what) + " out of range: " + std::string(text));
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

bool LooksLikeTtl(std::string_view text) {
  return !text.empty() && isdigit(static_cast<unsigned char>(text[0]));
}

// A TTL in seconds, with optional BIND-style unit suffixes ("1h30m", "2d").
StatusOr<uint32_t> ParseTtl(std::string_view text) {
  uint64_t total = 0;
  uint64_t cur = 0;
  bool digits = false;
  bool any_unit = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      cur = cur * 10 + static_cast<uint64_t>(c - '0');
      digits = true;
      if (cur > 0xFFFFFFFFull) break;
      continue;
    }
    uint64_t mult = 0;
    switch (tolower(static_cast<unsigned char>(c))) {
      case 's':
        mult = 1;
        break;
      case 'm':
        mult = 60;
        break;
      case 'h':
        mult = 3600;
        break;
      case 'd':
        mult = 86400;
        break;
      case 'w':
        mult = 604800;
        break;
      default:
        mult = 0;
    }
    if (mult == 0 || !digits) {
      return absl::InvalidArgumentError("bad TTL '" + std::string(text) + "'");
    }
    total += cur * mult;
    cur = 0;
    digits = false;
    any_unit = true;
  }
  if (digits) total += cur;
  if ((!digits && !any_unit) || total > 0x7FFFFFFFull) {
    return absl::InvalidArgumentError("bad TTL '" + std::string(text) + "'");
  }
  return static_cast<uint32_t>(total);
}

namespace {

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}

Status PutCharString(std::string_view raw, std::string* out) {
  std::string s;
  if (!Unescape(raw, &s, false, nullptr)) return absl::InvalidArgumentError("bad escape");
  if (s.size() > 255) return absl::InvalidArgumentError("character-string longer than 255");
  out->push_back(static_cast<char>(s.size()));
  *out += s;
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::string> RdataFromTokens(uint16_t type, const std::vector<Token>& t, size_t i,
                                      const std::string& origin) {
  size_t n = t.size() - i;
  auto want = [&](size_t count) -> Status {
    if (n != count) {
      return absl::InvalidArgumentError(TypeToText(type) + " wants " + std::to_string(count) +
                                        " RDATA fields, got " + std::to_string(n));
    }
    return absl::OkStatus();
  };
  std::string out;
  if (n >= 1 && !t[i].quoted && t[i].text == "\\#") {  // RFC 3597 generic form
    if (n < 2) return absl::InvalidArgumentError("\\# wants a length");
    PHOTON_ASSIGN_OR_RETURN(uint32_t len, ParseNumber(t[i + 1].text, 65535, "RDATA length"));
    std::string hex;
    for (size_t k = i + 2; k < t.size(); ++k) hex += t[k].text;
    if (hex.size() != 2 * static_cast<size_t>(len)) {
      return absl::InvalidArgumentError("\\# length does not match the hex data");
    }
    for (size_t k = 0; k < hex.size(); k += 2) {
      int hi = isxdigit(static_cast<unsigned char>(hex[k]))
                   ? std::stoi(hex.substr(k, 1), nullptr, 16)
                   : -1;
      int lo = isxdigit(static_cast<unsigned char>(hex[k + 1]))
                   ? std::stoi(hex.substr(k + 1, 1), nullptr, 16)
                   : -1;
      if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad hex in \\# RDATA");
      out.push_back(static_cast<char>(hi << 4 | lo));
    }
    return out;
  }
  switch (type) {
    case kTypeA:
    case kTypeAaaa: {
      PHOTON_RETURN_IF_ERROR(want(1));
      unsigned char buf[16];
      int af = type == kTypeA ? AF_INET : AF_INET6;
      if (inet_pton(af, t[i].text.c_str(), buf) != 1) {
        return absl::InvalidArgumentError("bad " + TypeToText(type) + " address '" + t[i].text +
                                          "'");
      }
      out.assign(reinterpret_cast<char*>(buf), type == kTypeA ? 4 : 16);
      return out;
    }
    case kTypeNs:
    case kTypeCname:
    case kTypePtr: {
      PHOTON_RETURN_IF_ERROR(want(1));
      return ParseName(t[i].text, origin);
    }
    case kTypeMx: {
      PHOTON_RETURN_IF_ERROR(want(2));
      PHOTON_ASSIGN_OR_RETURN(uint32_t pref, ParseNumber(t[i].text, 65535, "MX preference"));
      PHOTON_ASSIGN_OR_RETURN(std::string name, ParseName(t[i + 1].text, origin));
      Put16(&out, static_cast<uint16_t>(pref));
      return out + name;
    }
    case kTypeSrv: {
      PHOTON_RETURN_IF_ERROR(want(4));
      for (size_t k = 0; k < 3; ++k) {
        PHOTON_ASSIGN_OR_RETURN(uint32_t v, ParseNumber(t[i + k].text, 65535, "SRV field"));
        Put16(&out, static_cast<uint16_t>(v));
      }
      PHOTON_ASSIGN_OR_RETURN(std::string name, ParseName(t[i + 3].text, origin));
      return out + name;
    }
    case kTypeSoa: {
      PHOTON_RETURN_IF_ERROR(want(7));
      PHOTON_ASSIGN_OR_RETURN(std::string mname, ParseName(t[i].text, origin));
      PHOTON_ASSIGN_OR_RETURN(std::string rname, ParseName(t[i + 1].text, origin));
      out = mname + rname;
      PHOTON_ASSIGN_OR_RETURN(uint32_t serial,
                              ParseNumber(t[i + 2].text, 0xFFFFFFFFull, "SOA serial"));
      Put32(&out, serial);
      for (size_t k = 3; k < 7; ++k) {
        PHOTON_ASSIGN_OR_RETURN(uint32_t v, ParseTtl(t[i + k].text));
        Put32(&out, v);
      }
      return out;
    }
    case kTypeTxt: {
      if (n == 0) return absl::InvalidArgumentError("TXT wants at least one string");
      for (size_t k = i; k < t.size(); ++k) PHOTON_RETURN_IF_ERROR(PutCharString(t[k].text, &out));
      return out;
    }
    case kTypeCaa: {
      PHOTON_RETURN_IF_ERROR(want(3));
      PHOTON_ASSIGN_OR_RETURN(uint32_t flags, ParseNumber(t[i].text, 255, "CAA flags"));
      const std::string& tag = t[i + 1].text;
      if (tag.empty() || tag.size() > 255) return absl::InvalidArgumentError("bad CAA tag");
      for (char c : tag) {
        if (!isalnum(static_cast<unsigned char>(c))) {
          return absl::InvalidArgumentError("bad CAA tag '" + tag + "'");
        }
      }
      std::string value;
      if (!Unescape(t[i + 2].text, &value, false, nullptr)) {
        return absl::InvalidArgumentError("bad escape in CAA value");
      }
      out.push_back(static_cast<char>(flags));
      out.push_back(static_cast<char>(tag.size()));
      return out + tag + value;
    }
    default:
      return absl::InvalidArgumentError("type " + TypeToText(type) +
                                        " is only supported in the \\# generic form");
  }
}

}  // namespace photon::flashdns
