#include "agent/hollow/hollow_node.h"

#include <cstdlib>
#include <filesystem>

#include "agent/hollow/fleet.h"
#include "agent/node_object.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "spdlog/spdlog.h"

namespace photon::hollow {
using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kRetry(1000);

// proto3 JSON writes int64 as a string; accept both.
int64_t Int(const json& obj, const char* field) {
  if (!obj.is_object() || !obj.contains(field)) return 0;
  const json& v = obj[field];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) return std::strtoll(v.get<std::string>().c_str(), nullptr, 10);
  return 0;
}

uint64_t Revision(const json& obj) {
  if (!obj.is_object() || !obj.contains("metadata")) return 0;
  return std::strtoull(obj["metadata"].value("resourceVersion", "0").c_str(), nullptr, 10);
}

std::string KeyOf(const json& obj) {
  const json& md = obj["metadata"];
  return md.value("namespace", "") + "/" + md.value("name", "");
}

std::string InstancePath(const std::string& key) {
  auto slash = key.find('/');
  return "/v1/namespaces/" + key.substr(0, slash) + "/computeinstances/" + key.substr(slash + 1);
}

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

int64_t UnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json ParseBody(const Reply& r) { return json::parse(r.body, nullptr, false); }

}  // namespace

HollowNode::HollowNode(Fleet* fleet, Shard* shard, std::string name)
    : fleet_(fleet), shard_(shard), name_(std::move(name)), beat_timer_(*ShardIo(shard)) {}

std::string HollowNode::NodePath() const { return "/v1/namespaces/system/nodes/" + name_; }

std::string HollowNode::Selector() const {
  return "fieldSelector=" + PercentEncode("metadata.agentId=" + name_);
}

void HollowNode::Call(const std::string& method, const std::string& target, const json& body,
                      AsyncHttp::Callback cb) {
  ShardHttp(shard_)->Call(method, target, token_, body.is_null() ? "" : body.dump(), std::move(cb));
}

void HollowNode::After(milliseconds delay, std::function<void()> fn) {
  auto timer = std::make_shared<boost::asio::steady_timer>(*ShardIo(shard_), delay);
  timer->async_wait([timer, fn = std::move(fn)](boost::system::error_code ec) {
    if (!ec) fn();
  });
}

void HollowNode::Start() {
  std::string cred = fleet_->options().data_dir + "/" + name_ + ".credential";
  auto stored = ReadFile(cred);
  if (!stored.ok()) return Join();
  token_ = *stored;
  while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r')) token_.pop_back();
  // The stored credential still works when the node reads as found or not found.
  Call("GET", NodePath(), nullptr, [this](Reply r) {
    if (r.status == 200 || r.status == 404) return Register();
    if (r.status == 401) return Join();
    After(kRetry, [this] { Start(); });
  });
}

void HollowNode::Join() {
  json body{{"node", name_}};
  ShardHttp(shard_)->Call("POST", "/v1/join", fleet_->join_token(), body.dump(), [this](Reply r) {
    json j = ParseBody(r);
    if (r.status < 200 || r.status >= 300 || !j.is_object() || j.value("token", "").empty()) {
      fleet_->counters().errors++;
      spdlog::warn("{}: join: {} {}", name_, r.status,
                   r.status ? (r.status < 300 ? "no token in the answer" : r.body) : r.error);
      // 409: the node is still held by a live agent (an earlier fleet): wait it out.
      return After(r.status == 409 ? milliseconds(5000) : kRetry, [this] { Join(); });
    }
    token_ = j["token"].get<std::string>();
    Status s = WriteFileAtomic(fleet_->options().data_dir + "/" + name_ + ".credential",
                               token_ + "\n", 0600);
    if (!s.ok()) spdlog::warn("{}: storing the credential: {}", name_, s.ToString());
    Register();
  });
}

void HollowNode::Register() {
  const FleetOptions& o = fleet_->options();
  agent::NodeOffer offer;
  offer.vcpu = o.vcpu;
  offer.memory_mb = o.memory_mb;
  offer.disk_gb = o.disk_gb;
  offer.drivers = o.drivers;
  offer.attributes = {{"hollow", "true"}};
  offer.address = o.address;
  json spec = agent::NodeSpecJson(offer);
  Call("GET", NodePath(), nullptr, [this, spec](Reply r) {
    auto done = [this](Reply w) {
      if (w.status == 200 || w.status == 201 || w.status == 202) {
        node_ = nullptr;  // the heartbeat reads it fresh
        if (!beating_) {
          beating_ = true;
          Beat();
        }
        return;
      }
      if (w.status != 409 && w.status != 412) {
        fleet_->counters().errors++;
        spdlog::warn("{}: register: {} {}", name_, w.status, w.status ? w.body : w.error);
      }
      After(w.status == 409 || w.status == 412 ? milliseconds(10) : kRetry, [this] { Register(); });
    };
    if (r.status == 404) {
      return Call("POST", "/v1/namespaces/system/nodes",
                  agent::NewNodeObject(name_, fleet_->options().labels, spec), done);
    }
    json cur = ParseBody(r);
    if (r.status != 200 || !cur.is_object()) return After(kRetry, [this] { Register(); });
    Call("PUT", NodePath(), agent::MergeNodeRegistration(cur, spec, fleet_->options().labels),
         done);
  });
}

