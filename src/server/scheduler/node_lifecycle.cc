// Node lifecycle (seed 003 MonitorLoop), eviction from DOWN nodes and drains.
// Silence is measured on the server's own monotonic clock from the moment a changed
// nodeStatus.lastHeartbeat was first seen, so agent clock skew cannot declare a node down.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/util.h"
#include "server/network/network_manager.h"
#include "server/object_util.h"
#include "server/scheduler/limits.h"
#include "server/scheduler/scheduler_controller.h"

namespace photon::server {

namespace {

using Clock = std::chrono::steady_clock;

int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

bool WaitFd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const int64_t left = Ms(deadline - Clock::now());
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

bool ProbeHealthz(const std::string& address, std::chrono::milliseconds timeout) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return false;
  const auto deadline = Clock::now() + timeout;
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      close(fd);
      continue;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (!WaitFd(fd, POLLOUT, deadline) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
      close(fd);
      continue;
    }
    const std::string req = "GET /healthz HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string got;
      char buf[256];
      while (got.size() < 16 && WaitFd(fd, POLLIN, deadline)) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        got.append(buf, n);
      }
      // "HTTP/1.x 200"
      ok = got.size() >= 12 && got.compare(0, 5, "HTTP/") == 0 && got.compare(9, 3, "200") == 0;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

bool SchedulerController::MonitorNodes(Snapshot& snap) {
  const auto now = Clock::now();
  bool wrote = false;
  std::map<std::string, Heartbeat> seen;
  // Allocation per node, derived from what is placed there.
  std::map<std::string, node::Capacity> alloc;
  for (const auto& ci : snap.instances) {
    if (ci.metadata().agent_id().empty()) continue;
    // Summed as the scheduler sums them (bounded, saturating): never a wrapped negative.
    auto& a = alloc[ci.metadata().agent_id()];
    const auto r =
        scheduler::Resources{ci.spec().resources().vcpu(), ci.spec().resources().memory_mb(),
                             ci.spec().resources().disk_gb()}
            .Bounded();
    a.set_vcpu(static_cast<int32_t>(std::min<int64_t>(std::numeric_limits<int32_t>::max(),
                                                      scheduler::SaturatingAdd(a.vcpu(), r.vcpu))));
    a.set_memory_mb(scheduler::SaturatingAdd(a.memory_mb(), r.memory_mb));
    a.set_disk_gb(scheduler::SaturatingAdd(a.disk_gb(), r.disk_gb));
  }
  struct NodeWrite {
    node::Node next;
    size_t index;  // in the snapshot
    node::NodeStatus::Condition was;
  };
  std::vector<NodeWrite> writes;
  for (size_t index = 0; index < snap.nodes.size(); ++index) {
    const node::Node& n = snap.nodes[index];
    const std::string& name = n.metadata().name();
    Heartbeat hb;
    auto it = heartbeats_.find(name);
    if (it != heartbeats_.end()) hb = it->second;
    bool fresh = false;  // a heartbeat arrived since the last round
    if (it == heartbeats_.end()) {
      // First sight (also after a server restart): a grace period, but no verdict revived.
      hb.last = n.node_status().last_heartbeat();
      hb.seen = now;
    } else if (hb.last != n.node_status().last_heartbeat()) {
      hb.last = n.node_status().last_heartbeat();
      hb.seen = now;
      hb.probe_ok = false;
      fresh = true;
    }
    const auto silent = now - hb.seen;
    const auto cond = n.node_status().condition();
    auto want = cond;
    std::string message = n.node_status().message();
    if (silent < options_.suspect_after) {
      // Fresh: the agent's own word (it writes READY); a late-written heartbeat revives it.
      if (cond == node::NodeStatus::SUSPECT || cond == node::NodeStatus::DOWN) {
        if (fresh) {
          want = node::NodeStatus::READY;
          message = "heartbeat resumed";
        }
      }
    } else if (cond != node::NodeStatus::DOWN) {
      const std::string late = "no heartbeat for " + std::to_string(Ms(silent) / 1000) + "s";
      if (!n.spec().address().empty() &&
          (hb.probed == Clock::time_point{} || now - hb.probed >= options_.suspect_after / 2)) {
        hb.probe_ok = ProbeHealthz(n.spec().address(), options_.probe_timeout);
        hb.probed = now;
      }
      if (silent >= options_.down_after && !hb.probe_ok) {
        want = node::NodeStatus::DOWN;
        message = late + " (down after " + std::to_string(Ms(options_.down_after)) + "ms" +
                  (n.spec().address().empty() ? "" : ", /healthz does not answer") + ")";
      } else {
        // SUSPECT: no new work; a node whose /healthz still answers is not declared down
        // (its instances may well be running: rescheduling would duplicate them).
        want = node::NodeStatus::SUSPECT;
        message =
            late + (hb.probe_ok ? " but /healthz answers"
                                : (n.spec().address().empty() ? "" : ", /healthz does not answer"));
      }
      // Only rewrite SUSPECT on a change of state, not on every tick of the counter.
      if (want == cond && want == node::NodeStatus::SUSPECT) message = n.node_status().message();
    }
    if (it != heartbeats_.end() && want == node::NodeStatus::READY && cond == want &&
        (hb.condition == node::NodeStatus::SUSPECT || hb.condition == node::NodeStatus::DOWN)) {
      Event("system", "NodeReady", "nodes/system/" + name,
            "heartbeat resumed (was " + node::NodeStatus::Condition_Name(hb.condition) + ")");
    }
    hb.condition = want;
    seen[name] = hb;
    const auto& a = alloc[name];
    const bool alloc_differs =
        a.SerializeAsString() != n.node_status().allocated().SerializeAsString();
    if (want == cond && message == n.node_status().message() && !alloc_differs) continue;
    node::Node next = n;
    next.mutable_node_status()->set_condition(want);
    next.mutable_node_status()->set_message(message);
    *next.mutable_node_status()->mutable_allocated() = a;
    if (want == cond && message == n.node_status().message()) {
      QueueAllocation(std::move(next));  // only the display of the sum changes
      continue;
    }
    writes.push_back(NodeWrite{std::move(next), index, cond});
  }
  // Concurrently: after a burst of placements or deletes, hundreds of nodes change their
  // allocation in one round, and one write after another kept the round (and every placement
  // waiting for the next one) busy for seconds.
  const auto results = WriteConcurrently(writes.size(), [&](size_t i) {
    return resources_->WriteAsSystem(*FindKind("nodes"), writes[i].next);
  });
  for (size_t i = 0; i < writes.size(); ++i) {
    const NodeWrite& w = writes[i];
    if (!results[i].ok()) {
      if (results[i].code() != StatusCode::kAborted)
        spdlog::warn("node monitor: {}", results[i].ToString());
      continue;
    }
    const std::string& name = w.next.metadata().name();
    const auto want = w.next.node_status().condition();
    const std::string& message = w.next.node_status().message();
    if (want != w.was) {
      // A new condition changes what may be placed there: the next round should follow. A
      // new allocation (display only) does not.
      wrote = true;
      spdlog::info("node {}: {} → {}: {}", name, node::NodeStatus::Condition_Name(w.was),
                   node::NodeStatus::Condition_Name(want), message);
      Event(
          "system",
          "Node" +
              [&] {
                std::string s = node::NodeStatus::Condition_Name(want);
                for (size_t i = 1; i < s.size(); ++i) s[i] = static_cast<char>(tolower(s[i]));
                return s;
              }(),
          "nodes/system/" + name, message);
    }
    // Decide on this round's view with the new condition.
    snap.conditions[w.index] = want;
  }
  heartbeats_ = std::move(seen);
  return wrote;
}

bool SchedulerController::EvictAndDrain(const Snapshot& snap, scheduler::ClusterState& state,
                                        scheduler::Scheduler& sched) {
  bool wrote = false;
  // Moves one instance off `from` (gone = its agent cannot act any more). Returns false when
  // the instance still refers to `from` afterwards.
  auto evict = [&](const compute::ComputeInstance& ci, const std::string& from, bool gone,
                   const std::string& why) {
    const std::string obj =
        "computeinstances/" + ci.metadata().namespace_() + "/" + ci.metadata().name();
    if (!ci.metadata().deletion_timestamp().empty()) {
      if (!gone) return false;  // the agent is tearing it down
      // Its agent is gone and cannot finish the delete: finish it here.
      const std::string key =
          RegistryKey("computeinstances", ci.metadata().namespace_(), ci.metadata().name());
      store::TxnRequest txn;
      txn.compares.push_back({.key = key,
                              .target = store::Compare::Target::kModRevision,
                              .op = store::Compare::Op::kEqual,
                              .number = std::stoll(ci.metadata().resource_version())});
      txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = key});
      const KindInfo& ci_kind = *FindKind("computeinstances");
      prismnet::NetworkManager::AddReleaseOps(ci_kind, ci, &txn);  // its Port and address
      if (auto* net = resources_->network();
          net != nullptr && !net->AddFloatingIpReleaseOps(ci_kind, ci, &txn).ok()) {
        return false;
      }
      auto r = resources_->store()->Txn(txn);
      if (!r.ok() || !r->succeeded) return false;
      if (auto* net = resources_->network()) net->Released(ci_kind, ci);
      wrote = true;
      Event(ci.metadata().namespace_(), "DeleteFinished", obj,
            why + ": delete finished by the control plane");
      return true;
    }
    auto [group, size] = GroupOf(snap, ci);
    scheduler::Request req = scheduler::RequestFromInstance(ci, group, size);
    req.exclude_node = from;
    const int from_index = state.NodeIndex(from);
    if (from_index >= 0) state.Release(req.group, req.labels, req.need, from_index);
    scheduler::Decision d = sched.Place(req);
    compute::ComputeInstance next = ci;
    auto* st = next.mutable_status();
    st->set_phase(resource::ResourceStatus::PENDING);
    st->set_exit_code(0);
    st->clear_addresses();
    std::string msg;
    if (d.kind == scheduler::Decision::Kind::kPlaced) {
      next.mutable_metadata()->set_agent_id(d.node_name);
      msg = "rescheduled from " + from + " to " + d.node_name + ": " + why;
      (*st->mutable_details())["scheduler"] = "scheduled";
    } else {
      next.mutable_metadata()->clear_agent_id();
      msg = "evicted from " + from + " (" + why + "), waiting: " + d.reason;
      (*st->mutable_details())["scheduler"] = "unschedulable";
    }
    st->set_message(msg);
    auto w = WriteInstance(next);
    if (!w.ok()) {
      if (d.kind == scheduler::Decision::Kind::kPlaced)
        state.Release(req.group, req.labels, req.need, d.node);
      if (from_index >= 0) state.Commit(req.group, req.labels, req.need, from_index);
      if (w.code() != StatusCode::kAborted) spdlog::warn("scheduler: {}", w.ToString());
      return false;
    }
    wrote = true;
    Event(ci.metadata().namespace_(), "Rescheduled", obj, msg);
    return true;
  };

  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < snap.nodes.size(); ++i) by_name[snap.nodes[i].metadata().name()] = i;
  std::map<std::string, int> remaining;  // draining node → instances still on it
  for (const auto& ci : snap.instances) {
    const std::string& at = ci.metadata().agent_id();
    if (at.empty()) continue;
    auto it = by_name.find(at);
    if (it == by_name.end()) {
      // The Node object was removed: nothing will ever run this copy.
      evict(ci, at, true, "node " + at + " no longer exists");
      continue;
    }
    const node::Node& n = snap.nodes[it->second];
    if (snap.conditions[it->second] == node::NodeStatus::DOWN) {
      if (!evict(ci, at, true, "node " + at + " is DOWN")) remaining[at]++;
      continue;
    }
    auto drain = n.metadata().annotations().find(kDrainAnnotation);
    if (drain != n.metadata().annotations().end() && drain->second == "requested") {
      if (!evict(ci, at, false, "node " + at + " is drained")) remaining[at]++;
    }
  }
  for (const auto& n : snap.nodes) {
    auto drain = n.metadata().annotations().find(kDrainAnnotation);
    if (drain == n.metadata().annotations().end() || drain->second != "requested") continue;
    const std::string& name = n.metadata().name();
    if (remaining[name] > 0) continue;
    // Done only once the cache no longer shows anything on it (our moves of this round are
    // still in flight): the next round confirms.
    bool any = false;
    for (const auto& ci : snap.instances) any |= ci.metadata().agent_id() == name;
    if (any) continue;
    node::Node next = n;
    (*next.mutable_metadata()->mutable_annotations())[kDrainAnnotation] = "done";
    if (resources_->WriteAsSystem(*FindKind("nodes"), next).ok()) {
      wrote = true;
      Event("system", "DrainDone", "nodes/system/" + name, "every instance moved off " + name);
    }
  }
  return wrote;
}

}  // namespace photon::server
