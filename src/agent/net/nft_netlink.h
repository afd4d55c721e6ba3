// nf_tables set-element changes without nft: the messages of one transaction encoded here
// (NFT_MSG_DELSETELEM / NEWSETELEM, marker chains) inside one nfnetlink batch, sent on a
// netlink socket opened in the port's namespace and kept. A rule change then costs a few
// microseconds of our CPU and one commit in the kernel, instead of a libnftables context, its
// parser and its process-wide lock (~0.35 ms a port, one port at a time).
//
// Elements are read as nft_ruleset renders them ("10.20.0.0-10.20.255.255 . 6 . 8000-8100")
// and encoded as nft 1.0.6 encodes them (checked with `nft --debug=mnl`): an interval set of
// one field (rbtree) takes a start element and an end element flagged INTERVAL_END at end + 1
// (none when the range runs to the top of the space; the start then carries nft's "open
// interval" user data, so `nft list` prints it as nft would); an interval set of
// concatenations (pipapo) takes one element with KEY and KEY_END; each field of a
// concatenation fills a 4-byte register (ipv4_addr 4 bytes, inet_proto 1, inet_service 2 in
// network order).
// Thread-safety: an NftBatch is a plain value; one NftSocket is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace photon::agent::net {

// One transaction on table `inet <table>`, in the order the calls are made.
class NftBatch {
 public:
  explicit NftBatch(std::string table) : table_(std::move(table)) {}

  // INVALID_ARGUMENT naming the element when it cannot be encoded for `type` (e.g. a range
  // in a set without intervals, a type other than ipv4_addr, inet_proto, inet_service).
  Status DeleteElements(const std::string& set, const std::string& type, bool interval,
                        const std::vector<std::string>& elements);
  Status AddElements(const std::string& set, const std::string& type, bool interval,
                     const std::vector<std::string>& elements);
  void FlushSet(const std::string& set);
  void AddChain(const std::string& chain);
  void DeleteChain(const std::string& chain);
  bool empty() const { return messages_.empty(); }

  // The batch (BATCH_BEGIN, the messages numbered from `seq` + 1, BATCH_END); the messages
  // are described in `what` (one entry per message, for error texts).
  std::string Encode(uint32_t seq) const;
  const std::vector<std::string>& what() const { return what_; }

 private:
  Status Elements(uint16_t type, const std::string& set, const std::string& set_type, bool interval,
                  const std::vector<std::string>& elements);
  const std::string table_;
  std::vector<std::string> messages_;  // encoded without header length/seq (set by Encode)
  std::vector<std::string> what_;
};

class NftSocket {
 public:
  // A NETLINK_NETFILTER socket made in the namespace at `netns` ("" = this one). It stays in
  // that namespace for its life (and keeps the namespace alive: close it before dropping it).
  static StatusOr<std::unique_ptr<NftSocket>> Open(const std::string& netns);
  ~NftSocket();
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;

  // Commits `batch` as one transaction: all of it or nothing. The kernel's answer is read up
  // to a generation request sent after the batch (the kernel answers a socket's requests in
  // order, so every error of the batch comes before that reply). The error names the
  // message the kernel refused and its errno.
  Status Commit(const NftBatch& batch);

 private:
  Status Send(const NftBatch& batch);
  Status Finish();
  explicit NftSocket(int fd, std::string netns) : fd_(fd), netns_(std::move(netns)) {}
  int fd_;
  const std::string netns_;
  uint32_t seq_ = 0;
  size_t sndbuf_ = 0;               // the send buffer asked for: a batch must fit in one datagram
  uint32_t first_ = 0, fence_ = 0;  // of the batch in flight (0 = none)
  std::vector<std::string> what_;
};

}  // namespace photon::agent::net
