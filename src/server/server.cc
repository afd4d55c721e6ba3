#include "server/server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/file_util.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "server/auth.h"
#include "server/controllers.h"
#include "server/grpc_service.h"
#include "server/housekeeper.h"
#include "server/identity/identity_api.h"
#include "server/images/image_service.h"
#include "server/leader.h"
#include "server/network/network_controller.h"
#include "server/network/private_dns.h"
#include "server/ops/ops_engine.h"
#include "server/providers/loadbalancer_rules.h"
#include "server/providers/service_controller.h"
#include "server/resource_manager.h"
#include "server/rest_gateway.h"
#include "server/scheduler/scheduler_controller.h"
#include "server/stream_relay.h"
#include "server/watch_cache.h"
#include "store/store.h"

namespace photon::server {

namespace {

// A server joining a control plane with the built-in CA takes the control plane's CA (fetched
// from o->join_ca_from, pinned by o->join_ca_hash) instead of making its own: agents then
// hold one certificate every server accepts. A CA already in the data dir must be that one.
Status JoinCa(const ServerOptions& o) {
  const TlsFiles f = GeneratedTlsFiles(o.data_dir);
  if (o.join_ca_from.empty() != o.join_ca_hash.empty()) {
    return absl::InvalidArgumentError("--ca-from and --ca-hash go together");
  }
  if (std::filesystem::exists(f.ca_cert)) {
    if (o.join_ca_hash.empty()) return absl::OkStatus();
    PHOTON_ASSIGN_OR_RETURN(std::string pem, ReadFile(f.ca_cert));
    PHOTON_ASSIGN_OR_RETURN(std::string hash, PublicKeyHash(pem));
    if (hash == o.join_ca_hash) return absl::OkStatus();
    return absl::FailedPreconditionError(f.ca_cert + " is another CA (" + hash +
                                         ") than the control plane's (" + o.join_ca_hash +
                                         "): this data dir belongs to another control plane");
  }
  if (o.join_ca_from.empty()) {
    return absl::InvalidArgumentError(
        "join: this server would make a CA of its own, whose agent certificates the other "
        "servers refuse: add --ca-from https://SERVER:PORT --ca-hash sha256:... (both in the "
        "first server's log; docs/ha.md)");
  }
  const std::string prefix = "https://";
  std::string host;
  int port = 0;
  if (o.join_ca_from.rfind(prefix, 0) != 0) {
    return absl::InvalidArgumentError("--ca-from: want https://HOST:PORT, not " + o.join_ca_from);
  }
  std::string hostport = o.join_ca_from.substr(prefix.size());
  while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  PHOTON_RETURN_IF_ERROR(ParseHostPort(hostport, &host, &port));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  PHOTON_ASSIGN_OR_RETURN(std::string body,
                          PinnedRequest(host, std::to_string(port), o.join_ca_hash, "POST",
                                        "/v1/ca/export", o.join_admin_token));
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j["caCert"].is_string() || !j["caKey"].is_string()) {
    return absl::InvalidArgumentError("--ca-from: the answer holds no CA");
  }
  const std::string cert = j["caCert"], key = j["caKey"];
  PHOTON_ASSIGN_OR_RETURN(std::string hash, PublicKeyHash(cert));
  if (hash != o.join_ca_hash || !KeyMatchesCertificate(cert, key)) {
    return absl::PermissionDeniedError("--ca-from: the CA sent is not the pinned " +
                                       o.join_ca_hash + " with its key");
  }
  PHOTON_RETURN_IF_ERROR(MakeDirs(o.data_dir + "/tls", 0700));
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(f.ca_key, key, 0600));  // key first, as tls.cc does
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(f.ca_cert, cert, 0644));
  spdlog::info("join: took the control plane's CA {} from {}", hash, o.join_ca_from);
  return absl::OkStatus();
}

