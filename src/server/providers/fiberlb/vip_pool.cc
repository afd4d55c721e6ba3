// See vip_pool.h.
#include "server/providers/fiberlb/vip_pool.h"

#include <arpa/inet.h>

#include <set>

namespace photon::server {

namespace {

bool ParseIpv4(const std::string& s, uint32_t* out) {
  in_addr a{};
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = ntohl(a.s_addr);
  return true;
}

std::string FormatIpv4(uint32_t v) {
  in_addr a{htonl(v)};
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

}  // namespace

StatusOr<VipPool> VipPool::Parse(const std::string& owner, const std::string& cidr) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("vip_pool: '" + cidr + "' " + why);
  };
  const size_t slash = cidr.find('/');
  uint32_t base = 0;
  if (slash == std::string::npos || !ParseIpv4(cidr.substr(0, slash), &base))
    return bad("is not an IPv4 CIDR (a.b.c.d/len)");
  int len = 0;
  try {
    size_t used = 0;
    len = std::stoi(cidr.substr(slash + 1), &used);
    if (used != cidr.size() - slash - 1) return bad("has a bad prefix length");
  } catch (const std::exception&) {
    return bad("has a bad prefix length");
  }
  if (len < 16 || len > 32) return bad("wants a prefix length of 16..32");
  const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  if ((base & ~mask) != 0) return bad("is not aligned to its prefix length");
  uint32_t first = base, last = base | ~mask;
  if (len <= 30) {  // the network and broadcast addresses of a real subnet stay unused
    ++first;
    --last;
  }
  return VipPool("/fiberlb-vips/" + owner + "/", cidr, first, last);
}

int VipPool::Dscp(const std::string& vip) const {
  uint32_t v = 0;
  if (!ParseIpv4(vip, &v) || v < first_ || v > last_) return 0;
  return static_cast<int>(1 + (v - first_) % 63);
}

StatusOr<store::RangeResult> VipPool::List(store::Store* store) const {
  if (store == nullptr) return absl::UnavailableError("VIP pool: no store yet");
  store::RangeOptions o;
  o.end = store::PrefixEnd(prefix_);
  return store->Range(prefix_, o);
}

StatusOr<std::string> VipPool::Find(store::Store* store, const std::string& ns,
                                    const std::string& name) const {
  PHOTON_ASSIGN_OR_RETURN(auto held, List(store));
  for (const auto& kv : held.kvs) {
    if (kv.value == ns + "/" + name) return kv.key.substr(prefix_.size());
  }
  return std::string();
}

StatusOr<std::string> VipPool::Acquire(store::Store* store, const std::string& ns,
                                       const std::string& name) const {
  // A lost race (another writer took the address first) just tries the next free one.
  for (int attempt = 0; attempt < 8; ++attempt) {
    PHOTON_ASSIGN_OR_RETURN(auto held, List(store));
    std::set<std::string> used;
    for (const auto& kv : held.kvs) {
      if (kv.value == ns + "/" + name) return kv.key.substr(prefix_.size());
      used.insert(kv.key.substr(prefix_.size()));
    }
    std::string vip;
    for (uint64_t a = first_; a <= last_ && vip.empty(); ++a) {
      if (!used.contains(FormatIpv4(static_cast<uint32_t>(a))))
        vip = FormatIpv4(static_cast<uint32_t>(a));
    }
    if (vip.empty())
      return absl::ResourceExhaustedError("VIP pool " + cidr_ + ": every address is in use");
    store::TxnRequest txn;
    txn.compares.push_back(
        {prefix_ + vip, store::Compare::Target::kVersion, store::Compare::Op::kEqual, 0, ""});
    store::TxnOp put;
    put.key = prefix_ + vip;
    put.value = ns + "/" + name;
    txn.success.push_back(put);
    PHOTON_ASSIGN_OR_RETURN(auto r, store->Txn(txn));
    if (r.succeeded) return vip;
  }
  return absl::UnavailableError("VIP pool " + cidr_ + ": allocation kept racing; retried later");
}

StatusOr<std::vector<std::string>> VipPool::Holders(store::Store* store) const {
  PHOTON_ASSIGN_OR_RETURN(auto held, List(store));
  std::vector<std::string> out;
  for (const auto& kv : held.kvs) out.push_back(kv.value);
  return out;
}

Status VipPool::Release(store::Store* store, const std::string& ns, const std::string& name) const {
  PHOTON_ASSIGN_OR_RETURN(auto held, List(store));
  for (const auto& kv : held.kvs) {
    if (kv.value != ns + "/" + name) continue;
    store::TxnRequest txn;  // only if still ours
    txn.compares.push_back(
        {kv.key, store::Compare::Target::kValue, store::Compare::Op::kEqual, 0, kv.value});
    store::TxnOp del;
    del.type = store::TxnOp::Type::kDelete;
    del.key = kv.key;
    txn.success.push_back(del);
    PHOTON_RETURN_IF_ERROR(store->Txn(txn).status());
  }
  return absl::OkStatus();
}

}  // namespace photon::server
