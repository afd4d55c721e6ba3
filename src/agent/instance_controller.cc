#include "agent/instance_controller.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>

#include "agent/host/record_log.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
namespace fs = std::filesystem;
using json = nlohmann::json;
using resource::ResourceStatus;

namespace {

StatusOr<compute::ComputeInstance> ParseInstance(const json& obj) {
  compute::ComputeInstance inst;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(obj.dump(), &inst, opts);
  if (!st.ok())
    return absl::DataLossError("bad ComputeInstance JSON: " + std::string(st.message()));
  return inst;
}

std::string ObjectPath(const std::string& kind, const std::string& key) {
  auto slash = key.find('/');
  return "/v1/namespaces/" + key.substr(0, slash) + "/" + kind + "/" + key.substr(slash + 1);
}

// Set by whatever a reconcile changes (a start, destroy, status write or delete), so the
// worker can count the reconciles that changed nothing. Each worker thread runs one reconcile
// at a time.
thread_local bool t_acted = false;

uint64_t Revision(const json& obj) {
  if (!obj.is_object() || !obj.contains("metadata")) return 0;
  return std::strtoull(obj["metadata"].value("resourceVersion", "0").c_str(), nullptr, 10);
}

std::string StateName(const json& op) {
  if (!op.contains("status") || !op["status"].is_object()) return "PENDING";
  return op["status"].value("state", "PENDING");
}

}  // namespace

InstanceController::InstanceController(ControllerOptions options, ApiClient* api,
                                       ProviderRegistry* registry, MetricsRegistry* metrics)
    : options_(std::move(options)), api_(api), registry_(registry) {
  reconciles_ = metrics->GetCounter("photon_agent_reconciles_total", "Reconcile passes");
  noop_reconciles_ = metrics->GetCounter(
      "photon_agent_noop_reconciles_total",
      "Reconcile passes that changed nothing (no start, destroy, status write or delete)");
  echoes_skipped_ = metrics->GetCounter(
      "photon_agent_own_write_events_total",
      "Instance events not reconciled: the echo of this agent's own status write");
  starts_ = metrics->GetCounter("photon_agent_instance_starts_total", "Instances started");
  destroys_ = metrics->GetCounter("photon_agent_instance_destroys_total", "Instances destroyed");
  errors_ = metrics->GetCounter("photon_agent_reconcile_errors_total", "Failed reconciles");
  actions_run_ = metrics->GetCounter("photon_agent_actions_total", "Actions executed");
  reconcile_seconds_ =
      metrics->GetHistogram("photon_agent_reconcile_seconds", "Time per reconcile pass");
  // The stages of a start, to tell where the time of a reconcile goes.
  start_seconds_ =
      metrics->GetHistogram("photon_agent_provider_start_seconds", "Time per provider Start");
  status_write_seconds_ = metrics->GetHistogram("photon_agent_status_write_seconds",
                                                "Time per instance status write (with retries)");
  status_writes_ = metrics->GetCounter("photon_agent_status_writes_total",
                                       "Instance status writes the server accepted");
}

InstanceController::~InstanceController() { Stop(); }

void InstanceController::SetInformers(Informer* instances, Informer* operations) {
  instances_ = instances;
  operations_ = operations;
}

void InstanceController::Start() {
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { Worker(); });
  threads_.emplace_back([this] { ActionWorker(); });
  threads_.emplace_back([this] { ActionWorker(); });
}

