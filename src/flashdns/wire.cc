// DNS wire-format primitives; see wire.h.
#include "flashdns/wire.h"

#include <cstring>

namespace photon::flashdns {

size_t WireNameLength(const uint8_t* name) {
  size_t n = 0;
  while (name[n] != 0) n += name[n] + 1;
  return n + 1;
}

void LowerWireName(uint8_t* name) {
  while (*name != 0) {
    uint8_t len = *name++;
    for (uint8_t i = 0; i < len; ++i) name[i] = AsciiLower(name[i]);
    name += len;
  }
}

std::string LowerWireName(std::string_view name) {
  std::string out(name);
  if (!out.empty()) LowerWireName(reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

int CountLabels(const uint8_t* name) {
  int n = 0;
  while (*name != 0) {
    name += *name + 1;
    ++n;
  }
  return n;
}

bool IsSubdomain(std::string_view name, std::string_view zone) {
  if (zone.size() > name.size()) return false;
  // Walk labels of `name` until the remaining suffix has the zone's length.
  size_t pos = 0;
  while (name.size() - pos > zone.size()) {
    pos += static_cast<uint8_t>(name[pos]) + 1;
  }
  return name.size() - pos == zone.size() && name.substr(pos) == zone;
}

std::string NameToText(std::string_view wire) {
  std::string out;
  size_t pos = 0;
  if (wire.empty() || wire[0] == 0) return ".";
  while (pos < wire.size() && wire[pos] != 0) {
    uint8_t len = static_cast<uint8_t>(wire[pos++]);
    for (uint8_t i = 0; i < len && pos < wire.size(); ++i, ++pos) {
      unsigned char c = static_cast<unsigned char>(wire[pos]);
      if (c == '.' || c == '\\' || c == '"' || c == ';' || c == '(' || c == ')' || c == '@' ||
          c == '$') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c <= 0x20 || c >= 0x7f) {
        char buf[5];
        snprintf(buf, sizeof(buf), "\\%03u", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '.';
  }
  return out;
}

namespace {
struct TypeName {
  uint16_t type;
  const char* name;
};
constexpr TypeName kTypeNames[] = {
    {kTypeA, "A"},       {kTypeNs, "NS"},       {kTypeCname, "CNAME"}, {kTypeSoa, "SOA"},
    {kTypePtr, "PTR"},   {kTypeHinfo, "HINFO"}, {kTypeMx, "MX"},       {kTypeTxt, "TXT"},
    {kTypeAaaa, "AAAA"}, {kTypeSrv, "SRV"},     {kTypeOpt, "OPT"},     {kTypeDs, "DS"},
    {kTypeIxfr, "IXFR"}, {kTypeAxfr, "AXFR"},   {kTypeAny, "ANY"},     {kTypeCaa, "CAA"},
};
}  // namespace

std::string TypeToText(uint16_t type) {
  for (const auto& t : kTypeNames) {
    if (t.type == type) return t.name;
  }
  return "TYPE" + std::to_string(type);
}

uint16_t TypeFromText(std::string_view text) {
  for (const auto& t : kTypeNames) {
    if (text.size() == strlen(t.name) && strncasecmp(text.data(), t.name, text.size()) == 0) {
      return t.type;
    }
  }
  if (text.size() > 4 && strncasecmp(text.data(), "TYPE", 4) == 0) {
    unsigned v = 0;
    for (size_t i = 4; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') return 0;
      v = v * 10 + static_cast<unsigned>(text[i] - '0');
      if (v > 65535) return 0;
    }
    return static_cast<uint16_t>(v);
  }
  return 0;
}

uint8_t PacketReader::U8() {
  if (!ok_ || size_ - pos_ < 1) return Fail();
  return data_[pos_++];
}

uint16_t PacketReader::U16() {
  if (!ok_ || size_ - pos_ < 2) return Fail();
  uint16_t v = Load16(data_ + pos_);
  pos_ += 2;
  return v;
}

uint32_t PacketReader::U32() {
  if (!ok_ || size_ - pos_ < 4) return Fail();
  uint32_t v = Load32(data_ + pos_);
  pos_ += 4;
  return v;
}

void PacketReader::Skip(size_t n) {
  if (!ok_ || size_ - pos_ < n) {
    Fail();
    return;
  }
  pos_ += n;
}

size_t PacketReader::Name(uint8_t* out) {
  if (!ok_) return 0;
  size_t at = pos_;
  size_t out_len = 0;
  bool jumped = false;
  size_t lowest = at;  // every pointer must go below the lowest position seen so far
  while (true) {
    if (at >= size_) return Fail();
    uint8_t len = data_[at];
    if ((len & 0xC0) == 0xC0) {
      if (at + 1 >= size_) return Fail();
      size_t target = static_cast<size_t>(len & 0x3F) << 8 | data_[at + 1];
      if (target >= lowest) return Fail();
      if (!jumped) pos_ = at + 2;
      jumped = true;
      lowest = target;
      at = target;
      continue;
    }
    if ((len & 0xC0) != 0) return Fail();  // 0x40/0x80: extended label types, obsolete
    if (len == 0) {
      if (out_len + 1 > kMaxNameLength) return Fail();
      out[out_len++] = 0;
      if (!jumped) pos_ = at + 1;
      return out_len;
    }
    if (at + 1 + len > size_ || out_len + 1 + len + 1 > kMaxNameLength) return Fail();
    memcpy(out + out_len, data_ + at, len + 1);
    out_len += len + 1;
    at += len + 1;
  }
}

void PacketWriter::Truncate(size_t size) {
  if (size >= pos_) return;
  pos_ = size;
  while (num_targets_ > 0 && targets_[num_targets_ - 1] >= size) --num_targets_;
}

bool PacketWriter::U8(uint8_t v) {
  if (!Fits(1)) return false;
  buf_[pos_++] = v;
  return true;
}

bool PacketWriter::U16(uint16_t v) {
  if (!Fits(2)) return false;
  Store16(buf_ + pos_, v);
  pos_ += 2;
  return true;
}

bool PacketWriter::U32(uint32_t v) {
  if (!Fits(4)) return false;
  Store32(buf_ + pos_, v);
  pos_ += 4;
  return true;
}

bool PacketWriter::Bytes(const void* p, size_t n) {
  if (!Fits(n)) return false;
  if (n != 0) memcpy(buf_ + pos_, p, n);
  pos_ += n;
  return true;
}

bool PacketWriter::Pointer(uint16_t offset) { return U16(0xC000 | offset); }

void PacketWriter::AddTarget(uint16_t offset) {
  if (num_targets_ < kMaxTargets && offset < 0x3FFF) targets_[num_targets_++] = offset;
}

bool PacketWriter::MatchesAt(uint16_t at, const uint8_t* name) const {
  // Our own output: pointers are well formed, but bound the walk anyway.
  for (int hops = 0; hops < 128; ++hops) {
    uint8_t len = buf_[at];
    if ((len & 0xC0) == 0xC0) {
      at = static_cast<uint16_t>((len & 0x3F) << 8 | buf_[at + 1]);
      continue;
    }
    if (len != *name) return false;
    if (len == 0) return true;
    for (uint8_t i = 1; i <= len; ++i) {
      if (AsciiLower(buf_[at + i]) != AsciiLower(name[i])) return false;
    }
    at = static_cast<uint16_t>(at + len + 1);
    name += len + 1;
  }
  return false;
}

bool PacketWriter::Name(const uint8_t* name, bool compress) {
  size_t start = pos_;
  const uint8_t* label = name;
  while (*label != 0) {
    if (compress) {
      for (int i = 0; i < num_targets_; ++i) {
        if (MatchesAt(targets_[i], label)) {
          if (!Pointer(targets_[i])) {
            Truncate(start);
            return false;
          }
          return true;
        }
      }
    }
    size_t here = pos_;
    if (!Bytes(label, *label + 1u)) {
      Truncate(start);
      return false;
    }
    if (compress) AddTarget(static_cast<uint16_t>(here));
    label += *label + 1;
  }
  if (!U8(0)) {
    Truncate(start);
    return false;
  }
  return true;
}

}  // namespace photon::flashdns