// Decides TLS for both listeners and finds (or makes) the certificate: options_.tls_cert/key
// set on return when TLS is on; *ca the generated CA, if any.
Status ResolveTls(ServerOptions* o, std::string* ca) {
  if (o->tls != "auto" && o->tls != "on" && o->tls != "off") {
    return absl::InvalidArgumentError("tls: '" + o->tls + "' is not auto, on or off");
  }
  if (o->tls_cert.empty() != o->tls_key.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key go together: give both or neither");
  }
  std::string rest_host, grpc_host;
  int port = 0;
  PHOTON_RETURN_IF_ERROR(ParseHostPort(o->listen, &rest_host, &port));
  PHOTON_RETURN_IF_ERROR(ParseHostPort(o->grpc_listen, &grpc_host, &port));
  if (o->tls == "off") {
    if (!o->tls_cert.empty()) {
      return absl::InvalidArgumentError("tls: off contradicts tls_cert " + o->tls_cert);
    }
    if (!o->join_ca_from.empty()) {
      return absl::InvalidArgumentError("--ca-from: this server runs without TLS (no CA)");
    }
    if (!IsLoopbackHost(rest_host) || !IsLoopbackHost(grpc_host)) {
      spdlog::warn("tls: off on a non-loopback listener: tokens cross the network in clear text");
    }
    return absl::OkStatus();
  }
  const bool loopback_plain =
      o->tls == "auto" && IsLoopbackHost(rest_host) && IsLoopbackHost(grpc_host);
  if (!o->join_ca_from.empty() && (!o->tls_cert.empty() || loopback_plain)) {
    return absl::InvalidArgumentError(
        "--ca-from: this server has no built-in CA (--tls-cert given, or plain HTTP on "
        "loopback: add --tls on)");
  }
  if (!o->tls_cert.empty()) return CheckCertAndKey(o->tls_cert, o->tls_key);
  // Loopback traffic never leaves the host: plain HTTP there unless TLS is asked for.
  if (loopback_plain) return absl::OkStatus();
  if (!o->join_admin_token.empty()) PHOTON_RETURN_IF_ERROR(JoinCa(*o));
  PHOTON_ASSIGN_OR_RETURN(TlsFiles files, EnsureSelfSignedTls(o->data_dir, {rest_host, grpc_host}));
  o->tls_cert = files.cert;
  o->tls_key = files.key;
  *ca = files.ca_cert;
  return absl::OkStatus();
}

class ServerImpl : public Server {
 public:
  explicit ServerImpl(ServerOptions options) : options_(std::move(options)) {}
  ~ServerImpl() override { Stop(); }

