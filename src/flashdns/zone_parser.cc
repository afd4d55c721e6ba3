// Master-file parser; see zone_parser.h.
#include "flashdns/zone_parser.h"

#include <arpa/inet.h>

#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "flashdns/wire.h"

namespace photon::flashdns {
namespace {

constexpr int kMaxIncludeDepth = 8;

struct Token {
  std::string text;  // raw, escapes not yet decoded
  bool quoted = false;
};

struct Entry {
  std::vector<Token> tokens;
  bool leading_blank = false;  // the owner is the previous one
  int line = 0;
};

// Splits master-file text into entries: one per logical line, parentheses joining lines.
Status Lex(std::string_view text, const std::string& filename, std::vector<Entry>* entries) {
  int line = 1;
  int depth = 0;
  int open_line = 0;
  Entry entry;
  bool at_line_start = true;
  size_t i = 0;
  auto flush = [&] {
    if (!entry.tokens.empty()) entries->push_back(std::move(entry));
    entry = Entry();
  };
  while (i < text.size()) {
    char c = text[i];
    if (at_line_start && depth == 0) {
      entry.line = line;
      entry.leading_blank = (c == ' ' || c == '\t');
    }
    at_line_start = false;
    if (c == '\n') {
      ++line;
      ++i;
      at_line_start = true;
      if (depth == 0) flush();
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == ';') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == '(') {
      if (depth++ == 0) open_line = line;
      ++i;
      continue;
    }
    if (c == ')') {
      if (--depth < 0) {
        return absl::InvalidArgumentError(filename + ":" + std::to_string(line) +
                                          ": unbalanced ')'");
      }
      ++i;
      continue;
    }
    Token token;
    if (c == '"') {
      token.quoted = true;
      ++i;
      while (true) {
        if (i >= text.size() || text[i] == '\n') {
          return absl::InvalidArgumentError(filename + ":" + std::to_string(line) +
                                            ": unterminated quoted string");
        }
        if (text[i] == '"') break;
        if (text[i] == '\\' && i + 1 < text.size()) token.text += text[i++];
        token.text += text[i++];
      }
      ++i;
    } else {
      while (i < text.size()) {
        char d = text[i];
        if (d == ' ' || d == '\t' || d == '\r' || d == '\n' || d == ';' || d == '(' || d == ')' ||
            d == '"') {
          break;
        }
        if (d == '\\' && i + 1 < text.size()) token.text += text[i++];
        token.text += text[i++];
      }
    }
    entry.tokens.push_back(std::move(token));
  }
  if (depth > 0) {
    return absl::InvalidArgumentError(filename + ":" + std::to_string(open_line) +
                                      ": unbalanced '(' (not closed by end of file)");
  }
  flush();
  return absl::OkStatus();
}

// Decodes \X and \DDD escapes of one character-string or label; false on a bad escape.
bool Unescape(std::string_view in, std::string* out, bool stop_at_dot, size_t* consumed) {
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    if (c == '.' && stop_at_dot) break;
    if (c == '\\') {
      if (i + 1 >= in.size()) return false;
      if (isdigit(static_cast<unsigned char>(in[i + 1]))) {
        if (i + 3 >= in.size()) return false;
        int v = 0;
        for (int k = 1; k <= 3; ++k) {
          if (!isdigit(static_cast<unsigned char>(in[i + k]))) return false;
          v = v * 10 + (in[i + k] - '0');
        }
        if (v > 255) return false;
        out->push_back(static_cast<char>(v));
        i += 4;
      } else {
        out->push_back(in[i + 1]);
        i += 2;
      }
      continue;
    }
    out->push_back(c);
    ++i;
  }
  if (consumed != nullptr) *consumed = i;
  return true;
}

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

class Parser {
 public:
  explicit Parser(std::vector<Record>* records) : records_(records) {}

  Status ParseFile(const std::string& path, std::string origin, int depth) {
    if (depth > kMaxIncludeDepth) {
      return absl::InvalidArgumentError(path + ": $INCLUDE nested too deeply");
    }
    auto text = ReadFile(path);
    if (!text.ok())
      return absl::InvalidArgumentError(path + ": " + std::string(text.status().message()));
    return ParseText(*text, path, std::move(origin), depth);
  }