void HollowNode::ScheduleBeat(milliseconds delay) {
  beat_timer_.expires_after(delay);
  beat_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Beat();
  });
}

void HollowNode::Beat() {
  const milliseconds interval(fleet_->options().heartbeat_seconds * 1000);
  if (!node_.is_object()) {
    return Call("GET", NodePath(), nullptr, [this, interval](Reply r) {
      json j = ParseBody(r);
      if (r.status == 200 && j.is_object()) {
        node_ = std::move(j);
        return Beat();
      }
      if (r.status == 404) return Register();
      fleet_->counters().heartbeat_failures++;
      ScheduleBeat(interval);
    });
  }
  int64_t running = 0;
  for (const auto& [k, in] : instances_) running += in.running ? 1 : 0;
  agent::MarkHeartbeat(&node_, std::to_string(running) + " instances");
  auto t0 = std::chrono::steady_clock::now();
  Call("PUT", NodePath() + "/status", node_, [this, interval, t0](Reply r) {
    if (r.status == 200) {
      ShardSample(shard_, Series::kHeartbeat, MsSince(t0));
      fleet_->counters().heartbeats++;
      node_ = ParseBody(r);
      if (!ready_) {
        ready_ = true;
        fleet_->counters().nodes_ready++;
        List("", std::make_shared<std::map<std::string, json>>());
      }
      return ScheduleBeat(interval);
    }
    node_ = nullptr;
    if (r.status == 409 || r.status == 412) return Beat();  // read again, write again
    if (r.status == 404) return Register();                 // deleted by an admin
    fleet_->counters().heartbeat_failures++;
    if (r.status == 401) {
      spdlog::warn("{}: credential refused; joining again", name_);
      beating_ = false;
      return Join();
    }
    ScheduleBeat(interval);
  });
}

// ---- own instances --------------------------------------------------------------------------

void HollowNode::List(std::string cont, std::shared_ptr<std::map<std::string, json>> fresh) {
  std::string target = "/v1/computeinstances?" + Selector() + "&limit=500";
  if (!cont.empty()) target += "&continue=" + PercentEncode(cont);
  Call("GET", target, nullptr, [this, cont, fresh](Reply r) {
    json page = ParseBody(r);
    if (r.status != 200 || !page.is_object()) {
      fleet_->counters().errors++;
      return After(kRetry, [this] { List("", std::make_shared<std::map<std::string, json>>()); });
    }
    if (cont.empty()) resource_version_ = page.value("resourceVersion", "");
    if (page.contains("items") && page["items"].is_array()) {
      for (auto& item : page["items"]) (*fresh)[KeyOf(item)] = std::move(item);
    }
    std::string next = page.contains("continue") && page["continue"].is_string()
                           ? page["continue"].get<std::string>()
                           : "";
    if (!next.empty()) return List(next, fresh);
    fleet_->counters().relists++;
    std::vector<std::string> gone;
    for (const auto& [k, in] : instances_) {
      if (!fresh->count(k)) gone.push_back(k);
    }
    for (const auto& k : gone) Forget(k);
    for (auto& [k, obj] : *fresh) Upsert(obj);
    Watch();
  });
}

void HollowNode::Watch() {
  std::string target =
      "/v1/computeinstances?" + Selector() + "&watch=true&resourceVersion=" + resource_version_;
  watch_ = ShardHttp(shard_)->Watch(
      target, token_, [this](std::string_view line) { return OnLine(line); },
      [this](Reply r) {
        watch_.reset();
        if (r.status == 200) return After(milliseconds(100), [this] { Watch(); });
        if (r.status != 410) spdlog::warn("{}: watch: {} {}", name_, r.status, r.error + r.body);
        // 410: the revision was compacted; any other failure may be a restarted server with
        // another history. Either way: list again.
        After(r.status == 410 ? milliseconds(0) : milliseconds(500),
              [this] { List("", std::make_shared<std::map<std::string, json>>()); });
      });
}

bool HollowNode::OnLine(std::string_view line) {
  json ev = json::parse(line, nullptr, false);
  if (!ev.is_object() || !ev.contains("object") || !ev["object"].is_object()) return true;
  const json& obj = ev["object"];
  const std::string type = ev.value("type", "");
  if (obj.contains("metadata")) {
    uint64_t rv = Revision(obj);
    if (rv >= std::strtoull(resource_version_.c_str(), nullptr, 10)) {
      resource_version_ = std::to_string(rv);
    }
  }
  if (type == "BOOKMARK") return true;
  fleet_->counters().watch_events++;
  const std::string key = KeyOf(obj);
  if (obj["metadata"].value("agentId", "") != name_) {
    fleet_->counters().foreign_events++;  // an unfiltered watch; not ours
    if (instances_.count(key)) Forget(key);
    return true;
  }
  if (type == "DELETED") {
    Forget(key);
  } else {
    Upsert(obj);
  }
  return true;
}