  Status Init() {
    PHOTON_RETURN_IF_ERROR(MakeDirs(options_.data_dir, 0700));
    // The API refuses a RegionService's spec.loadBalancer when no provider would realize it.
    SetLoadBalancerProviderConfigured(
        std::any_of(options_.providers.begin(), options_.providers.end(),
                    [](const ProviderConfig& p) { return p.driver == "fiberlb"; }));
    SetLoadBalancerL4Configured(std::any_of(
        options_.providers.begin(), options_.providers.end(), [](const ProviderConfig& p) {
          return p.driver == "fiberlb" && p.settings.count("vip_pool");
        }));
    PHOTON_RETURN_IF_ERROR(ResolveTls(&options_, &ca_file_));
    PHOTON_ASSIGN_OR_RETURN(
        store_, store::OpenStore(
                    {.spec = options_.store, .data_dir = options_.data_dir, .metrics = &metrics_}));
    if (options_.join_token_ttl_s <= 0 || options_.token_ttl_s <= 0 ||
        options_.agent_cert_ttl_s <= 0) {
      return absl::InvalidArgumentError(
          "join_token_ttl_s, token_ttl_s and agent_cert_ttl_s must be > 0");
    }
    auth_ = std::make_unique<Authenticator>(
        store_.get(),
        AuthOptions{.data_dir = options_.data_dir,
                    .user_token_ttl = std::chrono::seconds(options_.token_ttl_s),
                    .join_token_ttl = std::chrono::seconds(options_.join_token_ttl_s),
                    .node_down_after = std::chrono::milliseconds(options_.node_down_after_ms),
                    .join_admin_token = options_.join_admin_token,
                    .agent_cert_ttl = std::chrono::seconds(options_.agent_cert_ttl_s)});
    PHOTON_RETURN_IF_ERROR(auth_->Load());
    // The built-in CA signs agent certificates (mTLS); a CA of one's own (--tls-cert) does not.
    if (!ca_file_.empty()) {
      PHOTON_RETURN_IF_ERROR(auth_->SetNodeCa(GeneratedTlsFiles(options_.data_dir)));
    }
    // Other servers on the same etcd mint and revoke tokens too (agents join through any).
    if (store_->Backend() == "etcd") PHOTON_RETURN_IF_ERROR(auth_->Follow());
    directory_ = std::make_unique<identity::Directory>(store_.get(), auth_.get());
    PHOTON_RETURN_IF_ERROR(directory_->Load());
    quotas_ = std::make_unique<identity::Quotas>(store_.get());
    PHOTON_RETURN_IF_ERROR(quotas_->Load());
    // ... and users, roles, bindings and quotas too.
    if (store_->Backend() == "etcd") {
      PHOTON_RETURN_IF_ERROR(directory_->Follow());
      PHOTON_RETURN_IF_ERROR(quotas_->Follow());
    }
    auth_->SetResolver([d = directory_.get()](Principal* p) { return d->Resolve(p); });
    // First start: admin.token and join.token (0600); later starts replace either if it no
    // longer holds a valid token (lost, revoked, or an expired join token).
    PHOTON_RETURN_IF_ERROR(auth_->Bootstrap());
    cache_ = std::make_unique<WatchCache>(store_.get(), &metrics_, options_.watch_history);
    if (options_.watch_bookmark_interval_ms < 0) {
      return absl::InvalidArgumentError("watch_bookmark_interval_ms: must be ≥ 0 (0: none)");
    }
    cache_->SetBookmarkInterval(std::chrono::milliseconds(options_.watch_bookmark_interval_ms));
    PHOTON_RETURN_IF_ERROR(cache_->Start());
    resources_ = std::make_unique<ResourceManager>(store_.get(), cache_.get(), &metrics_);
    resources_->SetQuotas(quotas_.get());
    PHOTON_RETURN_IF_ERROR(resources_->MigrateLegacyAudit());
    network_ = std::make_unique<prismnet::NetworkManager>(
        store_.get(),
        prismnet::NetworkOptions{.default_pool = options_.default_vpc_pool,
                                 .default_vpc_prefix = options_.default_vpc_prefix,
                                 .default_subnet_prefix = options_.default_subnet_prefix,
                                 .floating_pool = options_.floating_ip_pool});
    PHOTON_RETURN_IF_ERROR(network_->Init());
    resources_->SetNetwork(network_.get());
    network_controller_ =
        std::make_unique<prismnet::NetworkController>(resources_.get(), network_.get());
    PHOTON_RETURN_IF_ERROR(network_controller_->Start());
    if (options_.audit_retention_age_s <= 0 || options_.audit_retention_count <= 0) {
      return absl::InvalidArgumentError(
          "audit_retention_age_s and audit_retention_count must be positive");
    }
    resources_->SetRefusalWindow(std::chrono::milliseconds(options_.audit_refusal_window_ms));
    if (options_.scheduler && (options_.node_suspect_after_ms <= 0 ||
                               options_.node_down_after_ms <= options_.node_suspect_after_ms)) {
      return absl::InvalidArgumentError(
          "node_down_after_ms must be greater than node_suspect_after_ms (> 0)");
    }
    PHOTON_RETURN_IF_ERROR(CreateProviders().status());  // a bad provider config fails the start
    opsengine::EngineOptions eo;
    eo.stats = {.prometheus_url = options_.prometheus_url,
                .day = std::chrono::seconds(options_.stats_day_s),
                .month_days = options_.stats_month_days};
    PHOTON_RETURN_IF_ERROR(opsengine::StatsController::Validate(eo.stats));
    eo.metrics = &metrics_;
    ops_ = std::make_unique<opsengine::OpsEngine>(resources_.get(), eo);
    std::vector<std::pair<std::string, std::string>> daemons;  // scraped through discovery
    for (const auto& p : options_.providers) {
      if (auto e = p.settings.find("endpoint"); e != p.settings.end()) {
        daemons.emplace_back(p.driver, e->second);
      }
    }
    ops_->SetDaemonEndpoints(std::move(daemons));
    // On etcd the elected leader runs the pipeline's background work (StartLeaderLoops).
    ops_->SetLeading(store_->Backend() != "etcd");
    ops_->Start();
    rest_ = std::make_unique<RestGateway>(resources_.get(), auth_.get(), &metrics_);
    identity_api_ = std::make_unique<identity::IdentityApi>(directory_.get(), quotas_.get(),
                                                            auth_.get(), resources_.get());
    rest_->SetIdentity(identity_api_.get());
    relay_ = std::make_unique<StreamRelay>(resources_.get(), auth_.get());
    rest_->SetStreamRelay(relay_.get());
    images::ImageServiceOptions image_options;
    image_options.max_image_bytes = options_.image_max_bytes;
    image_options.chunk_bytes = std::min<size_t>(options_.max_body_bytes, 4 << 20);
    PHOTON_ASSIGN_OR_RETURN(
        images_, images::ImageService::Create(resources_.get(), options_.providers, image_options));
    rest_->SetImageService(images_.get());
    HttpServerOptions http;
    http.listen = options_.listen;
    http.threads =
        options_.http_threads > 0
            ? options_.http_threads
            : std::clamp(2 * static_cast<int>(std::thread::hardware_concurrency()), 4, 16);
    http.max_body_bytes = options_.max_body_bytes;
    http.name = "photon-server rest";
    http.tls_cert = options_.tls_cert;
    http.tls_key = options_.tls_key;
    if (auth_->HasNodeCa()) http.tls_client_ca = ca_file_;
    PHOTON_ASSIGN_OR_RETURN(http_, HttpServer::Start(http, [this](HttpRequest& r) {
                              if (r.path == "/healthz") return Healthz();
                              if (auto resp = ops_->Handle(r, *auth_)) return std::move(*resp);
                              return rest_->Handle(r);
                            }));

    grpc_service_ = std::make_unique<GrpcResourceService>(resources_.get(), auth_.get(), &metrics_);
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (!options_.tls_cert.empty()) {
      grpc::SslServerCredentialsOptions ssl;
      PHOTON_ASSIGN_OR_RETURN(std::string cert, ReadFile(options_.tls_cert));
      PHOTON_ASSIGN_OR_RETURN(std::string key, ReadFile(options_.tls_key));
      ssl.pem_key_cert_pairs.push_back({key, cert});
      // Agents authenticate with their certificate here too; GrpcResourceService checks it
      // (a handshake failure would give the client no reason).
      if (auth_->HasNodeCa()) {
        ssl.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY;
      }
      creds = grpc::SslServerCredentials(ssl);
    }
    builder.AddListeningPort(options_.grpc_listen, creds, &grpc_port_);
    builder.RegisterService(grpc_service_.get());
    builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_body_bytes));
    grpc_ = builder.BuildAndStart();
    if (!grpc_ || grpc_port_ == 0) {
      return absl::UnavailableError("gRPC: cannot listen on " + options_.grpc_listen);
    }
    spdlog::info("photon-server: REST ({}) on port {}, gRPC{} on port {}, store {}", scheme(),
                 http_->port(), options_.tls_cert.empty() ? "" : " (TLS)", grpc_port_,
                 store_->Backend());
    PHOTON_RETURN_IF_ERROR(StartLeadership());
    if (!ca_file_.empty()) {
      spdlog::info("tls: serving the generated certificate {}; clients trust the CA {}",
                   options_.tls_cert, ca_file_);
      spdlog::info("tls: CA hash {} (agents pin it: photon-agent --ca-hash {})", auth_->CaHash(),
                   auth_->CaHash());
      spdlog::info("  export PHOTON_SERVER=https://HOST:{} PHOTON_CA_FILE={}", http_->port(),
                   ca_file_);
    }
    return absl::OkStatus();
  }

  // On a shared etcd several servers run; one at a time runs the leader-only loops, elected
  // (server/leader.h). SQLite has one server per store: it always leads, unfenced.
  Status StartLeadership() {
    if (store_->Backend() != "etcd") return StartLeaderLoops();
    if (options_.leader_lease_ttl_s <= 0) {
      return absl::InvalidArgumentError("leader_lease_ttl_s must be > 0");
    }
    std::string identity = options_.advertise;
    if (identity.empty()) {
      std::string host;
      int port = 0;
      PHOTON_RETURN_IF_ERROR(ParseHostPort(options_.listen, &host, &port));
      if (host.find(':') != std::string::npos) host = "[" + host + "]";
      identity = scheme() + "://" + host + ":" + std::to_string(http_->port());
    }
    elector_ = std::make_unique<LeaderElector>(
        store_.get(),
        LeaderOptions{.identity = identity,
                      .ttl_s = options_.leader_lease_ttl_s,
                      .on_elected = [this] { return StartLeaderLoops(); },
                      .on_deposed = [this] { StopLeaderLoops(); }},
        &metrics_);
    resources_->SetLeaderFence([e = elector_.get()] { return e->Fence(); });
    elector_->Start();
    // With the built-in CA the joining server takes it from this one, pinned by its hash.
    const std::string ca_args =
        auth_->HasNodeCa() ? " --ca-from " + identity + " --ca-hash " + auth_->CaHash() : "";
    spdlog::info(
        "control plane: another server joins it with: PHOTON_TOKEN=$(cat {}) "
        "photon-server --join --store {}{} --data-dir DIR --listen HOST:PORT",
        admin_token_path(), options_.store, ca_args);
    return absl::OkStatus();
  }

  // "ok", and with an elected leader this server's role and the leader it knows.
  HttpResponse Healthz() const {
    if (!elector_) return HttpResponse::Text(200, "ok\n");
    return HttpResponse::Text(200, std::string("ok\nrole: ") +
                                       (elector_->is_leader() ? "leader" : "follower") +
                                       "\nleader: " + elector_->leader() + "\n");
  }

  StatusOr<std::vector<std::unique_ptr<ServiceProvider>>> CreateProviders() {
    std::vector<std::unique_ptr<ServiceProvider>> providers;
    for (size_t i = 0; i < options_.providers.size(); ++i) {
      auto p = CreateProvider(options_.providers[i]);
      if (!p.ok()) {
        return absl::InvalidArgumentError("providers[" + std::to_string(i) +
                                          "]: " + std::string(p.status().message()));
      }
      providers.push_back(std::move(*p));
    }
    return providers;
  }

  // The loops only the leader runs: placement and node lifecycle, operations, housekeeping
  // (compaction, GC), service providers and private DNS. Each term gets new ones (they start
  // and stop once).
  Status StartLeaderLoops() {
    controllers_ = std::make_unique<Controllers>(resources_.get());
    PHOTON_RETURN_IF_ERROR(controllers_->Start());
    HousekeeperOptions hk;
    hk.interval = std::chrono::seconds(std::max(1, options_.housekeeping_interval_s));
    hk.event_ttl = std::chrono::seconds(options_.event_ttl_s);
    hk.operation_ttl = std::chrono::seconds(options_.event_ttl_s);
    hk.audit_ttl = std::chrono::seconds(options_.audit_retention_age_s);
    hk.audit_max_records = options_.audit_retention_count;
    housekeeper_ = std::make_unique<Housekeeper>(resources_.get(), hk);
    housekeeper_->Start();
    if (options_.scheduler) {
      SchedulerControllerOptions so;
      so.suspect_after = std::chrono::milliseconds(options_.node_suspect_after_ms);
      so.down_after = std::chrono::milliseconds(options_.node_down_after_ms);
      so.placement.binpack = options_.scheduler_binpack;
      scheduler_ = std::make_unique<SchedulerController>(resources_.get(), so);
      PHOTON_RETURN_IF_ERROR(scheduler_->Start());
    }
    if (ops_) ops_->SetLeading(true);
    PHOTON_ASSIGN_OR_RETURN(auto providers, CreateProviders());
    ServiceControllerOptions sco;
    sco.resync = std::chrono::seconds(std::max(1, options_.provider_resync_s));
    services_ =
        std::make_unique<ServiceController>(resources_.get(), &metrics_, std::move(providers), sco);
    PHOTON_RETURN_IF_ERROR(services_->Start());
    return StartPrivateDns();
  }

  void StopLeaderLoops() {
    if (ops_) ops_->SetLeading(false);
    if (scheduler_) {
      scheduler_->Stop();
      // The API may still be inside the hooks it set on the resource manager (placement
      // check, create hint): kept alive, stopped, until the server goes.
      stopped_schedulers_.push_back(std::move(scheduler_));
    }
    if (services_) services_->Stop();
    if (private_dns_) private_dns_->Stop();
    if (housekeeper_) housekeeper_->Stop();
    if (controllers_) controllers_->Stop();
    services_.reset();
    private_dns_.reset();
    housekeeper_.reset();
    controllers_.reset();
  }

  int http_port() const override { return http_ ? http_->port() : 0; }
  int grpc_port() const override { return grpc_port_; }
  std::string admin_token_path() const override { return options_.data_dir + "/admin.token"; }
  std::string scheme() const override { return options_.tls_cert.empty() ? "http" : "https"; }
  std::string ca_file() const override { return ca_file_; }

  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (http_) http_->Stop();
    if (elector_) {
      elector_->Stop();  // stops the loops, then lets a follower win at once
    } else {
      StopLeaderLoops();
    }
    if (ops_) ops_->Stop();
    if (network_controller_) network_controller_->Stop();
    if (cache_) cache_->Stop();
  }

 private:
  // VPC private DNS through the first provider whose driver offers zones (flashdns).
  Status StartPrivateDns() {
    std::unique_ptr<ZoneBackend> backend;
    for (const auto& config : options_.providers) {
      PHOTON_ASSIGN_OR_RETURN(backend, CreateZoneBackend(config));
      if (backend) break;
    }
    prismnet::PrivateDnsOptions o;
    o.resync = std::chrono::seconds(std::max(1, options_.provider_resync_s));
    private_dns_ =
        std::make_unique<prismnet::PrivateDnsController>(resources_.get(), std::move(backend), o);
    return private_dns_->Start();
  }

  ServerOptions options_;
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<identity::Directory> directory_;
  std::unique_ptr<identity::IdentityApi> identity_api_;
  std::unique_ptr<identity::Quotas> quotas_;
  std::unique_ptr<WatchCache> cache_;
  std::unique_ptr<ResourceManager> resources_;
  std::unique_ptr<Controllers> controllers_;
  std::unique_ptr<prismnet::NetworkManager> network_;
  std::unique_ptr<prismnet::NetworkController> network_controller_;
  std::unique_ptr<Housekeeper> housekeeper_;
  std::unique_ptr<SchedulerController> scheduler_;
  std::vector<std::unique_ptr<SchedulerController>> stopped_schedulers_;
  std::unique_ptr<LeaderElector> elector_;
  std::unique_ptr<ServiceController> services_;
  std::unique_ptr<prismnet::PrivateDnsController> private_dns_;
  std::unique_ptr<opsengine::OpsEngine> ops_;
  std::unique_ptr<StreamRelay> relay_;            // outlives http_ (its streams call back into it)
  std::unique_ptr<images::ImageService> images_;  // outlives http_
  std::unique_ptr<RestGateway> rest_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<GrpcResourceService> grpc_service_;
  std::unique_ptr<grpc::Server> grpc_;
  int grpc_port_ = 0;
  std::string ca_file_;
  bool stopped_ = false;
};

