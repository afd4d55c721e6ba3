// DNS wire-format primitives (RFC 1035 §3, §4): domain names, the message header, a
// bounds-checked reader for untrusted packets and a writer with name compression.
// Everything here is plain value code with no shared state: thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace photon::flashdns {

// RR types and classes we know by name.
enum RrType : uint16_t {
  kTypeA = 1,
  kTypeNs = 2,
  kTypeCname = 5,
  kTypeSoa = 6,
  kTypePtr = 12,
  kTypeHinfo = 13,
  kTypeMx = 15,
  kTypeTxt = 16,
  kTypeAaaa = 28,
  kTypeSrv = 33,
  kTypeOpt = 41,
  kTypeDs = 43,
  kTypeIxfr = 251,
  kTypeAxfr = 252,
  kTypeAny = 255,
  kTypeCaa = 257,
};
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kClassAny = 255;

enum Rcode : uint8_t {
  kRcodeNoError = 0,
  kRcodeFormErr = 1,
  kRcodeServFail = 2,
  kRcodeNxDomain = 3,
  kRcodeNotImp = 4,
  kRcodeRefused = 5,
  kRcodeBadVers = 16,  // extended (EDNS) rcode
};

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxLabelLength = 63;

// Flag bits of the second header word.
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagCd = 0x0010;

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline uint8_t AsciiLower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length of an uncompressed wire name starting at `name` (including the root byte).
size_t WireNameLength(const uint8_t* name);
// Lower-cases the labels of an uncompressed wire name in place.
void LowerWireName(uint8_t* name);
std::string LowerWireName(std::string_view name);
// Number of labels (root = 0).
int CountLabels(const uint8_t* name);
// True if `name` equals `zone` or lies below it (both lower-case uncompressed wire).
bool IsSubdomain(std::string_view name, std::string_view zone);
// Presentation form with trailing dot ("www.example.com."), escaping as RFC 1035 §5.1.
std::string NameToText(std::string_view wire);
// Type mnemonic ("A", "TYPE65280") and back (0 if unknown).
std::string TypeToText(uint16_t type);
uint16_t TypeFromText(std::string_view text);

// Reads an untrusted packet. Every accessor checks bounds; on any error the reader is marked
// bad and all later reads fail, so callers test ok() once after a sequence of reads.
class PacketReader {
 public:
  PacketReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return ok_ ? size_ - pos_ : 0; }
  uint8_t U8();
  uint16_t U16();
  uint32_t U32();
  void Skip(size_t n);
  // Reads a possibly compressed name into `out` (at least kMaxNameLength bytes) as an
  // uncompressed wire name; returns its length or 0 on error. Pointers must point strictly
  // backwards, which also rules out loops.
  size_t Name(uint8_t* out);

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Builds a response in a caller-owned buffer, never writing past `limit`. Names are
// compressed against earlier names in the message (RFC 1035 §4.1.4).
class PacketWriter {
 public:
  PacketWriter(uint8_t* buf, size_t limit) : buf_(buf), limit_(limit) {}
  size_t size() const { return pos_; }
  size_t limit() const { return limit_; }
  void set_limit(size_t limit) { limit_ = limit; }
  uint8_t* data() { return buf_; }
  // Rolls back to an earlier size (e.g. after a record did not fit); forgets compression
  // targets past it.
  void Truncate(size_t size);
  bool U8(uint8_t v);
  bool U16(uint16_t v);
  bool U32(uint32_t v);
  bool Bytes(const void* p, size_t n);
  // Writes an uncompressed wire name, compressing its suffixes where possible.
  bool Name(const uint8_t* name, bool compress = true);
  // Writes a pointer to a name already in the message.
  bool Pointer(uint16_t offset);
  // Remembers a name written at `offset` (e.g. the question) as a compression target.
  void AddTarget(uint16_t offset);

 private:
  bool Fits(size_t n) const { return pos_ + n <= limit_; }
  // True if the name at message offset `at` equals the wire name `name` (case-insensitive).
  bool MatchesAt(uint16_t at, const uint8_t* name) const;

  static constexpr int kMaxTargets = 96;
  uint8_t* buf_;
  size_t limit_;
  size_t pos_ = 0;
  uint16_t targets_[kMaxTargets];
  int num_targets_ = 0;
};

}  // namespace photon::flashdns
