#include "server/controllers.h"

#include <spdlog/spdlog.h>

#include "common/util.h"
#include "server/object_util.h"

namespace photon::server {

namespace {
bool HasPrefix(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
}  // namespace

Status Controllers::Start() {
  auto id = resources_->cache()->Subscribe(
      "/registry/", 0,
      [this](const std::vector<std::shared_ptr<const CachedObject>>& snap, int64_t) {
        std::vector<std::string> keys;
        keys.reserve(snap.size());
        for (const auto& o : snap) keys.push_back(o->key());
        Enqueue(keys);
      },
      [this](const std::vector<CacheEvent>& events) {
        std::vector<std::string> keys;
        keys.reserve(events.size());
        for (const auto& e : events) keys.push_back(e.object->key());
        Enqueue(keys);
      });
  if (!id.ok()) return id.status();
  subscription_ = *id;
  worker_ = std::thread([this] {
    SetThreadName("controller");
    Run();
  });
  return absl::OkStatus();
}

void Controllers::Stop() {
  if (subscription_) {
    resources_->cache()->Unsubscribe(subscription_);
    subscription_ = 0;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Controllers::Enqueue(const std::vector<std::string>& keys) {
  // One wake per batch: waking the worker for each key had it and the watch cache's dispatcher
  // take turns on the CPU key by key (thousands of context switches a second under creates).
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    was_empty = queue_.empty();
    for (const auto& key : keys) {
      if (queued_.insert(key).second) queue_.push_back(key);
    }
  }
  if (was_empty) cv_.notify_one();
}

void Controllers::Run() {
  while (true) {
    std::string key;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      key = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(key);
    }
    Reconcile(key);
  }
}

void Controllers::Reconcile(const std::string& key) {
  static const std::string kOps = RegistryPrefix("operations");
  if (HasPrefix(key, kOps)) {
    ReconcileOperation(key);
    return;
  }
  // The target of some operations changed: re-evaluate them.
  std::set<std::string> ops;
  {
    std::lock_guard lock(mu_);
    auto it = ops_by_target_.find(key);
    if (it != ops_by_target_.end()) ops = it->second;
  }
  for (const auto& op_key : ops) ReconcileOperation(op_key);
}

void Controllers::ReconcileOperation(const std::string& op_key) {
  auto cached = resources_->cache()->Get(op_key);
  if (!cached) return;
  auto msg = cached->Decoded();
  if (!msg) return;
  operation::Operation op = static_cast<const operation::Operation&>(*msg);
  const KindInfo* kind = FindKind(op.spec().target_kind());
  if (!kind) return;
  const std::string target =
      RegistryKey(kind->plural, op.spec().target_namespace(), op.spec().target_name());
  auto state = op.status().state();
  if (state == operation::OperationStatus::DONE || state == operation::OperationStatus::FAILED) {
    std::lock_guard lock(mu_);
    auto it = ops_by_target_.find(target);
    if (it != ops_by_target_.end()) {
      it->second.erase(op_key);
      if (it->second.empty()) ops_by_target_.erase(it);
    }
    return;
  }
  {
    std::lock_guard lock(mu_);
    ops_by_target_[target].insert(op_key);
  }
  if (HasPrefix(op.spec().verb(), "action:")) return;  // agents finish actions
  auto target_cached = resources_->cache()->Get(target);
  auto obj =
      target_cached ? target_cached->Decoded() : nullptr;  // held: the checks below point into it
  operation::OperationStatus next = op.status();
  if (op.spec().verb() == "delete") {
    if (!obj || GetMetadata(*obj).id() != op.spec().target_id()) {
      next.set_state(operation::OperationStatus::DONE);
      next.set_message("deleted");
    }
  } else if (op.spec().verb() == "create") {
    if (!obj || GetMetadata(*obj).id() != op.spec().target_id()) {
      next.set_state(operation::OperationStatus::FAILED);
      next.set_message("the object was deleted before it was ready");
    } else if (const auto* st = GetStatus(*obj)) {
      switch (st->phase()) {
        case resource::ResourceStatus::RUNNING:
          next.set_state(operation::OperationStatus::DONE);
          next.set_message("running");
          break;
        case resource::ResourceStatus::ERROR:
          next.set_state(operation::OperationStatus::FAILED);
          next.set_message(st->message());
          break;
        default:
          next.set_state(operation::OperationStatus::RUNNING);
          next.set_message(resource::ResourceStatus::Phase_Name(st->phase()) + ": " +
                           st->message());
      }
    }
  }
  if (next.SerializeAsString() == op.status().SerializeAsString()) return;
  if (next.state() == operation::OperationStatus::DONE ||
      next.state() == operation::OperationStatus::FAILED) {
    next.set_done_at(NowRfc3339());
  }
  *op.mutable_status() = next;
  if (auto st = resources_->WriteOperation(op); !st.ok()) {
    spdlog::warn("operations controller: {}", st.ToString());
    Enqueue({op_key});
  }
}

}  // namespace photon::server
