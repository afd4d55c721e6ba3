// Node lifecycle (seed 003 MonitorLoop), eviction from DOWN nodes and drains.
// Silence is measured on the server's own monotonic clock from the moment a changed
// nodeStatus.lastHeartbeat was first seen, so agent clock skew cannot declare a node down.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/util.h"
#include "server/object_util.h"
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
    auto& a = alloc[ci.metadata().agent_id()];
    a.set_vcpu(a.vcpu() + ci.spec().resources().vcpu());
    a.set_memory_mb(a.memory_mb() + ci.spec().resources().memory_mb());
    a.set_disk_gb(a.disk_gb() + ci.spec().resources().disk_gb());
  }
  for (auto& n : snap.nodes) {
    const std::string& name = n.metadata().name();
    Heartbeat hb;
    auto it = heartbeats_.find(name);
    if (it != heartbeats_.end()) hb = it->second;
    if (it == heartbeats_.end() || hb.last != n.node_status().last_heartbeat()) {
      // First sight (also after a server restart: a grace period) or a fresh heartbeat.
      hb.last = n.node_status().last_heartbeat();
      hb.seen = now;
      hb.probe_ok = false;
    }
    const auto silent = now - hb.seen;
    const auto cond = n.node_status().condition();
    auto want = cond;
    std::string message = n.node_status().message();
    if (silent < options_.suspect_after) {
      // Fresh: the agent's own word (it writes READY); a late-written heartbeat revives it.
      if (cond == node::NodeStatus::SUSPECT || cond == node::NodeStatus::DOWN) {
        if (!n.node_status().last_heartbeat().empty()) {
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
    seen[name] = hb;
    const auto& a = alloc[name];
    const bool alloc_differs =
        a.SerializeAsString() != n.node_status().allocated().SerializeAsString();
    if (want == cond && message == n.node_status().message() && !alloc_differs) continue;
    node::Node next = n;
    next.mutable_node_status()->set_condition(want);
    next.mutable_node_status()->set_message(message);
    *next.mutable_node_status()->mutable_allocated() = a;
    auto st = resources_->WriteAsSystem(*FindKind("nodes"), next);
    if (!st.ok()) {
      if (st.code() != StatusCode::kAborted) spdlog::warn("node monitor: {}", st.ToString());
      continue;
    }
    wrote = true;
    if (want != cond) {
      spdlog::info("node {}: {} → {}: {}", name, node::NodeStatus::Condition_Name(cond),
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
    n.mutable_node_status()->set_condition(want);
  }
  heartbeats_ = std::move(seen);
  return wrote;
}

bool SchedulerController::EvictAndDrain(const Snapshot& snap, scheduler::ClusterState& state,
                                        scheduler::Scheduler& sched) {
  bool wrote = false;
  for (const auto& n : snap.nodes) {
    const std::string& name = n.metadata().name();
    const bool down = n.node_status().condition() == node::NodeStatus::DOWN;
    auto drain_it = n.metadata().annotations().find(kDrainAnnotation);
    const bool draining =
        drain_it != n.metadata().annotations().end() && drain_it->second == "requested";
    if (!down && !draining) continue;
    const int node_index = state.NodeIndex(name);
    int remaining = 0;
    for (const auto& ci : snap.instances) {
      if (ci.metadata().agent_id() != name) continue;
      const std::string obj =
          "computeinstances/" + ci.metadata().namespace_() + "/" + ci.metadata().name();
      if (!ci.metadata().deletion_timestamp().empty()) {
        if (!down) {
          ++remaining;  // the agent is tearing it down
          continue;
        }
        // Its agent is gone and cannot finish the delete: finish it here.
        const std::string key =
            RegistryKey("computeinstances", ci.metadata().namespace_(), ci.metadata().name());
        store::TxnRequest txn;
        txn.compares.push_back({.key = key,
                                .target = store::Compare::Target::kModRevision,
                                .op = store::Compare::Op::kEqual,
                                .number = std::stoll(ci.metadata().resource_version())});
        txn.success.push_back({.type = store::TxnOp::Type::kDelete, .key = key});
        auto r = resources_->store()->Txn(txn);
        if (r.ok() && r->succeeded) {
          wrote = true;
          Event(ci.metadata().namespace_(), "DeleteFinished", obj,
                "node " + name + " is DOWN: delete finished by the control plane");
        } else {
          ++remaining;
        }
        continue;
      }
      auto [group, size] = GroupOf(snap, ci);
      scheduler::Request req = scheduler::RequestFromInstance(ci, group, size);
      req.exclude_node = name;
      if (node_index >= 0) state.Release(req.group, req.labels, req.need, node_index);
      scheduler::Decision d = sched.Place(req);
      const std::string why = down ? "node " + name + " is DOWN" : "node " + name + " is drained";
      compute::ComputeInstance next = ci;
      auto* st = next.mutable_status();
      st->set_phase(resource::ResourceStatus::PENDING);
      st->set_exit_code(0);
      st->clear_addresses();
      std::string msg;
      if (d.kind == scheduler::Decision::Kind::kPlaced) {
        next.mutable_metadata()->set_agent_id(d.node_name);
        msg = "rescheduled from " + name + " to " + d.node_name + ": " + why;
        (*st->mutable_details())["scheduler"] = "scheduled";
      } else {
        next.mutable_metadata()->clear_agent_id();
        msg = "evicted from " + name + " (" + why + "), waiting: " + d.reason;
        (*st->mutable_details())["scheduler"] = "unschedulable";
      }
      st->set_message(msg);
      auto w = WriteInstance(next);
      if (!w.ok()) {
        if (d.kind == scheduler::Decision::Kind::kPlaced)
          state.Release(req.group, req.labels, req.need, d.node);
        if (node_index >= 0) state.Commit(req.group, req.labels, req.need, node_index);
        if (w.code() != StatusCode::kAborted) spdlog::warn("scheduler: {}", w.ToString());
        ++remaining;
        continue;
      }
      wrote = true;
      Event(ci.metadata().namespace_(), "Rescheduled", obj, msg);
    }
    if (draining && remaining == 0) {
      node::Node next = n;
      (*next.mutable_metadata()->mutable_annotations())[kDrainAnnotation] = "done";
      auto st = resources_->WriteAsSystem(*FindKind("nodes"), next);
      if (st.ok()) {
        wrote = true;
        Event("system", "DrainDone", "nodes/system/" + name, "every instance moved off " + name);
      }
    }
  }
  return wrote;
}

}  // namespace photon::server