  Status ParseText(std::string_view text, const std::string& filename, std::string origin,
                   int depth) {
    std::vector<Entry> entries;
    PHOTON_RETURN_IF_ERROR(Lex(text, filename, &entries));
    for (const Entry& entry : entries) {
      Status s = ParseEntry(entry, filename, &origin, depth);
      if (!s.ok()) {
        // Errors from nested $INCLUDE already carry their own file:line.
        if (s.message().rfind(filename, 0) == 0 || entry.tokens[0].text == "$INCLUDE") return s;
        return absl::InvalidArgumentError(filename + ":" + std::to_string(entry.line) + ": " +
                                          std::string(s.message()));
      }
    }
    return absl::OkStatus();
  }

 private:
  Status ParseEntry(const Entry& e, const std::string& filename, std::string* origin, int depth) {
    const auto& t = e.tokens;
    if (!e.leading_blank && !t[0].quoted && !t[0].text.empty() && t[0].text[0] == '$') {
      const std::string& directive = t[0].text;
      if (directive == "$ORIGIN") {
        if (t.size() != 2) return absl::InvalidArgumentError("$ORIGIN wants one name");
        PHOTON_ASSIGN_OR_RETURN(*origin, ParseName(t[1].text, *origin));
        return absl::OkStatus();
      }
      if (directive == "$TTL") {
        if (t.size() != 2) return absl::InvalidArgumentError("$TTL wants one value");
        PHOTON_ASSIGN_OR_RETURN(default_ttl_, ParseTtl(t[1].text));
        have_default_ttl_ = true;
        return absl::OkStatus();
      }
      if (directive == "$INCLUDE") {
        if (t.size() < 2 || t.size() > 3) {
          return absl::InvalidArgumentError(filename + ":" + std::to_string(e.line) +
                                            ": $INCLUDE wants a file and an optional origin");
        }
        std::filesystem::path inc(t[1].text);
        if (inc.is_relative()) inc = std::filesystem::path(filename).parent_path() / inc;
        std::string inc_origin = *origin;
        if (t.size() == 3) {
          auto o = ParseName(t[2].text, *origin);
          if (!o.ok()) {
            return absl::InvalidArgumentError(filename + ":" + std::to_string(e.line) + ": " +
                                              std::string(o.status().message()));
          }
          inc_origin = *o;
        }
        // The included file's origin does not leak back (RFC 1035 §5.1).
        return ParseFile(inc.string(), inc_origin, depth + 1);
      }
      return absl::InvalidArgumentError("unknown directive " + directive);
    }
    size_t i = 0;
    Record record;
    if (e.leading_blank) {
      if (last_owner_.empty()) return absl::InvalidArgumentError("no previous owner name");
      record.owner = last_owner_;
    } else {
      PHOTON_ASSIGN_OR_RETURN(record.owner, ParseName(t[0].text, *origin));
      i = 1;
    }
    bool have_ttl = false;
    for (int k = 0; k < 2 && i < t.size(); ++k) {
      const std::string& f = t[i].text;
      if (!have_ttl && LooksLikeTtl(f)) {
        PHOTON_ASSIGN_OR_RETURN(record.ttl, ParseTtl(f));
        have_ttl = true;
        ++i;
      } else if (strcasecmp(f.c_str(), "IN") == 0) {
        ++i;
      } else if (strcasecmp(f.c_str(), "CH") == 0 || strcasecmp(f.c_str(), "HS") == 0 ||
                 strncasecmp(f.c_str(), "CLASS", 5) == 0) {
        return absl::InvalidArgumentError("class " + f + " not supported (only IN)");
      }
    }
    if (i >= t.size()) return absl::InvalidArgumentError("missing record type");
    record.type = TypeFromText(t[i].text);
    if (record.type == 0 || record.type == kTypeOpt || record.type == kTypeAny ||
        record.type == kTypeAxfr || record.type == kTypeIxfr) {
      return absl::InvalidArgumentError("unknown or invalid record type '" + t[i].text + "'");
    }
    ++i;
    PHOTON_ASSIGN_OR_RETURN(record.rdata, RdataFromTokens(record.type, t, i, *origin));
    if (record.rdata.size() > 65535) return absl::InvalidArgumentError("RDATA too long");
    if (!have_ttl) {
      if (have_default_ttl_) {
        record.ttl = default_ttl_;
      } else if (record.type == kTypeSoa) {
        // RFC 2308 §4: without $TTL, the SOA MINIMUM is the default.
        record.ttl =
            Load32(reinterpret_cast<const uint8_t*>(record.rdata.data()) + record.rdata.size() - 4);
      } else {
        record.ttl = last_ttl_;
      }
    }
    last_ttl_ = record.ttl;
    last_owner_ = record.owner;
    record.where = filename + ":" + std::to_string(e.line);
    records_->push_back(std::move(record));
    return absl::OkStatus();
  }

