#include "agent/net/nft_netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/net/ipv4.h"
#include "agent/net/netns.h"

namespace photon::agent::net {
namespace {

// A netlink message under construction: header, nfgenmsg, attributes (nests by offset).
class Message {
 public:
  Message(uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id = 0) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    Append(&h, sizeof h);
    nfgenmsg g{};
    g.nfgen_family = family;
    g.version = NFNETLINK_V0;
    g.res_id = htons(res_id);
    Append(&g, sizeof g);
  }
  void Attr(uint16_t type, const void* data, size_t len) {
    nlattr a{static_cast<uint16_t>(NLA_HDRLEN + len), type};
    Append(&a, sizeof a);
    if (len > 0) Append(data, len);
  }
  void Attr(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
  void AttrBe32(uint16_t type, uint32_t v) {
    v = htonl(v);
    Attr(type, &v, sizeof v);
  }
  size_t Begin(uint16_t type) {
    size_t at = buf_.size();
    Attr(static_cast<uint16_t>(type | NLA_F_NESTED), nullptr, 0);
    return at;
  }
  void End(size_t at) {
    reinterpret_cast<nlattr*>(&buf_[at])->nla_len = static_cast<uint16_t>(buf_.size() - at);
  }
  std::string Done() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return buf_;
  }

 private:
  void Append(const void* data, size_t len) {
    buf_.append(static_cast<const char*>(data), len);
    buf_.resize(NLMSG_ALIGN(buf_.size()), '\0');
  }
  std::string buf_;
};

uint16_t NftType(int msg) { return static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg); }

// One field of an element: [lo, hi] in host order and the register bytes it fills.
struct Field {
  uint32_t lo = 0, hi = 0;
  int width = 0;  // bytes of the value (4, 1, 2); a register is 4
};

StatusOr<uint32_t> Number(const std::string& text, uint32_t max) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v > max) {
    return absl::InvalidArgumentError("bad number " + text);
  }
  return v;
}

StatusOr<Field> ParseField(const std::string& type, const std::string& text) {
  std::vector<std::string> ends = absl::StrSplit(text, '-');
  if (ends.size() > 2) return absl::InvalidArgumentError("bad range " + text);
  Field f;
  for (size_t i = 0; i < ends.size(); ++i) {
    uint32_t v = 0;
    if (type == "ipv4_addr") {
      PHOTON_ASSIGN_OR_RETURN(v, ParseIpv4(ends[i]));
      f.width = 4;
    } else if (type == "inet_proto") {
      PHOTON_ASSIGN_OR_RETURN(v, Number(ends[i], 255));
      f.width = 1;
    } else if (type == "inet_service") {
      PHOTON_ASSIGN_OR_RETURN(v, Number(ends[i], 65535));
      f.width = 2;
    } else {
      return absl::InvalidArgumentError("type " + type + " is not encoded here");
    }
    (i == 0 ? f.lo : f.hi) = v;
  }
  if (ends.size() == 1) f.hi = f.lo;
  if (f.hi < f.lo) return absl::InvalidArgumentError("empty range " + text);
  return f;
}

// The value in network order, padded to its 4-byte register.
void PutRegister(std::string* key, uint32_t v, int width) {
  unsigned char reg[4] = {0, 0, 0, 0};
  for (int i = 0; i < width; ++i) reg[i] = static_cast<unsigned char>(v >> (8 * (width - 1 - i)));
  key->append(reinterpret_cast<char*>(reg), 4);
}

void Key(Message* m, uint16_t attr, const std::string& bytes) {
  size_t key = m->Begin(attr);
  m->Attr(NFTA_DATA_VALUE, bytes.data(), bytes.size());
  m->End(key);
}

// nft's user data on an interval's start when the interval runs to the top of the space
// (NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN): only `nft list` reads it.
constexpr unsigned char kOpenInterval[] = {1, 4, 1, 0, 0, 0};

}  // namespace