// providers: a list of mappings, each with `driver` and the driver's own scalar keys (which the
// driver checks when photon-server starts).
Status LoadProviders(const std::string& path, const YAML::Node& node,
                     std::vector<ProviderConfig>* out) {
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError("config " + path +
                                      ": providers: want a list of {driver: ..., ...}");
  }
  out->clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string where = "config " + path + ": providers[" + std::to_string(i) + "]";
    const YAML::Node& entry = node[i];
    if (!entry.IsMap()) return absl::InvalidArgumentError(where + ": want a mapping");
    ProviderConfig pc;
    for (const auto& kv : entry) {
      const std::string key = kv.first.as<std::string>();
      if (kv.second.IsSequence()) {  // a list of scalars reaches the driver comma-joined
        std::string joined;
        for (const auto& item : kv.second) {
          if (!item.IsScalar()) return absl::InvalidArgumentError(where + "." + key + ": bad list");
          joined += (joined.empty() ? "" : ",") + item.as<std::string>();
        }
        pc.settings[key] = joined;
        continue;
      }
      if (!kv.second.IsScalar()) {
        return absl::InvalidArgumentError(where + "." + key + ": want a single value");
      }
      if (key == "driver")
        pc.driver = kv.second.as<std::string>();
      else
        pc.settings[key] = kv.second.as<std::string>();
    }
    if (pc.driver.empty()) return absl::InvalidArgumentError(where + ".driver: required");
    out->push_back(std::move(pc));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto s = std::make_unique<ServerImpl>(options);
  PHOTON_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