  std::vector<Record>* records_;
  std::string last_owner_;
  uint32_t default_ttl_ = 3600;
  bool have_default_ttl_ = false;
  uint32_t last_ttl_ = 3600;
};

}  // namespace

StatusOr<std::string> ParseName(std::string_view text, std::string_view origin_wire) {
  if (text == "@") return std::string(origin_wire);
  if (text == ".") return std::string(1, '\0');
  if (text.empty()) return absl::InvalidArgumentError("empty name");
  std::string out;
  size_t i = 0;
  bool absolute = false;
  while (i < text.size()) {
    std::string label;
    size_t used = 0;
    if (!Unescape(text.substr(i), &label, true, &used)) {
      return absl::InvalidArgumentError("bad escape in name '" + std::string(text) + "'");
    }
    if (label.empty())
      return absl::InvalidArgumentError("empty label in '" + std::string(text) + "'");
    if (label.size() > kMaxLabelLength) {
      return absl::InvalidArgumentError("label longer than 63 in '" + std::string(text) + "'");
    }
    out.push_back(static_cast<char>(label.size()));
    out += label;
    i += used;
    if (i < text.size()) {  // at a '.'
      ++i;
      if (i == text.size()) absolute = true;
    }
  }
  if (absolute) {
    out.push_back('\0');
  } else {
    out.append(origin_wire);
  }
  if (out.size() > kMaxNameLength) {
    return absl::InvalidArgumentError("name longer than 255 octets: '" + std::string(text) + "'");
  }
  return out;
}

StatusOr<std::vector<Record>> ParseZoneFile(const std::string& path,
                                            const std::string& origin_wire) {
  std::vector<Record> records;
  Parser parser(&records);
  PHOTON_RETURN_IF_ERROR(parser.ParseFile(path, origin_wire, 0));
  return records;
}

StatusOr<std::vector<Record>> ParseZoneText(std::string_view text, const std::string& filename,
                                            const std::string& origin_wire) {
  std::vector<Record> records;
  Parser parser(&records);
  PHOTON_RETURN_IF_ERROR(parser.ParseText(text, filename, origin_wire, 0));
  return records;
}

StatusOr<std::string> ParseRdataText(uint16_t type, std::string_view text,
                                     const std::string& origin_wire) {
  std::vector<Entry> entries;
  PHOTON_RETURN_IF_ERROR(Lex(text, "rdata", &entries));
  if (entries.size() != 1) return absl::InvalidArgumentError("RDATA must be one line");
  return RdataFromTokens(type, entries[0].tokens, 0, origin_wire);
}

StatusOr<std::shared_ptr<const Zone>> BuildZone(std::vector<Record> records,
                                                const std::string& origin_wire,
                                                const std::string& source) {
  ZoneBuilder builder(origin_wire, source);
  for (auto& record : records) {
    std::string where = record.where.empty() ? source : std::move(record.where);
    PHOTON_RETURN_IF_ERROR(builder.Add(std::move(record), where));
  }
  return builder.Build();
}

StatusOr<std::shared_ptr<const Zone>> LoadZone(const std::string& path,
                                               const std::string& origin_wire) {
  PHOTON_ASSIGN_OR_RETURN(auto records, ParseZoneFile(path, origin_wire));
  return BuildZone(std::move(records), origin_wire, path);
}

}  // namespace photon::flashdns