void InstanceController::Stop() {
  queue_.ShutDown();
  actions_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

// ---- handle records -------------------------------------------------------------------------

namespace {

json RecordJson(const std::string& id, const std::string& key, const std::string& driver,
                const std::string& data, int64_t generation) {
  return json{
      {"id", id}, {"key", key}, {"driver", driver}, {"data", data}, {"generation", generation}};
}

}  // namespace

// The records live in one log (DIR/handles.log, host/record_log.h). An agent of an earlier
// version kept a file per record in DIR/handles/: those are moved into the log once.
void InstanceController::LoadRecords() {
  auto log = RecordLog::Open(options_.data_dir + "/handles.log");
  if (!log.ok()) {
    spdlog::error("handle records: {}", log.status().ToString());
    return;
  }
  log_ = std::move(*log);
  std::string legacy = options_.data_dir + "/handles";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(legacy, ec)) {
    auto data = ReadFile(e.path().string());
    json j = data.ok() ? json::parse(*data, nullptr, false) : json();
    if (j.is_object() && !j.value("id", "").empty()) {
      Status s = log_->Put(j.value("id", ""), j.dump());
      if (!s.ok()) {
        spdlog::error("moving {} into the handle log: {}", e.path().string(), s.ToString());
        continue;
      }
    }
    fs::remove(e.path(), ec);
  }
  fs::remove(legacy, ec);
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [id, text] : log_->Records()) {
    json j = json::parse(text, nullptr, false);
    if (!j.is_object()) continue;
    Record r;
    r.id = id;
    r.key = j.value("key", "");
    r.driver = j.value("driver", "");
    r.data = j.value("data", "");
    r.generation = j.value("generation", int64_t{0});
    records_[r.id] = r;
  }
  running_ = records_.size();
}

// Returns once the record is on disk: the log's group commit makes the workers that save at
// the same moment share one fdatasync.
void InstanceController::SaveRecord(const Record& r) {
  Status s = log_ ? log_->Put(r.id, RecordJson(r.id, r.key, r.driver, r.data, r.generation).dump())
                  : absl::FailedPreconditionError("the handle log could not be opened");
  if (!s.ok()) spdlog::error("persisting handle of {}: {}", r.key, s.ToString());
  std::lock_guard<std::mutex> l(mu_);
  records_[r.id] = r;
  running_ = records_.size();
}

void InstanceController::EraseRecord(const std::string& id) {
  if (log_) {
    Status s = log_->Erase(id);
    if (!s.ok()) spdlog::error("erasing the handle of {}: {}", id, s.ToString());
  }
  std::lock_guard<std::mutex> l(mu_);
  records_.erase(id);
  failures_.erase(id);
  running_ = records_.size();
}

std::vector<InstanceController::Record> InstanceController::RecordsForKey(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Record> out;
  for (const auto& [id, r] : records_) {
    if (r.key == key) out.push_back(r);
  }
  return out;
}

std::optional<InstanceController::Record> InstanceController::RecordFor(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

void InstanceController::DestroyLocal(const std::string& id, const std::string& driver) {
  t_acted = true;
  Provider* p = registry_->Find(driver);
  if (p != nullptr) {
    Status s = p->Destroy(id);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      spdlog::warn("destroy {} ({}): {}", id, driver, s.ToString());
    }
  }
  // The port goes after its workload (a port namespace never outlives its instance).
  if (wiring_ != nullptr) {
    Status s = wiring_->Unwire(id);
    if (!s.ok()) spdlog::warn("removing the port of {}: {}", id, s.ToString());
  }
  destroys_->Inc();
  EraseRecord(id);
}

// Ports of instances this node no longer runs (deleted while the agent was down).
void InstanceController::SweepOrphanPorts(const std::function<std::set<std::string>()>& keep_fn) {
  if (wiring_ == nullptr) return;
  // The ports first, then the instances: a port made meanwhile is not looked at, and one listed
  // here was made for an instance that was already known, so it is kept unless that is gone.
  const std::vector<std::string> ids = wiring_->PortIds();
  const std::set<std::string> keep = keep_fn();
  for (const auto& id : ids) {
    if (keep.count(id)) continue;
    spdlog::info("network: removing the orphan port of {}", id);
    Status s = wiring_->Unwire(id);
    if (!s.ok()) spdlog::warn("removing the orphan port of {}: {}", id, s.ToString());
  }
}

