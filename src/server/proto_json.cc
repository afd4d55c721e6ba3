#include "server/proto_json.h"

#include <absl/strings/escaping.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

namespace photon::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// google.protobuf.* messages (Any, Timestamp, Struct, ...) have special JSON forms.
bool IsWellKnown(const Descriptor* d) { return d->file()->package() == "google.protobuf"; }

// ---------------------------------------------------------------------------------------------
// Printing

void AppendEscaped(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default: {
        static const char kHex[] = "0123456789abcdef";
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(u, sizeof(u));
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

template <typename T>
void AppendInteger(T v, bool quoted, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  if (quoted) out->push_back('"');
  out->append(buf, r.ptr);
  if (quoted) out->push_back('"');
}

template <typename T>
void AppendFloating(T v, std::string* out) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest text that round-trips
    out->append(buf, r.ptr);
  }
}

void AppendMessage(const Message& m, std::string* out);

// One value of field `f`: element `index` of a repeated field, or the singular value (index -1).
void AppendValue(const Message& m, const Reflection* r, const FieldDescriptor* f, int index,
                 std::string* out) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      AppendInteger(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), false, out);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      AppendInteger(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), false, out);
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      AppendInteger(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), true, out);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendInteger(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), true, out);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendFloating(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloating(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int n = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      if (f->enum_type()->full_name() == "google.protobuf.NullValue") {
        out->append("null");
      } else if (const auto* v = f->enum_type()->FindValueByNumber(n)) {
        AppendEscaped(v->name(), out);
      } else {
        AppendInteger(n, false, out);  // an open enum's unknown value
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        out->push_back('"');
        out->append(absl::Base64Escape(s));
        out->push_back('"');
      } else {
        AppendEscaped(s, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
      break;
  }
}

void AppendMap(const Message& m, const Reflection* r, const FieldDescriptor* f, std::string* out) {
  const FieldDescriptor* key_field = f->message_type()->map_key();
  const FieldDescriptor* value_field = f->message_type()->map_value();
  const int n = r->FieldSize(m, f);
  // Sorted by key so the output is deterministic (the map's own order is not).
  std::vector<std::pair<std::string, const Message*>> entries;
  entries.reserve(n);
  for (int i = 0; i < n; ++i) {
    const Message& e = r->GetRepeatedMessage(m, f, i);
    const Reflection* er = e.GetReflection();
    std::string key;
    switch (key_field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        key = er->GetString(e, key_field);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        key = er->GetBool(e, key_field) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        key = std::to_string(er->GetInt32(e, key_field));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        key = std::to_string(er->GetUInt32(e, key_field));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        key = std::to_string(er->GetInt64(e, key_field));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        key = std::to_string(er->GetUInt64(e, key_field));
        break;
      default:
        break;  // no other key types exist
    }
    entries.emplace_back(std::move(key), &e);
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  out->push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    // A key written twice (possible in the repeated view) keeps its last value, as in the map.
    if (i + 1 < entries.size() && entries[i + 1].first == entries[i].first) continue;
    if (out->back() != '{') out->push_back(',');
    AppendEscaped(entries[i].first, out);
    out->push_back(':');
    AppendValue(*entries[i].second, entries[i].second->GetReflection(), value_field, -1, out);
  }
  out->push_back('}');
}

void AppendMessage(const Message& m, std::string* out) {
  const Descriptor* d = m.GetDescriptor();
  if (IsWellKnown(d)) {
    google::protobuf::util::JsonPrintOptions opts;
    opts.always_print_primitive_fields = true;
    std::string s;
    (void)google::protobuf::util::MessageToJsonString(m, &s, opts);
    out->append(s);
    return;
  }
  const Reflection* r = m.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!f->is_repeated() && f->has_presence() && !r->HasField(m, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(f->json_name());
    out->append("\":");
    if (f->is_map()) {
      AppendMap(m, r, f, out);
    } else if (f->is_repeated()) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int j = 0; j < n; ++j) {
        if (j) out->push_back(',');
        AppendValue(m, r, f, j, out);
      }
      out->push_back(']');
    } else {
      AppendValue(m, r, f, -1, out);
    }
  }
  out->push_back('}');
}

// ---------------------------------------------------------------------------------------------
// Parsing

constexpr int kMaxDepth = 64;

