// libFuzzer target for the request headers of GET/HEAD/copy that lightningstor interprets:
// Range (against a fuzzer-chosen object size) and the conditional headers (If-Match,
// If-None-Match, If-Modified-Since, If-Unmodified-Since, and their x-amz-copy-source-*
// forms). A range that is accepted must lie inside the object.
// Input: line 1 Range, line 2 object size (decimal), then "name: value" header lines.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lightningstor/object_conditions.h"
#include "lightningstor/service.h"

using namespace photon::lightningstor;

namespace {
std::string_view NextLine(std::string_view* text) {
  size_t nl = text->find('\n');
  std::string_view line = text->substr(0, nl);
  text->remove_prefix(nl == std::string_view::npos ? text->size() : nl + 1);
  return line;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string range(NextLine(&text));
  std::string size_text(NextLine(&text));
  uint64_t object_size = std::strtoull(size_text.c_str(), nullptr, 10);
  auto r = ParseRange(range, object_size);
  if (r.ok() && r->has_value()) {
    auto [first, last] = **r;
    if (first > last || last >= object_size) abort();
  }
  http::Request req;
  while (!text.empty()) {
    std::string_view line = NextLine(&text);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  ObjectMeta o;
  o.etag = "d41d8cd98f00b204e9800998ecf8427e";
  o.mtime_ms = 1700000000000;
  (void)CheckConditions(req, o, "", false);
  (void)CheckConditions(req, o, "x-amz-copy-source-", true);
  for (const auto& [name, value] : req.headers) {
    (void)EtagMatches(value, o.etag);
    (void)UnquoteEtag(value);
  }
  return 0;
}