bool InstanceController::WireNetwork(const std::string& key, const compute::ComputeInstance& inst,
                                     bool running, std::string* netns_error) {
  if (wiring_ == nullptr) return true;
  std::optional<json> port;
  if (ports_ != nullptr) port = ports_->Get(key);
  auto netns = wiring_->Wire(inst, port);
  if (netns.ok()) return true;
  const auto code = netns.status().code();
  const std::string message(netns.status().message());
  if (running) {
    // The workload runs in its port already; the last ruleset applied stays. Said in its status.
    *netns_error = message;
    if (code != absl::StatusCode::kFailedPrecondition)
      queue_.AddAfter(key, std::chrono::seconds(1));
    return true;
  }
  if (code == absl::StatusCode::kUnavailable) {
    queue_.AddAfter(key, std::chrono::milliseconds(200));  // the Port's event requeues sooner
    return false;
  }
  spdlog::warn("{}: network: {}", key, message);
  (void)WriteError(key, inst.metadata().generation(), message);
  if (code != absl::StatusCode::kFailedPrecondition) queue_.AddAfter(key, std::chrono::seconds(2));
  return false;
}

// ---- startup sweep --------------------------------------------------------------------------

Status InstanceController::Adopt() {
  LoadRecords();
  struct Want {
    std::string key;
    std::string driver;
    int64_t generation;
  };
  std::map<std::string, Want> desired;
  for (const auto& key : instances_->Keys()) {
    auto obj = instances_->Get(key);
    if (!obj) continue;
    auto inst = ParseInstance(*obj);
    if (!inst.ok()) continue;
    const auto& md = inst->metadata();
    if (md.agent_id() != options_.node_name || !md.deletion_timestamp().empty()) continue;
    desired[md.id()] = Want{key, DriverOf(*inst), md.generation()};
  }
  int adopted = 0, destroyed = 0;
  for (const auto& [driver, provider] : registry_->all()) {
    if (!options_.drivers.count(driver)) continue;
    auto handles = provider->List();
    if (!handles.ok()) {
      spdlog::warn("{}: cannot list instances: {}", driver, handles.status().ToString());
      continue;
    }
    for (const auto& h : *handles) {
      auto want = desired.find(h.instance_id);
      if (want != desired.end() && want->second.driver == driver && !h.data.empty()) {
        auto rec = RecordFor(h.instance_id);
        Handle use = h;
        if (rec && rec->driver == driver && !rec->data.empty()) use.data = rec->data;
        Status s = provider->Recover(use);
        if (!s.ok()) spdlog::warn("recover {}: {}", want->second.key, s.ToString());
        if (!rec) {
          SaveRecord(
              Record{h.instance_id, want->second.key, driver, h.data, want->second.generation});
        }
        ++adopted;
      } else {
        spdlog::info("{}: destroying orphan {}", driver, h.instance_id);
        Status s = provider->Destroy(h.instance_id);
        if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
          spdlog::warn("destroy orphan {}: {}", h.instance_id, s.ToString());
        }
        EraseRecord(h.instance_id);
        ++destroyed;
      }
    }
  }
  SweepOrphanPorts([&] {
    std::set<std::string> keep;
    for (const auto& [id, want] : desired) keep.insert(id);
    return keep;
  });
  if (wiring_ != nullptr) {
    std::vector<compute::ComputeInstance> running;
    for (const auto& [id, want] : desired) {
      if (auto obj = instances_->Get(want.key)) {
        if (auto inst = ParseInstance(*obj); inst.ok()) running.push_back(*inst);
      }
    }
    if (Status s = wiring_->SweepLbVips(running); !s.ok()) {
      spdlog::warn("network: L4 VIP sweep: {}", s.ToString());
    }
  }
  spdlog::info("adopted {} running instances, destroyed {} orphans", adopted, destroyed);
  ResyncAll();
  for (const auto& key : instances_->Keys()) queue_.Add(key);
  if (operations_ != nullptr) {
    for (const auto& key : operations_->Keys()) OnOperation(key);
  }
  return absl::OkStatus();
}