// By json name (normally the camel-case name), else by proto name.
const FieldDescriptor* FindField(const Descriptor* d, const std::string& name) {
  if (const auto* f = d->FindFieldByCamelcaseName(name); f && f->json_name() == name) return f;
  if (const auto* f = d->FindFieldByName(name)) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == name) return d->field(i);  // a custom json_name
  }
  return nullptr;
}

class Parser {
 public:
  Parser(std::string_view text, std::map<std::string, std::string>* envelope)
      : s_(text), envelope_(envelope) {}

  Status Parse(Message* m) {
    PHOTON_RETURN_IF_ERROR(ParseMessage(m, 0));
    SkipWs();
    if (pos_ != s_.size()) return Malformed("unexpected characters after the top-level object");
    return absl::OkStatus();
  }

 private:
  // Errors. The path ("spec.resources.vcpu", "spec.volumes[2].name") is only built on failure.
  Status Malformed(const std::string& what) const {
    return absl::InvalidArgumentError("malformed JSON at byte " + std::to_string(pos_) + ": " +
                                      what);
  }
  Status Schema(const std::string& what) const {
    std::string p;
    for (const auto& part : path_) {
      if (!p.empty() && part[0] != '[') p += '.';
      p += part;
    }
    return absl::InvalidArgumentError((p.empty() ? std::string("document") : p) + ": " + what);
  }

  void SkipWs() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
      ++pos_;
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Consume(char c) {
    SkipWs();
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  bool ConsumeLiteral(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(uint32_t* v) {
    if (pos_ + 4 > s_.size()) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      *v <<= 4;
      if (c >= '0' && c <= '9')
        *v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        *v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        *v |= c - 'A' + 10;
      else
        return false;
    }
    return true;
  }

  // A JSON string at pos_ (after whitespace). Without escapes it is a view into the input and
  // `storage` stays untouched.
  Status ParseString(std::string_view* value, std::string* storage) {
    SkipWs();
    if (Peek() != '"') return Malformed("expected a string");
    const size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\') {
      if (static_cast<unsigned char>(s_[pos_]) < 0x20)
        return Malformed("control character in a string");
      ++pos_;
    }
    if (AtEnd()) return Malformed("unterminated string");
    if (s_[pos_] == '"') {
      *value = s_.substr(start, pos_ - start);
      ++pos_;
      return absl::OkStatus();
    }
    storage->assign(s_.data() + start, pos_ - start);
    while (true) {
      if (AtEnd()) return Malformed("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) return Malformed("control character in a string");
      if (c != '\\') {
        storage->push_back(c);
        continue;
      }
      if (AtEnd()) return Malformed("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          storage->push_back(e);
          break;
        case 'b':
          storage->push_back('\b');
          break;
        case 'f':
          storage->push_back('\f');
          break;
        case 'n':
          storage->push_back('\n');
          break;
        case 'r':
          storage->push_back('\r');
          break;
        case 't':
          storage->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return Malformed("bad \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            uint32_t lo;
            if (!ConsumeLiteral("\\u") || !Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF)
              return Malformed("unpaired UTF-16 surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Malformed("unpaired UTF-16 surrogate in a \\u escape");
          }
          AppendUtf8(cp, storage);
          break;
        }
        default:
          return Malformed(std::string("bad escape \\") + e);
      }
    }
    *value = *storage;
    return absl::OkStatus();
  }

  // A JSON number token at pos_, validated against the JSON grammar.
  Status ParseNumberToken(std::string_view* tok) {
    SkipWs();
    const size_t start = pos_;
    auto digits = [&] {
      const size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > d;
    };
    if (Peek() == '-') ++pos_;
    if (!digits()) return Malformed("expected a value");
    if (Peek() == '.') {
      ++pos_;
      if (!digits()) return Malformed("bad number");
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!digits()) return Malformed("bad number");
    }
    *tok = s_.substr(start, pos_ - start);
    return absl::OkStatus();
  }

