// Master-file parser; see zone_parser.h.
#include "flashdns/zone_parser.h"

#include <cstring>
#include <filesystem>
#include <functional>

#include "common/file_util.h"
#include "flashdns/rdata_text.h"
#include "flashdns/wire.h"
#include "flashdns/zone_lexer.h"

namespace photon::flashdns {
namespace {

constexpr int kMaxIncludeDepth = 8;

// Where parsed records go: with the file and line they came from, for error messages.
using RecordSink = std::function<Status(Record&&, const std::string& file, int line)>;

class Parser {
 public:
  explicit Parser(RecordSink sink) : sink_(std::move(sink)) {}

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
    return Lex(text, filename, [&](const Entry& entry) -> Status {
      Status s = ParseEntry(entry, filename, &origin, depth);
      if (s.ok()) return s;
      // Errors from nested $INCLUDE and from the sink already carry their file:line.
      if (s.message().rfind(filename, 0) == 0 || entry.tokens[0].text == "$INCLUDE") return s;
      return absl::InvalidArgumentError(filename + ":" + std::to_string(entry.line) + ": " +
                                        std::string(s.message()));
    });
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
    return sink_(std::move(record), filename, e.line);
  }

  RecordSink sink_;
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

namespace {

RecordSink CollectInto(std::vector<Record>* records) {
  return [records](Record&& record, const std::string& file, int line) {
    record.where = file + ":" + std::to_string(line);
    records->push_back(std::move(record));
    return absl::OkStatus();
  };
}

}  // namespace

StatusOr<std::vector<Record>> ParseZoneFile(const std::string& path,
                                            const std::string& origin_wire) {
  std::vector<Record> records;
  Parser parser(CollectInto(&records));
  PHOTON_RETURN_IF_ERROR(parser.ParseFile(path, origin_wire, 0));
  return records;
}

StatusOr<std::vector<Record>> ParseZoneText(std::string_view text, const std::string& filename,
                                            const std::string& origin_wire) {
  std::vector<Record> records;
  Parser parser(CollectInto(&records));
  PHOTON_RETURN_IF_ERROR(parser.ParseText(text, filename, origin_wire, 0));
  return records;
}

StatusOr<std::string> ParseRdataText(uint16_t type, std::string_view text,
                                     const std::string& origin_wire) {
  std::vector<Token> tokens;
  int entries = 0;
  PHOTON_RETURN_IF_ERROR(Lex(text, "rdata", [&](const Entry& e) {
    ++entries;
    tokens = e.tokens;
    return absl::OkStatus();
  }));
  if (entries != 1) return absl::InvalidArgumentError("RDATA must be one line");
  return RdataFromTokens(type, tokens, 0, origin_wire);
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
  // Records stream straight into the builder: a large zone is never held as a record list.
  ZoneBuilder builder(origin_wire, path);
  std::error_code ec;
  uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (!ec) builder.Reserve(static_cast<size_t>(bytes / 32));  // about one short line per name
  Parser parser([&builder](Record&& record, const std::string& file, int line) {
    return builder.Add(std::move(record), file, line);
  });
  PHOTON_RETURN_IF_ERROR(parser.ParseFile(path, origin_wire, 0));
  return builder.Build();
}

}  // namespace photon::flashdns