void InstanceController::ResyncAll() {
  std::set<std::string> keys;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, r] : records_) keys.insert(r.key);
    for (const auto& [id, f] : failures_) {
      if (!f.permanent) {
        for (const auto& [rid, r] : records_) {
          if (rid == id) keys.insert(r.key);
        }
      }
    }
  }
  for (const auto& key : instances_->Keys()) {
    auto obj = instances_->Get(key);
    if (obj && obj->contains("metadata") &&
        (*obj)["metadata"].value("agentId", "") == options_.node_name) {
      keys.insert(key);
    }
  }
  for (const auto& k : keys) queue_.Add(k);
  if (wiring_ != nullptr) {
    // A port whose instance left without a local record (its start failed, say).
    SweepOrphanPorts([this] {
      std::set<std::string> keep;
      for (const auto& key : instances_->Keys()) {
        auto obj = instances_->Get(key);
        if (obj && obj->contains("metadata")) keep.insert((*obj)["metadata"].value("id", ""));
      }
      return keep;
    });
  }
}

// ---- reconcile ------------------------------------------------------------------------------

void InstanceController::OnInstance(const std::string& key) {
  if (OwnWriteEcho(key)) {
    echoes_skipped_->Inc();
    return;
  }
  queue_.Add(key);
}

bool InstanceController::OwnWriteEcho(const std::string& key) {
  auto obj = instances_->Get(key);  // the informer updates its cache before it calls us
  if (!obj) return false;
  std::lock_guard<std::mutex> l(mu_);
  auto w = written_.find(key);
  if (w == written_.end() || Revision(w->second) != Revision(*obj)) return false;
  written_.erase(w);
  return true;
}

void InstanceController::Worker() {
  std::string key;
  while (queue_.Get(&key)) {
    int64_t t0 = MonotonicNanos();
    t_acted = false;
    Reconcile(key);
    reconciles_->Inc();
    if (!t_acted) noop_reconciles_->Inc();
    reconcile_seconds_->Observe(static_cast<double>(MonotonicNanos() - t0) / 1e9);
    queue_.Done(key);
  }
}

