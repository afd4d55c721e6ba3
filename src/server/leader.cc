#include "server/leader.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/util.h"

namespace photon::server {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

LeaderElector::LeaderElector(store::Store* store, LeaderOptions options, MetricsRegistry* metrics)
    : store_(store),
      options_(std::move(options)),
      ttl_(milliseconds(1000 * std::max(1, options_.ttl_s))),
      leader_gauge_(metrics->GetGauge("photon_server_leader",
                                      "1 while this server leads (runs the scheduler and "
                                      "controllers), 0 while it follows")),
      elected_(metrics->GetCounter("photon_server_leader_elected_total", "Terms this server won")),
      deposed_(metrics->GetCounter("photon_server_leader_deposed_total",
                                   "Terms of this server that ended (lease lost, resigned)")) {}

void LeaderElector::Start() {
  campaign_ = std::thread([this] {
    SetThreadName("leader");
    CampaignLoop();
  });
  watchdog_ = std::thread([this] {
    SetThreadName("leader-watch");
    WatchdogLoop();
  });
}

void LeaderElector::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (campaign_.joinable()) campaign_.join();
  if (watchdog_.joinable()) watchdog_.join();
  Demote("server stopping");
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    std::swap(lease, lease_);
  }
  // Revoking deletes the key: a follower wins now instead of after the TTL.
  if (lease != 0) store_->RevokeLease(lease).IgnoreError();
}

std::string LeaderElector::leader() const {
  std::lock_guard lock(mu_);
  return seen_;
}

StatusOr<store::Compare> LeaderElector::Fence() const {
  const int64_t term = term_.load();
  if (!leader_.load() || term == 0) {
    return absl::FailedPreconditionError(
        "this photon-server is not the leader (leader: " + leader() + ")");
  }
  return store::Compare{.key = options_.key,
                        .target = store::Compare::Target::kCreateRevision,
                        .op = store::Compare::Op::kEqual,
                        .number = term};
}

bool LeaderElector::Wait(milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_; });
  return !stop_;
}

void LeaderElector::SetSeen(const std::string& who) {
  std::lock_guard lock(mu_);
  seen_ = who;
}

void LeaderElector::CampaignLoop() {
  // Followers look often: the time from a lapsed lease to the next placement is mostly this.
  const milliseconds poll = std::max(milliseconds(50), ttl_ / 10);
  while (true) {
    if (!leader_.load()) {
      if (EnsureLease() && TryAcquire()) continue;
      if (!Wait(poll)) return;
      continue;
    }
    if (!Renew()) Demote("the leader key or its lease is gone");
    if (!Wait(ttl_ / 4)) return;
  }
}

bool LeaderElector::EnsureLease() {
  int64_t lease;
  {
    std::lock_guard lock(mu_);
    if (lease_ != 0 && Clock::now() - renewed_at_ < ttl_ / 4) return true;
    lease = lease_;
  }
  const auto sent = Clock::now();
  Status st = lease != 0 ? store_->KeepAlive(lease) : absl::NotFoundError("no lease yet");
  if (st.code() == StatusCode::kNotFound) {
    auto granted = store_->GrantLease(options_.ttl_s);
    if (!granted.ok()) {
      spdlog::warn("leader election: lease: {}", granted.status().ToString());
      return false;
    }
    lease = *granted;
  } else if (!st.ok()) {
    return false;
  }
  std::lock_guard lock(mu_);
  lease_ = lease;
  renewed_at_ = sent;
  return true;
}

bool LeaderElector::TryAcquire() {
  auto current = store_->Range(options_.key);
  if (!current.ok()) return false;
  int64_t lease;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
  }
  if (!current->kvs.empty()) {
    const auto& kv = current->kvs.front();
    // Still ours: a watchdog demotion while etcd was slow, the lease survived.
    if (kv.lease == lease && kv.value == options_.identity) {
      Promote(kv.create_revision);
      return leader_.load();
    }
    SetSeen(kv.value);
    return false;
  }
  store::TxnRequest txn;
  txn.compares.push_back({.key = options_.key,
                          .target = store::Compare::Target::kCreateRevision,
                          .op = store::Compare::Op::kEqual,
                          .number = 0});
  txn.success.push_back({.type = store::TxnOp::Type::kPut,
                         .key = options_.key,
                         .value = options_.identity,
                         .lease = lease});
  auto r = store_->Txn(txn);
  if (!r.ok() || !r->succeeded) return false;
  Promote(r->revision);  // the key was created by this txn: its create_revision
  return leader_.load();
}

bool LeaderElector::Renew() {
  int64_t lease;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
  }
  const auto sent = Clock::now();
  Status st = store_->KeepAlive(lease);
  if (st.code() == StatusCode::kNotFound) return false;
  if (!st.ok()) return true;  // unreachable for now: the watchdog ends the term in time
  {
    std::lock_guard lock(mu_);
    renewed_at_ = sent;
  }
  cv_.notify_all();
  auto current = store_->Range(options_.key);
  if (!current.ok()) return true;
  return !current->kvs.empty() && current->kvs.front().create_revision == term_.load();
}

void LeaderElector::WatchdogLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!leader_.load()) {
      cv_.wait_for(lock, ttl_ / 4);
      continue;
    }
    // Another server can win no earlier than renewed_at_ + ttl: be done before that.
    const auto limit = renewed_at_ + ttl_ - ttl_ / 4;
    if (Clock::now() >= limit) {
      lock.unlock();
      Demote("lease not renewed for " + std::to_string((ttl_ - ttl_ / 4).count()) + " ms");
      lock.lock();
      continue;
    }
    cv_.wait_until(lock, limit);
  }
}

void LeaderElector::Promote(int64_t term) {
  std::lock_guard transition(transition_mu_);
  if (leader_.load()) return;
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    seen_ = options_.identity;
  }
  term_ = term;
  leader_ = true;
  cv_.notify_all();
  leader_gauge_->Set(1);
  elected_->Inc();
  spdlog::info("leader election: {} leads (term {})", options_.identity, term);
  Status st = options_.on_elected ? options_.on_elected() : absl::OkStatus();
  if (st.ok()) return;
  spdlog::error("leader election: starting the leader's loops failed: {}; resigning",
                st.ToString());
  leader_ = false;
  term_ = 0;
  leader_gauge_->Set(0);
  deposed_->Inc();
  if (options_.on_deposed) options_.on_deposed();
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    std::swap(lease, lease_);
  }
  store_->RevokeLease(lease).IgnoreError();
}

void LeaderElector::Demote(const std::string& why) {
  std::lock_guard transition(transition_mu_);
  if (!leader_.load()) return;
  // The fence refuses from here on; the loops' writes already in flight fail in etcd.
  leader_ = false;
  term_ = 0;
  leader_gauge_->Set(0);
  deposed_->Inc();
  spdlog::warn("leader election: {} steps down: {}", options_.identity, why);
  if (options_.on_deposed) options_.on_deposed();
}

}  // namespace photon::server
