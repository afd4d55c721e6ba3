// photon-agent: joins the control plane, registers its Node (capacity, drivers, attributes,
// topology labels), heartbeats, serves /healthz and /metrics, and runs the instance
// controller over its providers.
// Thread-safety: Start once, then Stop from any thread; the rest is internal.
#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/api_client.h"
#include "agent/checks/check_runner.h"
#include "agent/checks/crash_loop.h"
#include "agent/checks/provider_checks.h"
#include "agent/config.h"
#include "agent/floating_ips.h"
#include "agent/image_cache.h"
#include "agent/informer.h"
#include "agent/instance_controller.h"
#include "agent/instance_metrics.h"
#include "agent/metadata/metadata_service.h"
#include "agent/node_cert.h"
#include "agent/port_wiring.h"
#include "agent/provider.h"
#include "agent/session_runner.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace photon::agent {

class Agent : public ResourceLookup {
 public:
  explicit Agent(AgentOptions options);
  ~Agent() override;

  // Joins (or reuses the stored credential), starts providers, registers the node, adopts
  // what runs and starts the watches. Returns once the agent is serving.
  Status Start();
  // Stops the background threads; workloads keep running (a restarted agent adopts them).
  void Stop();
  int http_port() const { return http_ ? http_->port() : 0; }

  StatusOr<compute::Image> GetImage(const std::string& ns, const std::string& name) override;
  StatusOr<storage::Volume> GetVolume(const std::string& ns, const std::string& name) override;
  StatusOr<std::string> FetchImage(const compute::Image& image, const std::string& holder) override;
  std::string PortNetns(const std::string& instance_id) override;

 private:
  Status Join();
  Status JoinWithCert();
  Status InitProviders();
  Status RegisterNode();
  Status Heartbeat();
  nlohmann::json NodeSpec() const;
  HttpResponse Serve(HttpRequest& req);
  void StartProviderChecks();

  AgentOptions options_;
  std::unique_ptr<ApiClient> api_;
  std::unique_ptr<ImageCache> image_cache_;  // uploaded images, by digest
  std::unique_ptr<NodeCertificates> certs_;  // https with the built-in CA only
  ProviderRegistry registry_;
  std::set<std::string> drivers_;
  std::map<std::string, std::string> attributes_;
  MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<InstanceController> controller_;
  std::unique_ptr<checks::CheckRunner> checks_;  // the node's checks (seed 003)
  std::unique_ptr<checks::CrashLoopCheck> crash_loops_;
  std::unique_ptr<checks::ProviderChecks> provider_checks_;  // vm-qmp, container-runc, bird
  std::unique_ptr<InstanceMetrics> usage_;  // node and per-instance usage on /metrics
  std::unique_ptr<Informer> instances_;
  std::unique_ptr<Informer> operations_;
  std::unique_ptr<PortWiring> wiring_;         // instance networks (port namespaces)
  std::unique_ptr<FloatingIps> floating_ips_;  // the node's NAT (mode ports)
  std::unique_ptr<Informer> ports_;            // this node's Ports
  std::unique_ptr<SessionRunner> sessions_;    // photon logs / exec, dialled back to the server
  // The metadata service at 169.254.1.2 ("ports" mode), fed from the two informers.
  std::unique_ptr<metadata::InstanceDirectory> metadata_directory_;
  std::unique_ptr<metadata::MetadataService> metadata_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::vector<std::thread> threads_;
  Gauge* heartbeat_age_ = nullptr;
  Counter* heartbeat_failures_ = nullptr;
};

}  // namespace photon::agent
