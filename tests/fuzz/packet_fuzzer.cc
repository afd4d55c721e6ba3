// libFuzzer target for the untrusted-input path of flashdns: ParseQuery on raw bytes, then
// BuildResponse against the test zones. The first input byte picks the transport limit
// (UDP 512 / EDNS size / TCP) so truncation paths are explored too. Checks that the answer
// never exceeds its limit and that its header is consistent.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "flashdns/query.h"
#include "flashdns/zone_parser.h"

namespace {

photon::flashdns::ZoneSet* Zones() {
  static photon::flashdns::ZoneSet* zones = [] {
    auto* set = new photon::flashdns::ZoneSet();
    const std::string com("\7example\3com\0", 13);
    const std::string net("\7example\3net\0", 13);
    auto a = photon::flashdns::LoadZone(FLASHDNS_FUZZ_DATA "/example.com.zone", com);
    auto b = photon::flashdns::LoadZone(FLASHDNS_FUZZ_DATA "/example.net.zone", net);
    if (!a.ok() || !b.ok()) abort();
    set->Add(*a);
    set->Add(*b);
    return set;
  }();
  return zones;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace photon::flashdns;
  if (size == 0) return 0;
  uint8_t mode = data[0];
  ++data;
  --size;
  ParsedQuery q;
  if (!ParseQuery(data, size, &q)) return 0;
  size_t limit = mode % 3 == 0 ? 512 : (mode % 3 == 1 ? UdpLimit(q) : 65535);
  static uint8_t out[65535];
  AnswerInfo info;
  size_t n = BuildResponse(Zones(), q, out, limit, &info);
  if (n > limit) abort();
  if (n != 0 && n < kHeaderSize) abort();
  if (n != 0) {
    // The response must parse back: question and every record within bounds.
    PacketReader r(out, n);
    r.Skip(4);
    int qd = r.U16(), an = r.U16(), ns = r.U16(), ar = r.U16();
    uint8_t name[kMaxNameLength];
    for (int i = 0; i < qd; ++i) {
      r.Name(name);
      r.Skip(4);
    }
    for (int i = 0; i < an + ns + ar; ++i) {
      r.Name(name);
      r.Skip(8);
      r.Skip(r.U16());
    }
    if (!r.ok() || r.remaining() != 0) abort();
  }
  return 0;
}