Status LoadServerConfig(const std::string& path, ServerOptions* options) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError("config " + path + ": " + e.what());
  }
  if (!root.IsMap()) return absl::InvalidArgumentError("config " + path + ": want a mapping");
  try {
    for (const auto& it : root) {
      const std::string key = it.first.as<std::string>();
      const auto& v = it.second;
      if (key == "data_dir")
        options->data_dir = v.as<std::string>();
      else if (key == "listen")
        options->listen = v.as<std::string>();
      else if (key == "grpc_listen")
        options->grpc_listen = v.as<std::string>();
      else if (key == "store")
        options->store = v.as<std::string>();
      else if (key == "http_threads")
        options->http_threads = v.as<int>();
      else if (key == "max_body_bytes")
        options->max_body_bytes = v.as<size_t>();
      else if (key == "image_max_bytes")
        options->image_max_bytes = v.as<int64_t>();
      else if (key == "scheduler")
        options->scheduler = v.as<bool>();
      else if (key == "prometheus_url")
        options->prometheus_url = v.as<std::string>();
      else if (key == "node_suspect_after_ms")
        options->node_suspect_after_ms = v.as<int>();
      else if (key == "node_down_after_ms")
        options->node_down_after_ms = v.as<int>();
      else if (key == "join_token_ttl_s")
        options->join_token_ttl_s = v.as<int>();
      else if (key == "agent_cert_ttl_s")
        options->agent_cert_ttl_s = v.as<int>();
      else if (key == "token_ttl_s")
        options->token_ttl_s = v.as<int>();
      else if (key == "scheduler_binpack")
        options->scheduler_binpack = v.as<bool>();
      else if (key == "audit_retention_age_s")
        options->audit_retention_age_s = v.as<int>();
      else if (key == "audit_retention_count")
        options->audit_retention_count = v.as<int64_t>();
      else if (key == "watch_bookmark_interval_ms")
        options->watch_bookmark_interval_ms = v.as<int>();
      else if (key == "provider_resync_s")
        options->provider_resync_s = v.as<int>();
      else if (key == "default_vpc_pool")
        options->default_vpc_pool = v.as<std::string>();
      else if (key == "default_vpc_prefix")
        options->default_vpc_prefix = v.as<int>();
      else if (key == "default_subnet_prefix")
        options->default_subnet_prefix = v.as<int>();
      else if (key == "floating_ip_pool")
        options->floating_ip_pool = v.as<std::string>();
      else if (key == "leader_lease_ttl_s")
        options->leader_lease_ttl_s = v.as<int>();
      else if (key == "advertise")
        options->advertise = v.as<std::string>();
      else if (key == "tls")
        options->tls = v.as<std::string>();
      else if (key == "tls_cert")
        options->tls_cert = v.as<std::string>();
      else if (key == "tls_key")
        options->tls_key = v.as<std::string>();
      else if (key == "providers") {
        PHOTON_RETURN_IF_ERROR(LoadProviders(path, v, &options->providers));
      } else
        return absl::InvalidArgumentError("config " + path + ": unknown key '" + key + "'");
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError("config " + path + ": " + e.what());
  }
  return absl::OkStatus();
}

}  // namespace photon::server
