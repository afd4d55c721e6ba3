// libFuzzer target for the master-file parser and zone builder: arbitrary text must give a
// zone or an error, never a crash, hang or leak. A built zone is also walked and queried.
// Inputs using $INCLUDE are skipped: they would read arbitrary files of the fuzzing host.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "flashdns/query.h"
#include "flashdns/zone_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace photon::flashdns;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("$INCLUDE") != std::string_view::npos) return 0;
  const std::string origin("\7example\3com\0", 13);
  auto records = ParseZoneText(text, "fuzz.zone", origin);
  if (!records.ok()) return 0;
  auto zone = BuildZone(std::move(*records), origin, "fuzz.zone");
  if (!zone.ok()) return 0;
  size_t rdata_bytes = 0;
  (*zone)->ForEachNode([&](NodeView node) {
    node.ForEachRRset([&](RRsetView rrset) {
      rrset.ForEach([&](const Rdata& r) {
        rdata_bytes += r.size;
        return true;
      });
    });
  });
  ZoneSet zones;
  zones.Add(*zone);
  static const uint8_t kQuery[] = {0,   1,   0,   0,   0,   1,   0,   0,   0,   0,   0,
                                   0,   3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm', 'p',
                                   'l', 'e', 3,   'c', 'o', 'm', 0,   0,   1,   0,   1};
  ParsedQuery q;
  if (ParseQuery(kQuery, sizeof(kQuery), &q)) {
    static uint8_t out[65535];
    AnswerInfo info;
    if (BuildResponse(&zones, q, out, 512, &info) > 512) __builtin_trap();
  }
  return rdata_bytes == SIZE_MAX ? 1 : 0;
}