Status NftBatch::Elements(uint16_t msg, const std::string& set, const std::string& set_type,
                          bool interval, const std::vector<std::string>& elements) {
  if (elements.empty()) return absl::OkStatus();
  std::vector<std::string> types = absl::StrSplit(set_type, " . ");
  Message m(NftType(msg), msg == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, NFPROTO_INET);
  m.Attr(NFTA_SET_ELEM_LIST_TABLE, table_);
  m.Attr(NFTA_SET_ELEM_LIST_SET, set);
  size_t list = m.Begin(NFTA_SET_ELEM_LIST_ELEMENTS);
  for (const std::string& element : elements) {
    std::vector<std::string> texts = absl::StrSplit(element, " . ");
    if (texts.size() != types.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("set ", set, ": element ", element, " does not match type ", set_type));
    }
    std::string lo, hi;
    bool ranged = false;
    std::vector<Field> fields;
    for (size_t i = 0; i < texts.size(); ++i) {
      StatusOr<Field> f = ParseField(types[i], texts[i]);
      if (!f.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("set ", set, ": element ", element, ": ", f.status().message()));
      }
      PutRegister(&lo, f->lo, f->width);
      PutRegister(&hi, f->hi, f->width);
      ranged |= f->lo != f->hi;
      fields.push_back(*f);
    }
    if (ranged && !interval) {
      return absl::InvalidArgumentError(
          absl::StrCat("set ", set, ": element ", element, " is a range, the set has none"));
    }
    size_t e = m.Begin(NFTA_LIST_ELEM);
    Key(&m, NFTA_SET_ELEM_KEY, lo);
    if (interval && types.size() > 1) {
      Key(&m, NFTA_SET_ELEM_KEY_END, hi);  // pipapo: the range in one element
    } else if (interval && fields[0].hi == UINT32_MAX) {
      if (msg == NFT_MSG_NEWSETELEM) m.Attr(NFTA_SET_ELEM_USERDATA, kOpenInterval, 6);
    }
    m.End(e);
    if (interval && types.size() == 1 && fields[0].hi != UINT32_MAX) {
      if (types[0] != "ipv4_addr") {
        return absl::InvalidArgumentError("set " + set + ": intervals of " + set_type +
                                          " are not encoded here");
      }
      // rbtree: the interval ends where the next address begins.
      size_t end = m.Begin(NFTA_LIST_ELEM);
      m.AttrBe32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
      std::string next;
      PutRegister(&next, fields[0].hi + 1, 4);
      Key(&m, NFTA_SET_ELEM_KEY, next);
      m.End(end);
    }
  }
  m.End(list);
  messages_.push_back(m.Done());
  what_.push_back(absl::StrCat(msg == NFT_MSG_NEWSETELEM ? "add" : "delete", " elements of set ",
                               set, " (", elements.size(), ")"));
  return absl::OkStatus();
}

Status NftBatch::DeleteElements(const std::string& set, const std::string& type, bool interval,
                                const std::vector<std::string>& elements) {
  return Elements(NFT_MSG_DELSETELEM, set, type, interval, elements);
}

Status NftBatch::AddElements(const std::string& set, const std::string& type, bool interval,
                             const std::vector<std::string>& elements) {
  return Elements(NFT_MSG_NEWSETELEM, set, type, interval, elements);
}

void NftBatch::FlushSet(const std::string& set) {
  // DELSETELEM without elements empties the set.
  Message m(NftType(NFT_MSG_DELSETELEM), 0, NFPROTO_INET);
  m.Attr(NFTA_SET_ELEM_LIST_TABLE, table_);
  m.Attr(NFTA_SET_ELEM_LIST_SET, set);
  messages_.push_back(m.Done());
  what_.push_back("flush set " + set);
}

void NftBatch::AddChain(const std::string& chain) {
  Message m(NftType(NFT_MSG_NEWCHAIN), NLM_F_CREATE, NFPROTO_INET);
  m.Attr(NFTA_CHAIN_TABLE, table_);
  m.Attr(NFTA_CHAIN_NAME, chain);
  messages_.push_back(m.Done());
  what_.push_back("add chain " + chain);
}

void NftBatch::DeleteChain(const std::string& chain) {
  Message m(NftType(NFT_MSG_DELCHAIN), 0, NFPROTO_INET);
  m.Attr(NFTA_CHAIN_TABLE, table_);
  m.Attr(NFTA_CHAIN_NAME, chain);
  messages_.push_back(m.Done());
  what_.push_back("delete chain " + chain);
}

