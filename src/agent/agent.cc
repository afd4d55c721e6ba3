#include "agent/agent.h"

#include <google/protobuf/util/json_util.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "agent/metadata_directory.h"
#include "agent/node_object.h"
#include "agent/providers/builtin.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/util.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
using json = nlohmann::json;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

int64_t HostMemoryMb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb / 1024;
  }
  return 0;
}

int64_t HostDiskGb(const std::string& dir) {
  struct statvfs s;
  if (::statvfs(dir.c_str(), &s) != 0) return 0;
  return static_cast<int64_t>(s.f_blocks) * static_cast<int64_t>(s.f_frsize) / (1LL << 30);
}

template <typename T>
StatusOr<T> ParseProto(const json& j) {
  T msg;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(j.dump(), &msg, opts);
  if (!st.ok()) return absl::DataLossError(std::string(st.message()));
  return msg;
}

}  // namespace

Agent::Agent(AgentOptions options) : options_(std::move(options)) {
  // Providers hand paths to runc and to children with another working directory.
  std::error_code ec;
  auto abs = std::filesystem::absolute(options_.data_dir, ec);
  if (!ec) options_.data_dir = abs.lexically_normal().string();
  std::string base = options_.server;
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) base = "http://" + base;
  api_ = std::make_unique<ApiClient>(base, options_.ca_file);
  heartbeat_age_ = metrics_.GetGauge("photon_agent_last_heartbeat_timestamp_seconds",
                                     "Unix time of the last successful heartbeat");
  heartbeat_failures_ =
      metrics_.GetCounter("photon_agent_heartbeat_failures_total", "Failed heartbeats");
}

Agent::~Agent() { Stop(); }

// On an https control plane with the built-in CA the node's identity is its certificate and
// it holds no token; elsewhere (plain HTTP, a CA of one's own) the bearer credential.
Status Agent::Join() {
  if (options_.server.rfind("https://", 0) == 0) {
    PHOTON_ASSIGN_OR_RETURN(std::string ca, ResolvePinnedCa(options_.server, options_.ca_file,
                                                            options_.ca_hash, options_.data_dir));
    api_->SetCaFile(ca);
    if (!options_.ca_hash.empty() || ServerIssuesCertificates(api_.get())) return JoinWithCert();
  }
  std::string cred_path = options_.data_dir + "/credential";
  if (auto cred = ReadFile(cred_path); cred.ok() && !Trim(*cred).empty()) {
    api_->SetToken(Trim(*cred));
    auto probe = api_->Get("/v1/namespaces/system/nodes/" + options_.name);
    if (probe.ok() || probe.status().code() == absl::StatusCode::kNotFound) {
      spdlog::info("reusing the stored credential of node {}", options_.name);
      return absl::OkStatus();
    }
    if (probe.status().code() != absl::StatusCode::kUnauthenticated) return probe.status();
    spdlog::warn("the stored credential was refused; joining again");
  }
  PHOTON_ASSIGN_OR_RETURN(std::string join_token, ReadFile(options_.token_file));
  PHOTON_ASSIGN_OR_RETURN(json r, api_->CallWithToken(Trim(join_token), "POST", "/v1/join",
                                                      json{{"node", options_.name}}));
  std::string token = r.value("token", "");
  if (token.empty()) return absl::DataLossError("join answered without a token");
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(cred_path, token + "\n", 0600));
  api_->SetToken(token);
  spdlog::info("joined as {}", r.value("principal", ""));
  return absl::OkStatus();
}

