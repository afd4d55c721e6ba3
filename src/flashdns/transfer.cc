// AXFR and transfer ACLs; see transfer.h.
#include "flashdns/transfer.h"

#include <arpa/inet.h>

#include <cstring>
#include <memory>

namespace photon::flashdns {

StatusOr<AddressMatcher> AddressMatcher::Parse(const std::string& text) {
  AddressMatcher m;
  std::string addr = text;
  int prefix = -1;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    std::string bits = text.substr(slash + 1);
    if (bits.empty() || bits.size() > 3 ||
        bits.find_first_not_of("0123456789") != std::string::npos) {
      return absl::InvalidArgumentError("bad prefix length in '" + text + "'");
    }
    prefix = std::stoi(bits);
  }
  if (inet_pton(AF_INET, addr.c_str(), m.bytes_) == 1) {
    m.family_ = AF_INET;
    m.prefix_ = prefix < 0 ? 32 : prefix;
    if (m.prefix_ > 32) return absl::InvalidArgumentError("bad prefix length in '" + text + "'");
  } else if (inet_pton(AF_INET6, addr.c_str(), m.bytes_) == 1) {
    m.family_ = AF_INET6;
    m.prefix_ = prefix < 0 ? 128 : prefix;
    if (m.prefix_ > 128) return absl::InvalidArgumentError("bad prefix length in '" + text + "'");
  } else {
    return absl::InvalidArgumentError("bad address '" + text + "'");
  }
  return m;
}

bool AddressMatcher::Matches(const sockaddr_storage& addr) const {
  const uint8_t* bytes = nullptr;
  uint8_t mapped[4];
  if (addr.ss_family == AF_INET) {
    if (family_ != AF_INET) return false;
    bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(addr).sin_addr);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a6 =
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr);
    static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family_ == AF_INET && memcmp(a6, kMappedPrefix, 12) == 0) {
      memcpy(mapped, a6 + 12, 4);
      bytes = mapped;
    } else if (family_ == AF_INET6) {
      bytes = a6;
    } else {
      return false;
    }
  } else {
    return false;
  }
  int full = prefix_ / 8;
  if (memcmp(bytes, bytes_, full) != 0) return false;
  int rest = prefix_ % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (bytes[full] & mask) == (bytes_[full] & mask);
}

namespace {

constexpr size_t kMessageTarget = 16384;  // start a new message past this size

class AxfrStream {
 public:
  AxfrStream(const ParsedQuery& q, const std::function<bool(const uint8_t*, size_t)>& send)
      : q_(q), send_(send), buf_(new uint8_t[65535]) {
    Start(true);
  }

  bool Add(std::string_view owner, RRsetView rrset, const Rdata& rdata) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      size_t start = w_->size();
      bool ok = w_->Name(reinterpret_cast<const uint8_t*>(owner.data())) && w_->U16(rrset.type()) &&
                w_->U16(kClassIn) && w_->U32(rrset.ttl()) &&
                WriteRdata(w_.get(), rrset.type(), rdata.data, rdata.size);
      if (ok) {
        ++count_;
        if (w_->size() >= kMessageTarget) return Flush() && (Start(false), true);
        return true;
      }
      w_->Truncate(start);
      if (count_ == 0 || !Flush()) return false;
      Start(false);
    }
    return false;
  }

  bool Finish() { return count_ == 0 || Flush(); }

 private:
  void Start(bool first) {
    w_ = std::make_unique<PacketWriter>(buf_.get(), 65535);
    w_->U16(q_.id);
    w_->U16(kFlagQr | kFlagAa);
    w_->Bytes("\0\0\0\0\0\0\0\0", 8);
    if (first) {
      Store16(buf_.get() + 4, 1);
      w_->AddTarget(kHeaderSize);
      w_->Bytes(q_.qname, q_.qname_len);
      w_->U16(q_.qtype);
      w_->U16(q_.qclass);
    }
    count_ = 0;
  }
  bool Flush() {
    Store16(buf_.get() + 6, static_cast<uint16_t>(count_));
    return send_(buf_.get(), w_->size());
  }

  const ParsedQuery& q_;
  const std::function<bool(const uint8_t*, size_t)>& send_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<PacketWriter> w_;
  int count_ = 0;
};

}  // namespace

bool WriteAxfr(const Zone& zone, const ParsedQuery& q,
               const std::function<bool(const uint8_t*, size_t)>& send) {
  AxfrStream stream(q, send);
  RRsetView soa = zone.soa();
  if (!stream.Add(zone.origin(), soa, soa.First())) return false;
  bool ok = true;
  zone.ForEachNode([&](NodeView node) {
    std::string_view name = node.key();
    node.ForEachRRset([&](RRsetView rrset) {
      if (rrset.type() == kTypeSoa) return;
      rrset.ForEach([&](const Rdata& rdata) {
        ok = ok && stream.Add(name, rrset, rdata);
        return ok;
      });
    });
  });
  return ok && stream.Add(zone.origin(), soa, soa.First()) && stream.Finish();
}

}  // namespace photon::flashdns