std::string NftBatch::Encode(uint32_t seq) const {
  std::string out = Message(NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES).Done();
  reinterpret_cast<nlmsghdr*>(out.data())->nlmsg_seq = seq;
  for (const std::string& msg : messages_) {
    size_t at = out.size();
    out += msg;
    reinterpret_cast<nlmsghdr*>(&out[at])->nlmsg_seq = ++seq;
  }
  size_t at = out.size();
  out += Message(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES).Done();
  reinterpret_cast<nlmsghdr*>(&out[at])->nlmsg_seq = ++seq;
  return out;
}

StatusOr<std::unique_ptr<NftSocket>> NftSocket::Open(const std::string& netns) {
  PHOTON_ASSIGN_OR_RETURN(int fd, NetlinkSocketIn(netns, NETLINK_NETFILTER, "nfnetlink"));
  int one = 1;  // errors without a copy of the refused message
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return std::unique_ptr<NftSocket>(new NftSocket(fd, netns));
}

NftSocket::~NftSocket() { ::close(fd_); }

Status NftSocket::Commit(const NftBatch& batch) {
  PHOTON_RETURN_IF_ERROR(Send(batch));
  return Finish();
}

Status NftSocket::Send(const NftBatch& batch) {
  if (fence_ != 0) return absl::FailedPreconditionError("nfnetlink: a batch is in flight");
  first_ = seq_ + 1;
  std::string out = batch.Encode(first_);
  seq_ = first_ + static_cast<uint32_t>(batch.what().size()) + 1;
  what_ = batch.what();
  // The kernel runs a batch within send(); the generation request after it is answered only
  // once every error of the batch is queued.
  Message gen(NftType(NFT_MSG_GETGEN), 0, AF_UNSPEC);
  std::string fence = gen.Done();
  reinterpret_cast<nlmsghdr*>(fence.data())->nlmsg_seq = ++seq_;
  // A netlink datagram must fit the socket's send buffer (EMSGSIZE otherwise): a ruleset of
  // thousands of rules is a batch of megabytes. Grown as needed (the agent holds
  // CAP_NET_ADMIN, so FORCE passes rmem/wmem_max), as nft does for its batches.
  if (out.size() + 65536 > sndbuf_) {
    int want = static_cast<int>(std::min<size_t>(out.size() * 2 + 65536, 1u << 30));
    if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0) {
      (void)::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    }
    sndbuf_ = static_cast<size_t>(want);
  }
  for (const std::string* msg : {&out, &fence}) {
    if (::send(fd_, msg->data(), msg->size(), 0) < 0) {
      return absl::InternalError(absl::StrCat("nfnetlink send in ", netns_, ": ", strerror(errno)));
    }
  }
  fence_ = seq_;
  return absl::OkStatus();
}

Status NftSocket::Finish() {
  if (fence_ == 0) return absl::FailedPreconditionError("nfnetlink: no batch in flight");
  Status status;
  alignas(nlmsghdr) char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      fence_ = 0;
      return absl::InternalError(absl::StrCat("nfnetlink recv in ", netns_, ": ", strerror(errno)));
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      // An answer to an earlier batch given up on (its reader timed out) is not this one's.
      if (h->nlmsg_seq < first_ || h->nlmsg_seq > fence_) continue;
      if (h->nlmsg_type == NLMSG_ERROR && status.ok()) {
        int err = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        if (err != 0) {
          uint32_t i = h->nlmsg_seq - first_;  // 0 = the batch itself (its commit)
          std::string what = h->nlmsg_seq == fence_        ? "the generation request"
                             : i >= 1 && i <= what_.size() ? what_[i - 1]
                                                           : "the commit";
          status = absl::AbortedError(
              absl::StrCat("nf_tables in ", netns_, " refused ", what, ": ", strerror(err)));
        }
      }
      if (h->nlmsg_seq == fence_) {
        fence_ = 0;
        return status;
      }
    }
  }
}

}  // namespace photon::agent::net