Status Agent::JoinWithCert() {
  certs_ = std::make_unique<NodeCertificates>(api_.get(), options_.data_dir, options_.name);
  std::error_code ignored;
  std::filesystem::remove(options_.data_dir + "/credential", ignored);  // of a bearer join
  if (certs_->LoadStored()) {
    auto probe = api_->Get("/v1/namespaces/system/nodes/" + options_.name);
    if (probe.ok() || probe.status().code() == absl::StatusCode::kNotFound) {
      spdlog::info("reusing the stored certificate of node {}", options_.name);
      return certs_->RenewIfDue();
    }
    if (probe.status().code() != absl::StatusCode::kUnauthenticated) return probe.status();
    spdlog::warn("the stored certificate was refused ({}); joining again",
                 std::string(probe.status().message()));
  }
  PHOTON_ASSIGN_OR_RETURN(std::string join_token, ReadFile(options_.token_file));
  return certs_->Join(Trim(join_token));
}

Status Agent::InitProviders() {
  RegisterBuiltinProviders(&registry_);
  for (const auto& [driver, provider] : registry_.all()) {
    ProviderContext ctx;
    ctx.node_name = options_.name;
    ctx.lookup = this;
    ctx.data_dir = options_.data_dir + "/providers/" + driver;
    if (auto it = options_.drivers.find(driver); it != options_.drivers.end()) {
      ctx.config = it->second;
    }
    if (ctx.config.count("enabled") && ctx.config["enabled"] == "false") continue;
    PHOTON_RETURN_IF_ERROR(MakeDirs(ctx.data_dir, 0700));
    Status s = provider->Initialize(ctx);
    if (!s.ok()) {
      spdlog::warn("driver {}: initialize: {}", driver, s.ToString());
      continue;
    }
    auto fp = provider->Fingerprint();
    if (!fp.ok()) {
      spdlog::info("driver {} unavailable: {}", driver, fp.status().ToString());
      continue;
    }
    drivers_.insert(driver);
    for (const auto& [k, v] : *fp) attributes_[k] = v;
    spdlog::info("driver {} available", driver);
  }
  return absl::OkStatus();
}

json Agent::NodeSpec() const {
  NodeOffer offer;
  offer.vcpu =
      options_.vcpu > 0 ? options_.vcpu : static_cast<int>(std::thread::hardware_concurrency());
  offer.memory_mb = options_.memory_mb > 0 ? options_.memory_mb : HostMemoryMb();
  offer.disk_gb = options_.disk_gb > 0 ? options_.disk_gb : HostDiskGb(options_.data_dir);
  offer.drivers = drivers_;
  offer.attributes = attributes_;
  offer.address = "127.0.0.1:" + std::to_string(http_port());
  return NodeSpecJson(offer);
}

Status Agent::RegisterNode() {
  std::string path = "/v1/namespaces/system/nodes/" + options_.name;
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto cur = api_->Get(path);
    if (!cur.ok() && cur.status().code() == absl::StatusCode::kNotFound) {
      json node = NewNodeObject(options_.name, options_.labels, NodeSpec());
      auto r = api_->Call("POST", "/v1/namespaces/system/nodes", node);
      if (r.ok()) {
        spdlog::info("registered node {}", options_.name);
        return absl::OkStatus();
      }
      if (r.status().code() == absl::StatusCode::kAlreadyExists ||
          r.status().code() == absl::StatusCode::kAborted) {
        continue;
      }
      return r.status();
    }
    if (!cur.ok()) return cur.status();
    json node = MergeNodeRegistration(*cur, NodeSpec(), options_.labels);
    auto r = api_->Call("PUT", path, node);
    if (r.ok()) {
      spdlog::info("updated node {}", options_.name);
      return absl::OkStatus();
    }
    if (r.status().code() != absl::StatusCode::kAborted &&
        r.status().code() != absl::StatusCode::kFailedPrecondition) {
      return r.status();
    }
  }
  return absl::AbortedError("registering node " + options_.name + ": too many conflicts");
}