void InstanceController::Reconcile(const std::string& key) {
  auto obj = instances_->Get(key);
  auto records = RecordsForKey(key);
  if (!obj) {
    {
      std::lock_guard<std::mutex> l(mu_);
      written_.erase(key);
    }
    for (const auto& r : records) {
      spdlog::info("{}: gone from the control plane; destroying", key);
      DestroyLocal(r.id, r.driver);
    }
    return;
  }
  auto parsed = ParseInstance(*obj);
  if (!parsed.ok()) {
    spdlog::warn("{}: {}", key, parsed.status().ToString());
    return;
  }
  const compute::ComputeInstance& inst = *parsed;
  const auto& md = inst.metadata();
  const std::string& id = md.id();
  for (const auto& r : records) {
    if (r.id != id) DestroyLocal(r.id, r.driver);  // an older object of the same name
  }
  auto rec = RecordFor(id);
  if (md.agent_id() != options_.node_name) {
    if (rec) {
      spdlog::info("{}: placed on '{}' now; destroying the local copy", key, md.agent_id());
      DestroyLocal(id, rec->driver);
    }
    return;
  }
  if (!md.deletion_timestamp().empty()) {
    if (rec && wiring_ != nullptr && md.labels().count("photon.io/regionservice")) {
      // A load-balanced replica leaving: it keeps running while its established flows finish
      // (fiberlb keeps sending them here), bounded by the LoadBalancer's drain timeout.
      std::chrono::steady_clock::time_point since;
      {
        std::lock_guard<std::mutex> l(mu_);
        since = drains_.try_emplace(id, std::chrono::steady_clock::now()).first->second;
      }
      const std::string why =
          wiring_->LbDrainPending(inst, std::chrono::steady_clock::now() - since);
      if (!why.empty()) {
        spdlog::debug("{}: draining before the delete: {}", key, why);
        queue_.AddAfter(key, std::chrono::milliseconds(200));
        return;
      }
      std::lock_guard<std::mutex> l(mu_);
      drains_.erase(id);
    }
    if (rec) {
      DestroyLocal(id, rec->driver);
    } else if (Provider* p = registry_->Find(DriverOf(inst)); p != nullptr) {
      (void)p->Destroy(id);
      if (wiring_ != nullptr) (void)wiring_->Unwire(id);
    }
    t_acted = true;
    auto r = api_->Call("DELETE", ObjectPath("computeinstances", key));
    if (!r.ok() && r.status().code() != absl::StatusCode::kNotFound) {
      spdlog::warn("{}: finishing the delete: {}", key, r.status().ToString());
      queue_.AddAfter(key, std::chrono::seconds(2));
    } else {
      spdlog::info("{}: deleted", key);
    }
    return;
  }
  std::string driver = DriverOf(inst);
  if (driver.empty()) {
    (void)WriteError(key, md.generation(),
                     "spec: no backend; set one of spec.process, spec.container, spec.vm");
    return;
  }
  Provider* provider = registry_->Find(driver);
  if (provider == nullptr || !options_.drivers.count(driver)) {
    (void)WriteError(key, md.generation(),
                     "spec." + driver + ": driver '" + driver + "' is not available on node " +
                         options_.node_name);
    return;
  }
  if (rec && (rec->driver != driver || rec->generation < md.generation())) {
    spdlog::info("{}: spec changed (generation {} -> {}); recreating", key, rec->generation,
                 md.generation());
    DestroyLocal(id, rec->driver);
    rec.reset();
  }
  auto observed = provider->Inspect(id);
  std::string network_error;
  if (!WireNetwork(key, inst, observed.ok(), &network_error)) return;
  if (observed.ok()) {
    if (!rec) SaveRecord(Record{id, key, driver, "", md.generation()});
    AddNetworkDetails(id, network_error, &*observed);
    Status s = WriteObserved(key, md.generation(), *observed);
    if (!s.ok()) {
      errors_->Inc();
      queue_.AddAfter(key, std::chrono::seconds(1));
    }
    return;
  }
  if (observed.status().code() != absl::StatusCode::kNotFound) {
    errors_->Inc();
    spdlog::warn("{}: inspect: {}", key, observed.status().ToString());
    queue_.AddAfter(key, std::chrono::seconds(2));
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    auto f = failures_.find(id);
    if (f != failures_.end() && f->second.generation == md.generation()) {
      if (f->second.permanent || std::chrono::steady_clock::now() < f->second.retry_at) return;
    }
  }
  // Not running here: start it. A quick start is not announced: its outcome is the one status
  // write (a second write per instance halved the start rate of 1,000 processes).
  if (provider->SlowStart() && inst.status().phase() != ResourceStatus::CREATING) {
    (void)WriteStatus(key, [&](ResourceStatus* st) {
      st->set_phase(ResourceStatus::CREATING);
      st->set_message("starting on node " + options_.node_name);
      return true;
    });
  }
  const int64_t start_t0 = MonotonicNanos();
  t_acted = true;
  auto handle = provider->Start(inst);
  start_seconds_->Observe(static_cast<double>(MonotonicNanos() - start_t0) / 1e9);
  if (!handle.ok()) {
    errors_->Inc();
    bool permanent = handle.status().code() == absl::StatusCode::kInvalidArgument;
    std::chrono::seconds delay(1);
    {
      std::lock_guard<std::mutex> l(mu_);
      Failure& f = failures_[id];
      if (f.generation != md.generation()) f = Failure{md.generation()};
      f.attempts++;
      f.permanent = permanent;
      delay = std::chrono::seconds(std::min(60, 1 << std::min(f.attempts, 6)));
      f.retry_at = std::chrono::steady_clock::now() + delay;
    }
    spdlog::warn("{}: start failed: {}", key, handle.status().ToString());
    (void)WriteError(key, md.generation(), std::string(handle.status().message()));
    if (!permanent) queue_.AddAfter(key, delay);
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    failures_.erase(id);
  }
  starts_->Inc();
  SaveRecord(Record{id, key, driver, handle->data, md.generation()});
  auto now = provider->Inspect(id);
  if (now.ok()) {
    AddNetworkDetails(id, "", &*now);
    (void)WriteObserved(key, md.generation(), *now);
  }
  queue_.AddAfter(key, std::chrono::seconds(1));  // catch an early exit
}

// ---- status ---------------------------------------------------------------------------------