void HollowNode::Upsert(const json& object) {
  const std::string key = KeyOf(object);
  auto [it, added] = instances_.try_emplace(key);
  Instance& in = it->second;
  const std::string id = object["metadata"].value("id", "");
  if (!added && in.object["metadata"].value("id", "") != id) {
    // Another object of the same name: start over with it.
    if (in.running) fleet_->counters().running--;
    in = Instance{};
    added = true;
  }
  if (added) in.seen = std::chrono::steady_clock::now();
  if (!added && Revision(object) < Revision(in.object)) return;  // older than what we wrote
  in.object = object;
  const json& md = object["metadata"];
  if (md.contains("annotations") && md["annotations"].is_object()) {
    std::string stamp = md["annotations"].value(Fleet::kSentAnnotation, "");
    if (!stamp.empty() && stamp != in.last_stamp) {
      in.last_stamp = stamp;
      double ms = static_cast<double>(UnixNanos() - std::strtoll(stamp.c_str(), nullptr, 10)) / 1e6;
      ShardSample(shard_, Series::kDelivery, ms);
    }
  }
  Reconcile(key);
}

void HollowNode::Forget(const std::string& key) {
  auto it = instances_.find(key);
  if (it == instances_.end()) return;
  if (it->second.running) fleet_->counters().running--;
  instances_.erase(it);
}

void HollowNode::Reconcile(const std::string& key) {
  auto it = instances_.find(key);
  if (it == instances_.end()) return;
  Instance& in = it->second;
  if (in.busy) {
    in.dirty = true;
    return;
  }
  in.dirty = false;
  const json& obj = in.object;
  const json& md = obj["metadata"];
  if (!md.value("deletionTimestamp", "").empty()) {
    if (!in.deleted) Finish(key);
    return;
  }
  const json status = obj.contains("status") ? obj["status"] : json::object();
  const std::string phase = status.value("phase", "PENDING");
  if (phase == "DELETING") return;
  if (phase == "RUNNING" && Int(status, "observedGeneration") >= Int(md, "generation")) {
    if (!in.running) {
      in.running = true;
      fleet_->counters().running++;
      ShardSample(shard_, Series::kAssignedToRunning, MsSince(in.seen));
    }
    return;
  }
  if (in.running) {
    in.running = false;
    fleet_->counters().running--;
  }
  WriteStatus(key, phase == "CREATING" ? "RUNNING" : "CREATING");
}

void HollowNode::WriteStatus(const std::string& key, const std::string& phase) {
  Instance& in = instances_[key];
  in.busy = true;
  json obj = in.object;
  json& st = obj["status"];
  if (!st.is_object()) st = json::object();
  st["phase"] = phase;
  if (phase == "RUNNING") {
    st["message"] = "running (hollow node " + name_ + ")";
    st["observedGeneration"] = std::to_string(Int(obj["metadata"], "generation"));
    st["details"] = json{{"node", name_}};
  } else {
    st["message"] = "starting on node " + name_;
  }
  Call("PUT", InstancePath(key) + "/status", obj, [this, key, phase](Reply r) {
    auto it = instances_.find(key);
    if (it == instances_.end()) return;
    Instance& in = it->second;
    in.busy = false;
    if (r.status == 200) {
      fleet_->counters().status_writes++;
      json now = ParseBody(r);
      if (now.is_object() && Revision(now) > Revision(in.object)) in.object = std::move(now);
      return Reconcile(key);  // CREATING -> RUNNING, or the bookkeeping of RUNNING
    }
    if (r.status == 409 || r.status == 412) {
      // Someone else wrote it: the watch brings the newer object (or already did).
      fleet_->counters().status_conflicts++;
      if (in.dirty) Reconcile(key);
      return;
    }
    if (r.status == 404) return;  // gone; the watch says so too
    fleet_->counters().errors++;
    spdlog::warn("{}: status of {}: {} {}", name_, key, r.status, r.status ? r.body : r.error);
    After(kRetry, [this, key] { Reconcile(key); });
  });
}

void HollowNode::Finish(const std::string& key) {
  instances_[key].busy = true;
  Call("DELETE", InstancePath(key), nullptr, [this, key](Reply r) {
    auto it = instances_.find(key);
    if (it != instances_.end()) it->second.busy = false;
    if (r.status == 200 || r.status == 202 || r.status == 404) {
      fleet_->counters().deletes++;
      if (it != instances_.end()) it->second.deleted = true;
      return;  // the watch's DELETED forgets it
    }
    fleet_->counters().errors++;
    spdlog::warn("{}: finishing the delete of {}: {} {}", name_, key, r.status,
                 r.status ? r.body : r.error);
    After(milliseconds(2000), [this, key] { Reconcile(key); });
  });
}

}  // namespace photon::hollow