Status Agent::Heartbeat() {
  std::string path = "/v1/namespaces/system/nodes/" + options_.name;
  for (int attempt = 0; attempt < 5; ++attempt) {
    PHOTON_ASSIGN_OR_RETURN(json node, api_->Get(path));
    MarkHeartbeat(&node, std::to_string(controller_ ? controller_->Running() : 0) + " instances");
    auto r = api_->Call("PUT", path + "/status", node);
    if (r.ok()) {
      heartbeat_age_->Set(static_cast<double>(time(nullptr)));
      return absl::OkStatus();
    }
    if (r.status().code() == absl::StatusCode::kNotFound) {
      PHOTON_RETURN_IF_ERROR(RegisterNode());  // deleted by an admin: register again
      continue;
    }
    if (r.status().code() != absl::StatusCode::kAborted &&
        r.status().code() != absl::StatusCode::kFailedPrecondition) {
      return r.status();
    }
  }
  return absl::AbortedError("heartbeat: too many conflicts");
}

StatusOr<compute::Image> Agent::GetImage(const std::string& ns, const std::string& name) {
  // "OTHER/NAME": an image another namespace shared publicly (docs/images.md); the agent may
  // read every namespace's images, so it is the one to refuse a private one.
  const auto slash = name.find('/');
  const std::string from = slash == std::string::npos ? ns : name.substr(0, slash);
  const std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
  PHOTON_ASSIGN_OR_RETURN(json j, api_->Get("/v1/namespaces/" + PercentEncode(from) + "/images/" +
                                            PercentEncode(base)));
  PHOTON_ASSIGN_OR_RETURN(auto image, ParseProto<compute::Image>(j));
  if (from != ns && image.status().details().count("public") == 0) {
    return absl::NotFoundError("image " + name + " is not shared publicly");
  }
  return image;
}

StatusOr<std::string> Agent::FetchImage(const compute::Image& image, const std::string& holder) {
  if (!image_cache_) return ResourceLookup::FetchImage(image, holder);
  return image_cache_->Fetch(image, holder);
}

StatusOr<storage::Volume> Agent::GetVolume(const std::string& ns, const std::string& name) {
  PHOTON_ASSIGN_OR_RETURN(json j, api_->Get("/v1/namespaces/" + ns + "/volumes/" + name));
  return ParseProto<storage::Volume>(j);
}

std::string Agent::PortNetns(const std::string& instance_id) {
  return wiring_ ? wiring_->NetnsOf(instance_id) : "";
}

HttpResponse Agent::Serve(HttpRequest& req) {
  if (req.path == "/healthz") {
    return ready_ ? HttpResponse::Text(200, "ok\n") : HttpResponse::Text(503, "starting\n");
  }
  if (req.path == "/metrics") {
    HttpResponse r = HttpResponse::Text(200, metrics_.Render() + usage_->Render());
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }
  return HttpResponse::Text(404, "not found\n");
}

