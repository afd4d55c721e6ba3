// Lexer for RFC 1035 §5 master files: splits text into entries (one per logical line,
// parentheses joining physical lines), tokens with quoting and escapes kept raw, comments
// dropped. Also the \X / \DDD unescaper shared by names and character-strings.
// Stateless functions: thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace photon::flashdns {

struct Token {
  std::string text;  // raw, escapes not yet decoded
  bool quoted = false;
};

struct Entry {
  std::vector<Token> tokens;
  bool leading_blank = false;  // the owner is the previous one
  int line = 0;
};

// Calls on_entry for each entry of `text` in order, reusing one Entry (so a large file is
// never held as a whole list of tokens); stops at the first error. Lexing errors carry
// "filename:line:"; errors from on_entry are returned as they are.
Status Lex(std::string_view text, const std::string& filename,
           const std::function<Status(const Entry&)>& on_entry);

// Decodes \X and \DDD escapes into `out`. With stop_at_dot, stops at the first unescaped
// '.' and reports how many input bytes it used in `consumed`. False on a bad escape.
bool Unescape(std::string_view in, std::string* out, bool stop_at_dot, size_t* consumed);

}  // namespace photon::flashdns