// Where the workload's network is: its port namespace, or the node's (hostNetwork, or an agent
// in network mode "shared").
void InstanceController::AddNetworkDetails(const std::string& id, const std::string& error,
                                           Observed* o) {
  if (wiring_ == nullptr) return;
  std::string netns = wiring_->NetnsOf(id);
  if (!netns.empty()) {
    o->details["network.netns"] = netns.substr(netns.rfind('/') + 1);
    o->details["network.wired"] = "port";
  } else {
    o->details["network.wired"] = "node";
  }
  // An L4 LoadBalancer member: its VIP is on the node's or its port's loopback (port_wiring.h).
  if (std::string vip = wiring_->LbVipOf(id); !vip.empty()) {
    o->details["network.lbVip"] = vip;
    o->details["network.lbAddress"] = wiring_->LbAddressOf(id);
  }
  if (!error.empty()) {
    o->details["network.error"] = error;
    o->message = (o->message.empty() ? "" : o->message + "; ") + "network: " + error;
  }
}

Status InstanceController::WriteStatus(const std::string& key,
                                       const std::function<bool(ResourceStatus*)>& mutate) {
  const int64_t t0 = MonotonicNanos();
  Status s = WriteStatusOnce(key, mutate);
  status_write_seconds_->Observe(static_cast<double>(MonotonicNanos() - t0) / 1e9);
  return s;
}