Status Agent::Start() {
  PHOTON_RETURN_IF_ERROR(MakeDirs(options_.data_dir, 0700));
  usage_ = std::make_unique<InstanceMetrics>(options_.name);
  HttpServerOptions hopts;
  hopts.listen = options_.listen;
  hopts.threads = 1;
  hopts.name = "agent";
  PHOTON_ASSIGN_OR_RETURN(http_,
                          HttpServer::Start(hopts, [this](HttpRequest& r) { return Serve(r); }));
  spdlog::info("serving /healthz and /metrics on port {}", http_->port());

  // The control plane may be down or still starting: retry what needs it until it answers
  // (a node agent outlives control plane restarts), but not a refusal.
  auto retry = [this](const char* what, const std::function<Status()>& step) -> Status {
    for (int attempt = 0;; ++attempt) {
      Status s = step();
      if (s.ok() || stop_ || s.code() == absl::StatusCode::kPermissionDenied ||
          s.code() == absl::StatusCode::kInvalidArgument ||
          s.code() == absl::StatusCode::kUnauthenticated) {
        return s;
      }
      if (attempt % 10 == 0) spdlog::warn("{}: {} (retrying)", what, s.ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  };
  PHOTON_RETURN_IF_ERROR(retry("join", [this] { return Join(); }));
  wiring_ = std::make_unique<PortWiring>(WiringOptions{options_.network_mode, options_.netns_prefix,
                                                       options_.host_netns, options_.name},
                                         api_.get(), &metrics_);
  PHOTON_RETURN_IF_ERROR(wiring_->Open());
  PHOTON_RETURN_IF_ERROR(ConfigureNodeBird(options_));
  attributes_["network.mode"] = options_.network_mode;
  {
    ImageCacheOptions io;
    io.dir = options_.data_dir + "/images";
    if (auto it = options_.drivers.find("images"); it != options_.drivers.end()) {
      PHOTON_RETURN_IF_ERROR(ParseImageCacheOptions(it->second, &io));
    }
    image_cache_ = std::make_unique<ImageCache>(
        io, [this](const std::string& path) { return api_->GetBytes(path); });
    PHOTON_RETURN_IF_ERROR(image_cache_->Start());
  }
  PHOTON_RETURN_IF_ERROR(InitProviders());
  PHOTON_RETURN_IF_ERROR(retry("register node", [this] { return RegisterNode(); }));
  PHOTON_RETURN_IF_ERROR(retry("heartbeat", [this] { return Heartbeat(); }));

  ControllerOptions copts;
  copts.node_name = options_.name;
  copts.data_dir = options_.data_dir;
  copts.drivers = drivers_;
  copts.workers = options_.workers;
  controller_ = std::make_unique<InstanceController>(copts, api_.get(), &registry_, &metrics_);
  // Only this node's work, selected by the server (its credential may read nothing else):
  // instances placed here, and operations on them (an Operation carries its target's agentId).
  const std::string mine = "?fieldSelector=" + PercentEncode("metadata.agentId=" + options_.name);
  instances_ =
      std::make_unique<Informer>(api_.get(), "/v1/computeinstances" + mine,
                                 [this](const std::string& k) { controller_->OnInstance(k); });
  operations_ =
      std::make_unique<Informer>(api_.get(), "/v1/operations" + mine,
                                 [this](const std::string& k) { controller_->OnOperation(k); });
  controller_->SetInformers(instances_.get(), operations_.get());
  // A Port is named after its instance: its key is the instance's. Only network mode "ports"
  // wires ports; in the other modes a Port's events (its placement, in the same transaction
  // as its instance's) would only reconcile the instance a second time for nothing.
  const bool wires_ports = options_.network_mode == "ports";
  ports_ = std::make_unique<Informer>(api_.get(), "/v1/ports" + mine,
                                      [this, wires_ports](const std::string& k) {
                                        if (wires_ports) controller_->OnPort(k);
                                        // A Port carries its instance's floating IP.
                                        if (floating_ips_) floating_ips_->Kick();
                                      });
  controller_->SetNetwork(ports_.get(), wiring_.get());
  PHOTON_RETURN_IF_ERROR(retry("list ports", [this] { return ports_->Sync(); }));
  PHOTON_RETURN_IF_ERROR(retry("list instances", [this] { return instances_->Sync(); }));
  PHOTON_RETURN_IF_ERROR(retry("list operations", [this] { return operations_->Sync(); }));
  PHOTON_RETURN_IF_ERROR(controller_->Adopt());
  if (options_.network_mode == "ports") {
    PHOTON_ASSIGN_OR_RETURN(FloatingIpOptions fo, FloatingIpOptionsFrom(options_));
    floating_ips_ = std::make_unique<FloatingIps>(std::move(fo), ports_.get(), &metrics_);
    PHOTON_RETURN_IF_ERROR(floating_ips_->Open());
    threads_.emplace_back([this] { floating_ips_->Run(&stop_); });
  }
  if (options_.network_mode == "ports") {  // 169.254.1.2, reached from every port
    metadata_directory_ = std::make_unique<AgentInstanceDirectory>(instances_.get(), ports_.get());
    metadata::MetadataServiceOptions mo;
    mo.netns = options_.host_netns;
    PHOTON_ASSIGN_OR_RETURN(metadata_,
                            metadata::MetadataService::Start(mo, metadata_directory_.get()));
  }
  checks_ = std::make_unique<checks::CheckRunner>(checks::RunnerOptions{.node = options_.name},
                                                  api_.get(), &metrics_);
  crash_loops_ = std::make_unique<checks::CrashLoopCheck>(checks_.get());
  controller_->SetObservedHook(
      [this](const std::string& key, const std::map<std::string, std::string>& details) {
        crash_loops_->Observe(key, details);
      });
  controller_->Start();
  PHOTON_RETURN_IF_ERROR(checks_->Start());
  StartProviderChecks();
  threads_.emplace_back([this] { instances_->Run(&stop_); });
  usage_->SetInstances(instances_.get());
  // VMs (their QEMU and QMP) and port namespaces are sampled too (docs/operations.md "Usage").
  if (drivers_.count("vm")) {
    usage_->SetVmInstancesDir(options_.data_dir + "/providers/vm/instances");
  }
  if (wiring_ && wiring_->mode() == "ports") {
    usage_->SetNetnsOf([this](const std::string& id) { return wiring_->NetnsOf(id); });
  }
  threads_.emplace_back([this] { usage_->Run(&stop_); });
  threads_.emplace_back([this] { operations_->Run(&stop_); });
  threads_.emplace_back([this] { ports_->Run(&stop_); });
  sessions_ = std::make_unique<SessionRunner>(api_.get(), options_.data_dir);
  threads_.emplace_back([this] { sessions_->Run(&stop_); });
  if (certs_) {
    // Rotation: a new certificate before this one runs out, for the connections after it.
    threads_.emplace_back([this] {
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (Status s = certs_->RenewIfDue(); !s.ok()) {
          spdlog::warn("certificate renewal: {} (retrying)", s.ToString());
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
      }
    });
  }
  threads_.emplace_back([this] {
    auto next_beat =
        std::chrono::steady_clock::now() + std::chrono::seconds(options_.heartbeat_seconds);
    auto next_sync =
        std::chrono::steady_clock::now() + std::chrono::seconds(options_.resync_seconds);
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto now = std::chrono::steady_clock::now();
      if (now >= next_beat) {
        next_beat = now + std::chrono::seconds(options_.heartbeat_seconds);
        Status s = Heartbeat();
        if (!s.ok()) {
          heartbeat_failures_->Inc();
          spdlog::warn("heartbeat: {}", s.ToString());
        }
      }
      if (now >= next_sync) {
        next_sync = now + std::chrono::seconds(options_.resync_seconds);
        controller_->ResyncAll();
      }
    }
  });
  ready_ = true;
  spdlog::info("node {} ready: drivers [{}]", options_.name, fmt::join(drivers_, ", "));
  return absl::OkStatus();
}

void Agent::StartProviderChecks() {
  checks::ProviderCheckOptions po;
  if (drivers_.count("vm")) po.vm_instances_dir = options_.data_dir + "/providers/vm/instances";
  po.bird_socket = options_.bird_socket;
  provider_checks_ = std::make_unique<checks::ProviderChecks>(
      po,
      [this](const std::string& check, const std::string& key, int severity,
             const std::string& output, const std::map<std::string, std::string>& labels) {
        checks_->Report(check, key, severity, output, labels);
      },
      [this] {
        std::vector<json> out;
        for (const auto& key : instances_->Keys()) {
          if (auto obj = instances_->Get(key)) out.push_back(std::move(*obj));
        }
        return out;
      });
  provider_checks_->Start();
}

void Agent::Stop() {
  stop_ = true;
  if (provider_checks_) provider_checks_->Stop();
  if (checks_) checks_->Stop();
  if (controller_) controller_->Stop();
  // Watch threads may sit in a blocking read until the next event; they exit with the process.
  for (auto& t : threads_) {
    if (t.joinable()) t.detach();
  }
  threads_.clear();
  if (metadata_) metadata_->Stop();
  if (http_) http_->Stop();
}

}  // namespace photon::agent
