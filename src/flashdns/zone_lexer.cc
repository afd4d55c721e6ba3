// Master-file lexer; see zone_lexer.h.
#include "flashdns/zone_lexer.h"

#include <cctype>

namespace photon::flashdns {

Status Lex(std::string_view text, const std::string& filename,
           const std::function<Status(const Entry&)>& on_entry) {
  int line = 1;
  int depth = 0;
  int open_line = 0;
  Entry entry;
  bool at_line_start = true;
  size_t i = 0;
  auto flush = [&]() -> Status {
    Status s = entry.tokens.empty() ? absl::OkStatus() : on_entry(entry);
    entry.tokens.clear();
    entry.leading_blank = false;
    return s;
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
      if (depth == 0) PHOTON_RETURN_IF_ERROR(flush());
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
  return flush();
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

}  // namespace photon::flashdns
