// photon-server assembled: store, watch cache, auth, resource manager, controllers, REST and
// gRPC listeners. Used by main.cc and by in-process tests and benchmarks.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "server/providers/service_provider.h"

namespace photon::server {

struct ServerOptions {
  std::string data_dir = "/var/lib/photon";
  std::string listen = "127.0.0.1:8080";       // REST, /healthz, /metrics
  std::string grpc_listen = "127.0.0.1:8081";  // gRPC
  std::string store = "sqlite";                // sqlite | etcd://host:port,...
  // Several servers on one etcd (docs/ha.md): the leader's lease TTL (etcd raises it to its
  // own minimum, 2 s with etcd's default timing), and the URL this server is reached at, as
  // /healthz shows the leader (default: SCHEME://LISTEN-HOST:PORT).
  int leader_lease_ttl_s = 2;
  std::string advertise;
  // Joining an existing control plane on `store`: one of its admin tokens (photon-server
  // --join reads it from PHOTON_TOKEN), kept as this server's admin.token instead of a new one.
  std::string join_admin_token;
  // With join_admin_token and the built-in CA: the control plane's CA is fetched from this
  // server (https://HOST:PORT), trusted only if its hash is join_ca_hash ("sha256:..."), and
  // kept in DATA_DIR/tls (key 0600), so every server signs and accepts the same agent
  // certificates (docs/ha.md "TLS and the CA").
  std::string join_ca_from;
  std::string join_ca_hash;
  // REST I/O threads; 0 = twice the cores, at least 4 and at most 16. Creates and updates
  // wait on no thread (answered on commit); deletes hold theirs for their commit. Fewer
  // threads are cheaper on few cores: each request woke a sleeping thread, and with 16
  // threads on 2 cores the switches cost a quarter of the server's CPU per create.
  int http_threads = 0;
  size_t max_body_bytes = 1 << 20;
  // The largest image `photon image upload` takes (docs/images.md).
  int64_t image_max_bytes = int64_t{64} << 30;
  // The built-in scheduler, node lifecycle and RegionService controller; false leaves
  // placement to an external scheduler.
  bool scheduler = true;
  int node_suspect_after_ms = 15000;  // no heartbeat this long → SUSPECT (probe /healthz)
  int node_down_after_ms = 60000;     // no heartbeat this long → DOWN, computes rescheduled
  // Credentials (docs/api.md#tokens): how long a join token (join.token, or one made with
  // `photon token create --role join`) and a user token without --ttl stay valid.
  int join_token_ttl_s = 24 * 3600;
  int token_ttl_s = 30 * 24 * 3600;
  // How long an agent certificate from the built-in CA is valid (docs/security.md).
  int agent_cert_ttl_s = 24 * 3600;
  bool scheduler_binpack = false;  // false: least-allocated (spread load over nodes)
  // Events kept for watch resume. Each holds the object version it changed to, so the ring
  // costs memory; a client further behind than this relists (HTTP 410).
  size_t watch_history = 20000;
  // Every watch gets a BOOKMARK (the current resource version) this often, so an idle watch
  // still carries traffic and its client can tell a live stream from a dead connection.
  int watch_bookmark_interval_ms = 30000;
  int housekeeping_interval_s = 30;  // events/finished operations GC and store compaction
  int event_ttl_s = 3600;
  // Long-term statistics (docs/operations.md): Prometheus's API they are computed from ("" =
  // none), the length of a day (shorter only for tests) and then the days of a month.
  std::string prometheus_url;
  int stats_day_s = 86400;
  int stats_month_days = 0;
  // Audit log retention, applied by housekeeping on either store: records older than
  // audit_retention_age_s go, and all but the newest audit_retention_count.
  int audit_retention_age_s = 30 * 24 * 3600;
  int64_t audit_retention_count = 100000;
  // Requests refused for their credentials from one address within this window make one
  // counted audit record (after one for the first), not one each.
  int audit_refusal_window_ms = 60000;
  // Server-side service providers (docs/providers.md): who realizes DnsZone, DnsRecord, ...
  std::vector<ProviderConfig> providers;
  int provider_resync_s = 60;  // every object applied again, orphans removed
  // prismnet (docs/networking.md): each namespace's default VPC is the first free block of
  // default_vpc_prefix in default_vpc_pool; its default subnet the VPC's first
  // default_subnet_prefix block.
  std::string default_vpc_pool = "10.0.0.0/8";
  int default_vpc_prefix = 16;
  int default_subnet_prefix = 20;
  // FloatingIp addresses (docs/networking.md "Floating IPs"): a public CIDR outside every VPC;
  // "" = none, FloatingIp creates are refused.
  std::string floating_ip_pool;
  // TLS for REST and gRPC (docs/api.md#tls). auto: TLS unless both listeners are on loopback;
  // on: always; off: never (plain HTTP even across hosts). Without tls_cert/tls_key, TLS uses a
  // CA and server certificate generated in DATA_DIR/tls on first start.
  std::string tls = "auto";
  std::string tls_cert;  // PEM chain
  std::string tls_key;   // PEM key
};

class Server {
 public:
  virtual ~Server() = default;
  // Opens the store, bootstraps credentials on first start, starts every listener.
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  virtual int http_port() const = 0;
  virtual int grpc_port() const = 0;
  virtual std::string admin_token_path() const = 0;
  // "https" or "http": what the REST listener speaks (gRPC follows it).
  virtual std::string scheme() const { return "http"; }
  // The generated CA clients should trust; empty with a given certificate or without TLS.
  virtual std::string ca_file() const { return ""; }
  virtual void Stop() = 0;
};

// Loads ServerOptions from a YAML file; unknown keys are refused naming the key.
Status LoadServerConfig(const std::string& path, ServerOptions* options);

}  // namespace photon::server