  // Skips one JSON value of any shape (used for a WKT's raw text).
  Status SkipValue(int depth) {
    if (depth > kMaxDepth) return Malformed("nested too deeply");
    SkipWs();
    const char c = Peek();
    std::string_view sv;
    std::string storage;
    if (c == '"') return ParseString(&sv, &storage);
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      if (Consume(close)) return absl::OkStatus();
      do {
        if (c == '{') {
          PHOTON_RETURN_IF_ERROR(ParseString(&sv, &storage));
          if (!Consume(':')) return Malformed("expected ':'");
        }
        PHOTON_RETURN_IF_ERROR(SkipValue(depth + 1));
      } while (Consume(','));
      if (!Consume(close)) return Malformed(std::string("expected ',' or '") + close + "'");
      return absl::OkStatus();
    }
    if (ConsumeLiteral("true") || ConsumeLiteral("false") || ConsumeLiteral("null"))
      return absl::OkStatus();
    return ParseNumberToken(&sv);
  }

  // The text of a number: a JSON number, or a string holding one (how int64s travel).
  Status NumberText(std::string_view* text, std::string* storage, bool* quoted) {
    SkipWs();
    *quoted = Peek() == '"';
    if (*quoted) return ParseString(text, storage);
    if (Peek() == 't' || Peek() == 'f' || Peek() == '{' || Peek() == '[' || Peek() == 'n')
      return SkipValue(0).ok() ? Schema("expected a number") : Malformed("expected a value");
    return ParseNumberToken(text);
  }

  template <typename T>
  Status ParseInteger(T* out) {
    std::string_view text;
    std::string storage;
    bool quoted;
    PHOTON_RETURN_IF_ERROR(NumberText(&text, &storage, &quoted));
    // Exact integers first; "1e3" or "5.0" are accepted when they are whole and in range.
    using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    Wide wide;
    auto r = std::from_chars(text.data(), text.data() + text.size(), wide);
    if (r.ec == std::errc() && r.ptr == text.data() + text.size()) {
      if (wide < static_cast<Wide>(std::numeric_limits<T>::min()) ||
          wide > static_cast<Wide>(std::numeric_limits<T>::max()))
        return Schema("number out of range: " + std::string(text));
      *out = static_cast<T>(wide);
      return absl::OkStatus();
    }
    double d;
    auto rd = std::from_chars(text.data(), text.data() + text.size(), d);
    if (rd.ec != std::errc() || rd.ptr != text.data() + text.size() || !std::isfinite(d))
      return Schema("not an integer: " + std::string(text));
    if (d != std::floor(d)) return Schema("not an integer: " + std::string(text));
    if (d < static_cast<double>(std::numeric_limits<T>::min()) ||
        d > static_cast<double>(std::numeric_limits<T>::max()))
      return Schema("number out of range: " + std::string(text));
    *out = static_cast<T>(d);
    return absl::OkStatus();
  }

  template <typename T>
  Status ParseFloating(T* out) {
    std::string_view text;
    std::string storage;
    bool quoted;
    PHOTON_RETURN_IF_ERROR(NumberText(&text, &storage, &quoted));
    if (quoted && text == "NaN") {
      *out = std::numeric_limits<T>::quiet_NaN();
      return absl::OkStatus();
    }
    if (quoted && (text == "Infinity" || text == "-Infinity")) {
      *out =
          text[0] == '-' ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
      return absl::OkStatus();
    }
    double d;
    auto r = std::from_chars(text.data(), text.data() + text.size(), d);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size())
      return Schema("not a number: " + std::string(text));
    if (std::is_same_v<T, float> && std::isfinite(d) &&
        std::fabs(d) > std::numeric_limits<float>::max())
      return Schema("number out of range for a float: " + std::string(text));
    *out = static_cast<T>(d);
    return absl::OkStatus();
  }

  // One value into field f: added to a repeated field, or set on a singular one.
  Status ParseElement(Message* m, const FieldDescriptor* f, bool add, int depth) {
    const Reflection* r = m->GetReflection();
    SkipWs();
    switch (f->cpp_type()) {
#define PHOTON_NUMERIC(CPPTYPE, T, PARSE, NAME)          \
  case FieldDescriptor::CPPTYPE: {                       \
    T v{};                                               \
    PHOTON_RETURN_IF_ERROR(PARSE(&v));                   \
    add ? r->Add##NAME(m, f, v) : r->Set##NAME(m, f, v); \
    return absl::OkStatus();                             \
  }
      PHOTON_NUMERIC(CPPTYPE_INT32, int32_t, ParseInteger, Int32)
      PHOTON_NUMERIC(CPPTYPE_UINT32, uint32_t, ParseInteger, UInt32)
      PHOTON_NUMERIC(CPPTYPE_INT64, int64_t, ParseInteger, Int64)
      PHOTON_NUMERIC(CPPTYPE_UINT64, uint64_t, ParseInteger, UInt64)
      PHOTON_NUMERIC(CPPTYPE_DOUBLE, double, ParseFloating, Double)
      PHOTON_NUMERIC(CPPTYPE_FLOAT, float, ParseFloating, Float)
#undef PHOTON_NUMERIC
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        if (ConsumeLiteral("true")) {
          v = true;
        } else if (ConsumeLiteral("false")) {
          v = false;
        } else {
          PHOTON_RETURN_IF_ERROR(SkipValue(depth));
          return Schema("expected true or false");
        }
        add ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        int number;
        if (Peek() == '"') {
          std::string_view name;
          std::string storage;
          PHOTON_RETURN_IF_ERROR(ParseString(&name, &storage));
          const auto* v = f->enum_type()->FindValueByName(std::string(name));
          if (!v) {
            std::string known;
            for (int i = 0; i < f->enum_type()->value_count(); ++i)
              known += (i ? ", " : "") + f->enum_type()->value(i)->name();
            return Schema("unknown value '" + std::string(name) + "' (one of " + known + ")");
          }
          number = v->number();
        } else {
          PHOTON_RETURN_IF_ERROR(ParseInteger(&number));
          if (f->enum_type()->FindValueByNumber(number) == nullptr &&
              f->file()->syntax() != google::protobuf::FileDescriptor::SYNTAX_PROTO3)
            return Schema("unknown enum number " + std::to_string(number));
        }
        add ? r->AddEnumValue(m, f, number) : r->SetEnumValue(m, f, number);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        if (Peek() != '"') {
          PHOTON_RETURN_IF_ERROR(SkipValue(depth));
          return Schema("expected a string");
        }
        std::string_view v;
        std::string storage;
        PHOTON_RETURN_IF_ERROR(ParseString(&v, &storage));
        std::string value;
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          const absl::string_view b64(v.data(), v.size());
          if (!absl::Base64Unescape(b64, &value) && !absl::WebSafeBase64Unescape(b64, &value))
            return Schema("not valid base64");
        } else {
          value.assign(v);
        }
        add ? r->AddString(m, f, std::move(value)) : r->SetString(m, f, std::move(value));
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* sub = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        return ParseMessage(sub, depth + 1);
      }
    }
    return Schema("unsupported field type");
  }

  Status ParseMapKey(std::string_view text, Message* entry, const FieldDescriptor* kf) {
    const Reflection* r = entry->GetReflection();
    auto whole = [&](auto* v) {
      auto res = std::from_chars(text.data(), text.data() + text.size(), *v);
      return res.ec == std::errc() && res.ptr == text.data() + text.size();
    };
    switch (kf->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(entry, kf, std::string(text));
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_BOOL:
        if (text != "true" && text != "false") return Schema("map key must be true or false");
        r->SetBool(entry, kf, text == "true");
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        if (!whole(&v)) return Schema("map key is not an int32: " + std::string(text));
        r->SetInt32(entry, kf, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        if (!whole(&v)) return Schema("map key is not a uint32: " + std::string(text));
        r->SetUInt32(entry, kf, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!whole(&v)) return Schema("map key is not an int64: " + std::string(text));
        r->SetInt64(entry, kf, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!whole(&v)) return Schema("map key is not a uint64: " + std::string(text));
        r->SetUInt64(entry, kf, v);
        return absl::OkStatus();
      }
      default:
        return Schema("unsupported map key type");
    }
  }

  Status ParseField(Message* m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m->GetReflection();
    SkipWs();
    if (Peek() == 'n' && ConsumeLiteral("null")) {
      r->ClearField(m, f);  // proto3 JSON: null is the default value
      return absl::OkStatus();
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map() &&
        IsWellKnown(f->message_type())) {
      const size_t start = pos_;
      PHOTON_RETURN_IF_ERROR(SkipValue(depth));
      Message* sub = f->is_repeated() ? nullptr : r->MutableMessage(m, f);
      if (f->is_repeated()) return Schema("repeated well-known types are not supported");
      auto st = google::protobuf::util::JsonStringToMessage(
          std::string(s_.substr(start, pos_ - start)), sub);
      if (!st.ok()) return Schema(std::string(st.message()));
      return absl::OkStatus();
    }
    if (f->is_map()) {
      if (!Consume('{')) {
        PHOTON_RETURN_IF_ERROR(SkipValue(depth));
        return Schema("expected an object (a map)");
      }
      if (Consume('}')) return absl::OkStatus();
      const FieldDescriptor* kf = f->message_type()->map_key();
      const FieldDescriptor* vf = f->message_type()->map_value();
      do {
        std::string_view key;
        std::string storage;
        PHOTON_RETURN_IF_ERROR(ParseString(&key, &storage));
        if (!Consume(':')) return Malformed("expected ':'");
        Message* entry = r->AddMessage(m, f);
        path_.push_back("[" + std::string(key) + "]");
        PHOTON_RETURN_IF_ERROR(ParseMapKey(key, entry, kf));
        SkipWs();
        if (Peek() == 'n' && ConsumeLiteral("null")) return Schema("map values may not be null");
        PHOTON_RETURN_IF_ERROR(ParseElement(entry, vf, false, depth));
        path_.pop_back();
      } while (Consume(','));
      if (!Consume('}')) return Malformed("expected ',' or '}'");
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      if (!Consume('[')) {
        PHOTON_RETURN_IF_ERROR(SkipValue(depth));
        return Schema("expected an array");
      }
      if (Consume(']')) return absl::OkStatus();
      int index = 0;
      do {
        path_.push_back("[" + std::to_string(index++) + "]");
        SkipWs();
        if (Peek() == 'n' && ConsumeLiteral("null"))
          return Schema("array elements may not be null");
        PHOTON_RETURN_IF_ERROR(ParseElement(m, f, true, depth));
        path_.pop_back();
      } while (Consume(','));
      if (!Consume(']')) return Malformed("expected ',' or ']'");
      return absl::OkStatus();
    }
    return ParseElement(m, f, false, depth);
  }

  Status ParseMessage(Message* m, int depth) {
    if (depth > kMaxDepth) return Malformed("nested too deeply");
    if (!Consume('{')) {
      if (depth == 0) return Malformed("expected an object");
      PHOTON_RETURN_IF_ERROR(SkipValue(depth));
      return Schema("expected an object");
    }
    if (Consume('}')) return absl::OkStatus();
    const Descriptor* d = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    do {
      std::string_view key;
      std::string storage;
      PHOTON_RETURN_IF_ERROR(ParseString(&key, &storage));
      if (!Consume(':')) return Malformed("expected ':'");
      const std::string name(key);
      const FieldDescriptor* f = FindField(d, name);
      if (!f) {
        if (depth == 0 && envelope_ && envelope_->count(name)) {
          std::string_view v;
          std::string vs;
          SkipWs();
          if (Peek() != '"') {
            PHOTON_RETURN_IF_ERROR(SkipValue(depth));
            path_.push_back(name);
            return Schema("expected a string");
          }
          PHOTON_RETURN_IF_ERROR(ParseString(&v, &vs));
          (*envelope_)[name] = std::string(v);
          continue;
        }
        // Skip the value first so broken syntax inside it is reported as malformed JSON.
        PHOTON_RETURN_IF_ERROR(SkipValue(depth));
        path_.push_back(name);
        return Schema("unknown field (" + d->name() + " has no field '" + name + "')");
      }
      path_.push_back(f->json_name());
      if (const auto* oneof = f->real_containing_oneof()) {
        const FieldDescriptor* set = r->GetOneofFieldDescriptor(*m, oneof);
        if (set && set != f) {
          return Schema("only one of the '" + oneof->name() + "' fields may be set ('" +
                        set->json_name() + "' is set too)");
        }
      }
      PHOTON_RETURN_IF_ERROR(ParseField(m, f, depth));
      path_.pop_back();
    } while (Consume(','));
    if (!Consume('}')) return Malformed("expected ',' or '}'");
    return absl::OkStatus();
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::map<std::string, std::string>* envelope_;
  std::vector<std::string> path_;
};

}  // namespace

void AppendProtoJson(const Message& msg, std::string* out) { AppendMessage(msg, out); }

std::string ProtoToJson(const Message& msg) {
  std::string out;
  out.reserve(256);
  AppendMessage(msg, &out);
  return out;
}

Status JsonToProto(std::string_view json, Message* msg,
                   std::map<std::string, std::string>* envelope) {
  if (IsWellKnown(msg->GetDescriptor())) {
    auto st = google::protobuf::util::JsonStringToMessage(std::string(json), msg);
    return st.ok() ? absl::OkStatus() : absl::InvalidArgumentError(std::string(st.message()));
  }
  return Parser(json, envelope).Parse(msg);
}

}  // namespace photon::server