Status InstanceController::WriteStatusOnce(const std::string& key,
                                           const std::function<bool(ResourceStatus*)>& mutate) {
  std::string path = ObjectPath("computeinstances", key);
  json obj;
  if (auto cached = instances_->Get(key)) {
    obj = *cached;
  } else {
    PHOTON_ASSIGN_OR_RETURN(obj, api_->Get(path));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    auto w = written_.find(key);
    if (w != written_.end()) {
      if (Revision(w->second) > Revision(obj)) {
        obj = w->second;
      } else {
        written_.erase(w);  // the informer has caught up
      }
    }
  }
  google::protobuf::util::JsonParseOptions popts;
  popts.ignore_unknown_fields = true;
  for (int attempt = 0; attempt < 10; ++attempt) {
    ResourceStatus st;
    if (obj.contains("status") && obj["status"].is_object()) {
      (void)google::protobuf::util::JsonStringToMessage(obj["status"].dump(), &st, popts);
    }
    ResourceStatus before = st;
    if (!mutate(&st)) return absl::OkStatus();
    if (google::protobuf::util::MessageDifferencer::Equals(before, st)) return absl::OkStatus();
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(st, &out);
    obj["status"] = json::parse(out);
    t_acted = true;
    auto r = api_->Call("PUT", path + "/status", obj);
    if (r.ok()) {
      status_writes_->Inc();
      std::lock_guard<std::mutex> l(mu_);
      written_[key] = std::move(*r);
      return absl::OkStatus();
    }
    if (r.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
    if (r.status().code() != absl::StatusCode::kAborted &&
        r.status().code() != absl::StatusCode::kFailedPrecondition) {
      return r.status();
    }
    PHOTON_ASSIGN_OR_RETURN(obj, api_->Get(path));  // conflict: read again and retry
  }
  return absl::AbortedError("status of " + key + ": too many conflicts");
}

// Status details the server owns on a networked instance (its IPAM's; it keeps them through
// every status write and lists network.address first among the addresses).
constexpr const char* kServerDetails[] = {"network.vpc",     "network.subnet", "network.cidr",
                                          "network.address", "network.mac",    "network.port",
                                          "network.mode"};

Status InstanceController::WriteObserved(const std::string& key, int64_t generation,
                                         const Observed& o) {
  if (observed_hook_) observed_hook_(key, o.details);
  return WriteStatus(key, [&](ResourceStatus* st) {
    if (st->phase() == ResourceStatus::DELETING) return false;
    st->set_phase(o.phase);
    st->set_message(o.message);
    st->set_exit_code(o.exit_code);
    st->set_observed_generation(generation);
    // The server's details and address are kept as the server would put them back: otherwise
    // every write differs from what the server stored, and each write's own event caused the
    // next one (hundreds of writes a second per instance).
    std::map<std::string, std::string> server;
    for (const char* k : kServerDetails) {
      if (auto it = st->details().find(k); it != st->details().end()) server[k] = it->second;
    }
    st->clear_addresses();
    if (server.count("network.address")) st->add_addresses(server["network.address"]);
    for (const auto& a : o.addresses) {
      if (!server.count("network.address") || a != server["network.address"]) st->add_addresses(a);
    }
    st->clear_details();
    for (const auto& [k, v] : o.details) (*st->mutable_details())[k] = v;
    for (const auto& [k, v] : server) (*st->mutable_details())[k] = v;
    (*st->mutable_details())["node"] = options_.node_name;
    return true;
  });
}

Status InstanceController::WriteError(const std::string& key, int64_t generation,
                                      const std::string& message) {
  return WriteStatus(key, [&](ResourceStatus* st) {
    st->set_phase(ResourceStatus::ERROR);
    st->set_message(message);
    st->set_observed_generation(generation);
    return true;
  });
}

// ---- actions --------------------------------------------------------------------------------

void InstanceController::OnOperation(const std::string& key) {
  auto op = operations_->Get(key);
  if (!op || !op->contains("metadata")) return;
  if ((*op)["metadata"].value("agentId", "") != options_.node_name) return;
  if (StateName(*op) != "PENDING") return;
  std::string verb = op->contains("spec") ? (*op)["spec"].value("verb", "") : "";
  if (verb.rfind("action:", 0) != 0) return;
  actions_.Add(key);
}

void InstanceController::ActionWorker() {
  std::string key;
  while (actions_.Get(&key)) {
    RunAction(key);
    actions_.Done(key);
  }
}

void InstanceController::RunAction(const std::string& key) {
  auto op = operations_->Get(key);
  if (!op) return;
  std::string op_id = (*op)["metadata"].value("id", "");
  {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ops_.count(op_id)) return;
  }
  if (StateName(*op) != "PENDING") return;
  const json& spec = (*op)["spec"];
  std::string action = spec.value("verb", "").substr(7);
  std::string target_kind = spec.value("targetKind", "");
  std::string target_key = spec.value("targetNamespace", "") + "/" + spec.value("targetName", "");
  std::map<std::string, std::string> params;
  if ((*op)["metadata"].contains("annotations")) {
    for (auto& [k, v] : (*op)["metadata"]["annotations"].items()) {
      if (v.is_string()) params[k] = v.get<std::string>();
    }
  }
  bool ok = false;
  std::string message;
  if (target_kind != "computeinstances") {
    message = "the agent runs no actions on " + target_kind;
  } else {
    std::string id = spec.value("targetId", "");
    std::string driver;
    if (auto rec = RecordFor(id)) driver = rec->driver;
    if (driver.empty()) {
      if (auto obj = instances_->Get(target_key)) {
        auto inst = ParseInstance(*obj);
        if (inst.ok()) {
          driver = DriverOf(*inst);
          if (id.empty()) id = inst->metadata().id();
        }
      }
    }
    Provider* p = registry_->Find(driver);
    if (p == nullptr) {
      message = target_key + " does not run on node " + options_.node_name;
    } else {
      auto r = p->Execute(id, action, params);
      ok = r.ok();
      message = r.ok() ? r->output : std::string(r.status().message());
    }
  }
  actions_run_->Inc();
  spdlog::info("action {} on {}: {}", action, target_key, ok ? "done" : message);
  // The operation's status: DONE with the output, or FAILED with the reason.
  std::string path = ObjectPath("operations", key) + "/status";
  json obj = *op;
  for (int attempt = 0; attempt < 10; ++attempt) {
    obj["status"] =
        json{{"state", ok ? "DONE" : "FAILED"}, {"message", message}, {"doneAt", NowRfc3339()}};
    auto r = api_->Call("PUT", path, obj);
    if (r.ok()) break;
    if (r.status().code() != absl::StatusCode::kAborted &&
        r.status().code() != absl::StatusCode::kFailedPrecondition) {
      spdlog::warn("operation {}: {}", key, r.status().ToString());
      break;
    }
    auto fresh = api_->Get(ObjectPath("operations", key));
    if (!fresh.ok()) break;
    obj = *fresh;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    done_ops_.insert(op_id);
  }
  queue_.Add(target_key);
}

}  // namespace photon::agent
